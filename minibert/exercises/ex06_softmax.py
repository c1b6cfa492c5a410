"""Exercise 06: softmax, stable forward and its backward (minibert.ops.softmax)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.ops.softmax import softmax_backward, softmax_forward

STATEMENT = r"""
## The forward

Softmax turns each row of scores $x \in \mathbb{R}^K$ (the last axis) into probabilities:

$$
p_i = \frac{e^{x_i}}{\sum_j e^{x_j}} .
$$

In BERT it runs on the attention scores $(B, A, T, T)$, over the keys, and inside the MLM loss over
the vocabulary ($K = 30522$). Both can hold large scores: $e^{1000}$ is `inf` in float64, and
`inf / inf` is `nan`. Your forward must give the right $p$ for any finite scores.

## Your functions

`softmax_forward(x, inplace=False)` returns `(p, cache)` over the last axis of any shape; the cache
is $p$ itself. With `inplace=True` the caller gives up $x$ to save memory (attention does this on
its $(B, A, T, T)$ scores): overwrite $x$ with $p$. With `inplace=False`, $x$ must be left as it was.
`softmax_backward(dp, cache)` returns $\bar x = \partial L / \partial x$ from $\bar p$ and the cache.
"""

FORWARD_CONTRACT = r"""Softmax over the last axis, computed so that no score overflows.

Inputs
    x        (..., K) scores, any number of leading axes (float64 in the grader)
    inplace  False: x must be left unchanged.
             True: overwrite x with p (the caller gives x up to save a full-size temporary)
             and return that same array as p.
Returns (p, cache)
    p      (..., K): every row (last axis) a probability distribution
    cache  p itself. The grader also feeds minibert's cache (p) to your backward, so keep
           exactly this format.

To think through: e^1000 is inf in float64. Which number can you subtract from all the scores
of one row without changing that row's p, and which choice keeps every exponent <= 0?
"""

BACKWARD_CONTRACT = r"""Backward of softmax over the last axis.

Inputs
    dp     (..., K) the upstream gradient dL/dp
    cache  p, (..., K), as softmax_forward returned it
Returns dx, (..., K): dL/dx

To derive: the Jacobian of one row, d p_j / d x_i, in the two cases i == j and i != j; then
dx_i = sum over j of dp_j * (d p_j / d x_i), written without building the K x K matrix
(K = 30522 for the MLM logits).
"""

DERIVATION = r"""
**1. Stability first.** Show that subtracting the same number $c$ from every score of a row leaves
every $p_i$ unchanged. Which $c$ makes every exponent $\le 0$? Then what is the smallest the
denominator can be, and why can it never be 0?

**2. The scalar-like case, $K = 2$.** With scores $(a, b)$, $p_1 = e^a / (e^a + e^b)$. Compute
$\partial p_1 / \partial a$ and $\partial p_1 / \partial b$ and write both with $p_1, p_2$ only.
(Hint to yourself: $p_1 = \sigma(a - b)$.)

**3. The Jacobian of one row.** For general $K$, compute $\partial p_j / \partial x_i$ for $i = j$ and
for $i \ne j$. The quotient rule works; differentiating $\log p_j = x_j - \log \sum_k e^{x_k}$ first is
shorter. Write both cases as one formula with $\delta_{ij}$. Is the matrix symmetric?

**4. The Jacobian-vector product.** $\bar x_i = \sum_j \bar p_j\, \partial p_j / \partial x_i$. Split the
sum into its $\delta_{ij}$ part and the rest. One of the two parts is a number that is the *same for
every $i$ of the row*: which one? Write $\bar x$ without any $K \times K$ array.

**5. Shapes.** The per-row number has shape $(\dots, 1)$ if you keep the axis: check that it broadcasts
against $(\dots, K)$.

