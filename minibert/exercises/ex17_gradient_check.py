"""Exercise 17: the numerical gradient checker itself (minibert.gradcheck.numerical_gradient, rel_error)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.gradcheck import numerical_gradient, rel_error
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.softmax import softmax_forward

STATEMENT = r"""
## What a gradient checker computes

Every backward of minibert is checked the same way: for a scalar loss $L(x)$ (in practice
$L = \sum y \odot \bar y$ for an op $y = f(x)$ and a fixed random upstream gradient $\bar y$), the
derivative along one entry $x_i$ is estimated from two more evaluations of the loss, one with
$x_i$ moved up by a small step $h$ and one with it moved down, all other entries unchanged.
Written out for a few flat indices $i$ of $x$, these estimates are compared with the backward's
entries by one number, a **relative error**:

$$
\text{rel}(a, b) = \frac{\max_i |a_i - b_i|}{\max\big(\max_i |a_i|,\ \max_i |b_i|,\ 10^{-2}\big)} ,
$$

the largest disagreement relative to the gradient's scale (one tiny entry cannot blow the ratio
up), with a floor of $10^{-2}$ for a gradient that is exactly zero. minibert passes a backward when
$\text{rel} < 10^{-6}$, in float64 with $h = 10^{-5}$.

## Your functions

`numerical_gradient(loss_fn, x, indices, h)`: `loss_fn()` takes no argument and **reads `x`
itself**, so the only way to move the loss is to write into `x` (in place) and put every entry
back as it was. `rel_error(a, b)`: the measure above, a float.
"""

HINTS = (
    "Test your numerical_gradient on a function whose derivative you know by heart (a sum of x**3: the "
    "derivative is 3 x**2) at a few indices, before the grader: is the error about h**2, or about h?",
    "Does the loss move when you change x? loss_fn reads the array x itself: an entry written into a copy "
    "(a flattened copy, a new array) changes nothing. After your function returns, x must be bit-for-bit "
    "what it was.",
    "rel_error: one maximum over all entries in the numerator, one scale in the denominator, the larger of "
    "both arrays' largest magnitudes and the floor. An elementwise ratio fails on entries near 0. See "
    "docs/backprop.md (gradient checking) and minibert/gradcheck.py's docstring.",
)

CONTRACTS = (
    ("numerical_gradient", '''Estimate dL/dx at the flat indices `indices` of x by central differences.

    loss_fn: a function of no argument returning a float: the loss, computed from the array x itself.
    x: a C-contiguous float64 array of any shape; `indices` are flat indices (into x.reshape(-1)),
    in any order, possibly unsorted. h: the step.
    Returns a float64 array of len(indices): entry n estimates dL/dx at flat index indices[n].
    x may be changed while you work, but must hold exactly its original values when you return.

    To derive: the estimate from L at x + h e_i and at x - h e_i, and its error as a power of h
    (Taylor-expand both to third order).
    '''),
    ("rel_error", '''The relative error between two gradients a and b (arrays of the same shape).

    max |a - b| over all entries, divided by max(max |a|, max |b|, 1e-2). Returns a float.
    Symmetric in a and b; finite when both are all zeros.
    '''),
)

DERIVATION = r"""
## Deriving it

1. **Scalar first.** Taylor-expand $L(x + h)$ and $L(x - h)$ around $x$ to the third order. Subtract:
   which terms cancel? Divide by the right multiple of $h$ to isolate $L'(x)$; what is the leading
   error term, and how does it scale with $h$? Do the same for the one-sided estimate
   $(L(x + h) - L(x)) / h$: which power of $h$ is its error?
2. **Many entries.** $x$ has many entries: moving entry $i$ alone means adding $h e_i$. How do you
   reach entry $i$ of a 3-D array through a flat index, *without* making a copy that `loss_fn` never
   sees? What must you do before moving on to the next index?
3. **Rounding.** $L$ is computed in floating point, with a relative error of about
   $\varepsilon = 2^{-52} \approx 2.2 \times 10^{-16}$ in float64, so each evaluation is off by about
   $\varepsilon |L|$. How large is the rounding error of your estimate as a function of $h$? Add the
   truncation error from step 1 and find the $h$ that minimises the sum. Redo it for float32
   ($\varepsilon \approx 1.2 \times 10^{-7}$): why do minibert's checks run in float64?
