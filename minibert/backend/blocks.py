"""Row-wise ops and elementwise updates in cache-sized blocks (NumPy), applied *around* a formula.

Why: NumPy runs each elementwise operation as one single-threaded pass over the whole array, and
a formula such as the float32 erf in GELU makes ~20 such passes. On a (B, T, 4H) activation of
16 MB every pass streams the array through memory. GELU, LayerNorm and softmax treat the rows of
their input (the last axis) independently, so the rows can be cut into blocks of ~256 KB and the
*same* formula run block after block: all the passes over one block then happen inside the CPU
cache. AdamW's update is elementwise, so the same works on flat pieces of its arrays.

The numbers are those of one call on the whole array: every row (or element) goes through the
same formula, and sums over rows (a LayerNorm's dgamma) are added up in a fixed order, so they do
not depend on thread timing either.

Threads: the blocks can be handed to a pool of threads (NumPy releases the GIL inside its loops).
It is OFF by default (MINIBERT_THREADS=1: the blocks run one after the other in the calling thread,
which keeps the cache gain). On the 2-core machine this was written on a second thread gained
nothing: OpenBLAS's own threads keep spinning for a while after each matmul and take the second
core. Set MINIBERT_THREADS=2 (or more) to try it on your machine.

Only NumPy arrays are cut: on CuPy each op is already one GPU kernel over the whole array, and
small arrays (gradient checks) are not worth it. Both get one call of the formula.

    rows_in_blocks   decorator for a row-wise op: `@rows_in_blocks()` above `def layer_norm_forward`
    for_blocks       runs an in-place elementwise update on flat pieces of same-shaped arrays (AdamW)
"""
from __future__ import annotations

import functools
import inspect
import math
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


# -- rows_in_blocks: a row-wise op on blocks of rows ---------------------------------------------

