"""`minibert pretrain --resume` with changes: --steps (a longer or shorter run), --lr (a new peak), the pieces of
the learning-rate schedule kept in run.json so that a later resume repeats the same rates, the line saying which
settings came from run.json, and the errors for a setting that cannot change or a run cut shorter than its
newest checkpoint. The runs are helpers.tiny_pretraining_flags's (about a second each, in this process).
The kill tests are in test_resume_kill.py."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import minibert.train.loop
from helpers import tiny_pretraining_flags, tiny_pretraining_inputs, write
from minibert.cli import build_parser, main
from minibert.cli.args import from_namespace
from minibert.cli.pretrain import PretrainCommandArgs, pretrain_settings
from minibert.model.io import load_arrays
from minibert.train.optim import linear_warmup_decay
from minibert.train.pretrain import (LearningRateSchedule, PretrainArgs, PretrainError, SchedulePiece,
                                     load_run_args, run)

WALL_CLOCK = ("seconds", "tokens_per_s")


class Stop(Exception):
    """The run stopped by the test (as a kill would: nothing after it runs)."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return tiny_pretraining_inputs(tmp_path_factory.mktemp("inputs"))


def pretrain(capsys, inputs, out, *extra) -> str:
    """`minibert pretrain` (tiny run) in this process; what it printed."""
    assert main(tiny_pretraining_flags(inputs, out, *extra)) == 0
    return capsys.readouterr().out


def failing(capsys, argv) -> str:
    """`minibert ...` that must fail with exit code 2: its one line on stderr."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def stop_at(step: int, capsys, inputs, out: Path) -> None:
    """The tiny run, stopped as step `step` starts (as a kill would stop it: the step before it is done)."""
    real = minibert.train.loop.train_step

    def step_or_stop(*args, step=None, **kw):
        if step == stop:
            raise Stop(f"stopped at step {step}")
        return real(*args, step=step, **kw)

    stop = step
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Stop):
        patch.setattr(minibert.train.loop, "train_step", step_or_stop)
        main(tiny_pretraining_flags(inputs, out))
    capsys.readouterr()


def rows(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
            for line in (out / "log.jsonl").read_text().splitlines()]


def steps(out: Path) -> list[dict]:
    return [r for r in rows(out) if "loss" in r]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_arrays(a), load_arrays(b)
    return set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def finished(inputs, tmp_path_factory) -> Path:
    """The tiny run, to the end (12 steps, checkpoints at 4, 8, 12)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(tiny_pretraining_flags(inputs, out)) == 0
    return out


# -- the schedule --------------------------------------------------------------------------------------

def test_the_schedule_by_hand():
    one = LearningRateSchedule(0.1, [SchedulePiece(0, 20, 1e-3)])
    assert [one(i) for i in range(20)] == [linear_warmup_decay(i, 1e-3, 2, 20) for i in range(20)]
    s = LearningRateSchedule(0.1, [SchedulePiece(0, 20, 1e-3)])
    assert not s.change(8, 20, 1e-3)                                  # the same settings: no new piece
    assert s.change(8, 40, 5e-4)                                      # from step 9 (i = 8): 40 steps, peak 5e-4
    assert s.pieces == [SchedulePiece(0, 20, 1e-3), SchedulePiece(8, 40, 5e-4)]
    assert s(7) == linear_warmup_decay(7, 1e-3, 2, 20)                # before the change: as it was
    assert s(8) == linear_warmup_decay(8, 5e-4, 4, 40) == pytest.approx(5e-4 * 32 / 36)
    assert s(39) == pytest.approx(5e-4 / 36) and s(40) == 0.0
    assert s.change(4, 40, 2e-4)                                      # resumed at 4 (an older checkpoint): the
    assert s.pieces == [SchedulePiece(0, 20, 1e-3), SchedulePiece(4, 40, 2e-4)]     # piece from 8 is replaced
    assert s.change(2, 20, 1e-3) and s.pieces == [SchedulePiece(0, 20, 1e-3)]      # back to the first settings
    warming = LearningRateSchedule(0.5, [SchedulePiece(0, 10, 1.0)])
    warming.change(2, 20, 2.0)                                        # still warming up: towards 2.0 at step 10
    assert warming(2) == pytest.approx(2.0 * 2 / 10) and warming(10) == 2.0


