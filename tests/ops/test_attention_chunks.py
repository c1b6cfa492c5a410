"""minibert/ops/attention.py: attention_forward_in_chunks (the fast path of
scaled_dot_product_attention_forward) gives the formula's outputs and cache: every (batch row, head)
gets the same softmax, and the dropout masks come from the same stream of numbers. Stated tolerance:
Q K^T runs on a contiguous copy of K^T, for which NumPy calls the BLAS where the formula's transposed
view may take NumPy's own loop, so the d-term sums of a score may be added in another order: every
number within 4 * d ulps (eps of the dtype) of the largest |value| of its array (seen: bit for bit in
float32, 1e-16 in float64 with d = 16). Odd sizes, a ragged last chunk, both chunk shapes (whole batch rows, heads of one row)."""
import numpy as np
import pytest

from minibert.backend import blocks
from minibert.backend.precision import mixed_precision
from minibert.ops import attention
from minibert.ops.attention import (attention_mask_bias, merge_heads, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)


def _inputs(B, A, T, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    qkv = rng.normal(size=(B, T, 3 * A * d)).astype(dtype)          # split_heads views, as the model's
    H = A * d
    q, k, v = (split_heads(qkv[..., i * H:(i + 1) * H], A) for i in range(3))
    mask = np.ones((B, T), dtype=np.int64)
    for b in range(B):
        mask[b, T - 1 - (b * 7) % (T // 2):] = 0                     # ragged padding per row
    return q, k, v, attention_mask_bias(mask, np.dtype(dtype))


def _both(monkeypatch, *args, **kwargs):
    """(formula's (out, cache), chunked (out, cache)), each from a fresh copy of any generator in kwargs."""
    rng = kwargs.pop("rng", None)
    results = []
    for chunked in (False, True):
        monkeypatch.setattr(attention, "CHUNKED", chunked)
        r = None if rng is None else np.random.default_rng(rng)
        results.append(scaled_dot_product_attention_forward(*args, rng=r, **kwargs))
    return results


D = {"d": 8}


def _same(a, b):
    """Equal within the stated tolerance: 4 * d * eps * max(1, max|a|)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    tol = 4 * D["d"] * np.finfo(a.dtype).eps * max(1.0, float(np.abs(a).max()))
    np.testing.assert_allclose(b, a, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,chunk", [((5, 3, 37, 8), 1 << 12),      # several whole batch rows per chunk
                                         ((3, 5, 67, 8), 1 << 13),      # heads of one row per chunk, ragged
                                         ((2, 4, 130, 16), 1 << 17)])   # the default size
@pytest.mark.parametrize("dropout", ["none", "rng", "mask"])
def test_chunks_equal_the_formula(monkeypatch, dtype, shape, chunk, dropout):
    monkeypatch.setattr(attention, "ATTENTION_CHUNK", chunk)
    q, k, v, bias = _inputs(*shape, dtype)
    B, A, T, d = shape
    D["d"] = d
    kwargs = {}
    if dropout == "rng":
        kwargs = dict(dropout_p=0.1, training=True, rng=7)
    elif dropout == "mask":
        m = (np.random.default_rng(3).random((B, A, T, T)) >= 0.2).astype(dtype) / dtype(0.8)
        kwargs = dict(dropout_p=0.2, training=True, dropout_mask=m)
    (out0, c0), (out1, c1) = _both(monkeypatch, q, k, v, bias, **kwargs)
    assert attention._worth_chunking(q, k, v, bias)
    _same(out0, out1)
    _same(merge_heads(out0), merge_heads(out1))
    assert merge_heads(out1).base is not None                         # merge_heads of the chunked output: no copy
    for name in ("q_scaled", "k", "v", "probs", "dropped"):
        _same(getattr(c0, name), getattr(c1, name))
    assert c0.scale == c1.scale
    if dropout == "none":
        assert c1.dropout is None and c1.dropped is c1.probs
    else:
        _same(c0.dropout, c1.dropout)
    dout = np.random.default_rng(1).normal(size=out0.shape).astype(dtype)
    monkeypatch.setattr(attention, "CHUNKED", False)
    grads0 = scaled_dot_product_attention_backward(dout, c0)                # the formula
    monkeypatch.setattr(attention, "CHUNKED", True)
    grads1 = scaled_dot_product_attention_backward(dout, c1)                # attention_backward_in_chunks
    D["d"] = max(d, T)                         # the backward's matmuls also sum over T (dV, dK): 4 T ulps
    for g0, g1 in zip(grads0, grads1):
        _same(g0, g1)
    base = grads1[0].base                      # written into the fused (B, T, 3, A, d) layout
    assert base.shape == (B, T, 3, A, d) and all(g.base is base for g in grads1)


def test_chunks_without_mask_and_in_mixed_precision(monkeypatch):
    monkeypatch.setattr(attention, "ATTENTION_CHUNK", 1 << 12)
    q, k, v, _ = _inputs(4, 3, 41, 8, np.float32)
    D["d"] = 8
    (out0, c0), (out1, c1) = _both(monkeypatch, q, k, v, None)
    _same(out0, out1)
    with mixed_precision():
        (out0, c0), (out1, c1) = _both(monkeypatch, q, k, v, None)
    _same(out0, out1)
    _same(c0.probs, c1.probs)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunks_do_not_depend_on_the_thread_count(monkeypatch, threads):
    """The softmax's row blocks may run on threads (backend/blocks.py); the numbers stay the formula's."""
    monkeypatch.setattr(blocks, "THREADS", threads)
    q, k, v, bias = _inputs(3, 4, 130, 16, np.float32)
    D["d"] = 16
    (out0, c0), (out1, c1) = _both(monkeypatch, q, k, v, bias, dropout_p=0.1, training=True, rng=5)
    _same(out0, out1)
    _same(c0.dropped, c1.dropped)


def test_small_or_foreign_arrays_take_the_formula():
    q, k, v, bias = _inputs(1, 2, 5, 4, np.float32)
    assert not attention._worth_chunking(q, k, v, bias)                  # one chunk: nothing to gain
    assert not attention._worth_chunking(q[0], k[0], v[0], None)         # 3-D: the formula


@pytest.mark.parametrize("threads", [2, 3])
def test_chunks_on_threads_give_the_one_thread_numbers_bit_for_bit(monkeypatch, threads):
    """The chunks themselves run on the block threads (blocks.on_threads): forward and backward equal
    one thread's, bit for bit, dropout masks included (drawn in one call before the chunks run)."""
    monkeypatch.setattr(attention, "ATTENTION_CHUNK", 1 << 13)            # many chunks, some of part of a row
    q, k, v, bias = _inputs(5, 4, 67, 16, np.float32)
    dout = np.random.default_rng(2).normal(size=q.shape).astype(np.float32)
    results = []
    for n in (1, threads):
        monkeypatch.setattr(blocks, "THREADS", n)
        monkeypatch.setattr(blocks, "_pool", None)
        out, c = attention.attention_forward_in_chunks(q, k, v, bias, dropout_p=0.1, rng=np.random.default_rng(5),
                                                       training=True)
        results.append((out, c.probs, c.dropped, c.dropout, *attention.attention_backward_in_chunks(dout, c)))
    for a, b in zip(*results):
        assert np.array_equal(a, b)
