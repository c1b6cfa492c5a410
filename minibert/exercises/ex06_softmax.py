"""Exercise 06: softmax, stable forward and its backward (minibert.ops.softmax)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise
from minibert.ops.softmax import softmax_backward, softmax_forward

STATEMENT = r"""
## The forward

Softmax turns each row of scores $x \in \mathbb{R}^K$ (the last axis) into probabilities:

$$
p_i = \frac{e^{x_i}}{\sum_j e^{x_j}} = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j .
$$

The two forms are equal (the $e^{-m}$ cancels), but only the second survives large scores:
$e^{1000}$ overflows to `inf` in float64 and `inf / inf` is `nan`. Attention scores and MLM logits
do get large.

## What to derive

The Jacobian of one row is $\partial p_j / \partial x_i = p_j (\delta_{ij} - p_i)$. From it, derive
the backward (a Jacobian-vector product, without building the $K \times K$ matrix):

$$
\bar x = p \odot \left( \bar p - \textstyle\sum_j \bar p_j\, p_j \right).
$$

## Your functions

`softmax_forward(x, inplace=False)` returns `(p, cache)` over the last axis of any shape; with
`inplace=True` minibert overwrites `x` with `p` to save memory (the grader only checks the result).
`softmax_backward(dp, cache)` returns `dx`.
"""

HINTS = (
    "Forward: subtract `x.max(axis=-1, keepdims=True)` before `np.exp`, then divide by the sum over "
    "axis=-1 (keepdims=True). Keep p as the cache: the backward needs only p.",
    "Backward: the Jacobian has a diagonal part p_i and an off-diagonal part -p_i p_j. Keeping only "
    "the diagonal, dp * p * (1 - p), is not enough.",
    "`dx = p * (dp - (dp * p).sum(axis=-1, keepdims=True))`.",
)


def _softmax(x, axis=-1):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


OVERFLOW_HINT = ("exp overflowed on large logits (e^1000 is inf in float64, and inf/inf is nan): subtract "
                 "each row's max before np.exp; it cancels in the ratio, so p does not change.")


def _forward_check(t, x, inplace=False):
    expected = softmax_forward(x.copy())[0]
    got = t.unpack(t.call("softmax_forward", x.copy(), inplace) if inplace else
                   t.call("softmax_forward", x.copy()), "softmax_forward", "p, cache")[0]
    t.compare("p", got, expected, nonfinite_hint=OVERFLOW_HINT, candidates=[
        (lambda: _softmax(x, axis=0), "normalise over the last axis (axis=-1): each row of scores is one "
         "distribution."),
        (lambda: numpy.exp(x - x.max(axis=-1, keepdims=True)), "divide by the row sum: p must sum to 1 over "
         "the last axis."),
        (lambda: numpy.exp(x) / numpy.exp(x).sum(), "divide by the sum of each row (axis=-1, keepdims=True), "
         "not of the whole array."),
    ], hint="p = exp(x - max) / sum(exp(x - max)), max and sum over the last axis of each row.")


def check(t):
    with t.check("forward: x (3, 4, 6)"):
        _forward_check(t, t.rng.normal(size=(3, 4, 6)) * 3.0)
    with t.check("forward: large logits (rows around +1000 and -1000)"):
        x = t.rng.normal(size=(3, 5))
        x[0] += 1000.0
        x[1] -= 1000.0
        x[2, 2] = 800.0
        _forward_check(t, x)
    with t.check("forward with inplace=True, x (2, 7)"):
        _forward_check(t, t.rng.normal(size=(2, 7)), inplace=True)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))

    for shape, scale in (((3, 4, 6), 2.0), ((5, 3), 8.0)):
        with t.check(f"backward: dx for x {shape}" + (" (peaked rows)" if scale > 5 else "")):
            x = t.rng.normal(size=shape) * scale
            dp = t.rng.normal(size=shape)
            p = _softmax(x)
            expected = softmax_backward(dp, softmax_forward(x.copy())[1])
            _, cache, forward, own = t.forward_for_backward("softmax_forward", x.copy())
            dx = t.call("softmax_backward", dp.copy(), cache)
            row = (dp * p).sum(axis=-1, keepdims=True)
            t.gradient("dx", dx, expected, lambda: float((forward(x.copy()) * dp).sum()), x,
                       forward_failed=own and not forward_ok, candidates=[
                           (dp * p * (1 - p), "only the diagonal of the Jacobian: p_j depends on every x_i, "
                            "dp_j/dx_i = p_j (delta_ij - p_i), which adds - p * sum_j(dp_j p_j)."),
                           (p * (dp - dp.sum(axis=-1, keepdims=True)), "the sum is of dp * p, not of dp: "
                            "dx = p * (dp - sum(dp * p))."),
                           (dp - row, "multiply the bracket by p: dx = p * (dp - sum(dp * p))."),
                       ], hint="dx = p * (dp - sum over the row of dp * p).")


EXERCISE = Exercise(
    number=6, name="softmax", title="softmax: a stable forward and its backward",
    functions=(softmax_forward, softmax_backward),
    imports="import numpy as np",
    minutes=35,
    assesses="numerical stability (the max trick and why it is exact); a Jacobian with off-diagonal terms "
             "turned into a Jacobian-vector product",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/softmax.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
