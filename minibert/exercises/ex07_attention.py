"""Exercise 07: scaled dot-product attention with a padding mask, forward and backward
(minibert.ops.attention.scaled_dot_product_attention_forward / _backward, used as they are)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import (
    CheckFailed,
    Exercise,
    Question,
    describe,
)
from minibert.ops.attention import (
    attention_mask_bias,
    scaled_dot_product_attention_backward,
    scaled_dot_product_attention_forward,
)

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

## What you derive

The backward: given $\bar O = \partial L / \partial O$, the gradients $\bar Q$, $\bar K$, $\bar V$.
The notebook's derivation guides you through it; the answer is on the solution page.

## Your functions

`scaled_dot_product_attention_forward(q, k, v, mask_bias=None, dropout_p=0.0, rng=None,
training=False, dropout_mask=None)` returns `(out, cache)` and
`scaled_dot_product_attention_backward(dout, cache)` returns `(dq, dk, dv)`. You may call minibert's
`softmax_forward` / `softmax_backward` and `dropout_forward` / `dropout_backward` (imported in your
file) or write your own.
"""

HINTS = (
    "Start from shapes: write the shape of every array of the forward next to its line (scores are one "
    "number per query and key); the backward's shapes mirror them: each gradient has the shape of the "
    "array it belongs to.",
    "Go back through the forward in reverse, one operation at a time: the product with V, dropout, the "
    "softmax (a row-wise backward with a term shared by the row), the mask (a constant), the product of "
    "Q and K, the scale. Each step has its own small derivation; docs/softmax.md, 'The Jacobian-vector "
    "product', has the softmax step.",
    "If one gradient is off by a constant factor, count how many times the scale 1/sqrt(d) appears on its "
    "path (the cache's q_scaled already carries it once). If dk has the right shape but the wrong values, "
    "ask whether key j collects a row or a column of the score gradient. docs/attention.md, 'Backward of "
    "one head, line by line'.",
)

CONTRACTS = (
    ("scaled_dot_product_attention_forward", """Scaled dot-product attention of every head at once.

    q, k, v: float arrays (B, A, T, d) (batch, heads, tokens, head size).
    mask_bias: None, or an additive bias (B, 1, 1, T): 0 for a real key, a huge negative number for a
        padded key.
    dropout_p, rng, training, dropout_mask: dropout on the attention probabilities when training (the
        grader passes a fixed dropout_mask; dropout_forward handles all four).

    Returns (out, cache):
        out: (B, A, T, d), the dtype of q.
        cache: exactly this 7-tuple, in this order (the grader also hands minibert's own forward's
            cache to your backward, so read it by position):
            (q_scaled, k, v, probs, dropped, dropout_cache, scale)
            q_scaled (B, A, T, d): q multiplied by the scale;  k, v: as given;
            probs (B, A, T, T): the softmax of the scores (before dropout);
            dropped (B, A, T, T): the probabilities after dropout (probs itself without dropout);
            dropout_cache: the cache dropout_forward returned (None without dropout);
            scale: the float the scores were multiplied by.
    """),
    ("scaled_dot_product_attention_backward", """The gradients of the attention's inputs.

    dout: (B, A, T, d), the gradient of the loss with respect to out.
    cache: the 7-tuple (q_scaled, k, v, probs, dropped, dropout_cache, scale) of the forward above.

    Returns (dq, dk, dv), each of the shape of q, k, v: (B, A, T, d).

    To derive (on paper, before any code): going back through the forward in reverse order, what is
    the gradient of the dropped probabilities, of the probabilities, of the scores? What does the mask
    contribute? How many factors of the scale does dq carry, and dk, given that the cache holds q_scaled?
    """),
)

