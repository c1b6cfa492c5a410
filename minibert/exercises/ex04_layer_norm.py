"""Exercise 04: LayerNorm forward and backward (minibert.ops.layer_norm)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise, Question
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

The variance is the biased one ($1/H$), as in BERT and PyTorch; $\varepsilon = 10^{-12}$ in BERT.

## Your functions

`layer_norm_forward(x, gamma, beta, eps)` returns `(y, cache)` with the cache
`(xhat, rstd, gamma)`: $\hat x$ $(\dots, H)$, $r$ $(\dots, 1)$ (one per row, the last axis kept) and
$\gamma$. `layer_norm_backward(dy, cache)` returns `(dx, dgamma, dbeta)`. `x` has any number of
leading axes; $\gamma$ and $\beta$ are shared by every row.
"""

FORWARD_CONTRACT = r"""Layer normalisation over the last axis, then a learned scale and shift.

Inputs
    x            (..., H) any number of leading axes; each row (last axis) is normalised on its own
    gamma, beta  (H,)
    eps          a float added to the variance (1e-12 in BERT; the grader also uses 0.5)
Returns (y, cache)
    y      (..., H)
    cache  the tuple (xhat, rstd, gamma):
             xhat  (..., H) the normalised input
             rstd  (..., 1) one number per row: 1 / sqrt(var + eps), the last axis kept
             gamma (H,) as given
           The grader also feeds minibert's cache, in exactly this format, to your backward.
"""

BACKWARD_CONTRACT = r"""Backward of layer normalisation.

Inputs
    dy     (..., H) the upstream gradient dL/dy
    cache  (xhat, rstd, gamma) as layer_norm_forward returned it (shapes there)
Returns (dx, dgamma, dbeta)
    dx             (..., H) the shape of x
    dgamma, dbeta  (H,): gamma and beta are used by every row

To derive: dgamma and dbeta take one line each. For dx, every xhat_j of a row depends on every
x_i of that row, through mu and through the variance: derive d xhat_j / d x_i, then
dx_i = sum over j of (dL/d xhat_j) (d xhat_j / d x_i), written with row means, without an
H x H matrix. Only xhat, rstd and gamma are available: not x, not mu.
"""

DERIVATION = r"""
**1. The parameters.** $y_j = \gamma_j \hat x_j + \beta_j$ for every row. Which rows use $\gamma_j$? Write
$\bar\gamma$ and $\bar\beta$ as sums over the rows. Then write $g_j = \partial L / \partial \hat x_j$.

**2. The scalar pieces.** For one row of $H$ entries, compute
$\partial \mu / \partial x_i$, then $\partial \sigma^2 / \partial x_i$ (why does the term through $\mu$
vanish? use $\sum_j (x_j - \mu) = 0$), then $\partial r / \partial x_i$. Write the last one with
$r$ and $\hat x_i$ only.

**3. The Jacobian of the normalisation.** By the product rule on $\hat x_j = (x_j - \mu)\, r$,
$\partial \hat x_j / \partial x_i$ has three parts: the direct one ($i = j$), the one through $\mu$, the
one through $r$. Write it as one formula with $\delta_{ij}$, $H$, $r$, $\hat x_i$, $\hat x_j$.

**4. The vector-Jacobian product.** $\bar x_i = \sum_j g_j\, \partial \hat x_j / \partial x_i$. Each of your
three parts becomes one term; two of them are *the same number for every $i$ of the row*, or that
number times $\hat x_i$. Write them as row means (keep the axis: shape $(\dots, 1)$).

**5. Shapes.** $\hat x$ is $(\dots, H)$, $r$ is $(\dots, 1)$, $\gamma$ is $(H,)$: check that every product
in your $\bar x$ broadcasts, and that $\bar\gamma, \bar\beta$ come out $(H,)$ for a 3-D input.

**On paper, before coding:** adding a constant to a whole row changes no $\hat x$; scaling a row about
its mean changes none either (when $\varepsilon \to 0$). What must $\sum_i \bar x_i$ and
$\sum_i \bar x_i \hat x_i$ be? Check both on your formula.
"""

HINTS = (
    "Forward: each row is normalised over its own H entries, with the variance divided by H, and eps "
    "added to the variance before the root. Backward: start with dbeta and dgamma (which rows use "
    "beta_j and gamma_j?), then the gradient reaching xhat.",
    "dx: treating mu and rstd as constants gives only the direct path. Moving one x_i moves the row's "
    "mean and its variance, so every xhat_j of the row moves: two more terms, each a row mean.",
    "Check your dx on paper: its row sums must be 0 (a shift of the row changes nothing) and its dot "
    "product with xhat about 0 (so does a scale). A term missing breaks one of the two. docs/layer_norm.md, "
    "\"The Jacobian of the normalisation\" and \"Why the two mean terms are there\".",
)