**On paper, before coding:** what must $\sum_i \bar x_i$ be for every row, and why (think of step 1)?
What is $\bar x_i$ where $p_i = 0$ (a masked key)? Check your formula against both.
"""

HINTS = (
    "Forward: large scores overflow exp. A number subtracted from a whole row cancels in the ratio: pick "
    "it so that no exponent is positive, row by row. Backward: write d p_j / d x_i for i == j and for "
    "i != j before writing any code.",
    "Backward: a result that keeps only the diagonal of the Jacobian is right when K = 1 and wrong as soon "
    "as a row has several entries: every p_j depends on every x_i of its row through the denominator.",
    "The off-diagonal part contributes one number per row (the same for every i), times p_i. docs/softmax.md, "
    "\"The Jacobian\" and \"The Jacobian-vector product\"; \"Subtracting the maximum\" for the forward.",
)


def _softmax(x, axis=-1):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


OVERFLOW_HINT = ("exp overflowed on large scores (e^1000 is inf in float64, and inf/inf is nan). A number "
                 "subtracted from all the scores of a row cancels in the ratio, so p does not change: choose "
                 "it so that no exponent is positive. docs/softmax.md, \"Subtracting the maximum\".")


def _forward_candidates(x):
    return [
        (lambda: numpy.exp(x - x.max()) / numpy.exp(x - x.max()).sum(axis=-1, keepdims=True),
         "one number was subtracted from the whole array, not one per row: a row far below it underflows to "
         "all zeros and 0/0 is nan. Each row needs its own."),
        (lambda: _softmax(x, axis=0), "normalise over the last axis (axis=-1): each row of scores is one "
         "distribution, not each column."),
        (lambda: numpy.exp(x - x.max(axis=-1, keepdims=True)), "the rows do not sum to 1: the denominator "
         "is missing."),
        (lambda: numpy.exp(x - x.max(axis=-1, keepdims=True)) / numpy.exp(x - x.max(axis=-1, keepdims=True)).sum(),
         "the rows do not sum to 1: you divided by one sum over the whole array instead of one sum per row "
         "(last axis)."),
        (lambda: numpy.exp(x) / numpy.exp(x).sum(), "the rows do not sum to 1: you divided by one sum over "
         "the whole array instead of one sum per row (last axis)."),
    ]


def _forward_check(t, x, inplace=False):
    expected = softmax_forward(x.copy())[0]
    given = x.copy()
    result = t.call("softmax_forward", given, inplace) if inplace else t.call("softmax_forward", given)
    got, cache = t.unpack(result, "softmax_forward", "p, cache")
    t.compare("p", got, expected, nonfinite_hint=OVERFLOW_HINT, candidates=_forward_candidates(x),
              hint="each row must be exp of its scores divided by the sum of those exps, over the last axis.")
    if inplace:
        if not numpy.allclose(given, expected, rtol=1e-12, atol=1e-15):
            raise CheckFailed("with inplace=True the array x passed in must hold p afterwards; yours still "
                              "holds other values (inplace is ignored, or an assignment such as `p = p - m` "
                              "made a new array).",
                              "in-place operators (-=, /=, out=) write into the array they are given; plain "
                              "assignments make a new one. The attention forward relies on x being reused.")
        if not (isinstance(got, numpy.ndarray) and numpy.shares_memory(got, given)):
            raise CheckFailed("with inplace=True, x holds p but the returned p is another array.",
                              "return the array you were given (now holding p), not a copy.")
    elif not numpy.array_equal(given, x):
        raise CheckFailed("with inplace=False (the default) the caller's x was changed: the scores must be "
                          "left as they were.", "work on a copy unless inplace is True.")
    t.compare("the cache", cache, expected, candidates=[
        (x, "the cache holds the scores x; the contract's cache is p (the backward needs only p).")],
        hint="the cache must be p itself, the same numbers as the p you return.")


def _backward_candidates(dp, p):
    row = (dp * p).sum(axis=-1, keepdims=True)
    s = _softmax(p)
    return [
        (dp * p * (1 - p), "right on the diagonal of the Jacobian, wrong off it: p_j depends on every x_i of "
                           "its row (through the denominator), which adds one term per row to every entry."),
        (p * (dp - dp.sum(axis=-1, keepdims=True)), "the per-row number weighs dp by nothing: each dp_j "
         "enters through d p_j / d x_i, which carries a factor p_j."),
        (dp - row, "the result is off by a factor p_i in every entry: d p_j / d x_i carries p_j on the "
                   "diagonal and p_i off it."),
        (lambda: p * (dp - (dp * p).sum(axis=0, keepdims=True)) if p.ndim > 1 else None,
         "the per-row number is summed over the wrong axis (the first): the sum runs over the row, the last "
         "axis."),
        (p * (dp - (dp * p).sum()), "the per-row number is summed over the whole array: there is one such "
                                    "number for each row, over its last axis."),
        (s * (dp - (dp * s).sum(axis=-1, keepdims=True)), "your backward applies softmax to the cache, as if "
         "it held the scores x: the cache is p already."),
    ]


def _backward_on_reference_cache(t, shape, scale):
    x = t.rng.normal(size=shape) * scale
    dp = t.rng.normal(size=shape)
    p, cache = softmax_forward(x.copy())
    expected = softmax_backward(dp, cache)
    dx = t.call("softmax_backward", dp.copy(), cache.copy())
    t.gradient("dx", dx, expected, lambda: float((softmax_forward(x.copy())[0] * dp).sum()), x,
               candidates=_backward_candidates(dp, p),
               hint="derive d p_j / d x_i for i == j and i != j, then sum dp_j times it over j.")


def _backward_on_own_forward(t, shape, scale, forward_ok):
    if not forward_ok:
        t.not_run("not run: your forward fails above (your backward was graded on minibert's cache)",
                  "softmax_forward", "softmax_backward")
        return
    x = t.rng.normal(size=shape) * scale
    dp = t.rng.normal(size=shape)
    expected = softmax_backward(dp, softmax_forward(x.copy())[1])
    _, cache, forward, _ = t.forward_for_backward("softmax_forward", x.copy())
    dx = t.call("softmax_backward", dp.copy(), cache)
    t.gradient("dx", dx, expected, lambda: float((forward(x.copy()) * dp).sum()), x,
               candidates=_backward_candidates(dp, _softmax(x)),
               hint="derive d p_j / d x_i for i == j and i != j, then sum dp_j times it over j.")


def check(t):
    with t.check("forward: x (3, 4, 6), x left unchanged"):
        _forward_check(t, t.rng.normal(size=(3, 4, 6)) * 3.0)
    with t.check("forward: large logits (rows around +1000 and -1000)"):
        x = t.rng.normal(size=(3, 5))
        x[0] += 1000.0
        x[1] -= 1000.0
        x[2, 2] = 800.0
        _forward_check(t, x)
    with t.check("forward with inplace=True, x (2, 7): x overwritten with p"):
        _forward_check(t, t.rng.normal(size=(2, 7)), inplace=True)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))

    with t.check("backward on minibert's cache (p), x (3, 4, 6)"):
        _backward_on_reference_cache(t, (3, 4, 6), 2.0)
    with t.check("backward on minibert's cache, x (5, 3) (peaked rows)"):
        _backward_on_reference_cache(t, (5, 3), 8.0)
    with t.check("backward on your own cache, x (4, 5)"):
        _backward_on_own_forward(t, (4, 5), 2.0, forward_ok)


QUESTIONS = (
    Question(
        "What breaks without the max trick, on which inputs, and why is subtracting the row's maximum exact "
        "rather than an approximation? Would subtracting the mean of the row work as well?",
        "$e^{x}$ overflows to `inf` for $x > 709$ in float64 (about 88 in float32), and `inf / inf` is `nan`; "
        "for very negative rows every $e^{x_j}$ underflows to 0 and $0/0$ is `nan`. Subtracting $c$ multiplies "
        "numerator and denominator by $e^{-c}$, which cancels exactly. With $c = \\max_j x_j$ every exponent "
        "is $\\le 0$ (no overflow) and the largest term is $e^0 = 1$ (the denominator is $\\ge 1$, never 0). "
        "The row mean is not enough: a row whose largest score is more than 709 above its mean (one large score among many small ones, e.g. $(2000, 0, \\dots, 0)$) still overflows."),
    Question(
        "Show that every row of $\\bar x$ sums to zero, and explain it without algebra. What does it imply for "
        "the gradient of a bias that adds the same number to every score of a row (BERT's key bias)?",
        "$\\sum_i \\bar x_i = \\sum_i p_i \\bar p_i - (\\sum_i p_i) \\sum_j \\bar p_j p_j = 0$ because $\\sum_i p_i = 1$. "
        "Without algebra: adding the same constant to every score of a row does not change $p$ (step 1), so "
        "the loss has zero derivative along the direction $(1, \\dots, 1)$, and that derivative is "
        "$\\sum_i \\bar x_i$. A bias that shifts a whole row of scores by one number therefore gets an exactly "
        "zero gradient: the key bias in attention adds $q \\cdot b_k$ to every score of a query's row."),
    Question(
        "The backward needs one number per row instead of the $K \\times K$ Jacobian. How many numbers would "
        "the explicit Jacobians take for BERT-base's attention scores at $B = 8$, $A = 12$, $T = 512$, and why "
        "is the cache $p$ rather than $x$?",
        "There are $B \\cdot A \\cdot T = 49152$ rows of $K = T = 512$ scores; one Jacobian per row is "
        "$512^2 \\approx 2.6 \\cdot 10^5$ numbers, so $1.3 \\cdot 10^{10}$ numbers (about 100 GB in float64), "
        "against $2.5 \\cdot 10^7$ for $p$. The Jacobian and its product with $\\bar p$ are functions of $p$ "
        "alone, so $p$ is all the backward needs; keeping $x$ would mean recomputing the softmax, and with "
        "`inplace=True` the scores' memory is reused for $p$."),
)

SANITY = (
    ("**Rows sum to 1, and a constant added to a row changes nothing** (also on huge scores).",
     """
