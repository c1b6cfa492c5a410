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

Threads: the blocks are handed to MINIBERT_THREADS threads (default: the cores this process may
use; NumPy releases the GIL inside its loops): the calling thread and a pool, each taking the next
block not yet taken. MINIBERT_THREADS=1 runs them one after the other in the calling thread.
Each block's rows are copied into one output array as soon as the block is done, while they are
still in the cache, and the sums over rows are added in block order: 1, 2 or 3 threads give the
same numbers, bit for bit (tests/backend/test_row_blocks.py).

OpenBLAS's threads: after each matmul they keep spinning for a while (OPENBLAS_THREAD_TIMEOUT,
2^28 cycles by default) and take the core a second block thread wants. While the blocks run, BLAS
is set to one thread (threadpoolctl, if it is installed; it is not a dependency; set
MINIBERT_QUIET_BLAS=0 to leave BLAS alone). Measured side by side by benchmarks/bench_threads.py
(BertModel mini 32 x 128 fwd + bwd, 2 cores, wall time vs 1 thread). Idle machine: 2 threads 0.88x,
+ OPENBLAS_THREAD_TIMEOUT=1 1.06x, + BLAS at 1 thread during the blocks 0.89x, OPENBLAS_NUM_THREADS=1
throughout 1.23x. Under heavy load: 0.91x, 1.10x, 0.75x and 0.16x: there OpenBLAS's own threaded
GEMM loses most (its threads wait for each other while one of them is descheduled).
Why not 0.5x: a NumPy call holds the GIL while it dispatches (a few us); on a 64 Ki block a cheap
pass (+=, *=) is only ~6 us of work, so such passes barely overlap (docs/performance.md).

Only NumPy arrays are cut: on CuPy each op is already one GPU kernel over the whole array, and
small arrays (gradient checks) are not worth it. Both get one call of the formula.

    rows_in_blocks   decorator for a row-wise op: `@rows_in_blocks()` above `def layer_norm_forward`
    for_blocks       runs an in-place elementwise update on flat pieces of same-shaped arrays (AdamW)
    matmul_rows      a @ b with a's rows split among the same threads, BLAS at one thread in each
                     (opt-in, MINIBERT_MATMUL_ROWS=1: see its docstring)
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy

BLOCK_ELEMENTS = 1 << 16       # 64 Ki floats = 256 KB of float32 per block: fits in L2 with temporaries
THREADS = max(1, int(os.environ.get("MINIBERT_THREADS", len(os.sched_getaffinity(0))
                                     if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)))
QUIET_BLAS = os.environ.get("MINIBERT_QUIET_BLAS", "1") != "0"
_pool: ThreadPoolExecutor | None = None
_blas = None                   # threadpoolctl's handle on the BLAS libraries, once asked for; False: none


def _blas_at_one_thread():
    """A context in which BLAS runs on one thread (so its idle threads stop taking a core the
    blocks want), or a context that does nothing: threadpoolctl missing, or MINIBERT_QUIET_BLAS=0."""
    blas = _blas_handle()
    if not (QUIET_BLAS and blas):
        return contextlib.nullcontext()
    return blas.limit(limits=1)


def _hold_blas_at_one_thread():
    """BLAS at one thread from now on (matmul_rows runs the threads itself)."""
    global _held
    if not _held:
        for lib in _blas_handle().lib_controllers:
            lib.set_num_threads(1)
        _held = True


_held = False
_worker = threading.local()    # .busy: this thread is running blocks (nested calls run in order)