def _ln(x, gamma, beta, eps, ddof=0, eps_outside=False, centred=True):
    """LayerNorm computed as a known mistake computes it."""
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True, ddof=ddof) if centred else (x * x).mean(axis=-1, keepdims=True)
    xhat = (x - mu) / (numpy.sqrt(var) + eps if eps_outside else numpy.sqrt(var + eps))
    return xhat * gamma + beta


def _dx_candidates(dy, xhat, rstd, gamma):
    """dx as known mistakes compute it, from the reference cache: the diagnosis of each."""
    g = dy * gamma

    def mean(a):
        return a.mean(-1, keepdims=True)

    return [
        (rstd * g, "dx has only the direct path: mu and rstd were treated as constants, but every xhat_j of "
                   "a row depends on every x_i of it, through the mean and through the variance (two terms "
                   "are missing)."),
        (rstd * (g - xhat * mean(g * xhat)),
         "dx misses the path through the mean mu: its rows should sum to 0 (shifting a row changes no "
         "xhat), yours do not."),
        (rstd * (g - mean(g)),
         "dx misses the path through the variance: the dot product of each row of dx with xhat should be "
         "about 0 (scaling a row about its mean changes no xhat), yours is not."),
        (rstd * (g - mean(g) + xhat * mean(g * xhat)),
         "the term through the variance has the wrong sign: rstd decreases when the spread of the row grows."),
        (rstd * (dy - mean(dy) - xhat * mean(dy * xhat)),
         "the gradient reaching xhat is not dy: y = gamma * xhat + beta multiplies it by gamma on the way."),
        (g - mean(g) - xhat * mean(g * xhat),
         "dx is off by one factor per row (the same within a row, different between rows): the chain rule "
         "through xhat (the centred row scaled by rstd) brings rstd into every term."),
        (rstd * (g - g.mean() - xhat * (g * xhat).mean()),
         "the means in dx run over the whole array: each row was normalised on its own, so its terms are "
         "means over its own H entries (the last axis)."),
    ]


def _param_shape_hint(name, value, H) -> str:
    shape = getattr(value, "shape", None)
    return (f"{name} has shape {shape}; it must have the shape of {name[1:]}, ({H},): {name[1:]} is used by "
            f"every row of every sequence, so its gradient sums over every axis but the last.")


def _check_backward(t, dy, cache, got, loss, x, gamma, beta):
    """Compare (dx, dgamma, dbeta) with minibert's from the same cache (and finite differences of `loss`)."""
    xhat, rstd, _ = cache
    dx_ref, dgamma_ref, dbeta_ref = layer_norm_backward(dy, cache)
    dx, dgamma, dbeta = t.unpack(got, "layer_norm_backward", "dx, dgamma, dbeta")
    H = gamma.shape[0]
    rows = dy.size // H
    swapped = (numpy.shape(dbeta) == dgamma_ref.shape
               and numpy.allclose(numpy.asarray(dbeta, dtype=float), dgamma_ref, rtol=1e-9, atol=1e-12))
    t.gradient("dx", dx, dx_ref, loss, x, candidates=_dx_candidates(dy, xhat, rstd, gamma),
               hint="write d xhat_j / d x_i with its three parts (direct, through mu, through rstd) and sum "
                    "g_j times it over j: the sums become row means.")
    t.gradient("dgamma", dgamma, dgamma_ref, loss, gamma, candidates=[
        (dbeta_ref, "dgamma and dbeta are swapped: check which of the two parameters multiplies xhat."
         if swapped else "dgamma is the plain sum of dy over the rows: in the forward gamma_j multiplies "
         "xhat_j, so that factor belongs in its gradient."),
        ((dy * xhat * gamma).reshape(-1, H).sum(0),
         "dgamma carries an extra factor gamma: the derivative of gamma_j * xhat_j with respect to gamma_j "
         "does not contain gamma_j."),
        (dgamma_ref / rows, f"dgamma is the mean over the {rows} rows (times 1/{rows}): every row's "
                            f"gradient adds in."),
    ], shape_hint=_param_shape_hint("dgamma", dgamma, H),
        hint="gamma_j multiplies xhat_j in every row: its gradient sums over the rows.")
    t.gradient("dbeta", dbeta, dbeta_ref, loss, beta, candidates=[
        (dgamma_ref, "dbeta carries the factor xhat: beta_j is added to every row, its coefficient is 1."),
        (dbeta_ref / rows, f"dbeta is the mean over the {rows} rows (times 1/{rows}): every row's gradient "
                           f"adds in."),
    ], shape_hint=_param_shape_hint("dbeta", dbeta, H), hint="beta_j is added to every row.")


