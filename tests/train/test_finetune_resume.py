"""`minibert finetune --resume`: a fine-tuning run stopped at any step and resumed is, file for file, the run
never interrupted (log rows without their timings, best/, metrics.json, the checkpoints: final weights,
AdamW's moments, the dropout generator, the fp16 loss scaler); what --resume refuses, and what it says.

The runs are tiny and built in: a 2-layer BERT of hidden size 16 on a vocabulary of 40 words, 48 toy
SST-2 sentences (or 40 toy WNUT-17 sentences), batches of 8: 6 steps an epoch, 3 epochs, an evaluation
every 3 steps and a checkpoint every 4, in this process (a fraction of a second each). "Stopped" is a
kill as the test makes it: an exception raised as step k starts (or right after best/ is written), after
which nothing of the run runs; test_resume_kill.py's real SIGKILLs are pretraining's, the loop is the same.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minibert.train.finetune as finetune
import minibert.train.loop
from helpers import REPO, write
from minibert.cli import main
from minibert.model.bert import BertModel
from minibert.model.config import BertConfig
from minibert.model.io import load_arrays
from minibert.tokenization import BertTokenizer
from minibert.train.amp import LossScaler
from minibert.train.finetune import FinetuneArgs, FinetuneError, run

WALL_CLOCK = ("seconds", "tokens_per_s")
WORDS = ("the a cat dog bird sat ran sang on in mat park tree good bad fun dull great awful movie film "
         "alice bob carol paris london rome saw met with and very not quite it was so".split())
NAMES, PLACES = {"alice", "bob", "carol"}, {"paris", "london", "rome"}


class Stop(Exception):
    """The run stopped by the test (as a kill would: nothing after it runs)."""


# -- the toy world: a model folder, SST-2 and WNUT-17 files ----------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft-resume")
    rng = random.Random(0)
    for folder in ("sst2", "wnut17", "references"):
        (root / folder).mkdir()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizer(tokens)
    config = BertConfig(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1)
    BertModel(config, seed=3).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")

    def sentence():
        return [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]

    rows = []
    for _ in range(72):                     # label: more "good" words than "bad" ones (a learnable rule)
        words = sentence()
        score = sum(w in ("good", "fun", "great") for w in words) - sum(w in ("bad", "dull", "awful") for w in words)
        rows.append(f"{' '.join(words)}\t{int(score > 0 or (score == 0 and rng.random() < 0.5))}")
    write(root / "sst2" / "train.tsv", "sentence\tlabel\n" + "\n".join(rows[:48]) + "\n")
    write(root / "sst2" / "dev.tsv", "sentence\tlabel\n" + "\n".join(rows[48:]) + "\n")

    def conll(n):
        sentences = []
        for _ in range(n):
            words = sentence()
            tags = ["B-person" if w in NAMES else "B-location" if w in PLACES else "O" for w in words]
            sentences.append("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)))
        return "\n".join(sentences)
    write(root / "wnut17" / "train.conll", conll(40))
    write(root / "wnut17" / "dev.conll", conll(16))
    return root


def settings(world: Path, out: Path, task: str = "sst2", **changes) -> FinetuneArgs:
    train, dev = {"sst2": ("sst2/train.tsv", "sst2/dev.tsv"), "wnut17": ("wnut17/train.conll", "wnut17/dev.conll")}[task]
    base = dict(task=task, train=str(world / train), dev=str(world / dev), model=str(world / "model"), epochs=3,
                batch_size=8, max_seq_len=16, lr=3e-3, eval_every=3, checkpoint_every=4, keep=2, out=str(out),
                progress=False)
    return FinetuneArgs(**{**base, **changes})


def finetune_run(args: FinetuneArgs, resume: bool = False) -> list[str]:
    """run(args); the lines it said."""
    said = []
    run(args, stream=said.append, resume=resume)
    return said


def stopped_at(step: int, args: FinetuneArgs, resume: bool = False) -> None:
    """The run stopped as step `step` starts (the steps before it are done, nothing of it or after it)."""
    real = minibert.train.loop.train_step

    def step_or_stop(*a, step=None, **kw):
        if step == stop:
            raise Stop(f"stopped at step {step}")
        return real(*a, step=step, **kw)

    stop = step
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Stop):
        patch.setattr(minibert.train.loop, "train_step", step_or_stop)
        run(args, stream=lambda *x: None, resume=resume)


# -- comparing two run folders -----------------------------------------------------------------------------

def log_rows(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
            for line in (out / "log.jsonl").read_text().splitlines()]


def files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def assert_same_run(reference: Path, out: Path) -> None:
    """`out` is, file for file, the uninterrupted run's folder (wall-clock times and the folder's name aside)."""
    assert files(out) == files(reference), (sorted(files(out) ^ files(reference)))
    assert log_rows(out) == log_rows(reference)                                  # row for row
    for name in sorted(files(reference)):
        a, b = reference / name, out / name
        if name.endswith(".safetensors"):                    # best/ and the checkpoints' weights and moments
            x, y = load_arrays(a), load_arrays(b)
            assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x), name
        elif name == "run.json":
            strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "out"}  # noqa: E731
            assert strip(a) == strip(b)
        elif name != "log.jsonl":                  # metrics.json, state.json (dropout, scaler, t), best/'s config
            assert a.read_bytes() == b.read_bytes(), name


@functools.lru_cache(maxsize=None)
def _reference(world: Path, changes: tuple) -> Path:
    out = world / "references" / f"run-{_reference.cache_info().currsize}"
    finetune_run(settings(world, out, **dict(changes)))
    return out


def reference(world: Path, **changes) -> Path:
    """The uninterrupted run with these settings (made once per module and settings)."""
    return _reference(world, tuple(sorted(changes.items())))


# -- exactness -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("step", [3, 7, 11, 18])
def test_sst2_stopped_at_any_step_then_resumed_is_the_uninterrupted_run(step, world, tmp_path):
    """18 steps; evaluations at 3, 6, ...; checkpoints at 4, 8, ... and 18 (keep 2). Stopped at step 3: no
    checkpoint yet (the run starts again, saying so); at 7 and 11, between a checkpoint and later
    evaluations (their rows are cut from the log and written again); at 18, the last step."""
    ref = reference(world)
    out = tmp_path / "run"
    stopped_at(step, settings(world, out))
    said = finetune_run(settings(world, out), resume=True)
    if step < 4:
        assert any("no checkpoint in" in s and "starts again from step 0" in s for s in said), said
    else:
        assert any(f"resuming from {out / 'checkpoints'}" in s for s in said), said
    assert_same_run(ref, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert "confusion" in metrics and metrics["steps_run"] == 18


def test_the_checkpoints_are_where_they_should_be(world):
    ref = reference(world)
    assert sorted(p.name for p in (ref / "checkpoints").iterdir()) == ["step-00000016", "step-00000018"]
    evaluations = [r["step"] for r in log_rows(ref) if "dev_loss" in r]
    assert evaluations == [3, 6, 9, 12, 15, 18]


def test_stopped_twice_then_resumed(world, tmp_path):
    out = tmp_path / "run"
    stopped_at(6, settings(world, out))
    stopped_at(14, settings(world, out), resume=True)
    finetune_run(settings(world, out), resume=True)
    assert_same_run(reference(world), out)


def test_killed_right_after_best_is_saved_before_its_checkpoint(world, tmp_path):
    """The best model written at an evaluation after the newest checkpoint, then the kill: the resumed run
    evaluates again and writes best/ again; its best/ and metrics.json are the uninterrupted run's."""
    ref = reference(world)
    evaluations = [r["step"] for r in log_rows(ref) if "dev_loss" in r]
    best_at, best = [], -1.0
    for row in (r for r in log_rows(ref) if "dev_loss" in r):
        if row["accuracy"] > best:
            best_at.append(row["step"])
            best = row["accuracy"]
    late = [s for s in best_at if s % 4]                   # saved at a step that has no checkpoint
    assert late, f"the toy run improves only at checkpoints ({best_at}, evaluations {evaluations}): change it"
    n = best_at.index(late[-1]) + 1                        # the n-th save_model call is that one
    real, calls = finetune.save_model, []

    def save_then_stop(*a, **kw):
        real(*a, **kw)
        calls.append(1)
        if len(calls) == n:
            raise Stop("killed right after best/ was written")

    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Stop):
        patch.setattr(finetune, "save_model", save_then_stop)
        run(settings(world, out), stream=lambda *x: None)
    assert not (out / "checkpoints" / f"step-{late[-1]:08d}").exists()
    finetune_run(settings(world, out), resume=True)
    assert_same_run(ref, out)


