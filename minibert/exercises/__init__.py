"""Classroom exercises with an autograder: derive and implement BERT's pieces by hand.

Twelve exercises, one per thing to derive or implement, in the order of the learning path
(WordPiece, linear backward, ..., one AdamW step). Each
is minibert's *own* function with its body removed: the starter is generated from the function's
signature and docstring (`starters.py`), and the function itself is the reference the grader
compares with, so exercises and library cannot drift apart.

    python -m minibert.exercises list                  # the exercises, in learning-path order
    python -m minibert.exercises start DIR             # a student workspace: starters + notebooks
    python -m minibert.exercises check DIR [NAME ...]  # grade it (exit code 1 if anything fails)
    python -m minibert.exercises check --reference     # grade minibert's own functions (self-test)

From Python or a notebook:

    from minibert.exercises import grade
    grade("layer_norm", workspace="path/to/DIR")       # prints the report, returns an ExerciseResult

Modules: base.py (the Tester: time limits, exceptions, comparisons, finite differences, hints),
starters.py, notebook.py, workspace.py, and one module per exercise (ex01_wordpiece.py ...), each
holding its statement, hints and checks. docs/teaching.md is the teacher's guide.
"""
from __future__ import annotations

from minibert.exercises import (ex01_wordpiece, ex02_linear, ex03_embedding, ex04_layer_norm, ex05_gelu,
                                ex06_softmax, ex07_attention, ex08_heads, ex09_cross_entropy, ex10_masking,
                                ex11_nsp, ex12_adamw)
from minibert.exercises.base import CheckResult, Exercise, ExerciseResult, Tester

EXERCISES: tuple[Exercise, ...] = tuple(m.EXERCISE for m in (
    ex01_wordpiece, ex02_linear, ex03_embedding, ex04_layer_norm, ex05_gelu, ex06_softmax, ex07_attention,
    ex08_heads, ex09_cross_entropy, ex10_masking, ex11_nsp, ex12_adamw))


def get(name) -> Exercise:
    """An exercise by name ("layer_norm"), number (3, "3", "03") or file stem ("03_layer_norm")."""
    if isinstance(name, Exercise):
        return name
    key = str(name).strip().removesuffix(".py").removesuffix(".ipynb")
    for ex in EXERCISES:
        if key in (ex.name, ex.stem, str(ex.number), f"{ex.number:02d}"):
            return ex
    raise KeyError(f"no exercise {name!r}; choose one of: {', '.join(ex.name for ex in EXERCISES)} "
                   f"(or a number 1-{len(EXERCISES)})")


from minibert.exercises.workspace import (StudentFileError, check_workspace, grade, grade_file,  # noqa: E402
                                          grade_reference, load_student, start)

__all__ = ["EXERCISES", "Exercise", "ExerciseResult", "CheckResult", "Tester", "get", "start", "grade",
           "grade_file", "check_workspace", "grade_reference", "load_student", "StudentFileError"]
