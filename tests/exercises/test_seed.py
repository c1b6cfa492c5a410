"""MINIBERT_GRADER_SEED (and `check --seed`, `grade(seed=)`) changes every random case of every exercise, so
an answer hard-coded for one seed fails under another."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibert.exercises import EXERCISES, get
from minibert.exercises import base

REPO = Path(__file__).resolve().parents[2]

# a check may keep a few fixed edge cases (an empty batch, a word from the paper): at most this share
# of the grader's calls may get the same inputs under two seeds
FIXED_SHARE = 0.25


def fingerprint(value, h=None, depth=0):
    """A hash of a value the grader hands to a learner's function: arrays by dtype, shape and bytes; a NumPy
    generator by its state; a function by its name and what its closure holds; never a memory address (the
    same seed must give the same fingerprints)."""
    h = h or hashlib.sha256()
    if depth > 4:
        h.update(type(value).__name__.encode())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}{len(value)}[".encode())
        for v in value:
            fingerprint(v, h, depth + 1)
        h.update(b"]")
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            fingerprint(value[k], h, depth + 1)
    elif hasattr(value, "getstate"):                       # a random.Random handed to the learner
        h.update(repr(value.getstate()).encode())
    elif isinstance(value, np.random.Generator):          # a NumPy generator handed to the learner
        h.update(repr(value.bit_generator.state).encode())
    elif hasattr(value, "__code__"):                       # a function (a loss to differentiate): its closure
        h.update(value.__qualname__.encode())
        for cell in value.__closure__ or ():
            fingerprint(cell.cell_contents, h, depth + 1)
    else:
        h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value)).encode())
    return h


def inputs_seen(ex, seed) -> list[str]:
    """The fingerprints of every call the grader makes to the functions under test, grading the reference."""
    seen = []
    original = base.Tester.call

    def recording(self, name, *args, **kwargs):
        seen.append(fingerprint((name, args, kwargs)).hexdigest())
        return original(self, name, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base.Tester, "call", recording)
        result = ex.grade(timeout_s=10, seed=seed)
    assert result.passed, result.format()
    return seen


def test_the_seed_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv(base.GRADER_SEED_VARIABLE, raising=False)
    assert base.grader_seed() == 0 and base.grader_seed(4) == 4
    monkeypatch.setenv(base.GRADER_SEED_VARIABLE, "17")
    assert base.grader_seed() == 17 and base.grader_seed(4) == 4
    monkeypatch.setenv(base.GRADER_SEED_VARIABLE, "x")
    with pytest.raises(ValueError, match="must be an integer"):
        base.grader_seed()


@pytest.mark.parametrize("ex", EXERCISES, ids=[ex.name for ex in EXERCISES])
def test_another_seed_changes_every_random_case(ex):
    """Under seeds 0 and 1 the grader's calls get other inputs (at most FIXED_SHARE the same: fixed edge cases);
    the same seed repeats them exactly."""
    a, b = inputs_seen(ex, 0), inputs_seen(ex, 1)
    assert a == inputs_seen(ex, 0), "the same seed must give the same cases"
    shared = set(a) & set(b)
    assert len(shared) <= FIXED_SHARE * len(set(a)), (f"exercise {ex.number:02d} {ex.name}: {len(shared)} of {len(set(a))} calls get the same "
                        f"inputs under seeds 0 and 1 (cases drawn from a fixed seed, not from t.rng?)")


def hard_coded(ex, seed):
    """A learner who hard-codes answers: every output the reference gave while graded under `seed`, looked up
    by its inputs (anything else gets the first recorded output)."""
    table = {}
    originals = ex.reference()

    def recorder(name):
        def fn(*args, **kwargs):
            key = fingerprint((args, kwargs)).hexdigest()
            out = originals[name](*args, **kwargs)
            table.setdefault(name, {})[key] = out
            return out
        return fn

    ex.grade({n: recorder(n) for n in ex.function_names}, timeout_s=10, seed=seed)

    def cheat(name):
        def fn(*args, **kwargs):
            answers = table[name]
            return answers.get(fingerprint((args, kwargs)).hexdigest(), next(iter(answers.values())))
        return fn
    return {n: cheat(n) for n in ex.function_names}


def test_an_answer_hard_coded_for_one_seed_fails_under_another(monkeypatch):
    ex = get("gelu")
    cheat = hard_coded(ex, seed=0)
    assert ex.grade(cheat, timeout_s=10, seed=0).passed          # it fools the grader under its own seed...
    result = ex.grade(cheat, timeout_s=10, seed=1)               # ...and nowhere else
    assert not result.passed, result.format()
    monkeypatch.setenv(base.GRADER_SEED_VARIABLE, "1")
    assert not ex.grade(cheat, timeout_s=10).passed


def test_check_seed_flag_and_environment_reach_the_grader(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {}
    for label, extra, more in (("flag", ["--seed", "3"], {}), ("env", [], {base.GRADER_SEED_VARIABLE: "3"}),
                               ("none", [], {})):
        env_here = {k: v for k, v in env.items() if k != base.GRADER_SEED_VARIABLE} | more
        r = subprocess.run([sys.executable, "-m", "minibert.exercises", "check", "--reference", "gelu",
                            "--format", "json", *extra], capture_output=True, text=True, env=env_here, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        runs[label] = r.stdout
    import json
    assert json.loads(runs["flag"])["seed"] == 3 == json.loads(runs["env"])["seed"]
    assert json.loads(runs["none"])["seed"] == 0