@pytest.mark.parametrize("changes", [dict(freeze_layers=1), dict(accumulate=2, dtype="float64")],
                         ids=["freeze-layers", "accumulate-float64"])
def test_frozen_layers_and_accumulation_resume_exactly(changes, world, tmp_path):
    ref = reference(world, **changes)
    out = tmp_path / "run"
    stopped_at(10, settings(world, out, **changes))
    finetune_run(settings(world, out, **changes), resume=True)
    assert_same_run(ref, out)


def test_ner_resumes_exactly(world, tmp_path):
    """Token classification (WNUT-17's tags): 5 steps an epoch, 15 in all."""
    ref = reference(world, task="wnut17")
    out = tmp_path / "run"
    stopped_at(10, settings(world, out, task="wnut17"))
    finetune_run(settings(world, out, task="wnut17"), resume=True)
    assert_same_run(ref, out)
    assert json.loads((out / "metrics.json").read_text())["metric"] == "f1"


# -- fp16: the loss scaler's state is in the checkpoint ---------------------------------------------------------

@pytest.fixture
def busy_scaler(monkeypatch):
    """A loss scaler that overflows at once and grows every 3 good steps, so that within 18 steps its scale,
    its count of good steps and its skipped steps all change: a resume that lost them would differ."""
    monkeypatch.setattr(finetune, "LossScaler", functools.partial(LossScaler, init_scale=2.0 ** 40,
                                                                  growth_interval=3))