def _inputs(t, shape):
    H = shape[-1]
    x = t.rng.normal(size=shape) * 1.5 + 0.7
    gamma, beta = t.rng.normal(size=H), t.rng.normal(size=H)
    dy = t.rng.normal(size=shape) + 0.5         # a non-zero mean per row, so the mean terms matter
    return x, gamma, beta, dy


def _forward_check(t, shape, eps, offset):
    x = t.rng.normal(size=shape) * 2.0 + offset
    H = shape[-1]
    gamma, beta = t.rng.normal(size=H), t.rng.normal(size=H)
    expected, (xhat_ref, rstd_ref, _) = layer_norm_forward(x.copy(), gamma, beta, eps)
    got, cache = t.unpack(t.call("layer_norm_forward", x.copy(), gamma.copy(), beta.copy(), eps),
                          "layer_norm_forward", "y, cache")
    t.compare("y", got, expected, candidates=[
        (lambda: _ln(x, gamma, beta, eps, ddof=1), "the variance is divided by H - 1 (the unbiased one); "
         "LayerNorm uses the biased variance, divided by H."),
        (lambda: _ln(x, gamma, beta, eps, eps_outside=True), "eps is added after the square root; it belongs "
         "to the variance, under the root (visible only when eps is large, as here)."),
        (lambda: _ln(x, gamma, beta, eps, centred=False), "the variance is a mean of squares of x itself; it "
         "is the mean of the squares of the *centred* row."),
        (lambda: _ln(x, numpy.ones(H), numpy.zeros(H), eps), "you normalised but did not scale and shift "
         "with gamma and beta."),
        (lambda: (x - x.mean()) / numpy.sqrt(x.var() + eps) * gamma + beta, "the mean and variance are over "
         "the whole array: each row is normalised over its own H entries (the last axis)."),
        (lambda: _ln(x.swapaxes(0, -1), 1.0, 0.0, eps).swapaxes(0, -1) * gamma + beta,
         "the mean and variance are over the first axis: each row is normalised over its own H entries (the "
         "last axis)."),
    ], hint="normalise each row over the last axis (mean, biased variance, eps under the root), then scale "
            "and shift.")
    parts = t.unpack(cache, "layer_norm_forward's cache", "xhat, rstd, gamma")
    t.compare("the cache's xhat", parts[0], xhat_ref, hint="xhat is the normalised row, before gamma and beta.")
    t.compare("the cache's rstd", parts[1], rstd_ref, candidates=[
        (1.0 / rstd_ref, "the cache holds the standard deviation; the contract's rstd is its reciprocal.")],
        shape_hint=f"rstd has one number per row with the last axis kept, {rstd_ref.shape}.",
        hint="rstd is 1 / sqrt(var + eps), one per row.")


def _backward_on_reference_cache(t, shape, eps):
    x, gamma, beta, dy = _inputs(t, shape)
    _, cache = layer_norm_forward(x.copy(), gamma, beta, eps)
    got = t.call("layer_norm_backward", dy.copy(), tuple(a.copy() for a in cache))

    def loss():
        return float((layer_norm_forward(x.copy(), gamma.copy(), beta.copy(), eps)[0] * dy).sum())

    _check_backward(t, dy, cache, got, loss, x, gamma, beta)


def _backward_on_own_cache(t, shape, eps, forward_ok):
    if not forward_ok:
        t.not_run("not run: your forward fails above (your backward was graded on minibert's cache)",
                  "layer_norm_forward", "layer_norm_backward")
        return
    x, gamma, beta, dy = _inputs(t, shape)
    _, cache, forward, _ = t.forward_for_backward("layer_norm_forward", x.copy(), gamma.copy(), beta.copy(), eps)
    got = t.call("layer_norm_backward", dy.copy(), cache)

    def loss():
        return float((forward(x.copy(), gamma.copy(), beta.copy(), eps) * dy).sum())

    _check_backward(t, dy, layer_norm_forward(x.copy(), gamma, beta, eps)[1], got, loss, x, gamma, beta)


def check(t):
    with t.check("forward: x (3, 5, 7) with row means far from 0, eps = 1e-12"):
        _forward_check(t, (3, 5, 7), 1e-12, offset=3.0)
    with t.check("forward: x (4, 9), a large eps = 0.5 (where eps goes matters)"):
        _forward_check(t, (4, 9), 0.5, offset=-1.0)
    forward_ok = t.passed("forward: x (3, 5, 7)") and t.passed("forward: x (4, 9)")
    with t.check("backward on minibert's cache: dx, dgamma, dbeta for x (3, 5, 7), eps = 1e-12"):
        _backward_on_reference_cache(t, (3, 5, 7), 1e-12)
    with t.check("backward on minibert's cache: x (6, 5), eps = 0.5"):
        _backward_on_reference_cache(t, (6, 5), 0.5)
    with t.check("backward on your own cache: x (2, 3, 8), eps = 1e-5"):
        _backward_on_own_cache(t, (2, 3, 8), 1e-5, forward_ok)


