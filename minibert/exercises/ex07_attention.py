"""Exercise 07: scaled dot-product attention with a padding mask, forward and backward
(minibert.ops.attention.scaled_dot_product_attention_forward / _backward, used as they are)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import Exercise
from minibert.ops.attention import (attention_mask_bias, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward)

STATEMENT = r"""
## The forward

For one head, with queries $Q$, keys $K$ and values $V$ of shape $(T, d)$ (in the code: $(B, A, T, d)$,
batch and heads in front):

$$
S = \frac{Q K^\top}{\sqrt d} + M, \qquad P = \operatorname{softmax}(S) \ \text{(over keys, the last axis)}, \qquad
O = P\, V .
$$

- **The scale.** If the $d$ entries of a query and a key are independent with mean 0 and variance
  1, $q \cdot k$ has variance $d$. Without $1/\sqrt d$ the scores grow with $d$, the softmax
  saturates to one-hot and its gradient vanishes.
- **The padding mask** $M$ is additive and of shape $(B, 1, 1, T)$: 0 for a real token and a huge
  negative number (the dtype's minimum) for a padded *key*, so that no query attends to padding.
  It broadcasts over heads and over *queries*: padded query rows are computed as usual (their
  outputs are ignored later). It goes in *before* the softmax.
- **Dropout** (training only) is applied to $P$, before the product with $V$.

## What to derive

Going back, with $\bar O$ given:

$$
\bar V = P^\top \bar O, \qquad \bar P = \bar O V^\top, \qquad
\bar S_{ij} = P_{ij} \Big(\bar P_{ij} - \sum_k \bar P_{ik} P_{ik}\Big), \qquad
\bar Q = \frac{\bar S K}{\sqrt d}, \qquad \bar K = \frac{\bar S^\top Q}{\sqrt d},
$$

the softmax backward row by row (query $i$ over keys $j$).

The mask is a constant: no gradient flows into it. With dropout, $P$ in $\bar V$ is the dropped
$P$, and $\bar P$ goes back through the dropout mask before the softmax backward.

## Your functions

`scaled_dot_product_attention_forward(q, k, v, mask_bias=None, dropout_p=0.0, rng=None,
training=False, dropout_mask=None)` returns `(out, cache)` and
`scaled_dot_product_attention_backward(dout, cache)` returns `(dq, dk, dv)`. You may call minibert's
`softmax_forward` / `softmax_backward` and `dropout_forward` / `dropout_backward` (imported in your
file) or write your own.
"""

HINTS = (
    "Shapes first: `q @ k.swapaxes(-1, -2)` is (B, A, T, d) @ (B, A, d, T) -> (B, A, T, T), "
    "one score per (query, key). Divide by `math.sqrt(d)`, d = q.shape[-1].",
    "Add mask_bias to the scores *before* the softmax, as it is: its shape (B, 1, 1, T) already "
    "broadcasts over heads and queries. Softmax over the last axis (the keys). Dropout: "
    "`dropout_forward(probs, dropout_p, rng, training, dropout_mask)`.",
    "Backward: dV = P'^T dO, dP' = dO V^T, back through dropout and the softmax to dS, then "
    "dQ = dS K / sqrt(d) and dK = dS^T Q / sqrt(d). Keep what you need (Q, K, V, P, the dropped P, the "
    "dropout cache) in your cache.",
)

B, A, T, D = 2, 3, 5, 4


def _qkv(t, scale=1.0):
    return tuple(t.rng.normal(size=(B, A, T, D)) * scale for _ in range(3))


def _mask_bias():
    mask = numpy.ones((B, T), dtype=numpy.int64)
    mask[1, 3:] = 0                                   # sequence 1: 3 tokens, 2 padded keys
    return attention_mask_bias(mask, numpy.dtype(numpy.float64))


def _softmax(x):
    e = numpy.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _variant(q, k, v, mask_bias, scale=None, where="keys", drop=None, drop_where="probs"):
    """Attention computed as a known mistake computes it."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ k.swapaxes(-1, -2)) * scale
    if drop is not None and drop_where == "scores":
        s = s * drop
    if mask_bias is not None and where == "keys":
        s = s + mask_bias
    elif mask_bias is not None and where == "queries":
        s = s + mask_bias.swapaxes(-1, -2)
    p = _softmax(s)
    if mask_bias is not None and where == "after softmax":
        p = p * (mask_bias == 0)
    elif mask_bias is not None and where == "added after softmax":
        p = p + mask_bias
    if drop is not None and drop_where == "probs":
        p = p * drop
    return p @ v


def _forward_candidates(q, k, v, mask_bias, drop=None):
    d = q.shape[-1]
    c = [
        (lambda: _variant(q, k, v, mask_bias, scale=1.0, drop=drop), "the scores are not scaled: divide "
         "Q K^T by sqrt(d_k) (d_k = q.shape[-1]), or the softmax saturates as d grows."),
        (lambda: _variant(q, k, v, mask_bias, scale=1.0 / d, drop=drop), "the scale is 1/sqrt(d_k), not 1/d_k."),
        (lambda: _variant(q, k, v, mask_bias, scale=math.sqrt(d), drop=drop), "divide by sqrt(d_k); "
         "you multiplied."),
    ]
    if mask_bias is not None:
        c += [
            (lambda: _variant(q, k, v, None, drop=drop), "the padding mask is ignored: add mask_bias to the "
             "scores before the softmax."),
            (lambda: _variant(q, k, v, mask_bias, where="after softmax", drop=drop), "the padding mask is applied "
             "after the softmax: the rows then no longer sum to 1. Add mask_bias to the scores *before* the "
             "softmax, so the padded keys get probability 0 and the rest is renormalised."),
            (lambda: _variant(q, k, v, mask_bias, where="added after softmax", drop=drop), "the padding mask is "
             "applied after the softmax: add mask_bias to the scores *before* the softmax."),
            (lambda: _variant(q, k, v, mask_bias, where="queries", drop=drop), "the padding mask is applied to "
             "the queries (rows of the scores) instead of the keys (columns): add mask_bias (B, 1, 1, T) as it is, "
             "so it broadcasts over query rows and hides padded *keys*."),
        ]
    if drop is not None:
        c += [
            (lambda: _variant(q, k, v, mask_bias), "dropout is missing: with training=True apply the given "
             "dropout_mask to the probabilities (dropout_forward(probs, dropout_p, rng, training, dropout_mask))."),
            (lambda: _variant(q, k, v, mask_bias, drop=drop, drop_where="scores"), "dropout goes on the "
             "probabilities (after the softmax), not on the scores."),
        ]
    return c


def _forward_check(t, q, k, v, mask_bias=None, drop=None):
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    expected = scaled_dot_product_attention_forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)[0]
    got = t.call("scaled_dot_product_attention_forward", q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    out = t.unpack(got, "scaled_dot_product_attention_forward", "out, cache")[0]
    t.compare("out", out, expected, candidates=_forward_candidates(q, k, v, mask_bias, drop),
              nonfinite_hint="an overflow in the softmax on large scores: subtract each row's max before exp "
                             "(or use softmax_forward).",
              hint="out = softmax(Q K^T / sqrt(d) + mask_bias) V, softmax over the last axis (keys).")


def _dropout_mask(t):
    keep = t.rng.random((B, A, T, T)) >= 0.25
    return keep / 0.75


def _backward_check(t, q, k, v, mask_bias, drop, forward_ok):
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    dout = t.rng.normal(size=q.shape)
    ref_cache = scaled_dot_product_attention_forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)[1]
    dq_ref, dk_ref, dv_ref = scaled_dot_product_attention_backward(dout, ref_cache)
    _, cache, forward, own = t.forward_for_backward("scaled_dot_product_attention_forward",
                                                    q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    got = t.call("scaled_dot_product_attention_backward", dout.copy(), cache)
    dq, dk, dv = t.unpack(got, "scaled_dot_product_attention_backward", "dq, dk, dv")

    def loss():
        return float((forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs) * dout).sum())

    probs = ref_cache.probs
    dropped = probs if drop is None else probs * drop
    s = math.sqrt(q.shape[-1])
    failed = own and not forward_ok
    t.gradient("dv", dv, dv_ref, loss, v, forward_failed=failed, candidates=[
        (lambda: probs.swapaxes(-1, -2) @ dout if drop is not None else None, "dV = P'^T dO with P' the "
         "probabilities *after* dropout (the ones that multiplied V)."),
        (lambda: dropped @ dout, "transpose P: dV = P^T dO, (B, A, T, T)^T @ (B, A, T, d)."),
    ], hint="O = P V, so dV = P^T dO (P after dropout).")
    t.gradient("dq", dq, dq_ref, loss, q, forward_failed=failed, candidates=[
        (dq_ref * s, "dq is missing the 1/sqrt(d) scale: S = Q K^T / sqrt(d), so dQ = dS K / sqrt(d)."),
        (dq_ref * s * s, "dq is scaled twice the wrong way: dQ = dS K / sqrt(d)."),
    ], hint="dQ = dS K / sqrt(d), where dS comes back through the softmax (and dropout).")
    t.gradient("dk", dk, dk_ref, loss, k, forward_failed=failed, candidates=[
        (dk_ref * s, "dk is missing the 1/sqrt(d) scale: dK = dS^T Q / sqrt(d)."),
    ], hint="dK = dS^T Q / sqrt(d): S[i, j] = q_i . k_j / sqrt(d), so key j collects column j of dS.")


