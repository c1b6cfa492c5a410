"""minibert.train.step and minibert.train.loop on a toy model whose numbers can be worked out by hand:
exact accumulation weights, the evaluation and checkpoint cadence, the best model, early stopping,
the log and exact resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minibert.data.batches import consecutive_batches, epoch_batches, epoch_order, step_rows
from minibert.train.loop import TrainingLoop, read_jsonl
from minibert.train.optim import AdamW
from minibert.train.step import NonFiniteLossError, count_totals, loss_weights, train_step


class Mean:
    """A one-parameter 'model': loss = mean over the batch of (w - y)^2; its gradient is 2 (w - y)."""

    def __init__(self, w=0.0):
        self.params = {"w": np.array([w])}
        self.grads = {"w": np.zeros(1)}
        self.rng = np.random.default_rng(0)          # a dropout generator, as BertModel has

    def zero_grad(self):
        self.grads["w"].fill(0)

    def forward(self, y):
        self._y = y
        d = self.params["w"][0] - y
        return {"loss": float((d * d).mean()), "correct": int((np.abs(d) < 0.5).sum())}

    def backward(self, weight):
        self.grads["w"] += weight * 2 * (self.params["w"][0] - self._y).mean()


class MeanObjective:
    loss_keys, correct_keys = ("loss",), ("correct",)

    def counts(self, batch):
        return (len(batch["y"]),)

    def forward(self, model, batch):
        return model.forward(batch["y"])

    def backward(self, model, weights):
        model.backward(weights[0])


Y = np.arange(12, dtype=float)


def batch(rows):
    return {"y": Y[rows], "attention_mask": np.ones((len(rows), 1), dtype=np.int64)}


def test_the_batchers():
    assert sorted(epoch_order(10, 3, 0)) == list(range(10))
    assert not np.array_equal(epoch_order(10, 3, 0), epoch_order(10, 3, 1))
    assert [len(b) for b in epoch_batches(10, 4, 3, 0)] == [4, 4, 2]
    assert np.array_equal(np.concatenate(epoch_batches(10, 4, 3, 1)), epoch_order(10, 3, 1))
    stream = np.concatenate([step_rows(s, 4, 10, 3) for s in range(5)])          # 20 rows = two epochs
    assert np.array_equal(stream, np.concatenate([epoch_order(10, 3, 0), epoch_order(10, 3, 1)]))
    assert [list(r) for r in consecutive_batches(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [list(r) for r in consecutive_batches(5, 2, start=1, drop_last=True)] == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        epoch_batches(10, 0, 3, 0)


def test_accumulated_micro_batches_give_the_one_batch_gradient():
    """Uneven micro-batches (3 + 1 rows) weighted n_i / N: the same gradient as one batch of 4."""
    assert loss_weights([(3, 10), (1, 0)]) == [(0.75, 1.0), (0.25, 0.0)]
    assert count_totals([(3, 10), (1, 0)]) == (4, 10)
    whole, split = Mean(1.0), Mean(1.0)
    rows = np.array([0, 5, 7, 11])
    m1 = train_step(whole, MeanObjective(), AdamW(whole.params, lr=0.1), [batch(rows)], [(1.0,)], 0.1, 0)
    micro = [batch(rows[:3]), batch(rows[3:])]
    weights = loss_weights([MeanObjective().counts(b) for b in micro])
    m2 = train_step(split, MeanObjective(), AdamW(split.params, lr=0.1), micro, weights, 0.1, 0)
    assert whole.grads["w"][0] == pytest.approx(2 * (1.0 - Y[rows].mean()))
    assert split.grads["w"][0] == pytest.approx(whole.grads["w"][0])
    assert m2["loss"] == pytest.approx(m1["loss"]) and m2["tokens"] == m1["tokens"] == 4
    assert split.params["w"][0] == pytest.approx(whole.params["w"][0])


def test_a_nan_loss_raises_before_any_update():
    model = Mean(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 7; parameters were not updated"):
        train_step(model, MeanObjective(), AdamW(model.params), [batch([0, 1])], [(1.0,)], 0.1, step=7)


def loop(tmp_path, model, **kw):
    settings = dict(lr_at=lambda i: 0.1, evaluate=lambda: {"score": -abs(model.params["w"][0] - 5.5)},
                    progress=False, write=lambda *a: None)
    settings.update(kw)
    return TrainingLoop(model, MeanObjective(), AdamW(model.params, lr=0.1, weight_decay=0.0), tmp_path, **settings)


def epochs_plan(n_epochs, batch_size=4, seed=1):
    return [(e + 1, rows) for e in range(n_epochs) for rows in epoch_batches(len(Y), batch_size, seed, e)]


def test_evaluation_cadence_best_model_and_log(tmp_path):
    saved, rows = [], []
    done = loop(tmp_path, Mean(), eval_every=2, metric="score", save_best=saved.append,
                callback=rows.append).run(epochs_plan(2), lambda r: [batch(r)])
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
                evaluate=lambda: {"score": next(scores)}).run(epochs_plan(3), lambda r: [batch(r)])
    assert done["steps_run"] == 3 and done["best"]["step"] == 1  # evaluations at 1 (best), 2, 3: stop


def test_checkpoints_and_exact_resume(tmp_path):
    plan = [(None, step_rows(s, 4, len(Y), 3)) for s in range(7)]
    full = loop(tmp_path / "full", Mean(), checkpoint_every=3)
    full.run(plan, lambda r: [batch(r)])
    assert sorted(p.name for p in (tmp_path / "full/checkpoints").iterdir()) == [
        "step-00000003", "step-00000006", "step-00000007"]

    calls = []

    def killed_at_step_6(rows):
        calls.append(rows)
        if len(calls) == 6:
            raise KeyboardInterrupt                              # killed after step 5: the checkpoint is at 3
        return [batch(rows)]

    with pytest.raises(KeyboardInterrupt):
        loop(tmp_path / "cut", Mean(), checkpoint_every=3).run(plan, killed_at_step_6)
    with open(tmp_path / "cut/log.jsonl", "a") as log:
        log.write('{"step": 6, "lo')                             # and mid-write
    resumed = loop(tmp_path / "cut", Mean(), checkpoint_every=3)
    start = resumed.resume()
    assert start == 3
    resumed.run(plan, lambda r: [batch(r)], start=start)
    assert resumed.model.params["w"][0] == full.model.params["w"][0]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "tokens_per_s")} for r in rows]  # noqa
    assert strip(read_jsonl(tmp_path / "cut/log.jsonl")) == strip(read_jsonl(tmp_path / "full/log.jsonl"))


def test_a_run_without_checkpoint_starts_a_fresh_log(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")
    l = loop(tmp_path, Mean(), checkpoint_every=10)             # noqa: E741
    assert l.resume() == 0
    l.run([(None, np.array([0, 1]))] * 2, lambda r: [batch(r)])
    assert [r["step"] for r in read_jsonl(tmp_path / "log.jsonl") if "loss" in r] == [1, 2]   # the old row is gone


def test_a_nan_loss_names_the_newest_checkpoint(tmp_path):
    model = Mean()
    l = loop(tmp_path, model, checkpoint_every=2)                # noqa: E741
    plan = [(None, np.array([0, 1]))] * 4

    def make(rows):
        if len(read_jsonl(tmp_path / "log.jsonl")) == 3:         # the 4th step gets a NaN target
            return [{"y": np.array([np.nan]), "attention_mask": np.ones((1, 1))}]
        return [batch(rows)]

    with pytest.raises(NonFiniteLossError, match=r"at step 4.*step-00000002.*--resume"):
        l.run(plan, make)