def test_the_schedule_round_trips_through_run_json_and_refuses_an_edited_one():
    args = PretrainArgs(steps=40, lr=5e-4)
    s = LearningRateSchedule(0.1, [SchedulePiece(0, 20, 1e-3), SchedulePiece(8, 40, 5e-4)])
    saved = json.loads(json.dumps({"schedule": s.to_json()}))
    assert LearningRateSchedule.of(args, saved).pieces == s.pieces
    assert LearningRateSchedule.of(args).pieces == [SchedulePiece(0, 40, 5e-4)]
    with pytest.raises(PretrainError, match="does not agree with its steps and lr"):
        LearningRateSchedule.of(dataclasses.replace(args, steps=30), saved)
    with pytest.raises(PretrainError, match="schedule is damaged"):
        LearningRateSchedule.of(args, {"schedule": [{"from_step": 0, "steps": 40}]})


# -- which flags were given -----------------------------------------------------------------------------

def test_a_resumable_flag_typed_with_its_default_value_counts(tmp_path):
    """--lr 0.001 is the default, but typed with --resume it replaces the run's 0.002: None is "not typed"."""
    out = tmp_path
    write(out / "run.json", dataclasses.asdict(PretrainArgs(lr=2e-3, steps=40, seq_len=32, out=str(out))))
    settings = lambda *argv: pretrain_settings(from_namespace(                                       # noqa: E731
        PretrainCommandArgs, build_parser().parse_args(["pretrain", "--out", str(out), *argv])))
    assert settings("--resume").lr == 2e-3 and settings("--resume").steps == 40
    assert settings("--resume", "--lr", "0.001").lr == 1e-3
    assert settings("--resume", "--steps", "1000").steps == 1000
    assert settings("--resume", "--seq-len", "64").seq_len == 32       # 64 is the default: kept, as documented
    assert settings().lr == 1e-3 and settings().steps == 1000 and settings().seq_len == 64   # a new run


# -- --steps, --lr -------------------------------------------------------------------------------------------

def test_resume_with_more_steps_extends_the_run(capsys, inputs, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    said = pretrain(capsys, inputs, out, "--resume", "--steps", "20")
    assert "--steps 20: the schedule now decays to 0 at step 20 (was 12); step 13 runs at lr" in said
    log = steps(out)
    assert [r["step"] for r in log] == list(range(1, 21))
    assert log[:12] == steps(finished)                                       # the first 12 untouched
    assert [r["lr"] for r in log[12:]] == [linear_warmup_decay(i, 1e-3, 2, 20) for i in range(12, 20)]
    saved = json.loads((out / "run.json").read_text())
    assert saved["steps"] == 20 and saved["schedule"] == [{"from_step": 0, "steps": 12, "lr": 1e-3},
                                                          {"from_step": 12, "steps": 20, "lr": 1e-3}]
    assert load_run_args(out).steps == 20
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000012", "step-00000016", "step-00000020"]
    assert load_arrays(out / "model.safetensors").keys() == load_arrays(finished / "model.safetensors").keys()


def test_a_new_lr_is_the_peak_from_the_resumed_step_and_later_resumes_repeat_it(capsys, inputs, tmp_path):
    out = tmp_path / "run"
    stop_at(10, capsys, inputs, out)                                      # checkpoints at 4 and 8
    before = steps(out)[:8]
    said = pretrain(capsys, inputs, out, "--resume", "--lr", "5e-4")
    assert "resuming from" in said and "(step 8)" in said
    assert "--lr 0.0005: the peak learning rate from step 9 on (was 0.001); step 9 runs at lr 0.000182" in said
    log = steps(out)
    assert log[:8] == before
    assert [r["lr"] for r in log[8:]] == [linear_warmup_decay(i, 5e-4, 1, 12) for i in range(8, 12)]
    assert json.loads((out / "run.json").read_text())["schedule"] == [
        {"from_step": 0, "steps": 12, "lr": 1e-3}, {"from_step": 8, "steps": 12, "lr": 5e-4}]

    # the checkpoints of steps 8 and 12 lost: resumed from step 4, steps 5-8 at the old rates, 9-12 at the new
    again = tmp_path / "again"
    shutil.copytree(out, again)
    for step in (8, 12):
        (again / "checkpoints" / f"step-{step:08d}" / "model.safetensors").write_bytes(b"")
    said = pretrain(capsys, inputs, again, "--resume")
    assert "(step 4)" in said and "--lr" not in said
    assert rows(again) == rows(out) and same_weights(again / "model.safetensors", out / "model.safetensors")


def test_resume_with_fewer_steps_ends_at_the_checkpoint_or_refuses(capsys, inputs, tmp_path):
    out = tmp_path / "run"
    stop_at(10, capsys, inputs, out)                                      # checkpoints at 4 and 8
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    err = failing(capsys, tiny_pretraining_flags(inputs, out, "--resume", "--steps", "6"))
    assert "--steps 6 would end the run before its newest checkpoint" in err and "give --steps 8 or more" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before       # nothing touched
    said = pretrain(capsys, inputs, out, "--resume", "--steps", "8")
    assert "the run is at its last step (8) already" in said
    log = rows(out)
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 9))
    assert log[-1]["step"] == 8 and "eval_mlm_accuracy" in log[-1]       # evaluated once, as a last step is
    assert same_weights(out / "model.safetensors", out / "checkpoints" / "step-00000008" / "model.safetensors")


