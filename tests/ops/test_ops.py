"""The ops (minibert/ops/): every op's backward against float64 finite differences (odd sizes, non-zero params,
padding mask), erf's accuracy, the ops' edge cases, and the row-blocked ops giving one call's numbers.
The checker itself is tested in tests/test_gradcheck.py, the ops' caches in test_caches.py."""
import numpy as np
import pytest

from minibert import gradcheck
from minibert.ops import erf

OPS = list(gradcheck.op_checks(np.random.default_rng(0)))


@pytest.mark.parametrize("check", OPS, ids=[c[0] for c in OPS])
def test_op_gradient(check):
    name, fwd, bwd, inputs, wrt = check
    result = gradcheck.check_op(name, fwd, bwd, inputs, wrt, np.random.default_rng(1), max_entries=60)
    assert result.max_rel_error < 1e-6, f"{name}: max relative error {result.max_rel_error:.2e} in {result.worst}"


def test_erf_float64_matches_math_erf():
    import math
    x = np.linspace(-8, 8, 40001)
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(erf(x) - ref)) < 5e-15
    assert np.isnan(erf(np.array([np.nan]))[0])


def test_erf_float32_accuracy():
    import math
    x = np.linspace(-8, 8, 40001).astype(np.float32)
    ref = np.array([math.erf(float(v)) for v in x])
    assert np.max(np.abs(erf(x).astype(np.float64) - ref)) < 1e-6
    assert erf(x).dtype == np.float32


def test_softmax_is_stable_on_large_logits():
    from minibert.ops import softmax_forward
    p, _ = softmax_forward(np.array([[1000.0, 1000.0, -1000.0]]))
    assert np.allclose(p, [[0.5, 0.5, 0.0]])


def test_cross_entropy_ignores_positions():
    from minibert.ops import cross_entropy_forward
    logits = np.log(np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))
    loss, _ = cross_entropy_forward(logits, np.array([0, -100, 1]))
    assert np.isclose(float(loss), -(np.log(0.5) + np.log(0.8)) / 2)   # mean over the 2 counted rows only
    with pytest.raises(ValueError, match="label 2 out of range"):
        cross_entropy_forward(logits, np.array([0, 2, 1]))


def test_embedding_backward_accumulates_repeated_ids():
    from minibert.ops import embedding_backward, embedding_forward
    w = np.zeros((5, 2))
    _, cache = embedding_forward(np.array([[3, 3, 1]]), w)
    dw = embedding_backward(np.ones((1, 3, 2)), cache)
    assert dw[3].tolist() == [2.0, 2.0] and dw[1].tolist() == [1.0, 1.0]


def test_dropout_statistics_and_determinism():
    from minibert.ops import dropout_forward
    x = np.ones((200, 500))
    y1, _ = dropout_forward(x, 0.1, np.random.default_rng(5))
    y2, _ = dropout_forward(x, 0.1, np.random.default_rng(5))
    assert np.array_equal(y1, y2)
    assert abs((y1 == 0).mean() - 0.1) < 0.005
    assert np.allclose(y1[y1 != 0], 1 / 0.9)
    assert dropout_forward(x, 0.1, training=False)[0] is x
    with pytest.raises(ValueError, match="seeded rng"):
        dropout_forward(x, 0.1)


def test_cross_entropy_with_every_label_ignored_is_zero():
    from minibert.ops import cross_entropy_backward, cross_entropy_forward
    loss, cache = cross_entropy_forward(np.ones((2, 3)), np.array([-100, -100]))
    assert float(loss) == 0.0 and not np.any(cross_entropy_backward(1.0, cache))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_row_blocks_on_threads_give_the_one_call_numbers(threads, monkeypatch):
    """Large arrays are cut into row blocks run on a thread pool (backend/blocks.py). Every op must give
    the numbers of one call on the whole array: exactly for row-wise results, to rounding for sums
    over rows (dgamma, dbeta), and the same numbers on every run."""
    from minibert.backend import blocks as parallel
    from minibert.ops.activations import gelu_forward, gelu_tanh_forward
    from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
    from minibert.ops.softmax import softmax_backward, softmax_forward
    monkeypatch.setattr(parallel, "THREADS", threads)
    monkeypatch.setattr(parallel, "_pool", None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 301, 257)).astype(np.float32)             # odd sizes: a ragged last block
    assert x.size > 2 * parallel.BLOCK_ELEMENTS
    for fwd in (gelu_forward, gelu_tanh_forward):                    # fwd.__wrapped__: the formula, one call
        for got, want in zip(fwd(x), fwd.__wrapped__(x)):
            assert np.array_equal(got, want)
    g, b = rng.normal(size=257).astype(np.float32), rng.normal(size=257).astype(np.float32)
    y, cache = layer_norm_forward(x, g, b, 1e-12)
    ry, (rxhat, rrstd, _) = layer_norm_forward.__wrapped__(x, g, b, 1e-12)
    assert np.array_equal(y, ry) and np.array_equal(cache[0], rxhat) and np.array_equal(cache[1], rrstd)
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx, dg, db = layer_norm_backward(dy, cache)
    rdx, rdg, rdb = layer_norm_backward.__wrapped__(dy, cache)
    assert np.array_equal(dx, rdx) and np.allclose(dg, rdg, rtol=1e-5, atol=1e-3) and np.allclose(db, rdb, rtol=1e-5, atol=1e-3)
    dx2, dg2, db2 = layer_norm_backward(dy, cache)
    assert np.array_equal(dg, dg2) and np.array_equal(db, db2)      # deterministic
    p, _ = softmax_forward(x)
    assert np.array_equal(p, softmax_forward.__wrapped__(x.copy())[0])
    assert np.array_equal(softmax_backward(dy, p), softmax_backward.__wrapped__(dy, p))
