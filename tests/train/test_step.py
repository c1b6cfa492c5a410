"""minibert/train/step.py on a toy model whose numbers can be worked out by hand (helpers.Mean): exact
accumulation weights, and a NaN loss raised before any update."""
import numpy as np
import pytest

from minibert.train.optim import AdamW
from minibert.train.step import NonFiniteLossError, count_totals, loss_weights, train_step
from helpers import TOY_Y, Mean, MeanObjective, toy_batch


def test_accumulated_micro_batches_give_the_one_batch_gradient():
    """Uneven micro-batches (3 + 1 rows) weighted n_i / N: the same gradient as one batch of 4."""
    assert loss_weights([(3, 10), (1, 0)]) == [(0.75, 1.0), (0.25, 0.0)]
    assert count_totals([(3, 10), (1, 0)]) == (4, 10)
    whole, split = Mean(1.0), Mean(1.0)
    rows = np.array([0, 5, 7, 11])
    m1 = train_step(whole, MeanObjective(), AdamW(whole.params, lr=0.1), [toy_batch(rows)], [(1.0,)], 0.1, 0)
    micro = [toy_batch(rows[:3]), toy_batch(rows[3:])]
    weights = loss_weights([MeanObjective().counts(b) for b in micro])
    m2 = train_step(split, MeanObjective(), AdamW(split.params, lr=0.1), micro, weights, 0.1, 0)
    assert whole.grads["w"][0] == pytest.approx(2 * (1.0 - TOY_Y[rows].mean()))
    assert split.grads["w"][0] == pytest.approx(whole.grads["w"][0])
    assert m2["loss"] == pytest.approx(m1["loss"]) and m2["tokens"] == m1["tokens"] == 4
    assert split.params["w"][0] == pytest.approx(whole.params["w"][0])


def test_a_nan_loss_raises_before_any_update():
    model = Mean(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 7; parameters were not updated"):
        train_step(model, MeanObjective(), AdamW(model.params), [toy_batch([0, 1])], [(1.0,)], 0.1, step=7)