rng = np.random.default_rng(0)
x = rng.normal(size=(3, 6)) * 4
p = mine.softmax_forward(x.copy())[0]
shifted = mine.softmax_forward(x + np.array([[1000.0], [-1000.0], [3.0]]))[0]
print("row sums:", np.round(p.sum(axis=-1), 12), "| shift-invariant:", np.allclose(p, shifted),
      "| finite:", bool(np.isfinite(shifted).all()))
"""),
    ("**The backward's rows sum to 0** (shift invariance, seen from the gradient).",
     """
rng = np.random.default_rng(1)
p, cache = mine.softmax_forward(rng.normal(size=(4, 5)))
dx = mine.softmax_backward(rng.normal(size=(4, 5)), cache)
print("row sums of dx:", np.round(dx.sum(axis=-1), 12))
"""),
)

EXERCISE = Exercise(
    number=6, name="softmax", title="softmax: a stable forward and its backward",
    functions=(softmax_forward, softmax_backward),
    imports="import numpy as np",
    minutes=45,
    assesses="numerical stability (the max trick and why it is exact); a Jacobian with off-diagonal terms "
             "turned into a Jacobian-vector product; in-place contracts",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/softmax.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=(("softmax_forward", FORWARD_CONTRACT), ("softmax_backward", BACKWARD_CONTRACT)),
    derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