def rows_in_blocks(sums=()):
    """Decorator: run a row-wise op on cache-sized blocks of rows, and give back one call's results.

        @rows_in_blocks(sums=(1, 2))            # outputs 1 and 2 (dgamma, dbeta) are sums over rows
        def layer_norm_backward(dy, cache):
            ...                                 # the formula, written for the whole array

    The decorated function is the formula, and it is what runs: on a CuPy array, a small array or a
    vector, once on the whole input; on a large NumPy array, once per block of rows (about
    BLOCK_ELEMENTS numbers each), so that its many elementwise passes stay in the CPU cache (see the
    module docstring). `op.__wrapped__` is the formula alone, one call, for tests.

    Cutting the inputs: the rows are those of the first parameter, all its axes but the last
    flattened. Every array argument with the same leading shape, also inside a tuple argument
    such as a cache, is cut into the same blocks; anything else (gamma, eps, flags) is passed
    whole to every block.

    Putting the outputs back together (they may be nested tuples, such as `(y, cache)`):
    - the top-level outputs at the positions `sums` are sums over rows: the blocks' values are
      added, in block order (and the threads' partial sums in thread order);
    - an argument passed whole (gamma) and anything that is not an array (None, a flag) is
      returned as it is;
    - every other array has one row per input row: the blocks are stitched together. An output
      block that *is* its input block (the formula wrote into it, `out=x`) needs no stitching:
      the whole input comes back (the input itself when its rows are a view of it).
    """
    def decorate(formula):
        first = next(iter(inspect.signature(formula).parameters))      # the argument whose rows are cut

        @functools.wraps(formula)
        def run_in_blocks(*args, **kwargs):
            x = args[0] if args else kwargs[first]
            if not _worth_cutting(x):
                return formula(*args, **kwargs)                  # one call on the whole array
            lead = x.shape[:-1]
            rows = math.prod(lead)
            step = max(1, BLOCK_ELEMENTS // x.shape[-1])         # rows per block
            starts = list(range(0, rows, step))
            inputs, put_back = _flatten((args, kwargs))
            cut = {k: a.reshape(rows, a.shape[-1]) for k, a in enumerate(inputs)    # input k -> its (rows, K) view
                   if isinstance(a, numpy.ndarray) and a.ndim == len(lead) + 1 and a.shape[:-1] == lead}

            def run(worker):                                     # this worker's blocks, and its partial sums
                done, partial = [], None
                for i in starts[worker::THREADS]:
                    block = [cut[k][i:i + step] if k in cut else a for k, a in enumerate(inputs)]
                    block_args, block_kwargs = put_back(block)
                    out = formula(*block_args, **block_kwargs)
                    done.append((i, block, out))
                    if sums:
                        now = [out[j] for j in sums]
                        partial = now if partial is None else [p + s for p, s in zip(partial, now)]
                return done, partial

            workers = _on_workers(run, len(starts))
            blocks = sorted((b for done, _ in workers for b in done), key=lambda b: b[0])
            totals = {}
            if sums:                                             # thread 0's partial sums + thread 1's + ...
                for n, j in enumerate(sums):
                    totals[j] = functools.reduce(lambda a, b: a + b, [partial[n] for _, partial in workers])
            return _put_together(blocks, inputs, cut, totals, lead, rows)

        return run_in_blocks
    return decorate


def _worth_cutting(x) -> bool:
    """Only large NumPy arrays with rows: CuPy arrays, small arrays and vectors get one call."""
    return isinstance(x, numpy.ndarray) and x.ndim >= 2 and x.size > 2 * BLOCK_ELEMENTS


def _flatten(tree):
    """(leaves, put_back): the leaves of nested tuples, lists and dicts in order, and the function that
    builds the same structure around new leaves (a NamedTuple keeps its class: a cache stays a cache)."""
    if not isinstance(tree, (tuple, list, dict)):
        return [tree], lambda new: new[0]
    keys = list(tree) if isinstance(tree, dict) else range(len(tree))
    parts = [_flatten(tree[k]) for k in keys]
    leaves = [leaf for part, _ in parts for leaf in part]

    def put_back(new):
        items, at = [], 0
        for part, put in parts:
            items.append(put(new[at:at + len(part)]))
            at += len(part)
        if isinstance(tree, dict):
            return dict(zip(keys, items))
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    return leaves, put_back


def _put_together(blocks, inputs, cut, totals, lead, rows):
    """The blocks' outputs as one call's outputs: the sums `totals` (by top-level position), values
    kept, or rows stitched (see rows_in_blocks). blocks: (first row, input leaves, output) in row order."""
    outs = [out for _, _, out in blocks]
    if totals:                                           # the rest of the top-level outputs, without the sums
        outs = [tuple(o for j, o in enumerate(out) if j not in totals) for out in outs]
    firsts, put_back = _flatten(outs[0])
    every = [firsts] + [_flatten(out)[0] for out in outs[1:]]            # every[b][n]: output leaf n of block b
    _, first_inputs, _ = blocks[0]
    made = {}                                   # id(first block's leaf) -> result: (p, p) stays one array
    results = []
    for n, first in enumerate(firsts):
        if id(first) not in made:
            written_into = [k for k in cut if first_inputs[k] is first]
            passed_whole = any(first is a for k, a in enumerate(inputs) if k not in cut)
            if not isinstance(first, numpy.ndarray) or passed_whole:
                made[id(first)] = first         # not an array, or passed whole (gamma): kept
            elif written_into:                  # the formula wrote into its input block: the input is the output
                made[id(first)] = cut[written_into[0]].reshape(lead + first.shape[1:])
            else:
                whole = numpy.empty((rows,) + first.shape[1:], dtype=first.dtype)
                for (i, _, _), leaves in zip(blocks, every):
                    whole[i:i + len(leaves[n])] = leaves[n]       # stitch the rows back
                made[id(first)] = whole.reshape(lead + first.shape[1:])
        results.append(made[id(first)])
    stitched = put_back(results)
    if not totals:
        return stitched
    rest = iter(stitched)                       # put the sums back at their positions
    full = [totals[j] if j in totals else next(rest) for j in range(len(blocks[0][2]))]
    return type(blocks[0][2])(*full) if hasattr(blocks[0][2], "_fields") else tuple(full)


# -- for_blocks: an elementwise in-place update on flat pieces -----------------------------------

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
