"""minibert/train/loop.py on a toy model whose numbers can be worked out by hand (helpers.Mean): the
evaluation and checkpoint cadence, the best model, early stopping, the log (a torn last line, rows missing) and
exact resume (from the checkpoint before a damaged one; a checkpoint that does not fit changes nothing)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from minibert.data.batches import epoch_batches, step_rows
from minibert.model.io import CheckpointError, save_arrays
from minibert.train.checkpoint import list_checkpoints, save_checkpoint
from minibert.train.loop import TrainingLoop, read_jsonl, step_ranges
from minibert.train.optim import AdamW
from minibert.train.step import NonFiniteLossError
from helpers import TOY_Y, Mean, MeanObjective, toy_batch


def loop(tmp_path, model, **kw):
    settings = dict(lr_at=lambda i: 0.1, evaluate=lambda: {"score": -abs(model.params["w"][0] - 5.5)},
                    progress=False, write=lambda *a: None)
    settings.update(kw)
    return TrainingLoop(model, MeanObjective(), AdamW(model.params, lr=0.1, weight_decay=0.0), tmp_path, **settings)


def epochs_plan(n_epochs, batch_size=4, seed=1):
    return [(e + 1, rows) for e in range(n_epochs) for rows in epoch_batches(len(TOY_Y), batch_size, seed, e)]


def test_evaluation_cadence_best_model_and_log(tmp_path):
    saved, rows = [], []
    done = loop(tmp_path, Mean(), eval_every=2, metric="score", save_best=saved.append,
                callback=rows.append).run(epochs_plan(2), lambda r: [toy_batch(r)])
    log = read_jsonl(tmp_path / "log.jsonl")
    assert log == rows                                           # the callback saw every row, in order
    steps = [r for r in log if "loss" in r]
    evals = [r for r in log if "score" in r]
    assert [r["step"] for r in steps] == list(range(1, 7)) and [r["epoch"] for r in steps] == [1] * 3 + [2] * 3
    assert [r["step"] for r in evals] == [2, 3, 4, 6]          # every 2 steps and at the end of each epoch
    assert evals[0]["train_loss"] == pytest.approx(np.mean([steps[0]["loss"], steps[1]["loss"]]))
    assert evals[1]["train_loss"] == pytest.approx(steps[2]["loss"])
    assert done["steps_run"] == 6 and done["last_eval"] == evals[-1]
    assert done["best"] == max(evals, key=lambda r: r["score"])  # w moves towards 5.5: the last is the best
    assert saved == [tmp_path / "best"] * 4                      # saved at every improvement


def test_early_stopping_after_patience_evaluations_without_gain(tmp_path):
    scores = iter([1.0, 0.5, 0.4, 2.0])
    done = loop(tmp_path, Mean(), eval_every=1, metric="score", patience=2,
                evaluate=lambda: {"score": next(scores)}).run(epochs_plan(3), lambda r: [toy_batch(r)])
    assert done["steps_run"] == 3 and done["best"]["step"] == 1  # evaluations at 1 (best), 2, 3: stop


def test_checkpoints_and_exact_resume(tmp_path):
    plan = [(None, step_rows(s, 4, len(TOY_Y), 3)) for s in range(7)]
    full = loop(tmp_path / "full", Mean(), checkpoint_every=3)
    full.run(plan, lambda r: [toy_batch(r)])
    assert sorted(p.name for p in (tmp_path / "full/checkpoints").iterdir()) == [
        "step-00000003", "step-00000006", "step-00000007"]

    calls = []

    def killed_at_step_6(rows):
        calls.append(rows)
        if len(calls) == 6:
            raise KeyboardInterrupt                              # killed after step 5: the checkpoint is at 3
        return [toy_batch(rows)]

    with pytest.raises(KeyboardInterrupt):
        loop(tmp_path / "cut", Mean(), checkpoint_every=3).run(plan, killed_at_step_6)
    with open(tmp_path / "cut/log.jsonl", "a") as log:
        log.write('{"step": 6, "lo')                             # and mid-write
    resumed = loop(tmp_path / "cut", Mean(), checkpoint_every=3)
    start = resumed.resume()
    assert start == 3
    resumed.run(plan, lambda r: [toy_batch(r)], start=start)
    assert resumed.model.params["w"][0] == full.model.params["w"][0]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in rows]  # noqa
    assert strip(read_jsonl(tmp_path / "cut/log.jsonl")) == strip(read_jsonl(tmp_path / "full/log.jsonl"))


def test_a_run_without_checkpoint_starts_a_fresh_log(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")
    l = loop(tmp_path, Mean(), checkpoint_every=10)             # noqa: E741
    assert l.resume() == 0
    l.run([(None, np.array([0, 1]))] * 2, lambda r: [toy_batch(r)])
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl") if "loss" in r] == [1, 2]   # the old row is gone


def test_a_nan_loss_names_the_newest_checkpoint(tmp_path):
    model = Mean()
    l = loop(tmp_path, model, checkpoint_every=2)                # noqa: E741
    plan = [(None, np.array([0, 1]))] * 4

    def make(rows):
        if len(read_jsonl(tmp_path / "log.jsonl")) == 3:         # the 4th step gets a NaN target
            return [{"y": np.array([np.nan]), "attention_mask": np.ones((1, 1))}]
        return [toy_batch(rows)]

    with pytest.raises(NonFiniteLossError, match=r"at step 4.*step-00000002.*--resume"):
        l.run(plan, make)


def test_a_torn_last_log_line_is_skipped(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1, "loss": 2.0}]
    path.write_text('{"step": 1, "lo\n{"step": 2, "loss": 2.0}\n')
    with pytest.raises(ValueError, match="line 1 is not valid JSON"):
        read_jsonl(path)


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_one_before_resumed(tmp_path):
    plan = [(None, step_rows(s, 4, len(TOY_Y), 3)) for s in range(7)]
    full = loop(tmp_path / "full", Mean(), checkpoint_every=3)
    full.run(plan, lambda r: [toy_batch(r)])
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    newest = cut / "checkpoints" / "step-00000007"
    save_arrays(newest / "model.safetensors", {"w": np.zeros(2)})           # the wrong shape
    (cut / "checkpoints" / ".tmp-step-00000009").mkdir()                     # a write a kill interrupted
    said = []
    resumed = loop(cut, Mean(), checkpoint_every=3, write=said.append)
    assert resumed.resume() == 6
    unfinished = cut / "checkpoints" / ".tmp-step-00000009"
    assert said[0] == f"removed {unfinished}, a checkpoint whose writing was interrupted" and not unfinished.exists()
    assert said[1].startswith(f"warning: checkpoint {newest} is damaged (") and "has shape (2,)" in said[1]
    assert said[1].endswith(f"resuming from {cut / 'checkpoints' / 'step-00000006'} instead (the damaged one is "
                            f"kept as {cut / 'checkpoints' / 'damaged-step-00000007'})")
    resumed.run(plan, lambda r: [toy_batch(r)], start=6)
    assert resumed.model.params["w"][0] == full.model.params["w"][0]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in rows]  # noqa
    assert strip(read_jsonl(cut / "log.jsonl")) == strip(read_jsonl(tmp_path / "full/log.jsonl"))


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path):
    model = Mean(w=2.5)
    l = loop(tmp_path, model)                                              # noqa: E741
    state = {"dropout_rng": model.rng.bit_generator.state}
    save_checkpoint(tmp_path, 4, {"w": np.array([9.0])}, {"t": 3, "m.x": np.zeros(1), "v.w": np.zeros(1)}, state)
    rng_before = model.rng.bit_generator.state
    with pytest.raises(CheckpointError, match=r"no usable checkpoint .*step-00000004: .*lacks 1 moments \(m\.w\)"):
        l.resume()
    assert model.params["w"][0] == 2.5 and l.optimizer.t == 0 and model.rng.bit_generator.state == rng_before
    assert list_checkpoints(tmp_path)                                    # nothing set aside: nothing to resume from


def test_resumed_at_the_last_step_the_loop_evaluates_once_and_warns_of_missing_rows(tmp_path):
    plan = [(None, np.array([0, 1]))] * 4
    loop(tmp_path, Mean(), checkpoint_every=2, eval_every=3).run(plan, lambda r: [toy_batch(r)])
    rows = read_jsonl(tmp_path / "log.jsonl")
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] != 2 or "score" in r))
    said = []
    again = loop(tmp_path, Mean(), checkpoint_every=2, eval_every=3, write=said.append)
    again.run(plan[:2], lambda r: [toy_batch(r)], start=2)              # a run of 2 steps, resumed at its end
    assert said == [f"warning: {tmp_path / 'log.jsonl'} has no row for step(s) 2 (deleted?); the resumed log lacks "
                    f"them too"]
    log = read_jsonl(tmp_path / "log.jsonl")
    assert [(r["step"], "score" in r) for r in log] == [(1, False), (2, True)]   # step 2's evaluation, once
    again.run(plan[:2], lambda r: [toy_batch(r)], start=2)
    assert read_jsonl(tmp_path / "log.jsonl") == log                     # evaluated already: not again
    with pytest.raises(ValueError, match="cannot resume at step 3 a plan of 2 steps"):
        again.run(plan[:2], lambda r: [toy_batch(r)], start=3)


def test_step_ranges():
    assert step_ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10" and step_ranges([]) == ""
