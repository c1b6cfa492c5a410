"""Every op's cache: a NamedTuple with the fields of the tuple it replaces, in the same order (learners'
solutions unpack it positionally), or one array. No backward returns two outputs that share memory."""
import numpy as np
import pytest

from helpers import is_named_cache, shared_memory_pairs
from minibert.ops import (attention_mask_bias, cross_entropy_backward, cross_entropy_forward, dropout_backward,
                          dropout_forward, embedding_backward, embedding_forward, gelu_backward, gelu_forward,
                          gelu_tanh_backward, gelu_tanh_forward, layer_norm_backward, layer_norm_forward,
                          linear_backward, linear_forward, mse_backward, mse_forward,
                          scaled_dot_product_attention_backward, scaled_dot_product_attention_forward,
                          softmax_backward, softmax_forward, tanh_backward, tanh_forward)

B, A, T, d, H, V = 3, 2, 5, 4, 8, 11


def _cases():
    """(name, forward() -> (out, cache), backward(dout, cache) -> tuple of outputs, the cache's fields or None)."""
    rng = np.random.default_rng(0)

    def n(*shape):
        return rng.normal(size=shape)

    x, w, b = n(B, T, H), n(6, H), n(6)
    yield "linear", lambda: linear_forward(x, w, b), linear_backward, ("x", "weight", "has_bias")
    yield "linear, no bias", lambda: linear_forward(x, w), linear_backward, ("x", "weight", "has_bias")
    ids = rng.integers(0, V, size=(B, T))
    table = n(V, H)
    yield ("embedding", lambda: embedding_forward(ids, table), lambda dd, c: (embedding_backward(dd, c),),
           ("ids", "weight_shape"))
    g, beta = n(H), n(H)
    yield "layer_norm", lambda: layer_norm_forward(x, g, beta, 1e-12), layer_norm_backward, ("xhat", "rstd", "gamma")
    big = rng.normal(size=(5, 301, 257)).astype(np.float32)           # large: the backend's row blocks
    g32, b32 = g.astype(np.float32)[:1].repeat(257), np.zeros(257, np.float32)
    yield ("layer_norm, in row blocks", lambda: layer_norm_forward(big, g32, b32, 1e-12), layer_norm_backward,
           ("xhat", "rstd", "gamma"))
    q, k, v = n(B, A, T, d), n(B, A, T, d), n(B, A, T, d)
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 3:] = 0
    bias = attention_mask_bias(mask, np.dtype(np.float64))
    fields = ("q_scaled", "k", "v", "probs", "dropped", "dropout", "scale")
    yield ("attention, no dropout", lambda: scaled_dot_product_attention_forward(q, k, v, bias),
           scaled_dot_product_attention_backward, fields)
    yield ("attention, dropout", lambda: scaled_dot_product_attention_forward(
        q, k, v, bias, 0.3, rng=np.random.default_rng(1), training=True), scaled_dot_product_attention_backward, fields)
    labels = rng.integers(0, V, size=B * T)
    labels[[0, 3]] = -100
    logits = n(B * T, V)
    yield ("cross-entropy", lambda: cross_entropy_forward(logits.copy(), labels),
           lambda dd, c: (cross_entropy_backward(dd, c),), ("probs", "safe_labels", "valid", "n"))
    for name, fwd, bwd in (("gelu", gelu_forward, gelu_backward), ("gelu_new", gelu_tanh_forward, gelu_tanh_backward),
                           ("tanh", tanh_forward, tanh_backward), ("softmax", softmax_forward, softmax_backward)):
        yield name, lambda fwd=fwd: fwd(x.copy()), lambda dd, c, bwd=bwd: (bwd(dd, c),), None
    yield ("dropout", lambda: dropout_forward(x, 0.3, np.random.default_rng(2)), lambda dd, c: (dropout_backward(dd, c),),
           None)
    yield ("dropout, off", lambda: dropout_forward(x, 0.3, training=False), lambda dd, c: (dropout_backward(dd, c),),
           None)
    pred, target = n(B, 2), n(B, 2)
    yield "mse", lambda: mse_forward(pred, target), lambda dd, c: (mse_backward(dd, c),), None


CASES = list(_cases())


def _upstream(out):
    return np.float64(0.7) if np.ndim(out) == 0 else np.random.default_rng(3).normal(size=out.shape).astype(out.dtype)


@pytest.mark.parametrize("name, forward, backward, fields", CASES, ids=[c[0] for c in CASES])
def test_op_cache_is_named_and_unpacks_as_before(name, forward, backward, fields):
    out, cache = forward()
    if fields is None:                                   # a cache of one value is that value
        assert cache is None or isinstance(cache, np.ndarray), type(cache)
        return
    assert is_named_cache(cache) and type(cache)._fields == fields, f"{name}: {type(cache)}"
    assert len(tuple(cache)) == len(fields)             # unpacks positionally, as learners' solutions do
    dout = _upstream(out)
    by_name = backward(dout, cache)
    _, fresh = forward()                                 # the backward works with a plain tuple too (the
    plain = backward(dout, tuple(fresh))                 # exercises' graders build some), with the same numbers
    for a, b in zip(by_name, plain):
        assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize("name, forward, backward, fields", CASES, ids=[c[0] for c in CASES])
def test_op_backward_outputs_share_no_memory(name, forward, backward, fields):
    out, cache = forward()
    grads = backward(_upstream(out), cache)
    assert not shared_memory_pairs(grads), f"{name}: outputs {shared_memory_pairs(grads)} are one buffer"