def test_fp16_resumes_exactly_with_the_loss_scaler_state(busy_scaler, world, tmp_path):
    ref = tmp_path / "reference"
    finetune_run(settings(world, ref, fp16=True))
    rows = [r for r in log_rows(ref) if "loss" in r]
    assert sum(r["skipped"] for r in rows) >= 1 and len({r["loss_scale"] for r in rows}) >= 3   # it does bite
    assert json.loads((ref / "metrics.json").read_text())["skipped_steps"] >= 1
    out = tmp_path / "run"
    stopped_at(11, settings(world, out, fp16=True))
    finetune_run(settings(world, out, fp16=True), resume=True)
    assert_same_run(ref, out)
    state = json.loads((out / "checkpoints" / "step-00000018" / "state.json").read_text())
    assert set(state["loss_scaler"]) >= {"scale", "growth_tracker", "skipped_steps"}


def test_fp16_without_the_scaler_state_would_not_be_exact(busy_scaler, world, tmp_path, monkeypatch):
    """The control: the same stop and resume with the scaler's state not restored gives another run (so the
    test above can fail)."""
    ref = tmp_path / "reference"
    finetune_run(settings(world, ref, fp16=True))
    out = tmp_path / "run"
    stopped_at(11, settings(world, out, fp16=True))
    monkeypatch.setattr(LossScaler, "load_state_dict", lambda self, state: None)
    finetune_run(settings(world, out, fp16=True), resume=True)
    assert log_rows(out) != log_rows(ref)


def test_a_checkpoint_without_scaler_state_is_damaged_and_the_one_before_used(world, tmp_path):
    out = tmp_path / "run"
    stopped_at(10, settings(world, out, fp16=True))
    newest = out / "checkpoints" / "step-00000008"
    state = json.loads((newest / "state.json").read_text())
    del state["loss_scaler"]
    (newest / "state.json").write_text(json.dumps(state))
    said = finetune_run(settings(world, out, fp16=True), resume=True)
    assert any("step-00000008 is damaged" in s and "no usable loss_scaler" in s and "step-00000004" in s
               for s in said), said
    assert (out / "checkpoints" / "damaged-step-00000008").is_dir()
    assert json.loads((out / "metrics.json").read_text())["steps_run"] == 18


# -- early stopping across the stop -----------------------------------------------------------------------------

def test_early_stopping_counts_the_evaluations_before_the_stop(world, tmp_path):
    """lr so small nothing improves after the first evaluation: patience 2 stops at step 9 (evaluations at 3,
    6, 9). Stopped at step 7 (after the checkpoint of step 4 and the evaluation of step 6 without gain),
    the resumed run counts that evaluation and stops at 9, as the uninterrupted run did."""
    changes = dict(lr=1e-7, patience=2)
    ref = reference(world, **changes)
    assert json.loads((ref / "metrics.json").read_text())["steps_run"] == 9
    assert (ref / "checkpoints" / "step-00000009").is_dir()              # the step that stopped: checkpointed
    out = tmp_path / "run"
    stopped_at(7, settings(world, out, **changes))
    finetune_run(settings(world, out, **changes), resume=True)
    assert_same_run(ref, out)