QUESTIONS = (
    Question(
        "Why does LayerNorm's $\\bar x$ have two mean terms besides the direct one? Give the meaning of each "
        "(which change of the input it accounts for), and say what a gradient check of the naive "
        "$\\bar x = r\\, g$ would show.",
        "Each term is a path by which $x_i$ reaches every $\\hat x_j$ of its row. The first is through the mean "
        "$\\mu$: it removes the component of the gradient along $(1, \\dots, 1)$, since shifting a row changes no "
        "$\\hat x$ (so the rows of $\\bar x$ sum to 0). The second is through the variance: it removes the "
        "component along $\\hat x$, since scaling a row about its mean changes no $\\hat x$ (exactly when "
        "$\\varepsilon \\to 0$). The naive $r g$ ignores both; a gradient check fails by a wide margin, with "
        "every row of the error having a non-zero sum."),
    Question(
        "Why is the variance the biased one (divided by $H$), and why does $\\varepsilon$ go under the square "
        "root? What would $\\varepsilon$ outside the root change, and when would you notice?",
        "The normalisation is a property of the row itself, not an estimate of a population variance: BERT, "
        "PyTorch and TensorFlow all divide by $H$, and matching a checkpoint requires the same definition "
        "($H/(H-1)$ changes every output by a constant factor). $\\varepsilon$ under the root keeps $r$ finite "
        "for a constant row ($r = \\varepsilon^{-1/2}$) and is what the checkpoints were trained with; outside "
        "the root, $(\\sigma + \\varepsilon)^{-1}$ differs from $(\\sigma^2 + \\varepsilon)^{-1/2}$ by a relative "
        "amount about $\\varepsilon/\\sigma$ or $\\varepsilon/(2\\sigma^2)$: invisible at $\\varepsilon = 10^{-12}$, "
        "plain at $\\varepsilon = 0.5$ (hence the grader's case) or for rows of small spread."),
    Question(
        "The cache holds $\\hat x$, $r$ and $\\gamma$, not $x$ or $\\mu$. Show that the backward needs nothing "
        "else, and say how many numbers per token the cache costs.",
        "Every term of $\\bar x$ is written with $g = \\bar y \\odot \\gamma$, $\\hat x$ and $r$; $\\bar\\gamma$ needs "
        "$\\hat x$, $\\bar\\beta$ nothing; $x - \\mu = \\hat x / r$ if ever wanted. Per token: $H$ numbers for "
        "$\\hat x$ and one for $r$ ($\\gamma$ is shared), the same as keeping $x$ but without recomputing the "
        "statistics."),
)

SANITY = (
    ("**Each row of $\\hat x$ has mean 0 and variance about 1** (eps small).",
     """
rng = np.random.default_rng(0)
x = rng.normal(size=(4, 10)) * 3 + 5
y, (xhat, rstd, gamma) = mine.layer_norm_forward(x, np.ones(10), np.zeros(10), 1e-12)
print("row means:", np.round(xhat.mean(axis=-1), 10), "| row variances:", np.round(xhat.var(axis=-1), 10))
"""),
    ("**dx sums to 0 over every row, and is orthogonal to xhat** (a shift or a scale of a row changes "
     "nothing).",
     """
rng = np.random.default_rng(1)
H = 8
y, cache = mine.layer_norm_forward(rng.normal(size=(3, H)), rng.normal(size=H), rng.normal(size=H), 1e-12)
dx, dgamma, dbeta = mine.layer_norm_backward(rng.normal(size=(3, H)) + 1.0, cache)
print("row sums of dx:", np.round(dx.sum(axis=-1), 10))
print("rows of dx . xhat:", np.round((dx * cache[0]).sum(axis=-1), 10))
"""),
)

EXERCISE = Exercise(
    number=4, name="layer_norm", title="LayerNorm: forward and backward",
    functions=(layer_norm_forward, layer_norm_backward),
    imports="import numpy as np",
    minutes=75,
    assesses="a normalisation's Jacobian: the mean and variance depend on every input, which gives the two "
             "mean terms of dx; biased variance, eps inside the root; reductions over rows for dgamma, dbeta",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/layer_norm.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=(("layer_norm_forward", FORWARD_CONTRACT), ("layer_norm_backward", BACKWARD_CONTRACT)),
    derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
