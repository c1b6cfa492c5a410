"""One notebook per exercise: the contract, what is computed, the derivation to do, hints, questions, checks.

Written as plain nbformat-4 JSON (no Jupyter package needed to create a workspace). The notebook
lives in DIR/notebooks/exercises/, so the learner's file is two folders up. In order:

    the title and the contract      each function's signature and docstring (inputs, outputs, shapes,
                                    what the cache holds, the question to derive): what the starter holds
    What is computed                the exercise's statement (the forward's definition)
    Derive it                       the guided derivation (scalar case, vectorised, shapes), then where
                                    the solution is: a page of minibert's repository opened on purpose,
                                    never copied into the workspace
    Hints                           folded, one at a time, from a nudge to a pointer into the docs
    Questions                       each written question followed by an answer cell (markdown, with
                                    metadata {"minibert": {"answer": "q1"}}: `report` reads it)
    Sanity checks                   habits run on the learner's own functions (`mine.NAME`, reloaded
                                    from the file at every run); "not implemented yet" while blank
    Check your work                 the grading cell

Everything before "Derive it"'s solution pointer is text the learner reads before deriving: the
no-leak test (tests/exercises/test_no_leaks.py) checks that none of it holds a line of the solution.
"""
from __future__ import annotations

import textwrap

from minibert.exercises.starters import signature_line

__all__ = ["exercise_notebook", "ANSWER_PLACEHOLDER", "answer_key", "solution_page"]

# The text of an answer cell until the learner writes in it: `report` counts it as not answered
ANSWER_PLACEHOLDER = "*Your answer here (double-click to edit).*"


def answer_key(n: int) -> str:
    """The marker of question n's answer cell (1-based): metadata {"minibert": {"answer": "q1"}}."""
    return f"q{n}"


def solution_page(ex) -> str:
    """Where the solution of `ex` is, in minibert's repository (never in a workspace)."""
    return f"docs/exercises/solutions/{ex.stem}.md"


def _cell(kind: str, source: str, ident: str, metadata: dict | None = None) -> dict:
    cell = {"cell_type": kind, "id": ident, "metadata": dict(metadata or {}), "source": source.strip("\n")}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def _contract_block(ex, fn) -> str:
    doc = textwrap.indent(ex.contract(fn.__name__).strip("\n"), "    ")
    return f"```python\ndef {signature_line(fn)}:\n    \"\"\"\n{doc}\n    \"\"\"\n```"


def _intro(ex) -> str:
    docs = ", ".join(f"`{d}`" for d in ex.docs) or "the docs"
    own = {name for name, _ in ex.contracts}
    whose = ("The docstrings are the contract: inputs, outputs, shapes, what the cache holds, and the "
             "question to derive. They do not give the result: deriving it is the exercise."
             if own >= set(ex.function_names) else
             "The docstrings are minibert's own and give every shape.")
    contracts = "\n\n".join(_contract_block(ex, f) for f in ex.functions)
    return (f"# Exercise {ex.number:02d}: {ex.title}\n\n"
            f"*About {ex.minutes} minutes.* You write, in `../../{ex.stem}.py`:\n\n{contracts}\n\n"
            f"{whose} Keep the signatures: the grader calls your functions that way. "
            f"Background: {docs} in minibert's repository.")


def _derive(ex) -> str:
    body = ex.derivation.strip() or ("Work the result out on paper before you write code: the scalar case "
                                     "first, then the vectorised form, then check every shape.")
    return (f"## Derive it\n\n{body}\n\n"
            f"**The solution** is `{solution_page(ex)}` in minibert's repository (your teacher may release "
            f"it after the deadline). Open it on purpose, once your derivation is done or you are truly stuck: "
            f"it is never copied into this workspace.")


def _hints(ex) -> str:
    return "## Hints\n\nOpen one at a time, and try again after each.\n\n" + "\n\n".join(
        f"<details><summary>Hint {i}</summary>\n\n{h.strip()}\n\n</details>" for i, h in enumerate(ex.hints, 1))


def _sanity_code(ex, code: str) -> str:
    return (f"with sanity(\"{ex.name}\", workspace=\"../..\") as mine:   # your file, reloaded; mine.NAME is "
            f"your function NAME\n" + textwrap.indent(textwrap.dedent(code).strip("\n"), "    "))


def exercise_notebook(ex) -> dict:
    """The notebook of exercise `ex` as a JSON-ready dict."""
    cells = [("markdown", _intro(ex), None), ("markdown", "## What is computed\n\n" + ex.statement.strip(), None),
             ("markdown", _derive(ex), None), ("markdown", _hints(ex), None)]
    if ex.questions:
        cells.append(("markdown", "## Questions\n\nAnswer each in the cell below it, in your own words (a few "
                      "sentences, math welcome). `python -m minibert.exercises report` collects your answers "
                      "with the grader's results for submission.", None))
        for n, q in enumerate(ex.questions, 1):
            cells.append(("markdown", f"**Question {n}.** {q.prompt.strip()}", None))
            cells.append(("markdown", ANSWER_PLACEHOLDER, {"minibert": {"answer": answer_key(n)}}))
    if ex.sanity:
        cells.append(("markdown", "## Sanity checks\n\nHabits worth keeping on any model you write: each cell "
                      "below runs on *your* functions (your file, reloaded at every run). They say \"not "
                      "implemented yet\" while your file is the blank starter.", None))
        cells.append(("code", "import numpy as np\n\nfrom minibert.exercises import sanity", None))
        for markdown, code in ex.sanity:
            cells.append(("markdown", markdown, None))
            cells.append(("code", _sanity_code(ex, code), None))
    cells.append(("markdown", "## Check your work\n\nRun the cell below after every change to your file (it is "
                  "reloaded each time). It runs your functions against minibert's on odd shapes and edge cases, "
                  "checks gradients with float64 finite differences of your own forward, and says which output "
                  "is wrong, where, and what the symptom suggests (which term, which axis). It never prints an "
                  "expected array, minibert's code or a line of the solution.", None))
    cells.append(("code", f"from minibert.exercises import grade\n\n"
                          f"result = grade(\"{ex.name}\", workspace=\"../..\")   # grades ../../{ex.stem}.py", None))
    docs = ", ".join(f"`{d}`" for d in ex.docs)
    cells.append(("markdown", "## When it passes\n\n" + (f"Read {docs} again: the derivation there is the one "
                  f"you just did. " if ex.docs else "") + "Then go on with the next exercise or notebook of the "
                  "learning path (minibert's README, *Learning path*). The same check runs from a terminal: "
                  f"`python -m minibert.exercises check . {ex.name}` in the workspace folder.", None))
    return {
        "cells": [_cell(kind, text, f"ex{ex.number:02d}-{i}", meta) for i, (kind, text, meta) in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def answers(notebook: dict) -> dict[str, str]:
    """The learner's answers in a notebook: {"q1": text, ...}; a cell still holding the placeholder is absent."""
    found = {}
    for cell in notebook.get("cells", []):
        key = cell.get("metadata", {}).get("minibert", {}).get("answer")
        if not key:
            continue
        source = cell.get("source", "")
        text = ("".join(source) if isinstance(source, list) else str(source)).strip()
        if text and text != ANSWER_PLACEHOLDER:
            found[key] = text
    return found
