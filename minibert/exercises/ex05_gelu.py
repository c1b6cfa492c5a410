"""Exercise 05: GELU and its derivative (minibert.ops.activations.gelu_forward / gelu_backward)."""
from __future__ import annotations

import math

import numpy

from minibert.exercises.base import Exercise, Question
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

## Your functions

`gelu_forward(x)` returns `(y, cache)`. The cache is the local derivative
$\operatorname{GELU}'(x)$, elementwise, the shape of $x$: the forward computes $\operatorname{erf}$ and
the Gaussian anyway, so the derivative costs almost nothing there, and the cache is one array.
Deriving $\operatorname{GELU}'$ is the heart of the exercise. `gelu_backward(dy, cache)` returns
$\bar x$. NumPy has no `erf`: use `minibert.ops.erf.erf` (imported in your file).
"""

FORWARD_CONTRACT = r"""Exact GELU (hidden_act="gelu"), elementwise: y = x * Phi(x), Phi the standard normal CDF.

Inputs
    x  any shape (float64 in the grader), from about -40 to 40: no NaN, no overflow allowed
Returns (y, cache)
    y      the shape of x
    cache  the local derivative d GELU(x) / dx at every entry, the shape of x.
           The grader checks it, and also feeds minibert's cache (the same derivative) to your
           backward, so keep exactly this format.

To derive: Phi in terms of erf (the imported erf), then d/dx [x Phi(x)]. What is the derivative
of a CDF? Write the derivative with exp and constants only; check its limits at -inf, 0, +inf.
"""

BACKWARD_CONTRACT = r"""Backward of an elementwise activation whose forward cached its local derivative.

Inputs
    dy     the upstream gradient dL/dy, any shape
    cache  d GELU(x) / dx, the shape of dy, as gelu_forward returned it
Returns dx, the shape of dy: dL/dx

To think through: y_i depends on x_i alone. What is the Jacobian's shape, and which entries
of it are non-zero?
"""

DERIVATION = r"""
**1. The CDF.** Show that $\Phi(x) = \tfrac12\bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr)$ from
$\operatorname{erf}(z) = \frac{2}{\sqrt\pi}\int_0^z e^{-t^2}\,dt$ (substitute $t = u/\sqrt2$). What are
$\Phi(-\infty)$, $\Phi(0)$, $\Phi(\infty)$?

**2. Its derivative.** Differentiate $\Phi$ by the chain rule (the derivative of erf follows from its
definition). You should find a function you know from statistics: which one? Keep every constant.

**3. The product rule.** $\operatorname{GELU}(x) = x\,\Phi(x)$: write $\operatorname{GELU}'(x)$ with
$\Phi$ and your result of step 2. How many terms?

**4. Check it.** Limits: what must $\operatorname{GELU}'$ tend to at $-\infty$ and $+\infty$ (compare
with ReLU), and what is $\operatorname{GELU}'(0)$? Is GELU monotone (the sign of
$\operatorname{GELU}'$ for $x$ around $-1.5$)? Evaluate your formula at $x = 1$ and compare with a
central difference $(\operatorname{GELU}(1 + h) - \operatorname{GELU}(1 - h)) / 2h$ by hand or in a cell.

**5. The backward.** $y_i$ depends on $x_i$ only: what does that make the Jacobian, and the
vector-Jacobian product? Shapes: every array is the shape of $x$.

