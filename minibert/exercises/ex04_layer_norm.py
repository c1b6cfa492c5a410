"""Exercise 04: LayerNorm forward and backward (minibert.ops.layer_norm)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward

STATEMENT = r"""
## The forward

LayerNorm normalises each row $x \in \mathbb{R}^H$ (each token vector) on its own, then scales and
shifts it with learned $\gamma, \beta \in \mathbb{R}^H$:

$$
\mu = \frac1H \sum_j x_j, \quad \sigma^2 = \frac1H \sum_j (x_j - \mu)^2, \quad
r = \frac{1}{\sqrt{\sigma^2 + \varepsilon}}, \quad \hat x_j = (x_j - \mu)\, r, \quad
y_j = \gamma_j \hat x_j + \beta_j .
$$

The variance is the biased one ($1/H$), as in BERT and PyTorch; $\varepsilon = 10^{-12}$ in BERT. The
forward returns `(y, cache)`; the cache keeps what the backward needs (minibert keeps $\hat x$, $r$
and $\gamma$).

## What to derive

$\bar\beta = \sum_{\text{rows}} \bar y$ and $\bar\gamma = \sum_{\text{rows}} \bar y \odot \hat x$ are
one line each. The work is $\bar x$: every $\hat x_j$ depends on *every* $x_i$ through $\mu$ and $r$.
With $g = \bar y \odot \gamma$ (the gradient of $\hat x$), derive

$$
\bar x = r \left( g - \operatorname{mean}(g) - \hat x \odot \operatorname{mean}(g \odot \hat x) \right),
$$

the means taken over the row ($H$ entries). Steps: $\partial \mu / \partial x_i = 1/H$;
$\partial r / \partial x_i = -r^3 (x_i - \mu) / H$; then the product rule on $(x_j - \mu)\, r$.

Sanity checks on your result: $\sum_i \bar x_i = 0$ (adding a constant to a row changes nothing) and
$\sum_i \bar x_i \hat x_i = 0$ (neither does scaling it).

## Your functions

