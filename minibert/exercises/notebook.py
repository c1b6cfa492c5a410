"""One notebook per exercise: the statement and math, the hints (folded), and a cell that grades the file.

Written as plain nbformat-4 JSON (no Jupyter package needed to create a workspace). The notebook
lives in DIR/notebooks/exercises/, so the learner's file is two folders up; the grading cell imports
minibert and calls `grade`, which reloads the file at every run.
"""
from __future__ import annotations

from minibert.exercises.starters import signature_line

__all__ = ["exercise_notebook"]


def _cell(kind: str, source: str, ident: str) -> dict:
    cell = {"cell_type": kind, "id": ident, "metadata": {}, "source": source.strip("\n")}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def exercise_notebook(ex) -> dict:
    """The notebook of exercise `ex` as a JSON-ready dict."""
    signatures = "\n".join(f"    {signature_line(f)}" for f in ex.functions)
    docs = ", ".join(f"`{d}`" for d in ex.docs) or "the docs"
    intro = (f"# Exercise {ex.number:02d}: {ex.title}\n\n"
             f"*About {ex.minutes} minutes.* You write, in `../../{ex.stem}.py`:\n\n{signatures}\n\n"
             f"The docstrings there are minibert's own and give every shape. Keep the signatures: the "
             f"grader calls your functions that way. Background: {docs} in minibert's repository.")
    hints = "## Hints\n\nOpen one at a time, and try again after each.\n\n" + "\n\n".join(
        f"<details><summary>Hint {i}</summary>\n\n{h.strip()}\n\n</details>" for i, h in enumerate(ex.hints, 1))
    how = ("## Check your work\n\nRun the cell below after every change to your file (it is reloaded each "
           "time). It runs your functions against minibert's on odd shapes and edge cases, checks gradients "
           "with float64 finite differences, and says which output is wrong, where, and why it might be: "
           "never the answer itself.")
    code = (f"from minibert.exercises import grade\n\n"
            f"result = grade(\"{ex.name}\", workspace=\"../..\")   # grades ../../{ex.stem}.py")
    after = ("## When it passes\n\n" + (f"Read {docs} again: the derivation there is the one you just did. "
             if ex.docs else "") + "Then go on with the next exercise or notebook of the learning path "
             "(minibert's README, *Learning path*). The same check runs from a terminal: "
             f"`python -m minibert.exercises check . {ex.name}` in the workspace folder.")
    cells = [("markdown", intro), ("markdown", ex.statement), ("markdown", hints),
             ("markdown", how), ("code", code), ("markdown", after)]
    return {
        "cells": [_cell(kind, text, f"ex{ex.number:02d}-{i}") for i, (kind, text) in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