**On paper, before coding:** far in the tails, $e^{-x^2/2}$ underflows to 0 for $|x| \gtrsim 38$: does
your forward or derivative then produce `0 * inf` or `inf / inf` anywhere?
"""

HINTS = (
    "Phi is the CDF of the standard normal: written with erf, its argument is scaled (look at step 1 of "
    "the derivation). The forward multiplies x by it. The cache is the derivative, not x.",
    "The derivative of x * Phi(x) has two terms (the product rule), and the derivative of a CDF is its "
    "density: keep the density's normalising constant.",
    "The backward of an elementwise function has a diagonal Jacobian: each dx_i needs dy_i and the local "
    "derivative at x_i only. docs/activations.md, \"GELU, exact form\" and its \"Derivative\".",
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


def _derivative_candidates(x):
    cdf, pdf = _parts(x)
    tanh_slope = gelu_tanh_forward(x.copy())[1]
    return [
        (cdf, "the cache holds Phi(x) only: one term of the product rule is missing (x Phi(x) has two "
              "factors that depend on x)."),
        (cdf + x * pdf * math.sqrt(2.0 * math.pi), "the second term is too large by the constant sqrt(2 pi) "
         "= 2.5066: the density of the standard normal has a normalising constant."),
        (cdf + pdf, "the second term lacks a factor that varies with x: right at x = 1, wrong elsewhere. The "
                    "product rule gives (derivative of the first factor) times the second, plus the first "
                    "times (derivative of the second)."),
        (cdf - x * pdf, "the second term of the derivative has the wrong sign."),
        (0.5 * (1.0 + erf(x)) + x * pdf, "Phi inside the derivative is not the standard normal CDF: its erf "
         "argument is not scaled the way the forward's is."),
        (tanh_slope, "this is the derivative of the tanh approximation; the exercise is the exact GELU."),
        (x, "the cache holds x; the contract's cache is the local derivative GELU'(x)."),
        (pdf, "the cache holds the density only: the product rule has a second term, and the density enters "
              "multiplied by x."),
    ]


def _inputs_and_dy(t):
    x = _inputs(t)
    return x, t.rng.normal(size=x.shape)


def _backward_candidates(dy, cache):
    cdf, pdf = _parts(cache)
    return [
        (cache, "dx is the local derivative alone: the upstream gradient dy is missing (chain rule)."),
        (dy + cache, "dx adds the upstream gradient and the local derivative; the chain rule multiplies them."),
        (dy * (cdf + cache * pdf), "your backward treats the cache as x and differentiates again: the cache "
                                   "is the derivative already."),
    ]


def check(t):
    with t.check("forward: x (4, 7), including 0 and large |x|"):
        x = _inputs(t)
        expected, _ = gelu_forward(x.copy())
        y = t.unpack(t.call("gelu_forward", x.copy()), "gelu_forward", "y, cache")[0]
        t.compare("y", y, expected, candidates=[
            (lambda: gelu_tanh_forward(x.copy())[0], "this is the tanh approximation (\"gelu_new\"); the "
             "exercise is the exact form, with erf."),
            (lambda: x / (1.0 + numpy.exp(-1.702 * x)), "this is the sigmoid approximation; the exercise is the "
             "exact form, with erf."),
            (lambda: 0.5 * x * (1.0 + erf(x)), "erf's argument is not scaled: Phi(x) is not erf of x itself "
             "(derivation, step 1)."),
            (lambda: x * (1.0 + erf(x / math.sqrt(2.0))), "y is twice too large for x > 0: Phi goes from 0 to "
             "1, check its constant factor."),
            (lambda: _parts(x)[0], "y is Phi(x): the factor x is missing."),
        ], hint="GELU(x) = x Phi(x), Phi the standard normal CDF written with erf.")
    forward_ok = t.passed("forward")

    with t.check("the derivative GELU'(x) in the cache, x (4, 7)"):
        x = _inputs(t)
        expected = gelu_forward(x.copy())[1]
        cache = t.unpack(t.call("gelu_forward", x.copy()), "gelu_forward", "y, cache")[1]
        t.gradient("the cache (GELU'(x))", cache, expected, lambda: float(gelu_forward(x.copy())[0].sum()), x,
                   candidates=_derivative_candidates(x),
                   hint="derive d/dx [x Phi(x)] with the product rule; the derivative of a CDF is its density.")
    cache_ok = t.passed("the derivative")

    with t.check("backward on minibert's cache: dx for x (4, 7)"):
        x, dy = _inputs_and_dy(t)
        _, cache = gelu_forward(x.copy())
        dx = t.call("gelu_backward", dy.copy(), cache.copy())
        t.gradient("dx", dx, gelu_backward(dy, cache), lambda: float((gelu_forward(x.copy())[0] * dy).sum()), x,
                   candidates=_backward_candidates(dy, cache),
                   hint="y_i depends on x_i alone: dx_i needs dy_i and the local derivative at x_i.")

    with t.check("backward on your own cache: dx for x (4, 7)"):
        if not (forward_ok and cache_ok):
            t.not_run("not run: your forward or its cache fails above (your backward was graded on minibert's cache)",
                      "gelu_forward", "gelu_backward")
        else:
            x, dy = _inputs_and_dy(t)
            _, cache, forward, _ = t.forward_for_backward("gelu_forward", x.copy())
            dx = t.call("gelu_backward", dy.copy(), cache)
            t.gradient("dx", dx, gelu_backward(dy, gelu_forward(x.copy())[1]),
                       lambda: float((forward(x.copy()) * dy).sum()), x, candidates=_backward_candidates(dy, cache))


QUESTIONS = (
    Question(
        "Derive $\\operatorname{GELU}'(x)$ and give its limits at $\\pm\\infty$ and its value at 0. Is GELU "
        "monotone? What does a negative derivative mean for a unit's gradient?",
        "$\\operatorname{GELU}'(x) = \\Phi(x) + x\\,\\varphi(x)$, $\\varphi(x) = e^{-x^2/2}/\\sqrt{2\\pi}$ (the "
        "derivative of a CDF is its density). It tends to 0 at $-\\infty$ and 1 at $+\\infty$ (like ReLU's "
        "slopes) and equals $1/2$ at 0. It is not monotone: GELU has a minimum of about $-0.170$ at "
        "$x \\approx -0.752$, and $\\operatorname{GELU}' < 0$ below it (lowest about $-0.129$ at $x = -\\sqrt2$). "
        "There the gradient flows back with its sign flipped: increasing a very negative input *decreases* "
        "the output, unlike ReLU, whose negative inputs pass no gradient at all."),
    Question(
        "minibert caches $\\operatorname{GELU}'(x)$ rather than $x$. Compare the two choices: memory, "
        "recomputation, and what each makes the backward responsible for.",
        "Both cost one array the shape of $x$ (the FFN's $(B, T, 4H)$, the largest activation of a layer). "
        "Caching the derivative moves all the work into the forward, where $\\operatorname{erf}$ and the "
        "Gaussian are computed anyway, and makes the backward one multiplication; caching $x$ means "
        "recomputing erf and the exponential in the backward (more time, same memory). Caching $x$, $\\Phi$ "
        "and $\\varphi$ separately would triple the memory."),
)

SANITY = (
    ("**Your derivative against a central difference of your own forward**, at a few points (the habit "
     "behind every gradient check).",
     """
x = np.array([-3.0, -1.414, -0.5, 0.0, 1.0, 4.0])
h = 1e-6
numeric = (mine.gelu_forward(x + h)[0] - mine.gelu_forward(x - h)[0]) / (2 * h)
print("cache:  ", np.round(mine.gelu_forward(x)[1], 6))
print("numeric:", np.round(numeric, 6))
"""),
)

EXERCISE = Exercise(
    number=5, name="gelu", title="GELU and its derivative",
    functions=(gelu_forward, gelu_backward),
    imports="import math\n\nimport numpy as np\n\nfrom minibert.ops.erf import erf   # NumPy has no erf; "
            "this one is accurate to ~1e-15 in float64",
    minutes=35,
    assesses="the product rule and the normal CDF/density; the backward of an elementwise function; caching a "
             "derivative in the forward; exact vs tanh GELU",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/activations.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=(("gelu_forward", FORWARD_CONTRACT), ("gelu_backward", BACKWARD_CONTRACT)),
    derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