def _blas_handle():
    """threadpoolctl's handle on the loaded BLAS libraries, or False (not installed, or no BLAS)."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController     # optional, not a dependency of minibert
            _blas = ThreadpoolController().select(user_api="blas")
            _blas = _blas if _blas.lib_controllers else False
        except Exception:                                      # not installed, or no BLAS it knows
            _blas = False
    return _blas


def _executor() -> ThreadPoolExecutor:
    """The pool of THREADS - 1 helper threads (the calling thread is the last worker)."""
    global _pool
    if _pool is None or _pool._max_workers != THREADS - 1:
        _pool = ThreadPoolExecutor(max_workers=THREADS - 1, thread_name_prefix="minibert")
    return _pool


def _on_workers(run_block, todo) -> None:
    """run_block(i) for every i in `todo`, on THREADS workers: the calling thread and THREADS - 1 pool
    threads, each taking the next block not yet taken (a slow thread takes fewer blocks: the other
    core may be busy with someone else's work). Which thread runs a block changes nothing in the
    numbers: each block's results are kept by its index, and sums are added in block order.
    With THREADS = 1 (or one block) the blocks run in order in the calling thread, nothing handed over."""
    todo = list(todo)
    helpers = min(THREADS, len(todo)) - 1
    if helpers <= 0 or getattr(_worker, "busy", False):
        for i in todo:              # nested (a block of attention chunks running a row-wise op): in order,
            run_block(i)            # here; handing it to the pool could wait on the thread running this
        return
    taken = iter(todo)              # next(taken) is atomic under the GIL: each block is taken once
    failed = []

    def work():
        _worker.busy = True
        try:
            for i in taken:
                if failed:
                    return
                try:
                    run_block(i)
                except BaseException as e:      # stop the others, raise it in the calling thread
                    failed.append(e)
                    return
        finally:
            _worker.busy = False

    pool = _executor()
    with _blas_at_one_thread():
        running = [pool.submit(work) for _ in range(helpers)]
        work()
        for f in running:
            f.result()
    if failed:
        raise failed[0]


def on_threads(run_one, items) -> None:
    """run_one(i) for every i in `items`, spread over the block threads as the row blocks are (each
    thread takes the next item; BLAS at one thread meanwhile). For work whose items write disjoint
    parts of preallocated arrays, so the numbers do not depend on which thread ran what (attention's
    chunks, ops/attention.py). Inside a worker, a nested call runs its items in order in that thread."""
    _on_workers(run_one, items)


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
            starts = range(0, rows, step)
            inputs, put_back = _flatten((args, kwargs))
            cut = {k: a.reshape(rows, a.shape[-1]) for k, a in enumerate(inputs)    # input k -> its (rows, K) view
                   if isinstance(a, numpy.ndarray) and a.ndim == len(lead) + 1 and a.shape[:-1] == lead}

            def call(b):                                         # the formula on block b: (its input leaves, output)
                i = starts[b]
                block = [cut[k][i:i + step] if k in cut else a for k, a in enumerate(inputs)]
                block_args, block_kwargs = put_back(block)
                return block, formula(*block_args, **block_kwargs)

            block, out = call(0)                                 # the first block shows what the outputs are
            whole = _Outputs(out, block, inputs, cut, sums, lead, rows)
            block_sums = [None] * len(starts)
            block_sums[0] = whole.store(0, block, out)

            def run_block(b):
                block, out = call(b)
                block_sums[b] = whole.store(starts[b], block, out)   # copied while the block is still in cache

            _on_workers(run_block, range(1, len(starts)))
            return whole.result(block_sums)

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


class _Outputs:
    """One call's outputs, filled block by block (see rows_in_blocks for the rules).

    Made from the first block's output: each output leaf is kept as it is (not an array, or an
    argument passed whole such as gamma), or is the whole input it was written into (`out=x`), or
    gets one array of `rows` rows, allocated once, into which every block copies its rows as soon
    as it is computed (`store`, from any thread: blocks write disjoint rows), while they are still
    in the CPU cache. The sums over rows are kept per block and added in block order (`result`), so
    they are the same numbers whatever the number of threads and whichever thread ran which block.
    """

    def __init__(self, out, block, inputs, cut, sums, lead, rows):
        self.sums, self.top = sums, out
        firsts, self.put_back = _flatten(self._rows_part(out))
        whole_inputs = [a for k, a in enumerate(inputs) if k not in cut]
        self.values, self.stitched = [], []           # values[n]: leaf n of the result; stitched: (n, array)
        made = {}                                     # id(first block's leaf) -> n: (p, p) stays one array
        for n, leaf in enumerate(firsts):
            if id(leaf) in made:
                self.values.append(self.values[made[id(leaf)]])
                continue
            made[id(leaf)] = n
            written_into = [k for k in cut if block[k] is leaf]
            if not isinstance(leaf, numpy.ndarray) or any(leaf is a for a in whole_inputs):
                self.values.append(leaf)              # not an array, or passed whole (gamma): kept
            elif written_into:                        # the formula wrote into its input block: the input is the output
                self.values.append(cut[written_into[0]].reshape(lead + leaf.shape[1:]))
            else:
                rows_array = numpy.empty((rows,) + leaf.shape[1:], dtype=leaf.dtype)
                self.stitched.append((n, rows_array))
                self.values.append(rows_array.reshape(lead + leaf.shape[1:]))

    def _rows_part(self, out):
        """The output without the top-level sums."""
        return tuple(o for j, o in enumerate(out) if j not in self.sums) if self.sums else out

    def store(self, first_row, block, out):
        """Copy block `out`'s rows into place; return its sums (or None)."""
        leaves, _ = _flatten(self._rows_part(out))
        for n, rows_array in self.stitched:
            part = leaves[n]
            rows_array[first_row:first_row + len(part)] = part
        return [out[j] for j in self.sums] if self.sums else None

    def result(self, block_sums):
        stitched = self.put_back(self.values)
        if not self.sums:
            return stitched
        totals = {}
        for n, j in enumerate(self.sums):             # block 0's sum + block 1's + ..., in block order
            totals[j] = functools.reduce(lambda a, b: a + b, [s[n] for s in block_sums])
        rest = iter(stitched)                         # put the sums back at their positions
        full = [totals[j] if j in totals else next(rest) for j in range(len(self.top))]
        return type(self.top)(*full) if hasattr(self.top, "_fields") else tuple(full)


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
    _on_workers(lambda b: fn(*[a[starts[b]:starts[b] + BLOCK_ELEMENTS] for a in flat]), range(len(starts)))


