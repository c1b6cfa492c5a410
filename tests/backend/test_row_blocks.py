"""minibert/backend/blocks.py: @rows_in_blocks gives the numbers of one call of the formula on the whole array;
small arrays, and arrays that are not NumPy's (the `xp` fixture), get one call."""
import inspect
from typing import NamedTuple

import numpy as np
import pytest

from minibert.backend import blocks


class ToyCache(NamedTuple):
    rows: np.ndarray        # per row
    weight: np.ndarray      # passed whole
    flag: str               # not an array


calls = []


@blocks.rows_in_blocks(sums=(1,))
def toy(x, w, scale, cache=None, inplace=False):
    """A toy row function with every kind of output: per-row, a sum over rows, passthrough, in place."""
    calls.append(x.shape)
    y = (x * w).cumsum(axis=-1) * scale                             # (..., K) per row
    row_max = y.max(axis=-1, keepdims=True)                         # (..., 1) per row
    total = y.reshape(-1, y.shape[-1]).sum(axis=0)                  # (K,) a sum over rows
    if cache is not None:
        y += cache.rows                                             # a row array inside a tuple argument
    z = x if inplace else x.copy()
    z *= 2.0                                                        # written into the input when inplace
    return y, total, ToyCache(row_max, w, "kept"), z, z


