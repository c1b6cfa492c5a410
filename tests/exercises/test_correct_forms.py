"""Alternative correct forms of the learners' functions (CORRECT in tests/exercises/mistakes/) pass the grader:
a grader that fails a right answer written another way is as wrong as one that passes a mistake."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from minibert.exercises import EXERCISES, get

sys.path.insert(0, str(Path(__file__).parent))             # the catalogue: tests/exercises/mistakes/
from mistakes import all_correct  # noqa: E402

CORRECT = all_correct()


def test_correct_forms_name_real_exercises_once():
    assert {c.exercise for c in CORRECT} <= {ex.name for ex in EXERCISES}
    assert len({c.id for c in CORRECT}) == len(CORRECT), "a correct form named twice"
    assert all(c.diagnosis == "" for c in CORRECT), "a correct form has no diagnosis"


@pytest.mark.parametrize("form", CORRECT or [pytest.param(None, marks=pytest.mark.skip(reason="none yet"))],
                         ids=[c.id for c in CORRECT] or ["none"])
def test_an_alternative_correct_form_passes(form):
    ex = get(form.exercise)
    functions = {k: v for k, v in form.functions(ex.imports).items() if k in ex.function_names}
    assert functions, f"{form.id}: its source defines none of {ex.function_names}"
    result = ex.grade(functions, timeout_s=10)
    assert result.passed, f"{form.id} (correct) failed:\n{result.format()}"