def test_killed_after_the_early_stop_before_metrics_json(world, tmp_path):
    changes = dict(lr=1e-7, patience=2)
    ref = reference(world, **changes)
    out = tmp_path / "run"
    real = finetune.write_json

    def stop_at_metrics(path, obj, *a, **kw):
        if Path(path).name == "metrics.json":
            raise Stop("killed before metrics.json")
        return real(path, obj, *a, **kw)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Stop):
        patch.setattr(finetune, "write_json", stop_at_metrics)
        run(settings(world, out, **changes), stream=lambda *x: None)
    said = finetune_run(settings(world, out, **changes), resume=True)
    assert any("stopped early at step 9" in s and "no step to train" in s for s in said), said
    assert_same_run(ref, out)


# -- what --resume refuses, and what it says ---------------------------------------------------------------------

def test_a_finished_run_resumed_stays_the_same(world, tmp_path):
    out = tmp_path / "run"
    finetune_run(settings(world, out))
    before = {name: (out / name).read_bytes() for name in files(out)}
    said = finetune_run(settings(world, out), resume=True)
    assert any("has ended already" in s and "nothing to resume" in s for s in said), said
    assert {name: (out / name).read_bytes() for name in files(out)} == before


@pytest.mark.parametrize("changes,named", [
    (dict(epochs=4), r"--epochs 4 \(the run's: 3\)"),
    (dict(lr=1e-3, seed=7), r"--lr 0.001 \(the run's: 0.003\), --seed 7 \(the run's: 42\)"),
    (dict(fp16=True), r"--fp16 True \(the run's: False\)"),
])
def test_a_changed_fixed_setting_is_one_error_naming_it(changes, named, world, tmp_path):
    out = tmp_path / "run"
    stopped_at(6, settings(world, out))
    before = {name: (out / name).read_bytes() for name in files(out)}
    with pytest.raises(FinetuneError, match=r"--resume keeps the settings in .*run.json, but got " + named +
                       r"; only --checkpoint-every, --keep may change"):
        run(settings(world, out, **changes), stream=lambda *x: None, resume=True)
    assert {name: (out / name).read_bytes() for name in files(out)} == before


def test_checkpoint_every_and_keep_may_change(world, tmp_path):
    out = tmp_path / "run"
    stopped_at(6, settings(world, out))
    finetune_run(settings(world, out, checkpoint_every=5, keep=1), resume=True)
    assert log_rows(out) == log_rows(reference(world))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000018"]
    assert json.loads((out / "run.json").read_text())["checkpoint_every"] == 5


def test_changed_training_data_is_an_error(world, tmp_path):
    out = tmp_path / "run"
    data = tmp_path / "train.tsv"
    data.write_text((world / "sst2" / "train.tsv").read_text())
    stopped_at(6, settings(world, out, train=str(data)))
    data.write_text(data.read_text().replace("cat", "dog"))
    with pytest.raises(FinetuneError, match=r"the training data differ from those the checkpoints were trained on"):
        run(settings(world, out, train=str(data)), stream=lambda *x: None, resume=True)


def test_changed_dev_data_is_an_error(world, tmp_path):
    """The dev set picks best/ and stops early: a resumed run evaluating on other sentences would compare
    scores across sets."""
    out = tmp_path / "run"
    data = tmp_path / "dev.tsv"
    data.write_text((world / "sst2" / "dev.tsv").read_text())
    stopped_at(6, settings(world, out, dev=str(data)))
    run(settings(world, out, dev=str(data)), stream=lambda *x: None, resume=True)        # the same file: fine
    stopped_at(6, settings(world, tmp_path / "again", dev=str(data)))
    text = data.read_text()
    assert "cat" in text
    data.write_text(text.replace("cat", "dog"))
    with pytest.raises(FinetuneError, match=r"the dev data differ from those the run evaluated on so far"):
        run(settings(world, tmp_path / "again", dev=str(data)), stream=lambda *x: None, resume=True)


def test_no_run_to_resume(world, tmp_path):
    with pytest.raises(FinetuneError, match=r"--resume: no run to resume in .*nowhere \(no run.json\)"):
        run(settings(world, tmp_path / "nowhere"), stream=lambda *x: None, resume=True)


# -- the command ----------------------------------------------------------------------------------------------------