4. **The measure.** Why divide by the largest magnitude of the gradient rather than entry by entry?
   Think of a gradient with entries $10$ and $10^{-9}$. Why the floor $10^{-2}$: what does the ratio do
   when the true gradient is exactly 0 (the attention key bias's is)?
"""

QUESTIONS = (
    Question("Why central differences? Give the error of the one-sided and of the central estimate as a "
             "power of h, and the step that balances truncation against rounding in float64.",
             "Taylor: L(x+h) - L(x-h) = 2h L' + h^3 L'''/3 + ..., so the central estimate's error is "
             "h^2 L'''/6; the one-sided (L(x+h) - L(x))/h has error h L''/2, one power of h worse. Rounding "
             "adds about eps |L| / h. Balancing eps/h against h^2 gives h ~ eps^(1/3) ~ 6e-6 in float64 "
             "(hence 1e-5), where both errors are ~1e-10 relative; in float32 (eps ~ 1.2e-7) the best h is "
             "~5e-3 and the error ~1e-5, too coarse to tell a subtly wrong backward from a right one."),
    Question("A correct backward gives rel_error ~1e-9 here, a wrong one ~1e-2. Why is the gap so wide, and "
             "why does an elementwise relative error |a_i - b_i| / |a_i| fail correct backwards?",
             "A wrong backward is wrong by an O(1) fraction of some term (a missing mean, a transpose), so "
             "its error is of the order of the gradient itself, while a correct one is off only by the "
             "O(h^2) truncation plus rounding. Elementwise ratios explode on entries near 0, where the "
             "finite difference is pure rounding noise (1e-11 / 1e-12 = 10): measuring against the "
             "gradient's scale, with a floor for an all-zero gradient, keeps that noise small."),
)

SANITY = (
    ("**The step size's two errors.** For a function with a known derivative, the error of the central "
     "estimate falls as h^2 while h is large (truncation), then grows as 1/h when h is tiny (rounding).",
     "x = np.linspace(-1.0, 2.0, 7)\n"
     "exact = np.cos(x) * 3.0\n"
     "for h in (1e-1, 1e-3, 1e-5, 1e-8, 1e-11):\n"
     "    numeric = mine.numerical_gradient(lambda: float(3.0 * np.sin(x).sum()), x, np.arange(7), h)\n"
     "    print(f\"h = {h:.0e}: relative error {mine.rel_error(numeric, exact):.1e}\")"),
)


# -- known functions -------------------------------------------------------------------------------

def _cubic(x, w):
    """L = sum(w * sin(x) + 0.5 x^3): dL/dx = w cos(x) + 1.5 x^2 (a third derivative that is not 0)."""
    return lambda: float((w * numpy.sin(x) + 0.5 * x ** 3).sum())


def _exact_cubic(x, w):
    return w * numpy.cos(x) + 1.5 * x ** 2


def _variant(loss, x, indices, h, mistake):
    """numerical_gradient as a known mistake computes it (on a copy of x, the same loss read from it)."""
    flat = x.reshape(-1)
    saved = flat.copy()
    out = numpy.empty(len(indices))
    order = sorted(indices) if mistake == "sorted" else list(indices)
    for n, i in enumerate(order):
        old = float(flat[i])
        if mistake == "forward difference":
            base = loss()
            flat[i] = old + h
            out[n] = (loss() - base) / h
        else:
            flat[i] = old + h
            plus = loss()
            flat[i] = old - h
            minus = loss()
            out[n] = (plus - minus) / (h if mistake == "over h" else 2 * h)
        if mistake != "not restored":
            flat[i] = old
    flat[:] = saved
    return out


NUMERIC_MISTAKES = {
    "forward difference": "your estimates have an error of order h, not h^2: a one-sided difference "
                          "(L(x + h) - L(x)) / h. Step to both sides of x.",
    "over h": "your estimates are twice the derivative: the two evaluations are 2h apart.",
    "not restored": "from the second index on your estimates are off: an entry you moved was not put back "
                    "before the next one was measured (every estimate must start from the original x).",
    "sorted": "your estimates are in sorted index order: entry n must estimate the derivative at indices[n], "
              "in the order given.",
}


def _numeric_check(t, shape, h, indices=None, check_exact=True):
    x = t.rng.normal(size=shape)
    w = t.rng.normal(size=shape) + 1.0
    if indices is None:
        indices = numpy.arange(x.size)
    original = x.copy()
    expected = numerical_gradient(_cubic(x, w), x, indices, h)
    candidates = [(lambda k=k: _variant(_cubic(x, w), x, indices, h, k), hint) for k, hint in NUMERIC_MISTAKES.items()]
    candidates.append((lambda: numerical_gradient(_cubic(x, w), x, indices), f"you used the step 1e-5, not the "
                       f"h given ({h:g}): use the argument."))
    candidates.append((numpy.zeros(len(indices)), "every estimate is 0: the loss never moved. loss_fn reads x "
                       "itself; write the perturbation into x (a view of it), not into a copy."))
    try:
        got = t.call("numerical_gradient", _cubic(x, w), x, indices, h)
    except CheckFailed as failure:
        if "IndexError" in failure.message:
            failure.hint = (f"the indices are flat: they run over all {x.size} entries of x {x.shape}, as in "
                            f"x.reshape(-1) (a view), not along its first axis of {shape[0]}.")
        raise
    if not numpy.array_equal(x, original):
        moved = int((x != original).sum())
        size = float(numpy.max(numpy.abs(x - original)))
        why = ("an entry you moved was not put back before the next one was measured, nor at the end"
               if size > h / 10 else "you restored the entries by adding and subtracting h, which does not always "
               "round back to the same float: restore the saved value")
        raise CheckFailed(f"after numerical_gradient returned, {moved} entr{'ies' if moved > 1 else 'y'} of x "
                          f"differ from the original (by up to {size:.2g}).",
                          f"{why}. x must hold exactly its original values when you return.")
    t.compare("the estimates", got, expected, candidates=candidates, tolerance=1e-9,
              hint="one estimate per index, in the given order: the loss with that entry moved up by h, minus "
                   "the loss with it moved down by h, over the distance between the two.")
    if check_exact:
        err = rel_error(numpy.asarray(got, dtype=numpy.float64), _exact_cubic(x, w).reshape(-1)[indices])
        t.note(f"{err:.0e} vs the exact derivative")


REL_MISTAKES = {
    "no floor": "with both gradients (nearly) zero your error is huge or NaN: the denominator needs the floor "
                "1e-2, so an all-zero gradient is compared absolutely.",
    "elementwise": "you took an elementwise relative error: the numerator and the denominator are each one "
                   "maximum over all entries (a tiny entry must not blow the ratio up).",
    "mean": "your numerator is a mean: the measure is the largest difference, not the average one.",
    "scale a": "your scale uses only one of the two arrays: take the larger of both largest magnitudes "
               "(the measure is symmetric).",
    "sum scale": "your scale adds the two largest magnitudes: the measure takes the larger of them.",
}


def _rel_variant(a, b, mistake):
    d = numpy.abs(a - b)
    ma, mb = float(numpy.max(numpy.abs(a))), float(numpy.max(numpy.abs(b)))
    if mistake == "no floor":
        return float(d.max() / max(ma, mb)) if max(ma, mb) else float("nan")
    if mistake == "elementwise":
        return float(numpy.max(d / numpy.maximum(numpy.abs(a) + numpy.abs(b), 1e-8)))
    if mistake == "mean":
        return float(d.mean() / max(ma, mb, 1e-2))
    if mistake == "scale a":
        return float(d.max() / max(ma, 1e-2))
    if mistake == "sum scale":
        return float(d.max() / max(ma + mb, 1e-2))
    raise ValueError(mistake)


def _rel_check(t, a, b):
    for x, y, order in ((a, b, "(a, b)"), (b, a, "(b, a)")):
        expected = rel_error(x, y)
        got = t.call("rel_error", x.copy(), y.copy())
        if isinstance(got, numpy.ndarray) and got.size == 1:
            got = got.reshape(())
        if not isinstance(got, (float, int, numpy.floating, numpy.integer, numpy.ndarray)):
            raise CheckFailed(f"rel_error returned {type(got).__name__}; expected a float.", "return one number.")
        t.compare(f"rel_error{order}", numpy.float64(got), expected, tolerance=1e-12, scale_floor=1e-30,
                  candidates=[(lambda k=k, x=x, y=y: _rel_variant(x, y, k), hint) for k, hint in REL_MISTAKES.items()],
                  hint="max |a - b| over every entry, divided by the larger of max |a|, max |b| and 1e-2.")


def _catches_check(t):
    """The learner's two functions together pass a correct backward and fail a wrong one."""
    x = t.rng.normal(size=(3, 7)) * 1.5 + 0.5
    gamma, beta = t.rng.normal(size=7), t.rng.normal(size=7)
    dy = t.rng.normal(size=(3, 7)) + 0.5
    _, cache = layer_norm_forward(x.copy(), gamma, beta, 1e-12)
    right = layer_norm_backward(dy, cache)[0]
    wrong = dy * gamma * cache[1]                  # missing the two mean terms: a classic wrong backward

    def loss():
        return float((layer_norm_forward(x, gamma, beta, 1e-12)[0] * dy).sum())

    idx = numpy.sort(t.rng.choice(x.size, 9, replace=False))
    numeric = numpy.asarray(t.call("numerical_gradient", loss, x, idx, 1e-5), dtype=numpy.float64)
    ok = float(t.call("rel_error", right.reshape(-1)[idx], numeric))
    bad = float(t.call("rel_error", wrong.reshape(-1)[idx], numeric))
    if not ok < 1e-6:
        raise CheckFailed(f"your checker fails a correct LayerNorm backward: relative error {ok:.2g} (>= 1e-6).",
                          "check both functions on a function with a known derivative first.")
    if not bad > 1e-3:
        raise CheckFailed(f"your checker passes a wrong LayerNorm backward (dx without its mean terms): relative "
                          f"error {bad:.2g}.", "a wrong backward differs by a fraction of the gradient's size: "
                          "is your measure relative to the gradient's largest entry?")
    t.note(f"correct backward {ok:.0e}, wrong one {bad:.0e}")


def _zero_gradient_check(t):
    """An exactly-zero gradient (softmax ignores a shift of its whole row): rounding noise must pass."""
    x = t.rng.normal(size=(4, 6)) * 3
    dy = t.rng.normal(size=(4, 6))
    shift = t.rng.normal(size=4)

    def loss():
        return float((softmax_forward(x + shift[:, None])[0] * dy).sum())

    numeric = numpy.asarray(t.call("numerical_gradient", loss, shift, numpy.arange(4), 1e-5), dtype=numpy.float64)
    err = float(t.call("rel_error", numpy.zeros(4), numeric))
    if not err < 1e-6:
        raise CheckFailed(f"the exact gradient is 0 here (softmax ignores a shift of a whole row), the numerical one "
                          f"is rounding noise ({float(numpy.max(numpy.abs(numeric))):.1g}), and your rel_error "
                          f"says {err:.2g}: a correct backward would fail.", REL_MISTAKES["no floor"])
    t.note(f"noise {float(numpy.max(numpy.abs(numeric))):.0e}, error {err:.0e}")


def check(t):
    with t.check("numerical_gradient: every entry of x (4, 5), h = 1e-5"):
        _numeric_check(t, (4, 5), 1e-5)
    with t.check("numerical_gradient: 11 unsorted flat indices of x (2, 3, 7), h = 1e-5"):
        _numeric_check(t, (2, 3, 7), 1e-5, indices=t.rng.permutation(42)[:11])
    with t.check("numerical_gradient: a large step h = 1e-2 (the truncation error shows)"):
        _numeric_check(t, (3, 4), 1e-2, check_exact=False)
    with t.check("rel_error: two close gradients of different scales"):
        a = t.rng.normal(size=(5, 3)) * 4
        _rel_check(t, a, a + t.rng.normal(size=(5, 3)) * 1e-3)
    with t.check("rel_error: one gradient much larger than the other, entries near 0"):
        a = t.rng.normal(size=9) * 1e-4
        a[2] = 0.0
        _rel_check(t, a, a * 50 + 1e-9)
    with t.check("rel_error: an all-zero gradient against rounding noise (the floor)"):
        _rel_check(t, numpy.zeros(6), t.rng.normal(size=6) * 1e-11)
    with t.check("together: your checker passes a correct LayerNorm backward and catches a wrong one"):
        _catches_check(t)
    with t.check("together: an exactly-zero gradient (a softmax row shift) passes"):
        _zero_gradient_check(t)


EXERCISE = Exercise(
    number=17, name="gradient_check", title="the numerical gradient checker: central differences, relative error",
    functions=(numerical_gradient, rel_error),
    imports="import numpy as np",
    minutes=40,
    assesses="central differences and their O(h^2) error (Taylor); perturbing a shared array in place and "
             "restoring it; flat indices; truncation vs rounding and the choice of h in float64; a relative "
             "error measured against the gradient's scale, with a floor",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/backprop.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
