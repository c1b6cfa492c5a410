"""Exercise 13: inverted dropout, forward and backward (minibert.ops.dropout.dropout_forward / _backward)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.ops.dropout import dropout_backward, dropout_forward

STATEMENT = r"""
## The forward

Dropout is BERT's regulariser. In training, each entry of $x$ is kept with probability $1 - p$ and
set to zero with probability $p$, independently; the kept entries are multiplied by a constant $c$
chosen so that dropout does not change the *expected* value of any entry:

$$
y_k = c\, z_k\, x_k, \qquad z_k \sim \text{Bernoulli}(1 - p), \qquad \mathbb{E}[y_k] = x_k .
$$

In evaluation mode (`training=False`), and for $p = 0$, dropout does nothing at all: the network is
used exactly as it was trained *on average* ("inverted" dropout, as in PyTorch and BERT).

The random draw is part of the contract, so that your masks equal minibert's for the same
generator: one call `rng.random(x.shape, dtype=np.float32)`, and entry $k$ is kept when its
number is at least $p$. A mask may also be given (`mask=`, already holding the factor $c$ on the
kept entries): then nothing is drawn.

## What to work out

- The constant $c$ from $\mathbb{E}[y_k] = x_k$.
- What the backward needs from the forward (the cache), and what it is in evaluation mode.
- $\partial y_k / \partial x_j$ for a fixed mask: which entries of $x$ get a gradient, and how large.

## Your functions

