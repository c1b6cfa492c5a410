"""Alternative *correct* forms of the exercises (each catalogue module's `CORRECT`) pass the grader.

A grader that only accepts the reference's own way of writing a backward (one formula, one order of
operations) would fail a learner who derived it differently: the textbook N-form of LayerNorm, an
explicit Jacobian, einsum instead of matmul. Each module of tests/exercises/mistakes/ may hold
`CORRECT`, a list of `Mistake` entries (diagnosis="") that must pass.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

from minibert.exercises import get

sys.path.insert(0, str(Path(__file__).parent))             # the catalogue: tests/exercises/mistakes/
import mistakes  # noqa: E402


def all_correct() -> list:
    """Every catalogue module's CORRECT, in module order."""
    found = []
    for info in sorted(pkgutil.iter_modules(mistakes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mistakes.{info.name}")
        found.extend(getattr(module, "CORRECT", []))
    return found


CORRECT = all_correct()


@pytest.mark.parametrize("form", CORRECT, ids=[f.id for f in CORRECT])
def test_an_alternative_correct_form_passes(form):
    ex = get(form.exercise)
    functions = {k: v for k, v in form.functions(ex.imports).items() if k in ex.function_names}
    assert functions, f"{form.id}: its source defines none of {ex.function_names}"
    result = ex.grade(functions, timeout_s=10)
    assert result.passed, f"{form.id} is correct but failed:\n{result.format()}"
