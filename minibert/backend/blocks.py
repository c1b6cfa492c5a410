"""Row-wise work on every CPU core, in cache-sized blocks.

Why: NumPy runs each elementwise operation on one core, while the matmuls
(BLAS) use all of them. Once the matmuls are fast, the single-core passes of
GELU, LayerNorm and softmax become a large share of a training step. Every
one of these ops treats the rows of its input (the last axis) independently,
so the rows can be cut into blocks and the blocks handed to a pool of
threads: NumPy releases the GIL inside its loops, so the threads really run
in parallel. Small blocks (~256 KB) bring a second gain: the many passes of
a formula over one block (the float32 erf takes ~20) run inside the CPU cache
instead of streaming a 16 MB array through memory each time.

The numbers are those of one call on the whole array: each row is computed
by the same formula, and sums over rows (a LayerNorm's dgamma) are added up
in a fixed order, so results do not depend on thread timing.

Threads are OFF by default (MINIBERT_THREADS=1: the blocks run one after the
other in the calling thread, which keeps the cache gain). Measured on the
2-core machine this was written on, a second thread gained nothing: OpenBLAS's
own threads keep spinning for a while after each matmul and take the second
core. Set MINIBERT_THREADS=2 (or more) to try it on your machine.

Only NumPy uses it: on CuPy each op is already one GPU kernel over the whole
array.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy

BLOCK_ELEMENTS = 1 << 16       # 64 Ki floats = 256 KB of float32 per block: fits in L2 with temporaries
THREADS = max(1, int(os.environ.get("MINIBERT_THREADS", "1")))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="minibert")
    return _pool


def _on_workers(run, n_blocks) -> list:
    """[run(worker) for each worker], worker w taking blocks w, w + THREADS, ...: in this thread
    when THREADS is 1 (no hand-over, the same blocks), else on the pool."""
    if THREADS == 1:
        return [run(0)]
    return list(_executor().map(run, range(min(THREADS, n_blocks))))


def map_rows(fn, arrays, reduce=(), inplace=False):
    """fn(*row_blocks) over blocks of rows; the outputs reassembled as if fn(*arrays) had run once.

    arrays: arrays with the same leading shape (..., K) flattened to rows of the last axis (an array
    of shape (K,), like a LayerNorm's gamma, is passed whole to every block).
    reduce: positions of fn's outputs that are sums over rows (shape without the row axis): those are
    added up over blocks; every other output has one row per input row and is stitched back.
    inplace: fn writes its first output into its first input block (and returns it): then the first
    input array itself is the first output, with no copy.
    """
    x = arrays[0]
    if not isinstance(x, numpy.ndarray) or x.size <= 2 * BLOCK_ELEMENTS:
        return fn(*arrays)                                 # small, or not NumPy: one call
    lead = x.shape[:-1]
    rows = int(numpy.prod(lead))
    flat = [a.reshape(rows, a.shape[-1]) if a.shape[:-1] == lead else a for a in arrays]
    if inplace and not numpy.shares_memory(flat[0], x):
        raise ValueError("map_rows(inplace=True) needs a first array whose rows are a view (contiguous)")
    step = max(1, BLOCK_ELEMENTS // x.shape[-1])
    starts = list(range(0, rows, step))

    def run(worker):
        partial, results = None, []
        for i in starts[worker::THREADS]:
            out = fn(*[a[i:i + step] if a.ndim == 2 and a.shape[0] == rows else a for a in flat])
            results.append((i, out))
            if reduce:
                sums = [out[j] for j in reduce]
                partial = sums if partial is None else [p + s for p, s in zip(partial, sums)]
        return results, partial

    done = _on_workers(run, len(starts))
    first = done[0][0][0][1]
    outs = [None if j in reduce else numpy.empty((rows,) + o.shape[1:], dtype=o.dtype) for j, o in enumerate(first)]
    if inplace:
        outs[0] = flat[0]
    for results, _ in done:
        for i, out in results:
            for j, o in enumerate(out):
                if j not in reduce and not (inplace and j == 0):
                    outs[j][i:i + step] = o
    for j in reduce:
        outs[j] = done[0][1][reduce.index(j)]
        for _, partial in done[1:]:
            outs[j] = outs[j] + partial[reduce.index(j)]
    return tuple(o if j in reduce else o.reshape(lead + o.shape[1:]) for j, o in enumerate(outs))


def for_blocks(fn, arrays):
    """fn(*blocks) over cache-sized pieces of same-shaped arrays, flattened; fn works in place.

    For elementwise updates that touch several big arrays many times over, like AdamW's (about 14
    passes over p, g, m and v): done on whole arrays, each pass streams every array through
    memory and allocates a temporary as large as the parameter (an embedding matrix is 47 MB);
    done on 64 Ki-element pieces, the passes run inside the CPU cache with small temporaries.
    Every element gets the same arithmetic either way, so the result is identical to fn(*arrays).
    CuPy arrays, small or non-contiguous arrays: one call on the whole arrays.
    """
    x = arrays[0]
    if (not isinstance(x, numpy.ndarray) or x.size <= 2 * BLOCK_ELEMENTS
            or not all(a.flags.c_contiguous and a.shape == x.shape for a in arrays)):
        fn(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]              # views: writes land in the arrays
    starts = range(0, x.size, BLOCK_ELEMENTS)

    def run(worker):
        for i in starts[worker::THREADS]:
            fn(*[a[i:i + BLOCK_ELEMENTS] for a in flat])

    _on_workers(run, len(starts))