def check(t):
    with t.check("forward: q, k, v (2, 3, 5, 4), no mask"):
        _forward_check(t, *_qkv(t))
    with t.check("forward: padding mask (sequence 1 has 2 padded keys)"):
        _forward_check(t, *_qkv(t), _mask_bias())
    with t.check("forward: large scores (q and k times 30), padding mask"):
        _forward_check(t, *_qkv(t, 30.0), _mask_bias())
    with t.check("forward: training with a fixed dropout mask on the probabilities"):
        _forward_check(t, *_qkv(t), _mask_bias(), _dropout_mask(t))
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: dq, dk, dv with the padding mask"):
        _backward_check(t, *_qkv(t), _mask_bias(), None, forward_ok)
    with t.check("backward: padding mask and dropout"):
        _backward_check(t, *_qkv(t), _mask_bias(), _dropout_mask(t), forward_ok)


EXERCISE = Exercise(
    number=7, name="attention", title="scaled dot-product attention with a padding mask: forward and backward",
    functions=(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward),
    imports="import math\n\nimport numpy as np\n\n"
            "from minibert.ops.dropout import dropout_backward, dropout_forward   # you may use these\n"
            "from minibert.ops.softmax import softmax_backward, softmax_forward   # (or your own)",
    minutes=75,
    assesses="batched matrix products with their shapes; why 1/sqrt(d); masking keys (not queries) before the "
             "softmax; composing backward passes (matmul, softmax, dropout) in reverse order",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/attention.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