def _inputs(shape=(5, 301, 257)):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)                  # odd sizes: a ragged last block
    w = rng.normal(size=shape[-1]).astype(np.float32)
    cache = ToyCache(rng.normal(size=shape).astype(np.float32), w, "in")
    return x, w, cache


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rows_in_blocks_gives_the_one_call_numbers(threads, monkeypatch):
    monkeypatch.setattr(blocks, "THREADS", threads)
    monkeypatch.setattr(blocks, "_pool", None)
    x, w, cache = _inputs()
    assert x.size > 2 * blocks.BLOCK_ELEMENTS
    calls.clear()
    y, total, out_cache, z, z_again = toy(x, w, 0.5, cache=cache)
    assert len(calls) > 2 and all(s[0] <= blocks.BLOCK_ELEMENTS // x.shape[-1] for s in calls)   # it ran in blocks
    want_y, want_total, want_cache, want_z, _ = toy.__wrapped__(x, w, 0.5, cache=cache)       # the formula, once
    assert np.array_equal(y, want_y) and y.shape == x.shape                                     # per row: stitched
    assert np.array_equal(z, want_z) and z is z_again                                           # one array stays one
    assert isinstance(out_cache, ToyCache) and np.array_equal(out_cache.rows, want_cache.rows)
    assert out_cache.weight is w and out_cache.flag == "kept"                                   # passthrough: kept
    np.testing.assert_allclose(total, want_total, rtol=1e-4, atol=1e-3)                         # a sum: other order
    assert np.array_equal(total, toy(x, w, 0.5, cache=cache)[1])                                # ... but a fixed one
    step = blocks.BLOCK_ELEMENTS // x.shape[-1]                  # on any number of threads: the blocks' sums
    flat_x, flat_rows = x.reshape(-1, x.shape[-1]), cache.rows.reshape(-1, x.shape[-1])     # added in block order
    parts = [toy.__wrapped__(flat_x[i:i + step], w, 0.5, cache=ToyCache(flat_rows[i:i + step], w, "in"))[1]
             for i in range(0, flat_x.shape[0], step)]
    expected = parts[0]
    for p in parts[1:]:
        expected = expected + p
    assert np.array_equal(total, expected)


def test_one_two_and_three_threads_give_the_same_numbers(monkeypatch):
    """Bit for bit, sums over rows included: which thread ran which block changes nothing."""
    x, w, cache = _inputs()
    got = []
    for threads in (1, 2, 3, 2):
        monkeypatch.setattr(blocks, "THREADS", threads)
        y, total, out_cache, z, _ = toy(x, w, 0.5, cache=cache)
        got.append((y, total, out_cache.rows, z))
    for other in got[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(got[0], other))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_an_error_in_a_block_is_raised_in_the_caller(threads, monkeypatch):
    monkeypatch.setattr(blocks, "THREADS", threads)

    @blocks.rows_in_blocks()
    def fails_on_the_last_block(x):
        if x.shape[0] < blocks.BLOCK_ELEMENTS // x.shape[-1]:       # the ragged last block
            raise ValueError("block")
        return x + 1.0

    x, _, _ = _inputs()
    with pytest.raises(ValueError, match="block"):
        fails_on_the_last_block(x)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_for_blocks_gives_the_one_call_numbers(threads, monkeypatch):
    monkeypatch.setattr(blocks, "THREADS", threads)
    rng = np.random.default_rng(1)
    a, g = rng.normal(size=(3, 70001)).astype(np.float32), rng.normal(size=(3, 70001)).astype(np.float32)
    want = a.copy()
    want *= 0.9
    want += np.sqrt(np.abs(g))

    def update(p, q):
        p *= 0.9
        p += np.sqrt(np.abs(q))
    blocks.for_blocks(update, (a, g))
    assert np.array_equal(a, want)


def test_an_output_written_into_its_input_is_the_input():
    x, w, _ = _inputs()
    before = x.copy()
    _, _, _, z, _ = toy(x, w, 1.0, inplace=True)
    assert np.shares_memory(z, x) and z.shape == x.shape and np.array_equal(x, before * 2.0)


def test_small_and_non_numpy_arrays_get_one_call(xp):
    x, w, cache = _inputs(shape=(3, 7, 11))
    calls.clear()
    toy(x, w, 0.5, cache=cache)
    assert calls == [x.shape]                                # small: one call
    x, w, cache = _inputs()                                  # large, made by the backend's xp
    calls.clear()
    toy(xp.asarray(x), xp.asarray(w), 0.5, cache=ToyCache(xp.asarray(cache.rows), xp.asarray(w), "in"))
    if xp is np:
        assert len(calls) > 1                                # large NumPy arrays: in blocks
    else:
        assert calls == [x.shape]                            # large, but not NumPy (the stand-in): one call


def test_keyword_arguments_and_the_formulas_signature_and_docstring():
    x, w, cache = _inputs()
    a = toy(x, w, 0.5, cache=cache)
    b = toy(x=x, w=w, scale=0.5, cache=cache)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert inspect.signature(toy) == inspect.signature(toy.__wrapped__) and toy.__doc__ == toy.__wrapped__.__doc__


def test_blas_runs_on_one_thread_while_the_blocks_run_and_is_given_back(monkeypatch):
    """OpenBLAS's idle threads would spin on the core a block thread wants (backend/blocks.py).

    The BLAS looked at is the one minibert limits (NumPy's, found when blocks first asked): once
    another test has imported torch, a fresh threadpoolctl selection also lists torch's own BLAS."""
    pytest.importorskip("threadpoolctl")
    blas = blocks._blas_handle()
    if not blas:
        pytest.skip("no BLAS threadpoolctl knows")
    monkeypatch.setattr(blocks, "THREADS", 2)
    monkeypatch.setattr(blocks, "QUIET_BLAS", True)
    seen = []

    def numpy_blas_threads():
        return {lib["num_threads"] for lib in blas.info()}

    @blocks.rows_in_blocks()
    def records_blas_threads(x):
        seen.append(numpy_blas_threads())
        return x + 1.0

    with blas.limit(limits=2):
        records_blas_threads(_inputs()[0])
        assert numpy_blas_threads() == {2}                                      # given back
    assert seen[0] == {2} and all(s == {1} for s in seen[1:])   # the first block runs alone, before the threads start


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matmul_rows_is_the_one_call_matmul_bit_for_bit(threads, monkeypatch):
    """Row n of a @ b is the same dot products in the same order whichever rows share its BLAS call:
    matmul_rows equals one single-threaded BLAS call on the whole arrays, bit for bit. (OpenBLAS on
    2 threads may differ from itself on 1 thread: for dW, K = N = 4133, seen up to 2 ulp of the
    largest entry; so the reference is BLAS at one thread, and against the default a @ b the test
    allows a few ulp of the result's scale.)"""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(blocks, "THREADS", threads)
    monkeypatch.setattr(blocks, "MATMUL_ROWS", True)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4096 + 37, 256)).astype(np.float32)            # N rows, a ragged last block
    w = rng.normal(size=(1024, 256)).astype(np.float32)                 # (out, in), as a Linear stores it
    dy = rng.normal(size=(4096 + 37, 1024)).astype(np.float32)
    monkeypatch.setattr(blocks, "_held", False)
    for a, b in ((x, w.T), (dy, w), (dy.T, x)):                          # linear's forward, dx and dW
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            one_call = a @ b
        default = a @ b
        with threadpoolctl.threadpool_limits(None, user_api="blas"):     # BLAS's threads given back after
            got = blocks.matmul_rows(a, b)
        assert np.array_equal(got, default if threads == 1 else one_call)  # 1 thread: plain a @ b
        scale = np.abs(one_call).max()
        assert np.abs(got - default).max() <= 8 * np.spacing(scale)       # vs BLAS on its own threads
