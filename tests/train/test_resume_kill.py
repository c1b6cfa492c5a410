"""Kill tests: `minibert pretrain` SIGKILLed at chosen moments (tests/train/kill_at.py), then `--resume`d until
it ends, must leave the run folder of one uninterrupted run: the same final weights, the same optimizer state
and dropout generator in the last checkpoint, the same log.jsonl row for row (wall-clock fields aside), the
same files and nothing else (no temporary file, no half-written checkpoint).

The run: helpers.tiny_pretraining_flags, a 1-layer BERT of hidden size 32 on a made-up corpus, 12 steps, an
evaluation every 3 steps and a checkpoint every 4 (one process: about 1.5 s). A damaged newest checkpoint
is set aside and the one before it resumed from. Random-moment kills are slow tests (MINIBERT_SLOW=1).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, tiny_pretraining_flags, tiny_pretraining_inputs
from minibert.model.io import load_arrays

KILL_AT = Path(__file__).with_name("kill_at.py")
WALL_CLOCK = ("seconds", "tokens_per_s")          # the only fields of a log row that may differ


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return tiny_pretraining_inputs(tmp_path_factory.mktemp("inputs"))


def command(inputs: Path, out: Path, *extra: str) -> list[str]:
    """`python -m minibert pretrain` with the tiny run's flags, as python's arguments."""
    return ["-m", "minibert", *tiny_pretraining_flags(inputs, out, *extra)]


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}   # this minibert


def python(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=REPO, env=ENV)


def finish(inputs: Path, out: Path) -> subprocess.CompletedProcess:
    """`--resume`: the run must end normally."""
    done = python(command(inputs, out, "--resume"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def killed(inputs: Path, out: Path, spec: str, n: int, mode: str, resume: bool) -> None:
    """The run (a new one, or `--resume`) killed at the nth call of `spec` (kill_at.py)."""
    argv = command(inputs, out, *(["--resume"] if resume else []))
    done = python([str(KILL_AT), spec, str(n), mode, "--", *argv[2:]])
    assert done.returncode == -signal.SIGKILL, f"not killed at {spec} #{n} ({done.returncode}): {done.stderr}"


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    done = python(command(inputs, out))
    assert done.returncode == 0, done.stderr
    return out


# -- comparing two run folders -------------------------------------------------------------------------

def log_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


def assert_same_arrays(a: Path, b: Path) -> None:
    x, y = load_arrays(a), load_arrays(b)
    assert set(x) == set(y), a
    for k in x:
        assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), f"{a}: {k}"


def assert_same_run(reference: Path, run: Path, ignore: str | None = None) -> None:
    """`run` is, file for file, the folder of the uninterrupted run (wall-clock times and its own name aside;
    `ignore`: a folder of `run` left out)."""
    ref_files = files(reference)
    run_files = {f for f in files(run) if ignore is None or not f.startswith(ignore + "/")}
    assert run_files == ref_files, f"extra {sorted(run_files - ref_files)}, missing {sorted(ref_files - run_files)}"
    assert log_rows(run) == log_rows(reference)                               # row for row
    for name in sorted(ref_files):
        a, b = reference / name, run / name
        if name.endswith(".safetensors"):
            assert_same_arrays(a, b)                  # weights, and AdamW's m and v in the checkpoints
        elif name == "run.json":
            strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "out"}  # noqa: E731
            assert strip(a) == strip(b)
        elif name not in ("log.jsonl", "curves.png"):  # curves.png: drawn from the log (tokens/s differ)
            assert a.read_bytes() == b.read_bytes(), name   # state.json (dropout generator, t), vocab, data, ...


# -- the kill moments ------------------------------------------------------------------------------------
# (function, its call to kill at, mode), with 12 steps, evaluations at 3, 6, 9, 12, checkpoints at 4, 8, 12;
# checkpoint.save_arrays writes model.safetensors then optimizer.safetensors of each checkpoint

MOMENTS = {
    "before the first checkpoint": ("minibert.train.loop:train_step", 3, "before"),
    "during the first evaluation, before any checkpoint": ("minibert.train.pretrain:evaluate", 1, "before"),
    "during an evaluation": ("minibert.train.pretrain:evaluate", 2, "before"),
    "between a checkpoint's model and optimizer files": ("minibert.train.checkpoint:save_arrays", 3, "after"),
    "in the middle of a checkpoint's optimizer file": ("minibert.train.checkpoint:save_arrays", 4, "torn"),
    "right after a checkpoint": ("minibert.train.loop:save_checkpoint", 1, "after"),
    "during the last evaluation": ("minibert.train.pretrain:evaluate", 4, "before"),
    "in the middle of the final model file": ("minibert.train.pretrain:save_arrays", 1, "torn"),
    "in the middle of vocab.txt (set-up)": ("minibert.tokenization.tokenizer:save_vocab", 1, "cut"),
    "with data/train.npz cut short (set-up)": ("minibert.train.pretrain:save_features", 1, "cut"),
    "between data/train.npz and data/eval.npz (set-up)": ("minibert.train.pretrain:save_features", 2, "before"),
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_killed_once_then_resumed_is_the_uninterrupted_run(moment, inputs, reference, tmp_path):
    out = tmp_path / "run"
    killed(inputs, out, *MOMENTS[moment], resume=False)
    finish(inputs, out)
    assert_same_run(reference, out)


def test_killed_five_times_then_resumed_is_the_uninterrupted_run(inputs, reference, tmp_path):
    """Each resumed run killed again, at another moment (the call counts start again in each process)."""
    out = tmp_path / "run"
    killed(inputs, out, "minibert.train.loop:train_step", 3, "before", resume=False)    # no checkpoint yet
    killed(inputs, out, "minibert.train.pretrain:evaluate", 2, "before", resume=True)    # from 0: at step 6
    killed(inputs, out, "minibert.train.checkpoint:save_arrays", 2, "torn", resume=True)  # from 4: step 8's
    killed(inputs, out, "minibert.train.loop:truncate_log", 1, "after", resume=True)     # the log cut back, then
    killed(inputs, out, "minibert.train.pretrain:save_arrays", 1, "before", resume=True)  # from 4 to the end
    finish(inputs, out)
    assert_same_run(reference, out)


def test_a_finished_run_resumed_stays_the_same(inputs, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    done = finish(inputs, out)
    assert "at its last step (12) already" in done.stdout
    assert_same_run(reference, out)


# -- a damaged newest checkpoint ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stopped_after_step_8(inputs, tmp_path_factory) -> Path:
    """A run killed right after its checkpoint of step 8 (copied by each test that damages it)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    killed(inputs, out, "minibert.train.loop:save_checkpoint", 2, "after", resume=False)
    return out


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