`dropout_forward(x, p, rng=None, training=True, mask=None)` returns `(y, cache)` and
`dropout_backward(dy, cache)` returns `dx`.
"""

CONTRACTS = (
    ("dropout_forward", """Inverted dropout.   x: any shape   ->   y: x's shape, cache.

    training=False or p == 0: y is x itself, unchanged, and the cache is None.
    Otherwise the mask is `mask` when given (x's shape, already scaled: 0 or the keep factor), else
    it is drawn: u = rng.random(x.shape, dtype=np.float32), entry k kept where u[k] >= p, and the
    kept entries carry the factor that leaves every expected value unchanged (work it out).
    The mask has x's dtype. x itself is not modified. cache: the (scaled) mask.

    Which factor makes E[y_k] = x_k?
    """),
    ("dropout_backward", """dy: the forward output's shape, cache: what dropout_forward returned  ->  dx.

    The cache is None when the forward did nothing (evaluation mode or p == 0).
    Which entries of x receive a gradient, and scaled by what?
    """),
)

DERIVATION = r"""
## Derive it

1. **One entry, the expectation.** $y_k$ is $c\,x_k$ with probability $1-p$ and $0$ with probability
   $p$. Write $\mathbb{E}[y_k]$ and solve $\mathbb{E}[y_k] = x_k$ for $c$. What happens to $c$ as
   $p \to 1$?
2. **Evaluation.** Why does inverted dropout need no rescaling at evaluation time? What would the
   original (non-inverted) dropout of Srivastava et al. have to do at evaluation instead?
3. **The derivative.** For a *fixed* mask, $y_k$ depends on $x_k$ only. Write
   $\partial y_k / \partial x_j$ for $j = k$ and $j \ne k$, then $\bar x_j = \sum_k \bar y_k
   \,\partial y_k / \partial x_j$.
4. **The cache.** What is the smallest thing the forward can keep so that the backward gets the
   same entries, with the same factor? Is $p$ needed separately?
5. **Shapes.** $x$, $y$, the mask, $\bar y$ and $\bar x$: which shapes? Can the mask be smaller
   than $x$ (one draw per feature, broadcast over tokens)? What would that change?
"""

HINTS = (
    "Compare your y with x entry by entry where the mask keeps them: is the ratio the same constant "
    "everywhere? Then check that constant against the expectation you derived (the mean of y over a large "
    "array of ones must be close to 1).",
    "Read the contract on the draw again: which way round is the comparison with p (kept or dropped), and "
    "the dtype of the draw (float32 and float64 draws give different numbers from the same generator).",
    "The backward multiplies by the very factor the forward applied to each entry, dropped ones included; "
    "in evaluation mode there is nothing to undo. docs/dropout.md has the derivation.",
)

QUESTIONS = (
    Question("Why does minibert (like PyTorch) scale the kept entries during training instead of "
             "multiplying by $1-p$ at evaluation time? Name one practical advantage.",
             "Inverted dropout makes $\\mathbb{E}[y] = x$ during training, so evaluation is the identity: the "
             "trained weights are used as they are, inference code needs no knowledge of $p$, and a model "
             "can be evaluated, exported or fine-tuned with a different $p$ without rescaling any weight."),
    Question("Dropout leaves the expected value of each entry unchanged. What does it do to its variance, "
             "and why is that a reason to keep $p$ small in BERT (0.1)?",
             "$\\operatorname{Var}[y_k] = x_k^2 \\left(\\frac{1}{1-p} - 1\\right) = x_k^2 \\frac{p}{1-p}$: "
             "noise grows quickly with $p$ (1/9 of $x_k^2$ at 0.1, as large as $x_k^2$ at 0.5). A small $p$ "
             "regularises without drowning the signal the LayerNorms and the attention rely on."),
    Question("Why must the backward use the *same* mask as the forward, and what goes wrong in a gradient "
             "check if the forward draws a new mask at every call?",
             "For a fixed mask dropout is multiplication by a constant, so its derivative is that constant; "
             "a new mask per call makes the function random, so $f(x+h) - f(x-h)$ mixes two different "
             "functions and the finite difference is noise of size $|x| / h$. Gradient checks fix the mask."),
)

SANITY = (
    ("**Sanity check: the expected value and the drop rate.** On a large array of ones, the fraction of "
     "zeros of your dropout must be close to $p$ and the mean of the output close to 1.",
     "x = np.ones((1000, 1000))\n"
     "y, _ = mine.dropout_forward(x, 0.1, np.random.default_rng(0), True)\n"
     "print(f\"dropped {np.mean(y == 0):.4f} (p = 0.1), mean {y.mean():.4f} (1 expected)\")"),
    ("**Sanity check: evaluation is the identity.**",
     "x = np.ones((3, 4))\n"
     "y, cache = mine.dropout_forward(x, 0.1, np.random.default_rng(0), False)\n"
     "print(\"identity in eval:\", y is x or np.array_equal(y, x), \"| cache:\", cache)"),
)


def _draw(rng_seed, shape, p, dtype, *, float64=False, keep_below=False):
    """The mask the reference draws, or the one a known mistake draws, from generator seed `rng_seed`."""
    rng = numpy.random.default_rng(rng_seed)
    u = rng.random(shape) if float64 else rng.random(shape, dtype=numpy.float32)
    keep = (u < p) if keep_below else (u >= p)
    return keep.astype(dtype)


def _forward_candidates(x, p, seed):
    keep = _draw(seed, x.shape, p, x.dtype)
    scale = 1.0 / (1.0 - p)
    return [
        (lambda: x * keep, "the kept entries are not scaled: E[y] is then (1 - p) x, not x. Work out the factor "
         "that makes the expected value unchanged."),
        (lambda: x * keep * (1.0 - p), "the kept entries are multiplied by (1 - p): that shrinks E[y] to "
         "(1 - p)^2 x. The factor must *undo* the loss of the dropped entries."),
        (lambda: x * _draw(seed, x.shape, p, x.dtype, keep_below=True) * scale, "you keep the entries whose "
         "random number is below p, so a fraction p survives instead of 1 - p: keep those at least p."),
        (lambda: x * _draw(seed, x.shape, p, x.dtype, keep_below=True) / p, "you keep a fraction p (numbers "
         "below p) and scale by 1/p: the expectation is right but the draw is the wrong way round; keep the "
         "entries whose number is at least p, as the contract says."),
        (lambda: x * _draw(seed, x.shape, p, x.dtype, float64=True) * scale, "your mask is right in law but "
         "not in its numbers: draw with dtype=np.float32, one call of x's shape (float64 draws give other "
         "numbers from the same generator)."),
        (lambda: x * _draw(seed, x.shape[-1:], p, x.dtype) * scale, "one random number per feature (the last "
         "axis), broadcast over the rest: every entry needs its own independent draw, of x's full shape."),
    ]


def _forward_check(t, shape, p, *, with_mask=False):
    x = t.rng.normal(size=shape) + 0.5
    seed = int(t.rng.integers(2 ** 31))
    given = _draw(seed + 1, shape, p, x.dtype) / (1.0 - p) if with_mask else None
    expected, _ = dropout_forward(x.copy(), p, numpy.random.default_rng(seed), True, given)
    mine = x.copy()
    got = t.call("dropout_forward", mine, p, numpy.random.default_rng(seed), True, given)
    y = t.unpack(got, "dropout_forward", "y, cache")[0]
    candidates = _forward_candidates(x, p, seed)
    if with_mask:
        candidates = [(lambda: x * _draw(seed, shape, p, x.dtype) / (1.0 - p), "a mask was given (mask=...): use "
                       "it as it is (it is already scaled); draw only when mask is None."),
                      (lambda: x * given / (1.0 - p), "the given mask already holds the factor: multiply by it as "
                       "it is, without scaling again.")]
    t.compare("y", y, expected, candidates=candidates,
              hint="compare entry by entry: which entries are zero, and by what are the others multiplied?")
    if isinstance(y, numpy.ndarray) and not numpy.array_equal(mine, x):
        raise CheckFailed("your dropout_forward changed its input x (in place): y is right, but the caller's x "
                          "now holds the dropped values.", "compute y as a new array; leave x as it was "
                          "(the residual connection and the backward still need it).")


def _eval_check(t, training, p):
    x = t.rng.normal(size=(3, 4, 5))
    got = t.call("dropout_forward", x.copy(), p, numpy.random.default_rng(0), training)
    y, cache = t.unpack(got, "dropout_forward", "y, cache")
    seed_keep = _draw(0, x.shape, p, x.dtype) if p > 0 else numpy.ones_like(x)
    what = "in evaluation mode (training=False)" if not training else "with p = 0"
    t.compare("y", y, x, candidates=[
        (lambda: x * (1.0 - p), f"{what} dropout is the identity: inverted dropout scales during training, so "
         f"nothing is multiplied by (1 - p) at evaluation."),
        (lambda: x * seed_keep / (1.0 - p), f"{what} dropout must do nothing: no mask is drawn or applied."),
        (lambda: x * seed_keep, f"{what} dropout must do nothing: no mask is drawn or applied."),
    ], hint=f"{what} dropout is the identity.")
    if cache is not None:
        t.note(f"cache {type(cache).__name__} (minibert: None)")




def _backward_check(t, shape, p, forward_ok):
    x = t.rng.normal(size=shape)
    dy = t.rng.normal(size=shape)
    mask = _draw(int(t.rng.integers(2 ** 31)), shape, p, x.dtype) / (1.0 - p)
    keep = (mask != 0).astype(x.dtype)
    expected = dropout_backward(dy, mask)
    candidates = [
        (lambda: dy * keep, "the surviving gradients are not scaled: the forward multiplied each kept entry by "
         "a factor, so its gradient carries the same factor."),
        (lambda: dy * mask / (1.0 - p), "the factor is applied twice: the mask in the cache already holds it."),
        (lambda: dy * mask * (1.0 - p), "the cached mask already holds the right factor: multiply by it alone."),
        (lambda: dy * (1.0 - keep) / (1.0 - p), "the gradient flows to the dropped entries and not to the kept "
         "ones: it is the other way round."),
        (lambda: dy, "the backward ignores the mask: dropped entries did not affect y, so they get no gradient."),
    ]
    # 1. on the learner's own forward: finite differences of it (fixed mask, deterministic)
    _, cache, forward, own = t.forward_for_backward("dropout_forward", x.copy(), p, None, True, mask)
    dx = t.call("dropout_backward", dy.copy(), cache)

    def loss():
        return float((forward(x.copy(), p, None, True, mask) * dy).sum())

    t.gradient("dx", dx, expected, loss, x, candidates=candidates, forward_failed=own and not forward_ok,
               hint="which entries of x did y depend on, and through which factor?")
    # 2. on minibert's cache: a forward bug cannot hide a backward bug (or the other way round)
    dx_ref_cache = t.call("dropout_backward", dy.copy(), mask)
    t.compare("dx (on minibert's cache: the scaled mask)", dx_ref_cache, expected, candidates=candidates,
              hint="minibert's cache is the scaled mask itself.")


def _backward_eval_check(t):
    dy = t.rng.normal(size=(2, 3, 4))
    hint = ("in evaluation mode (or p = 0) the forward did nothing and its cache is None: the backward passes dy "
            "through unchanged.")
    try:
        dx = t.call("dropout_backward", dy.copy(), None)
    except CheckFailed as failure:             # `dy * None` raises: say what the None means
        raise CheckFailed(failure.message, hint) from None
    t.compare("dx", dx, dy, hint=hint)


def check(t):
    with t.check("forward: training, x (4, 6, 8), p = 0.1, mask drawn from the generator"):
        _forward_check(t, (4, 6, 8), 0.1)
    with t.check("forward: training, x (50, 40), p = 0.7 (most entries dropped)"):
        _forward_check(t, (50, 40), 0.7)
    with t.check("forward: training with a given (scaled) mask, x (3, 5, 7), p = 0.25"):
        _forward_check(t, (3, 5, 7), 0.25, with_mask=True)
    with t.check("forward: evaluation mode (training=False), p = 0.3"):
        _eval_check(t, False, 0.3)
    with t.check("forward: training with p = 0"):
        _eval_check(t, True, 0.0)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: dx for x (3, 5, 7), p = 0.25, a fixed mask"):
        _backward_check(t, (3, 5, 7), 0.25, forward_ok)
    with t.check("backward: dx for x (9, 4), p = 0.6"):
        _backward_check(t, (9, 4), 0.6, forward_ok)
    with t.check("backward: evaluation mode (the cache is None)"):
        _backward_eval_check(t)


EXERCISE = Exercise(
    number=13, name="dropout", title="inverted dropout: forward and backward",
    functions=(dropout_forward, dropout_backward),
    imports="import numpy as np",
    minutes=25,
    assesses="the expectation argument behind the 1/(1-p) factor; training vs evaluation; a reproducible draw "
             "from an explicit generator; the backward of a multiplication by a fixed random mask",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/dropout.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