def test_the_command_resumes_with_the_settings_of_run_json(world, tmp_path, capsys):
    """`minibert finetune --out OUT --resume`: no other flag needed (not even --task, --train, --dev)."""
    out = tmp_path / "run"
    args = settings(world, out)
    stopped_at(7, args)
    assert main(["finetune", "--out", str(out), "--resume", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "figure:" in printed
    ref = reference(world)
    assert log_rows(out) == log_rows(ref)
    assert (out / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()


def test_the_library_settings_round_trip_through_run_json(world, tmp_path):
    out = tmp_path / "run"
    args = settings(world, out, fp16=True, freeze_layers=1, patience=3)
    stopped_at(3, args)
    assert finetune.load_run_args(out, progress=False) == args
    assert finetune.load_run_args(out, progress=True) == dataclasses.replace(args, progress=True)


# -- a real kill -9 (tests/train/kill_at.py), from outside -----------------------------------------------------------

KILL_AT = Path(__file__).with_name("kill_at.py")
MOMENTS = {   # (function, its call to kill at, mode); checkpoints at 4, 8, ...: model then optimizer file each
    "in the middle of the second checkpoint's optimizer file": ("minibert.train.checkpoint:save_arrays", 4, "torn"),
    "right after best/ is written, before any checkpoint": ("minibert.train.finetune:save_model", 1, "after"),
}


def cli_flags(args: FinetuneArgs) -> list[str]:
    """The `minibert finetune` flags of these settings (those settings() sets)."""
    return ["finetune", "--no-progress", "--task", args.task, "--train", args.train, "--dev", args.dev, "--model",
            args.model, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--max-seq-len",
            str(args.max_seq_len), "--lr", str(args.lr), "--eval-every", str(args.eval_every), "--checkpoint-every",
            str(args.checkpoint_every), "--keep", str(args.keep), "--out", args.out]


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_killed_then_resumed_by_the_command_is_the_uninterrupted_run(moment, world, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    spec, n, mode = MOMENTS[moment]
    done = subprocess.run([sys.executable, str(KILL_AT), spec, str(n), mode, "--", *cli_flags(settings(world, out))],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == -9, f"not killed at {spec} #{n} ({done.returncode}): {done.stderr}"
    assert not (out / "metrics.json").exists()
    done = subprocess.run([sys.executable, "-m", "minibert", "finetune", "--out", str(out), "--resume",
                           "--no-progress"], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    for figure in ("curves.png", "confusion.png"):                # drawn by the command (from the log's timings)
        (out / figure).unlink()
    assert_same_run(reference(world), out)


# -- data-parallel: 2 ranks resume as they ran --------------------------------------------------------------------

def test_two_ranks_resume_exactly(world, tmp_path):
    """`mpiexec -n 2 minibert finetune` (dropout on: each rank its own stream), then the same run cut back to
    its step-8 checkpoint (as a kill after it leaves it: later checkpoints and metrics.json gone, the log and
    best/ ahead of it) and resumed on 2 ranks: the uninterrupted run's folder, file for file."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install -e .[mpi]): the 2-rank runs need it")
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if not mpiexec:
        pytest.skip("no mpiexec (pip install mpich)")
    a = settings(world, tmp_path)
    flags = ["finetune", "--no-progress", "--task", "sst2", "--train", a.train, "--dev", a.dev, "--model", a.model,
             "--epochs", "3", "--batch-size", "8", "--max-seq-len", "16", "--lr", "3e-3", "--eval-every", "3",
             "--checkpoint-every", "4", "--keep", "10"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

    def ranks(*extra):
        done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "minibert", *flags, *extra], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    for name in ("ref", "cut"):
        ranks("--out", str(tmp_path / name))
    cut = tmp_path / "cut"
    for later in (p for p in (cut / "checkpoints").iterdir() if int(p.name[5:]) > 8):
        shutil.rmtree(later)
    for name in ("metrics.json", "curves.png", "confusion.png"):
        (cut / name).unlink()
    printed = ranks("--out", str(cut), "--resume")
    assert "resuming from" in printed and "(step 8)" in printed
    state = json.loads((cut / "checkpoints" / "step-00000018" / "state.json").read_text())
    assert len(state["dropout_rng_ranks"]) == 2
    for name in ("curves.png", "confusion.png"):       # drawn from the log (its timings differ)
        (cut / name).unlink()
        (tmp_path / "ref" / name).unlink()
    assert_same_run(tmp_path / "ref", cut)
