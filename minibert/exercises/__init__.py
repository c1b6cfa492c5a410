"""Classroom exercises with an autograder: derive and implement BERT's pieces by hand.

One exercise per thing to derive or implement, in the order of the learning path (WordPiece,
linear backward, ..., one AdamW step). Each is minibert's *own* function with its body removed: the
starter is generated from the function's signature and the exercise's contract (`starters.py`), and
the function itself is the reference the grader compares with, so exercises and library cannot
drift apart.

    python -m minibert.exercises list                  # the exercises, in learning-path order
    python -m minibert.exercises start [DIR]           # a student workspace (default runs/exercises)
    python -m minibert.exercises check [DIR [NAME ...]] # grade it (exit code 1 if anything fails)
    python -m minibert.exercises check --reference     # grade minibert's own functions (self-test)
    python -m minibert.exercises check DIR --format gradescope --out results.json [--seed N]
    python -m minibert.exercises report [DIR]          # DIR/report.md and report.html, to hand in
    python -m minibert.exercises capstone [DIR]        # the learner's functions as a BERT: checked, trained

From Python or a notebook:

    from minibert.exercises import grade
    grade("layer_norm", workspace="path/to/DIR")       # prints the report, returns an ExerciseResult

Modules: base.py (the Tester: time limits, exceptions, comparisons, finite differences, hints),
catalog.py (the exercises in order, found by name or number), starters.py, notebook.py, workspace.py,
formats.py (json, Gradescope), report.py, capstone.py (the learner's functions in the model's op table,
trained next to minibert's), and one module per exercise (ex01_wordpiece.py ...), each holding its
statement, hints and checks.
The command line is minibert/cli/exercises.py (`python -m minibert exercises` is the same command).
docs/teaching.md is the teacher's guide.
"""
from __future__ import annotations

from minibert.exercises.base import CheckResult, Exercise, ExerciseResult, Tester
from minibert.exercises.catalog import EXERCISES, get
from minibert.exercises.workspace import (StudentFileError, check_workspace, grade, grade_file, grade_reference,
                                          load_student, sanity, start)

__all__ = ["EXERCISES", "Exercise", "ExerciseResult", "CheckResult", "Tester", "get", "start", "grade",
           "grade_file", "check_workspace", "grade_reference", "load_student", "StudentFileError", "sanity"]