# -- what --resume says and refuses -----------------------------------------------------------------------

def test_resume_names_the_settings_it_took_from_run_json(capsys, inputs, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    said = pretrain(capsys, inputs, out, "--resume")
    line = next(x for x in said.splitlines() if "settings from its run.json" in x)
    assert "steps=12" in line and "seq_len=32" in line and "batch_size=8" in line and "(the rest at their" in line
    assert "--steps" not in said and "--lr" not in said                   # nothing changed, nothing said


@pytest.mark.parametrize("flags, named", [
    (("--seq-len", "16"), "--seq-len 16 (the run's: 32)"),
    (("--dupe-factor", "3", "--seed", "1"), "--dupe-factor 3 (the run's: 2), --seed 1 (the run's: 12345)"),
    (("--config", "mini"), "--config mini (the run's:"),
])
def test_a_setting_that_cannot_change_on_resume_is_one_error(flags, named, capsys, inputs, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    err = failing(capsys, [*tiny_pretraining_flags(inputs, out, "--resume"), *flags])
    assert named in err and "only --steps, --lr, --checkpoint-every, --keep may change" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_the_library_resumes_with_the_settings_it_is_given(inputs, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    said = []
    run(dataclasses.replace(load_run_args(out, progress=False), out=str(out), steps=14), resume=True,
        stream=said.append)
    assert any(line.startswith("--steps 14: the schedule now decays to 0 at step 14") for line in said)
    assert [r["step"] for r in steps(out)] == list(range(1, 15))
    with pytest.raises(PretrainError, match=r"--vocab-size 8000 \(the run's: 120\)"):
        run(PretrainArgs(out=str(out), steps=14, progress=False), resume=True, stream=said.append)


# -- the set-up files -------------------------------------------------------------------------------------

def test_a_damaged_data_file_is_made_again_on_resume(capsys, inputs, finished, tmp_path):
    """data/train.npz cut short after the run had checkpoints: made again from the corpus, the same arrays."""
    intact, damaged = tmp_path / "intact", tmp_path / "damaged"
    shutil.copytree(finished, intact)
    shutil.copytree(finished, damaged)
    data = damaged / "data" / "train.npz"
    data.write_bytes(data.read_bytes()[:1000])
    pretrain(capsys, inputs, intact, "--resume", "--steps", "14")
    said = pretrain(capsys, inputs, damaged, "--resume", "--steps", "14")
    assert f"warning: {data} cannot be read (BadZipFile" in said and "making it again from the corpus" in said
    assert data.read_bytes() == (intact / "data" / "train.npz").read_bytes()
    assert rows(damaged) == rows(intact)


def test_a_vocabulary_changed_under_the_checkpoints_is_an_error(capsys, inputs, finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    with open(out / "vocab.txt", "a", encoding="utf-8") as vocab:
        vocab.write("zebra\n")
    err = failing(capsys, tiny_pretraining_flags(inputs, out, "--resume"))
    assert "vocab.txt has 121 tokens but" in err and "says vocab_size=120" in err
    assert "the checkpoints in" in err and "were trained with the vocabulary that was there" in err
