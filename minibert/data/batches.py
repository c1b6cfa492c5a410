"""Which rows go into each batch: the one batcher pretraining, fine-tuning and evaluation share.

Training reads the N examples in a fresh random order every epoch. The order of
epoch e is a pure function of (seed, e), so the batch of any step can be
recomputed from nothing but the seed and the step number: a run killed and
resumed reads exactly the batches it would have read.

    epoch_order(n, seed, epoch)              the permutation of epoch e          (n,)
    epoch_batches(n, batch_size, seed, e)    that epoch cut into batches; the last one may be smaller
                                             (fine-tuning: a PyTorch DataLoader with drop_last=False)
    step_rows(step, batch_size, n, seed)     the rows of step s when epochs follow each other without
                                             a break (pretraining: a batch may span two epochs)
    consecutive_batches(n, batch_size)       rows in order (evaluation; instances already shuffled)

Rows are indices; the caller takes those rows of its arrays.
"""
from __future__ import annotations

import numpy


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, numpy.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def epoch_order(n: int, seed: int, epoch: int) -> numpy.ndarray:
    """The order in which epoch `epoch` reads the n rows: a permutation drawn from (seed, epoch) alone."""
    return numpy.random.default_rng([seed, epoch]).permutation(n)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[numpy.ndarray]:
    """The row indices of each step of an epoch; the last, smaller batch is kept."""
    _check_batch_size(batch_size)
    order = epoch_order(n, seed, epoch)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def step_rows(step: int, batch_size: int, n: int, seed: int) -> numpy.ndarray:
    """Row indices of the batch of `step` (0-based) in an endless stream of epochs.

    Step s reads positions [s * batch_size, (s + 1) * batch_size) of the stream
    epoch_order(n, seed, 0), epoch_order(n, seed, 1), ...; a batch that crosses the end
    of an epoch continues with the next epoch's order.
    """
    _check_batch_size(batch_size)
    start = step * batch_size
    rows = []
    while len(rows) < batch_size:
        epoch, offset = divmod(start + len(rows), n)
        rows.extend(epoch_order(n, seed, epoch)[offset:offset + batch_size - len(rows)].tolist())
    return numpy.asarray(rows)


def consecutive_batches(n: int, batch_size: int, start: int = 0, drop_last: bool = False) -> list[range]:
    """Rows [i, i + batch_size) in order, from `start`; drop_last leaves out a last, smaller batch."""
    _check_batch_size(batch_size)
    return [range(i, min(i + batch_size, n)) for i in range(start, n, batch_size)
            if not (drop_last and i + batch_size > n)]