DERIVATION = r"""
## Deriving the backward

Work with one head and one sequence first: $Q, K, V$ of shape $(T, d)$, $P$ of shape $(T, T)$,
dropout off. $\bar X$ means $\partial L / \partial X$, an array of the shape of $X$.

**1. Through $O = P V$.** Write one entry, $O_{ic} = \sum_j P_{ij} V_{jc}$.
- Which entries of $O$ does $V_{jc}$ appear in? Write $\bar V_{jc}$ as a sum over $i$ of
  $\bar O_{ic}$ times something, then recognise the sum as a matrix product. Which operand is
  transposed? Check the shapes: $(T, T)$ and $(T, d)$ must give $(T, d)$.
- Do the same for $\bar P_{ij}$: which entries of $O$ contain $P_{ij}$? Shapes: $(T, d)$ and $(d, T)$
  must give $(T, T)$.

**2. Through dropout** $P' = P \odot \text{mask}$ (the mask already holds $1/(1-p)$): what is
$\partial P'_{ij} / \partial P_{ij}$? Which $P$ belongs in step 1, the dropped one or not?

**3. Through the softmax**, row by row: $P_{j} = e^{S_{j}} / \sum_k e^{S_{k}}$ for one query's row.
Compute $\partial P_{j} / \partial S_{l}$ for $j = l$ and for $j \ne l$ (scalar case). Then
$\bar S_l = \sum_j \bar P_j \, \partial P_j / \partial S_l$: collect the terms. You should find one
term per entry and one term shared by the whole row. Vectorise it without building the $T \times T$
Jacobian.

**4. Through the mask.** $S = \text{scores} + M$ with $M$ a constant: what does the addition do to
the gradient? What is $\bar S$ at a padded key (look at $P$ there)?

**5. Through the scores** $S_{ij} = \sum_c \hat Q_{ic} K_{jc}$ with $\hat Q = s\,Q$ and
$s = 1/\sqrt d$. Which entries of $S$ contain $K_{jc}$? Is that a row or a column of $\bar S$? Write
$\bar{\hat Q}$ and $\bar K$ as matrix products, then $\bar Q$ from $\bar{\hat Q}$.

**6. Batch and heads.** Every product above happens independently for each $(b, a)$: with `@` on
(B, A, T, T) and (B, A, T, d) arrays, which axes must a transpose swap (not `.T`, which reverses all
four)?

**Check on paper**
- $\bar Q$, $\bar K$, $\bar V$ are $(B, A, T, d)$; $\bar P$ and $\bar S$ are $(B, A, T, T)$.
- Each row of $\bar S$ sums to 0 (why? a constant added to a row of $S$ changes nothing).
- $s$ appears exactly once in $\bar Q$ and once in $\bar K$; with the cache's $\hat Q$, where?
- Without dropout, a padded key receives $\bar K = 0$ and $\bar V = 0$.

When you are done, open the solution page on purpose: `docs/exercises/solutions/07_attention.md`.
"""

QUESTIONS = (
    Question(
        "Why divide the scores by $\\sqrt{d_k}$? Say what happens to the softmax and to its gradient, in "
        "numbers, if $d_k = 64$ and you do not.",
        "With independent entries of mean 0 and variance 1, $q \\cdot k$ is a sum of $d$ terms of "
        "variance 1: variance $d$, spread $\\sqrt d$ (8 at $d = 64$). Scores that wide make the softmax "
        "nearly one-hot; its Jacobian $\\operatorname{diag}(p) - p p^\\top$ is then nearly 0, so almost no "
        "gradient reaches Q and K and attention stops learning. Dividing by $\\sqrt d$ brings the variance "
        "back to 1 for any head size."),
    Question(
        "The padding mask is added to the *keys* (columns) of the scores, before the softmax. What would "
        "go wrong with the mask on the queries (rows), or multiplied in after the softmax?",
        "On the queries, real queries still attend to padded keys: padding leaks into real tokens' "
        "outputs (and padded query rows become uniform, which does not matter). After the softmax, the "
        "rows no longer sum to 1: the real keys keep only their share of a distribution computed over the "
        "padding too. Before the softmax, a padded key's exp underflows to exactly 0 and the real keys "
        "are renormalised."),
    Question(
        "Why does each row of $\\bar S$ sum to zero, and why does a padded key get no gradient (without "
        "dropout)?",
        "Adding a constant to a whole row of S leaves the softmax unchanged, so the derivative along "
        "(1, ..., 1) is 0: each row of $\\bar S$ sums to 0. A padded key has $P_{ij} = 0$ exactly; "
        "$\\bar S_{ij}$ has $P_{ij}$ as a factor, so it is 0, hence $\\bar K_j = 0$, and "
        "$\\bar V_j = \\sum_i P_{ij} \\bar O_i = 0$."),
)

