"""Exercise 05: GELU and its derivative (minibert.ops.activations.gelu_forward / gelu_backward)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import Exercise
from minibert.ops.activations import gelu_backward, gelu_forward, gelu_tanh_forward
from minibert.ops.erf import erf

STATEMENT = r"""
## The activation

BERT's feed-forward network uses GELU, in its exact form (`hidden_act="gelu"`):

$$
\operatorname{GELU}(x) = x\, \Phi(x), \qquad \Phi(x) = \tfrac12 \left(1 + \operatorname{erf}(x / \sqrt2)\right),
$$

where $\Phi$ is the standard normal CDF: each input is kept in proportion to how likely a standard
normal variable is to be below it. (Google's current code uses a tanh approximation, `"gelu_new"`;
this exercise is the exact form.)

## What to derive

$$
\operatorname{GELU}'(x) = \Phi(x) + x\, \varphi(x), \qquad \varphi(x) = \frac{1}{\sqrt{2\pi}}\, e^{-x^2/2},
$$

by the product rule, with $\Phi' = \varphi$ (the normal density). The backward of an elementwise
function is then one multiplication: $\bar x = \bar y \odot \operatorname{GELU}'(x)$.

## Your functions

`gelu_forward(x)` returns `(y, cache)`; minibert computes the derivative $\operatorname{GELU}'(x)$
already in the forward (it needs $\operatorname{erf}$ and the Gaussian there anyway) and keeps it as
the cache, so that `gelu_backward(dy, cache)` is one multiplication. You may keep whatever your
backward needs. NumPy has no `erf`: use `minibert.ops.erf.erf` (imported in your file).
"""

HINTS = (
    "Forward: `Phi = 0.5 * (1 + erf(x / math.sqrt(2)))`, `y = x * Phi`. Return the derivative (or x) as "
    "the cache.",
    "d/dx [x Phi(x)] = Phi(x) + x Phi'(x): both terms of the product rule.",
    "Phi'(x) is the standard normal density, `np.exp(-x**2 / 2) / math.sqrt(2 * math.pi)`: do not forget "
    "its 1/sqrt(2 pi).",
)


def _parts(x):
    cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    pdf = numpy.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return cdf, pdf


def _inputs(t):
    x = t.rng.normal(size=(4, 7)) * 2.0
    x[0, :5] = (-8.0, -3.0, 0.0, 3.0, 8.0)
    x[3, :4] = (-40.0, -12.5, 12.5, 40.0)         # far tails: no NaN, no overflow
    return x


def check(t):
    with t.check("forward: x (4, 7), including 0 and large |x|"):
        x = _inputs(t)
        expected, _ = gelu_forward(x.copy())
        y = t.unpack(t.call("gelu_forward", x.copy()), "gelu_forward", "y, cache")[0]
        t.compare("y", y, expected, candidates=[
            (lambda: gelu_tanh_forward(x.copy())[0], "this is the tanh approximation (\"gelu_new\"); the "
             "exercise is the exact form x * Phi(x) with erf."),
            (lambda: x / (1.0 + numpy.exp(-1.702 * x)), "this is the sigmoid approximation x * sigmoid(1.702 x); "
             "the exercise is the exact form x * Phi(x) with erf."),
            (lambda: 0.5 * x * (1.0 + erf(x)), "Phi(x) = (1 + erf(x / sqrt 2)) / 2: divide by sqrt(2) inside erf."),
            (lambda: _parts(x)[0], "y = x * Phi(x): multiply by x."),
        ], hint="GELU(x) = x * 0.5 * (1 + erf(x / sqrt(2))).")
    forward_ok = t.passed("forward")

    with t.check("backward: dx for x (4, 7)"):
        x = _inputs(t)
        dy = t.rng.normal(size=x.shape)
        expected = gelu_backward(dy, gelu_forward(x.copy())[1])
        _, cache, forward, own = t.forward_for_backward("gelu_forward", x.copy())
        dx = t.call("gelu_backward", dy.copy(), cache)
        cdf, pdf = _parts(x)
        t.gradient("dx", dx, expected, lambda: float((forward(x.copy()) * dy).sum()), x,
                   forward_failed=own and not forward_ok, candidates=[
                       (dy * cdf, "only one term of the product rule: d/dx [x Phi(x)] = Phi(x) + x phi(x)."),
                       (dy * (cdf + x * pdf * math.sqrt(2.0 * math.pi)),
                        "phi(x) is the normal *density*: exp(-x^2 / 2) / sqrt(2 pi). The 1/sqrt(2 pi) is missing."),
                       (dy * (cdf + pdf), "the second term is x * phi(x): the factor x is missing."),
                       (dy * (cdf + x * pdf) * x, "dx = dy * GELU'(x); there is an extra factor x."),
                   ], hint="dx = dy * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).")


EXERCISE = Exercise(
    number=5, name="gelu", title="GELU and its derivative",
    functions=(gelu_forward, gelu_backward),
    imports="import math\n\nimport numpy as np\n\nfrom minibert.ops.erf import erf   # NumPy has no erf; "
            "this one is accurate to ~1e-15 in float64",
    minutes=25,
    assesses="the product rule and the normal CDF/density; the backward of an elementwise function; caching a "
             "derivative in the forward; exact vs tanh GELU",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/activations.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
