"""Every named learner mistake of the catalogue (tests/exercises/mistakes/) is failed with its own diagnosis."""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from minibert.exercises import EXERCISES, get

sys.path.insert(0, str(Path(__file__).parent))             # the catalogue: tests/exercises/mistakes/
from mistakes import all_mistakes  # noqa: E402

MISTAKES = all_mistakes()


def test_mistake_names_are_unique_and_name_real_exercises():
    names = {ex.name for ex in EXERCISES}
    counts = Counter(m.id for m in MISTAKES)
    assert not [k for k, n in counts.items() if n > 1], "a mistake named twice"
    assert {m.exercise for m in MISTAKES} <= names


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.id for m in MISTAKES])
def test_a_planted_mistake_fails_with_its_diagnosis(mistake):
    ex = get(mistake.exercise)
    functions = {k: v for k, v in mistake.functions(ex.imports).items() if k in ex.function_names}
    assert functions, f"{mistake.id}: its source defines none of {ex.function_names}"
    result = ex.grade(functions, timeout_s=10)
    assert not result.passed, f"{mistake.id} passed the grader:\n{result.format()}"
    said = "\n".join(f"{c.title}\n{c.message}\nHint: {c.hint}" for c in result.checks if c.status == "fail")
    assert re.search(mistake.diagnosis, said, re.S | re.I), f"{mistake.id}: expected /{mistake.diagnosis}/ in\n{said}"
    if mistake.forward_ok:
        blamed = [c.title for c in result.checks if c.status == "fail" and "forward" in c.title.lower()]
        assert not blamed, f"{mistake.id}: a backward mistake failed forward checks {blamed}"