SANITY = (
    ("**Sanity: the attention weights are probabilities, and padding gets none.** Each row of the "
     "cache's probs sums to 1; the padded key's column is 0.",
     "from minibert.ops.attention import attention_mask_bias\n\n"
     "rng = np.random.default_rng(0)\n"
     "q, k, v = (rng.normal(size=(1, 2, 4, 8)) for _ in range(3))\n"
     "mask_bias = attention_mask_bias(np.array([[1, 1, 1, 0]]), np.dtype(np.float64))\n"
     "out, cache = mine.scaled_dot_product_attention_forward(q, k, v, mask_bias)\n"
     "probs = cache[3]\n"
     "print(\"rows sum to 1:\", np.allclose(probs.sum(-1), 1.0), \"| padded key's largest weight:\", "
     "probs[..., 3].max())"),
    ("**Sanity: a padded key gets no gradient.** Both numbers should be 0.",
     "from minibert.ops.attention import attention_mask_bias\n\n"
     "rng = np.random.default_rng(0)\n"
     "q, k, v = (rng.normal(size=(1, 2, 4, 8)) for _ in range(3))\n"
     "mask_bias = attention_mask_bias(np.array([[1, 1, 1, 0]]), np.dtype(np.float64))\n"
     "out, cache = mine.scaled_dot_product_attention_forward(q, k, v, mask_bias)\n"
     "dq, dk, dv = mine.scaled_dot_product_attention_backward(rng.normal(size=q.shape), cache)\n"
     "print(\"padded key: largest |dk|, |dv| =\", abs(dk[..., 3, :]).max(), abs(dv[..., 3, :]).max())"),
)

B, A, T, D = 2, 3, 5, 4


def _qkv(t, scale=1.0, shape=(B, A, T, D)):
    return tuple(t.rng.normal(size=shape) * scale for _ in range(3))


def _mask_bias(batch=B, steps=T, real=3):
    mask = numpy.ones((batch, steps), dtype=numpy.int64)
    mask[-1, real:] = 0                               # the last sequence: `real` tokens, then padded keys
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
        (lambda: _variant(q, k, v, mask_bias, scale=1.0, drop=drop), "the scores are not scaled by "
         "1/sqrt(d_k) (d_k = the head size, the last axis of q): the softmax saturates as d grows."),
        (lambda: _variant(q, k, v, mask_bias, scale=1.0 / d, drop=drop), "the scale is 1/sqrt(d_k), not 1/d_k."),
        (lambda: _variant(q, k, v, mask_bias, scale=math.sqrt(d), drop=drop), "the scale multiplies by "
         "sqrt(d_k) where it should divide."),
    ]
    if mask_bias is not None:
        c += [
            (lambda: _variant(q, k, v, None, drop=drop), "the padding mask is ignored: the padded keys still "
             "get attention. The bias belongs in the scores, before the softmax."),
            (lambda: _variant(q, k, v, mask_bias, where="after softmax", drop=drop), "the padding mask is applied "
             "after the softmax: the rows then no longer sum to 1. It belongs in the scores, *before* the "
             "softmax, so the padded keys get probability 0 and the rest is renormalised."),
            (lambda: _variant(q, k, v, mask_bias, where="added after softmax", drop=drop), "the padding mask is "
             "applied after the softmax: it belongs in the scores, *before* the softmax."),
            (lambda: _variant(q, k, v, mask_bias, where="queries", drop=drop), "the padding mask is applied to "
             "the queries (rows of the scores) instead of the keys (columns): mask_bias (B, 1, 1, T) already "
             "has the shape that broadcasts over query rows and hides padded *keys*."),
        ]
    if drop is not None:
        c += [
            (lambda: _variant(q, k, v, mask_bias), "dropout is missing: with training=True the given "
             "dropout_mask must multiply the probabilities."),
            (lambda: _variant(q, k, v, mask_bias, drop=drop, drop_where="scores"), "dropout goes on the "
             "probabilities (after the softmax), not on the scores."),
        ]
    return c


CACHE_FIELDS = ("q_scaled", "k", "v", "probs", "dropped", "dropout_cache", "scale")


def _cache_check(t, cache, ref_cache):
    """The cache must have the documented format: the grader feeds minibert's own cache to the backward."""
    if not isinstance(cache, (tuple, list)) or len(cache) != len(CACHE_FIELDS):
        raise CheckFailed(f"the cache is {describe(cache)}; the contract is the 7-tuple "
                          f"({', '.join(CACHE_FIELDS)}).",
                          "the grader also runs your backward on minibert's own cache, so its format is fixed: "
                          "see the forward's docstring.")
    for name, mine, ref in zip(CACHE_FIELDS, cache, ref_cache):
        if name == "dropout_cache":
            continue
        t.compare(f"cache item {name}", mine, ref,
                  hint=f"the cache's {name} is not what the contract says it holds (the forward's docstring).")


