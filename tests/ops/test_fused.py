"""minibert/ops/fused.py: every fused function gives the numbers of the readable ops it replaces, bit for bit
(the same floating-point operations in the same order), in blocks (large arrays) and in one call (small ones),
with 1, 2 and 3 threads; and the op table drops a fused field when one of its ops is replaced."""
import numpy as np
import pytest

from minibert.backend import blocks
from minibert.backend.grad_mode import grad_enabled, no_grad
from minibert.model.blocks import add_norm_backward, add_norm_forward, ffn_backward, ffn_forward
from minibert.model.ops_table import FUSED_OPS, REFERENCE_OPS
from minibert.ops.activations import gelu_backward, gelu_forward
from minibert.ops.dropout import dropout_backward, dropout_forward, dropout_mask
from minibert.ops.fused import (bias_gelu_backward, bias_gelu_forward, residual_layer_norm_backward,
                                residual_layer_norm_forward)
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward

SHAPES = [(3, 5, 37), (4, 129, 1031)]         # one call; blocks with a ragged last block (odd sizes)
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"threads{t}")
def threads(request, monkeypatch):
    monkeypatch.setattr(blocks, "THREADS", request.param)
    monkeypatch.setattr(blocks, "_pool", None)
    return request.param


def same(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_is_bias_add_then_gelu_bit_for_bit(shape, dtype, threads):
    rng = np.random.default_rng(1)
    z = (rng.normal(size=shape) * 3).astype(dtype)
    b = rng.normal(size=shape[-1]).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    u = z.copy()
    u += b                                                   # as linear_forward adds its bias
    want_y, want_d = gelu_forward(u)
    want_du = gelu_backward(dy, want_d)
    want_db = want_du.reshape(-1, shape[-1]).sum(axis=0)     # as linear_backward's db
    zz, dd = z.copy(), dy.copy()
    y, d = bias_gelu_forward(zz, b)
    du, db = bias_gelu_backward(dd, d)
    assert same(y, want_y) and same(d, want_d) and same(du, want_du) and same(db, want_db)
    assert y is zz or np.shares_memory(y, zz)                # written over the matmul's output
    assert np.shares_memory(du, dd)                          # and over the incoming gradient


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_residual_layer_norm_is_dropout_add_layer_norm_bit_for_bit(shape, dtype, p, threads):
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(dtype)
    sub = rng.normal(size=shape).astype(dtype)
    gamma = rng.normal(size=shape[-1]).astype(dtype)
    beta = rng.normal(size=shape[-1]).astype(dtype)
    dy = rng.normal(size=shape).astype(dtype)
    mask = dropout_mask(shape, p, np.random.default_rng(3), np, np.dtype(dtype)) if p else None
    d, c_drop = dropout_forward(sub, p, training=True, mask=mask)
    want_y, c_ln = layer_norm_forward(d + x, gamma, beta, 1e-12)
    want_ds, want_dg, want_db = layer_norm_backward(dy, c_ln)
    want_dsub = dropout_backward(want_ds, c_drop)
    y, c = residual_layer_norm_forward(x, sub, gamma, beta, 1e-12, mask)
    dx, dsub, dg, db = residual_layer_norm_backward(dy, c)
    assert same(y, want_y) and same(c.layer_norm.xhat, c_ln.xhat) and same(c.layer_norm.rstd, c_ln.rstd)
    assert same(dx, want_ds) and same(dsub, want_dsub) and same(dg, want_dg) and same(db, want_db)
    assert not np.shares_memory(dx, dsub)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_under_no_grad_the_fused_forwards_leave_out_the_backward_only_work_same_outputs(shape, dtype, p, threads):
    """model.inference(): GELU's derivative and LayerNorm's x-hat are not made; y is bit for bit the same."""
    rng = np.random.default_rng(4)
    z, x, sub = (rng.normal(size=shape).astype(dtype) for _ in range(3))
    b, gamma, beta = (rng.normal(size=shape[-1]).astype(dtype) for _ in range(3))
    mask = dropout_mask(shape, p, np.random.default_rng(3), np, np.dtype(dtype)) if p else None
    want_gelu, _ = bias_gelu_forward(z.copy(), b)
    want_ln, _ = residual_layer_norm_forward(x, sub, gamma, beta, 1e-12, mask)
    with no_grad():
        y, d = bias_gelu_forward(z.copy(), b)
        y_ln, c = residual_layer_norm_forward(x, sub, gamma, beta, 1e-12, mask)
    assert same(y, want_gelu) and d is None
    assert same(y_ln, want_ln) and c.layer_norm.xhat is None
    assert grad_enabled()                                    # given back on exit


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_blocks_run_the_fused_path_with_the_readable_numbers(p, threads):
    """add_norm and ffn with REFERENCE_OPS (fused) and with the fused fields dropped (readable)."""
    rng = np.random.default_rng(4)
    B, T, H, I = 3, 67, 96, 389
    x, a = rng.normal(size=(B, T, H)).astype(np.float32), rng.normal(size=(B, T, H)).astype(np.float32)
    g, be = rng.normal(size=H).astype(np.float32), rng.normal(size=H).astype(np.float32)
    w1, b1 = rng.normal(size=(I, H)).astype(np.float32) / 9, rng.normal(size=I).astype(np.float32)
    w2, b2 = rng.normal(size=(H, I)).astype(np.float32) / 19, rng.normal(size=H).astype(np.float32)
    dout = rng.normal(size=(B, T, H)).astype(np.float32)
    results = []
    for ops in (REFERENCE_OPS, REFERENCE_OPS.without_fused()):
        h, c1 = add_norm_forward(x, a, g, be, 1e-12, p, np.random.default_rng(5), True, ops=ops)
        f, c2 = ffn_forward(h, w1, b1, w2, b2, "gelu", ops=ops)
        grads = ffn_backward(dout, c2) + add_norm_backward(dout, c1)
        results.append((h, f) + grads)
    for want, got in zip(*results):
        assert same(want, got)


def test_replacing_an_op_drops_the_fused_fields_over_it():
    assert all(getattr(REFERENCE_OPS, name) is not None for name in FUSED_OPS)
    ops = REFERENCE_OPS.replace(gelu_forward=gelu_forward)                 # any replacement, even the same function
    assert ops.bias_gelu_forward is None and ops.bias_gelu_backward is None
    assert ops.residual_layer_norm_forward is REFERENCE_OPS.residual_layer_norm_forward
    ops = REFERENCE_OPS.replace(dropout_backward=dropout_backward, residual_layer_norm_backward=residual_layer_norm_backward)
    assert ops.residual_layer_norm_forward is None and ops.residual_layer_norm_backward is residual_layer_norm_backward
    assert REFERENCE_OPS.replace(linear_forward=linear_forward).bias_gelu_forward is None
    assert REFERENCE_OPS.replace(linear_backward=linear_backward).bias_gelu_backward is None
    assert all(getattr(REFERENCE_OPS.without_fused(), name) is None for name in FUSED_OPS)


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (5, 4, 128, 128), (3, 2, 131, 131)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_masked_softmax_dropout_is_mask_add_softmax_dropout_bit_for_bit(shape, dtype, p, threads):
    from minibert.ops.attention import attention_mask_bias
    from minibert.ops.fused import masked_softmax_dropout_forward, softmax_dropout_backward
    from minibert.ops.softmax import softmax_backward, softmax_forward
    B, A, T, _ = shape
    rng = np.random.default_rng(8)
    scores = (rng.normal(size=shape) * 4).astype(dtype)
    dp = rng.normal(size=shape).astype(dtype)
    am = np.ones((B, T), dtype=int)
    am[0, T // 2:] = 0
    bias = attention_mask_bias(am, np.dtype(dtype))
    mask = dropout_mask(shape, p, np.random.default_rng(3), np, np.dtype(dtype)) if p else None
    s = scores.copy()
    s += bias                                                   # ops/attention.py's readable lines
    want_p, _ = softmax_forward(s, inplace=True)
    want_d, c_drop = dropout_forward(want_p, p, training=True, mask=mask)
    want_ds = softmax_backward(dropout_backward(dp, c_drop), want_p)
    s2, dp2 = scores.copy(), dp.copy()
    probs, dropped = masked_softmax_dropout_forward(s2, bias, mask)
    ds = softmax_dropout_backward(dp2, probs, mask)
    assert same(probs, want_p) and same(dropped, want_d) and same(ds, want_ds)
    assert np.shares_memory(probs, s2) and np.shares_memory(ds, dp2) and (dropped is probs) == (mask is None)