DAMAGE = {
    "model.safetensors cut short": lambda c: cut_in_half(c / "model.safetensors"),
    "optimizer.safetensors missing": lambda c: (c / "optimizer.safetensors").unlink(),
    "state.json not JSON": lambda c: (c / "state.json").write_text('{"step": 8, "optim'),
    "state.json missing": lambda c: (c / "state.json").unlink(),
    "weights of another shape": lambda c: shutil.copy(c.parent / "step-00000004" / "optimizer.safetensors",
                                                      c / "model.safetensors"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_one_before_used(damage, inputs, reference,
                                                                          stopped_after_step_8, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped_after_step_8, out)
    DAMAGE[damage](out / "checkpoints" / "step-00000008")
    done = finish(inputs, out)
    warning = [line for line in done.stdout.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "step-00000008 is damaged" in warning[0] and "step-00000004 instead" in warning[0]
    assert (out / "checkpoints" / "damaged-step-00000008").is_dir()                     # kept, renamed
    assert_same_run(reference, out, ignore="checkpoints/damaged-step-00000008")


def test_no_usable_checkpoint_is_an_error_that_changes_nothing(inputs, stopped_after_step_8, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(stopped_after_step_8, out)
    for checkpoint in (out / "checkpoints").iterdir():
        cut_in_half(checkpoint / "model.safetensors")
    before = {f: (out / f).read_bytes() for f in files(out) if f != ".lock"}   # the killed run's lock: taken
    done = python(command(inputs, out, "--resume"))                           # over, then released
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "no usable checkpoint" in done.stderr
    assert "step-00000004" in done.stderr and "step-00000008" in done.stderr
    assert {f: (out / f).read_bytes() for f in files(out)} == before


# -- random moments ----------------------------------------------------------------------------------------

LONGER = ("--steps", "36")             # the random kills' run: 36 steps, so that more of its time is training


@pytest.fixture(scope="module")
def longer_reference(inputs, tmp_path_factory) -> tuple[Path, float]:
    """The uninterrupted 36-step run, and how long it took in seconds."""
    out = tmp_path_factory.mktemp("longer") / "run"
    t0 = time.perf_counter()
    done = python(command(inputs, out, *LONGER))
    assert done.returncode == 0, done.stderr
    return out, time.perf_counter() - t0


def steps_logged(out: Path) -> int:
    log = out / "log.jsonl"
    return sum('"loss"' in line for line in log.read_text().splitlines()) if log.is_file() else 0


def wait_for_a_random_moment(proc, out: Path, rng: random.Random, seconds: float, by_time=True) -> None:
    """Half the time (by_time) a delay of 5% to 95% of the run's time (start, set-up, training, curves); else
    until the log has reached a random step, and 0 to 20 ms more (inside the steps, evaluations, checkpoint
    writes; the run always has more than 20 ms of work left then, so it is always killed)."""
    if by_time and rng.random() < 0.5:
        time.sleep(rng.uniform(0.05, 0.95) * seconds)
        return
    step = rng.randint(1, 36)
    while proc.poll() is None and steps_logged(out) < step:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.02))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_at_random_moments_then_resumed_is_the_uninterrupted_run(seed, inputs, longer_reference, tmp_path):
    """Killed at seeded random moments 6 times (fewer if a run ends first: a delay measured on a busy machine
    can outlast the run), then resumed to the end. The first kill waits for a step, so there is one."""
    reference, seconds = longer_reference
    out, rng, kills = tmp_path / "run", random.Random(seed), 0
    for attempt in range(6):
        resume = ["--resume"] if (out / "run.json").is_file() else []
        proc = subprocess.Popen([sys.executable, *command(inputs, out, *LONGER, *resume)], cwd=REPO, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_a_random_moment(proc, out, rng, seconds, by_time=attempt > 0)
        proc.kill()
        _, stderr = proc.communicate()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, stderr.decode()
        kills += 1
    done = python(command(inputs, out, *LONGER, "--resume"))
    assert done.returncode == 0, done.stderr
    assert kills >= 1
    assert_same_run(reference, out)