def _forward_check(t, q, k, v, mask_bias=None, drop=None):
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    expected, ref_cache = scaled_dot_product_attention_forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    got = t.call("scaled_dot_product_attention_forward", q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    out, cache = t.unpack(got, "scaled_dot_product_attention_forward", "out, cache")
    t.compare("out", out, expected, candidates=_forward_candidates(q, k, v, mask_bias, drop),
              nonfinite_hint="an overflow in the softmax on large scores: the softmax must never take exp of "
                             "a large number (docs/softmax.md, 'Subtracting the maximum').",
              hint="compare your forward with the statement's three lines, one at a time: the scale, the mask, "
                   "the axis of the softmax (the keys).")
    _cache_check(t, cache, ref_cache)


def _dropout_mask(t, shape=(B, A, T, T)):
    keep = t.rng.random(shape) >= 0.25
    return keep / 0.75


def _backward_candidates(dout, cache, dq_ref, dk_ref, dv_ref, which):
    """(array or function, hint) pairs: what known backward mistakes compute, from minibert's cache."""
    q_scaled, k, v, probs, dropped, drop_cache, s = cache
    dprobs_raw = dout @ v.swapaxes(-1, -2)
    dprobs = dprobs_raw * drop_cache if drop_cache is not None else dprobs_raw
    ds = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
    ds_no_sum = probs * dprobs
    ds_no_drop = probs * (dprobs_raw - (dprobs_raw * probs).sum(-1, keepdims=True))
    no_row_term = ("the softmax backward misses its row term: it has a term per entry and a term shared by "
                   "the whole row (docs/softmax.md, 'The Jacobian-vector product').")
    skips_dropout = ("the gradient skips dropout on the way back: the probability gradient must pass through "
                     "the same dropout mask before the softmax backward.")
    if which == "dv":
        return [
            (lambda: probs.swapaxes(-1, -2) @ dout if drop_cache is not None else None, "dv uses the "
             "probabilities before dropout: V was multiplied by the *dropped* probabilities."),
            (lambda: dropped @ dout, "dv: the probabilities are not transposed. V[j] is used by every query i "
             "through P[i, j]: it collects a column of P, not a row."),
        ]
    if which == "dq":
        return [
            (dq_ref / s, "dq is missing the scale: off by a constant factor sqrt(d) (the scores were multiplied "
             "by 1/sqrt(d))."),
            (dq_ref * s, "dq carries the scale twice: off by a constant factor 1/sqrt(d)."),
            (lambda: (ds_no_sum @ k) * s, "dq: " + no_row_term),
            (lambda: (ds_no_drop @ k) * s if drop_cache is not None else None, "dq: " + skips_dropout),
            (lambda: (ds.swapaxes(-1, -2) @ k) * s, "dq uses the transpose of the score gradient: query i "
             "owns row i of the scores."),
        ]
    return [
        (dk_ref * s, "dk carries the scale twice: off by a constant factor 1/sqrt(d). The cache's q_scaled "
         "already includes it once."),
        (dk_ref / s, "dk is missing the scale: off by a constant factor sqrt(d)."),
        (lambda: ds @ q_scaled, "dk: right shape, wrong values: key j collects column j of the score gradient "
         "(every query that looked at it), not row j."),
        (lambda: ds_no_sum.swapaxes(-1, -2) @ q_scaled, "dk: " + no_row_term),
        (lambda: ds_no_drop.swapaxes(-1, -2) @ q_scaled if drop_cache is not None else None, "dk: " + skips_dropout),
    ]


def _copy_cache(cache):
    return tuple(c.copy() if isinstance(c, numpy.ndarray) else c for c in cache)


def _reference_cache_check(t, q, k, v, mask_bias, drop):
    """The learner's backward on minibert's own forward cache, against minibert's backward."""
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    dout = t.rng.normal(size=q.shape)
    _, cache = scaled_dot_product_attention_forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    expected = scaled_dot_product_attention_backward(dout.copy(), cache)
    got = t.call("scaled_dot_product_attention_backward", dout.copy(), type(cache)(*_copy_cache(cache)))
    dq, dk, dv = t.unpack(got, "scaled_dot_product_attention_backward", "dq, dk, dv")
    for name, mine, ref in (("dv", dv, expected[2]), ("dq", dq, expected[0]), ("dk", dk, expected[1])):
        t.compare(name, mine, ref, candidates=_backward_candidates(dout, cache, *expected, name),
                  hint=f"{name} is wrong although the cache is minibert's own: the mistake is in the backward. "
                       f"Redo the derivation's steps that lead to {name} (notebook, 'Deriving the backward').")


def _own_forward_check(t, q, k, v, mask_bias, drop, forward_ok):
    """The learner's backward on the learner's own cache, against finite differences of the learner's forward."""
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    dout = t.rng.normal(size=q.shape)
    ref_cache = scaled_dot_product_attention_forward(q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)[1]
    expected = scaled_dot_product_attention_backward(dout.copy(), ref_cache)
    _, cache, forward, own = t.forward_for_backward("scaled_dot_product_attention_forward",
                                                    q.copy(), k.copy(), v.copy(), mask_bias, **kwargs)
    got = t.call("scaled_dot_product_attention_backward", dout.copy(), cache)
    dq, dk, dv = t.unpack(got, "scaled_dot_product_attention_backward", "dq, dk, dv")

    def loss():
        return float((forward(q, k, v, mask_bias, **kwargs) * dout).sum())

    for name, mine, ref, wrt in (("dv", dv, expected[2], v), ("dq", dq, expected[0], q), ("dk", dk, expected[1], k)):
        if forward_ok or not own:
            t.gradient(name, mine, ref, loss, wrt,
                       candidates=_backward_candidates(dout, ref_cache, *expected, name),
                       hint=f"redo the derivation's steps that lead to {name} (notebook, 'Deriving the "
                            f"backward'); docs/attention.md, 'Backward of one head, line by line'.")
            continue
        t.consistent_with_own_forward(name, mine, loss, wrt)   # the forward is wrong: only consistency with it


def check(t):
    with t.check("forward: q, k, v (2, 3, 5, 4), no mask"):
        _forward_check(t, *_qkv(t))
    with t.check("forward: padding mask (the last sequence has 2 padded keys)"):
        _forward_check(t, *_qkv(t), _mask_bias())
    with t.check("forward: large scores (q and k times 30), padding mask"):
        _forward_check(t, *_qkv(t, 30.0), _mask_bias())
    with t.check("forward: training with a fixed dropout mask on the probabilities"):
        _forward_check(t, *_qkv(t), _mask_bias(), _dropout_mask(t))
    with t.check("forward: one sequence, one head, 7 tokens of head size 6 (4 real)"):
        _forward_check(t, *_qkv(t, shape=(1, 1, 7, 6)), _mask_bias(1, 7, 4))
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward on minibert's cache: dq, dk, dv with the padding mask"):
        _reference_cache_check(t, *_qkv(t), _mask_bias(), None)
    with t.check("backward on minibert's cache: padding mask and dropout"):
        _reference_cache_check(t, *_qkv(t), _mask_bias(), _dropout_mask(t))
    with t.check("backward on minibert's cache: one head, 7 tokens of size 6"):
        _reference_cache_check(t, *_qkv(t, shape=(1, 1, 7, 6)), _mask_bias(1, 7, 4), None)
    with t.check("backward on your own cache: finite differences, padding mask"):
        _own_forward_check(t, *_qkv(t), _mask_bias(), None, forward_ok)
    with t.check("backward on your own cache: finite differences, padding mask and dropout"):
        _own_forward_check(t, *_qkv(t), _mask_bias(), _dropout_mask(t), forward_ok)


EXERCISE = Exercise(
    number=7, name="attention", title="scaled dot-product attention with a padding mask: forward and backward",
    functions=(scaled_dot_product_attention_forward, scaled_dot_product_attention_backward),
    imports="import math\n\nimport numpy as np\n\n"
            "from minibert.ops.dropout import dropout_backward, dropout_forward   # you may use these\n"
            "from minibert.ops.softmax import softmax_backward, softmax_forward   # (or your own)",
    minutes=90,
    assesses="batched matrix products with their shapes; why 1/sqrt(d); masking keys (not queries) before the "
             "softmax; composing backward passes (matmul, dropout, softmax) in reverse order; the scale's "
             "place in both gradients",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/attention.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
