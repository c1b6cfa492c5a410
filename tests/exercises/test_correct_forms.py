"""Every correct alternative of the mistakes catalogue (a module's CORRECT list) passes its exercise."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

from minibert.exercises import get

sys.path.insert(0, str(Path(__file__).parent))             # the catalogue: tests/exercises/mistakes/
import mistakes  # noqa: E402


def _correct_forms():
    found = []
    for info in sorted(pkgutil.iter_modules(mistakes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mistakes.{info.name}")
        found.extend(getattr(module, "CORRECT", []))
    return found


CORRECT = _correct_forms()


@pytest.mark.parametrize("form", CORRECT, ids=[f.id for f in CORRECT])
def test_a_correct_alternative_passes(form):
    ex = get(form.exercise)
    functions = {k: v for k, v in form.functions(ex.imports).items() if k in ex.function_names}
    assert functions, f"{form.id}: its source defines none of {ex.function_names}"
    result = ex.grade(functions, timeout_s=10)
    assert result.passed, f"{form.id} is correct but failed:\n{result.format()}"
