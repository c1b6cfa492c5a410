"""minibert/data/batches.py: the one batcher of pretraining and fine-tuning (epoch orders, epoch batches,
step rows, consecutive batches)."""
import numpy as np
import pytest

from minibert.data.batches import consecutive_batches, epoch_batches, epoch_order, step_rows


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


def test_batches_are_a_pure_function_of_seed_and_step():
    a = [step_rows(s, 8, 20, 3) for s in range(6)]
    assert all(np.array_equal(x, step_rows(s, 8, 20, 3)) for s, x in enumerate(a))
    rows = np.concatenate(a[:5])[:40]
    assert sorted(rows[:20].tolist()) == list(range(20)) and sorted(rows[20:40].tolist()) == list(range(20))


def test_batches_are_a_fresh_permutation_per_epoch():
    a, b = epoch_batches(10, 4, seed=1, epoch=0), epoch_batches(10, 4, seed=1, epoch=1)
    assert [len(x) for x in a] == [4, 4, 2]
    assert sorted(np.concatenate(a)) == list(range(10)) and not np.array_equal(np.concatenate(a), np.concatenate(b))
    assert all(np.array_equal(x, y) for x, y in zip(a, epoch_batches(10, 4, seed=1, epoch=0)))