`layer_norm_forward(x, gamma, beta, eps)` and `layer_norm_backward(dy, cache)`; `x` has any number of
leading axes, `dgamma` and `dbeta` sum over all of them.
"""

HINTS = (
    "Forward: `mu = x.mean(axis=-1, keepdims=True)`; keepdims keeps a (..., 1) axis that broadcasts "
    "against (..., H). Use the biased variance (`np.var` default, ddof=0) and put eps inside the square root.",
    "Backward: first `dbeta` and `dgamma` (sum over every axis but the last), then `g = dy * gamma`. "
    "`dx = g * rstd` alone forgets that the mean and the variance move when x moves.",
    "The two extra terms are `- mean(g)` and `- xhat * mean(g * xhat)`, both means over the last axis "
    "with keepdims=True; multiply the whole bracket by rstd.",
)


def _ln(x, gamma, beta, eps, ddof=0, eps_outside=False, centred=True):
    """LayerNorm computed as a known mistake computes it."""
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True, ddof=ddof) if centred else (x * x).mean(axis=-1, keepdims=True)
    xhat = (x - mu) / (numpy.sqrt(var) + eps if eps_outside else numpy.sqrt(var + eps))
    return xhat * gamma + beta


def _dx_variants(dy, x, gamma, eps):
    """dx without one or both of the mean terms, and without gamma."""
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / numpy.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma

    def full(g):
        return rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))

    return [
        (rstd * g, "dx is missing the mean terms: every xhat_j depends on every x_i through mu and rstd, "
                   "so dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), not just rstd * g."),
        (rstd * (g - xhat * (g * xhat).mean(-1, keepdims=True)),
         "dx is missing the mean term that comes from mu: subtract mean(g) (over the row) inside the bracket."),
        (rstd * (g - g.mean(-1, keepdims=True)),
         "dx is missing the term that comes from the variance: subtract xhat * mean(g * xhat) inside the bracket."),
        (full(dy), "the gradient of xhat is dy * gamma, not dy: multiply by gamma before the rest."),
    ]


def _forward_check(t, shape, eps, offset):
    x = t.rng.normal(size=shape) * 2.0 + offset
    H = shape[-1]
    gamma, beta = t.rng.normal(size=H), t.rng.normal(size=H)
    expected, _ = layer_norm_forward(x.copy(), gamma, beta, eps)
    got = t.unpack(t.call("layer_norm_forward", x.copy(), gamma.copy(), beta.copy(), eps),
                   "layer_norm_forward", "y, cache")[0]
    t.compare("y", got, expected, candidates=[
        (lambda: _ln(x, gamma, beta, eps, ddof=1), "use the biased variance, the mean of (x - mu)^2 over H "
         "(np.var's default ddof=0), not the unbiased one (divided by H - 1)."),
        (lambda: _ln(x, gamma, beta, eps, eps_outside=True), "eps goes inside the square root: "
         "1 / sqrt(var + eps), not 1 / (sqrt(var) + eps)."),
        (lambda: _ln(x, gamma, beta, eps, centred=False), "the variance is the mean of the *centred* squares, "
         "(x - mu)^2, not of x^2."),
        (lambda: _ln(x, numpy.ones(H), numpy.zeros(H), eps), "you normalised but did not scale and shift: "
         "y = gamma * xhat + beta."),
        (lambda: (x - x.mean()) / numpy.sqrt(x.var() + eps) * gamma + beta, "normalise each row over its own "
         "H entries (axis=-1, keepdims=True), not over the whole array."),
    ], hint="normalise each row over the last axis: mean, biased variance, then gamma * xhat + beta.")


def _backward_check(t, shape, eps, forward_ok):
    H = shape[-1]
    x = t.rng.normal(size=shape) * 1.5 + 0.7
    gamma, beta = t.rng.normal(size=H), t.rng.normal(size=H)
    dy = t.rng.normal(size=shape) + 0.5         # a non-zero mean per row, so the mean terms matter
    _, ref_cache = layer_norm_forward(x.copy(), gamma, beta, eps)
    dx_ref, dgamma_ref, dbeta_ref = layer_norm_backward(dy, ref_cache)
    _, cache, forward, own = t.forward_for_backward("layer_norm_forward", x.copy(), gamma.copy(), beta.copy(), eps)
    got = t.call("layer_norm_backward", dy.copy(), cache)
    dx, dgamma, dbeta = t.unpack(got, "layer_norm_backward", "dx, dgamma, dbeta")

    def loss():
        return float((forward(x.copy(), gamma.copy(), beta.copy(), eps) * dy).sum())

    failed = own and not forward_ok
    t.gradient("dx", dx, dx_ref, loss, x, candidates=_dx_variants(dy, x, gamma, eps), forward_failed=failed,
               hint="derive dx through xhat = (x - mu) * rstd, remembering that mu and rstd depend on every x_i.")
    t.gradient("dgamma", dgamma, dgamma_ref, loss, gamma, forward_failed=failed,
               candidates=[(dbeta_ref, "dgamma and dbeta are swapped: dgamma = sum of dy * xhat, dbeta = sum of dy.")],
               shape_hint="dgamma has gamma's shape (H,): sum dy * xhat over every axis but the last.",
               hint="y = gamma * xhat + beta, so dgamma = the sum over all rows of dy * xhat.")
    t.gradient("dbeta", dbeta, dbeta_ref, loss, beta, forward_failed=failed,
               candidates=[(dgamma_ref, "dgamma and dbeta are swapped: dgamma = sum of dy * xhat, dbeta = sum of dy.")],
               shape_hint="dbeta has beta's shape (H,): sum dy over every axis but the last.",
               hint="beta is added to every row, so dbeta = the sum of dy over all rows.")


def check(t):
    with t.check("forward: x (3, 5, 7) with row means far from 0, eps = 1e-12"):
        _forward_check(t, (3, 5, 7), 1e-12, offset=3.0)
    with t.check("forward: x (4, 9), a large eps = 0.5 (where eps goes matters)"):
        _forward_check(t, (4, 9), 0.5, offset=-1.0)
    forward_ok = t.passed("forward: x (3, 5, 7)") and t.passed("forward: x (4, 9)")
    with t.check("backward: dx, dgamma, dbeta for x (3, 5, 7), eps = 1e-12"):
        _backward_check(t, (3, 5, 7), 1e-12, forward_ok)
    with t.check("backward: x (6, 5), eps = 0.5"):
        _backward_check(t, (6, 5), 0.5, forward_ok)


EXERCISE = Exercise(
    number=4, name="layer_norm", title="LayerNorm: forward and backward",
    functions=(layer_norm_forward, layer_norm_backward),
    imports="import numpy as np",
    minutes=60,
    assesses="a normalisation's Jacobian: the mean and variance depend on every input, which gives the two "
             "mean terms of dx; biased variance, eps inside the root; reductions over rows for dgamma, dbeta",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/layer_norm.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