# -- matmul_rows: a 2-D matmul on row blocks, one single-threaded BLAS call per block ---------------

MATMUL_ROWS = os.environ.get("MINIBERT_MATMUL_ROWS", "0") == "1"
MATMUL_BLOCK_ROWS = 512        # rows of a per call: big enough for a full-speed GEMM, small enough to balance


def matmul_rows(a, b):
    """a @ b, a: (M, K), b: (K, N), with the rows of a cut into blocks of MATMUL_BLOCK_ROWS handed
    to the block threads, each block one single-threaded BLAS call writing into its rows of the result.

    Why: OpenBLAS's own threads split a GEMM into equal parts and wait for each other; on a busy
    machine one descheduled thread stalls the others (benchmarks/bench_threads.py: under load the
    model ran 6x faster with OPENBLAS_NUM_THREADS=1 than with OpenBLAS's 2 threads), and after the
    GEMM they spin on the core the elementwise blocks want. Here a thread that gets less CPU simply
    takes fewer blocks, and no thread spins. Row n of the result is the same dot products in the same
    order whichever rows share its call (tests/backend/test_row_blocks.py checks it is a @ b bit for bit).

    The first call sets BLAS to one thread for the rest of the process (every other matmul, the
    attention's included, then runs on one core unless it is cut into blocks too): switching BLAS's
    threads on and off around each phase leaves them spinning (bench_threads.py, "2 + BLAS 1": with
    BLAS on one thread throughout the model step was 0.75x PyTorch's time under load, every option
    with OpenBLAS's threads 6x-26x slower; not yet measured on an idle machine).

    Opt-in (MINIBERT_MATMUL_ROWS=1): on an idle machine OpenBLAS's own threads are faster (BERT-mini
    step 0.685 s against 0.768 s with this); it helps under load. It needs threadpoolctl
    (to hold BLAS at one thread: otherwise every block thread would start BLAS's own threads) and
    otherwise, like for small or non-NumPy arrays, is a @ b.
    """
    if (not MATMUL_ROWS or THREADS == 1 or not isinstance(a, numpy.ndarray) or a.ndim != 2 or b.ndim != 2
            or a.shape[0] < 2 * MATMUL_BLOCK_ROWS or not (QUIET_BLAS and _blas_handle())):
        return a @ b
    _hold_blas_at_one_thread()
    out = numpy.empty((a.shape[0], b.shape[1]), dtype=numpy.result_type(a, b))   # (M, N)
    starts = range(0, a.shape[0], MATMUL_BLOCK_ROWS)

    def one_block(i):
        s = starts[i]
        numpy.matmul(a[s:s + MATMUL_BLOCK_ROWS], b, out=out[s:s + MATMUL_BLOCK_ROWS])
    _on_workers(one_block, range(len(starts)))
    return out
