"""Exercise 08: multi-head split and merge (minibert.ops.attention.split_heads / merge_heads, used as they are)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.ops.attention import merge_heads, split_heads

STATEMENT = r"""
## Heads

Multi-head attention runs $A$ attentions side by side on slices of the hidden vector. The query,
key and value projections give $(B, T, H)$ arrays; head $a$ owns the $d = H / A$ **contiguous**
columns $[a d, (a + 1) d)$ of each token's vector, and attention wants the heads as a batch axis:

$$
(B, T, H) \xrightarrow{\text{reshape}} (B, T, A, d) \xrightarrow{\text{transpose}} (B, A, T, d),
$$

and back after attention: $(B, A, T, d) \to (B, T, A, d) \to (B, T, H)$. A pretrained checkpoint's
weights assume exactly this layout: a different assignment of columns to heads gives different
numbers.

## Your functions

`split_heads(x, num_heads)`: $(B, T, H) \to (B, A, T, d)$, and `merge_heads(x)`:
$(B, A, T, d) \to (B, T, H)$.
"""

HINTS = (
    "Track one number: where must x[b, t, a * d + j] end up? Write the index of the output for it, then "
    "ask which NumPy operations move it there. The shape alone does not tell you: several wrong layouts "
    "have the right shape.",
    "A reshape never moves numbers in memory, it re-reads them in row-major order; only a transpose "
    "reorders axes. So: first cut the hidden axis into its heads (without moving anything), then move the "
    "head axis. The merge undoes the two steps in reverse order.",
    "If head 0 holds another token's numbers, the reshape mixed tokens and heads; if head 0 holds every A-th "
    "column, the cut is interleaved instead of contiguous. docs/attention.md, 'Multi-head attention'.",
)

CONTRACTS = (
    ("split_heads", """Split the hidden axis into num_heads heads and put the heads in front of the tokens.

    x: (B, T, H) array, H a multiple of num_heads; d = H // num_heads.
    Returns (B, A, T, d) with A = num_heads: out[b, a, t, j] is x[b, t, a * d + j] (head a owns the
    contiguous columns [a*d, (a+1)*d)). Same dtype; a view of x is fine (no copy needed).

    To work out: which sequence of reshape and transpose moves every number to its place.
    """),
    ("merge_heads", """The inverse of split_heads: heads back into the hidden axis.

    x: (B, A, T, d).  Returns (B, T, A * d): out[b, t, a * d + j] is x[b, a, t, j]. Same dtype.

    To work out: the operations of split_heads undone in which order, and why this one must copy.
    """),
)

DERIVATION = r"""
## Working it out

**1. One number.** For B = 1, T = 2, H = 4, A = 2 (d = 2), write x as a 2 x 4 table with entries
`x[t, c]`. Which entries does head 1, token 0 hold? Write the (A, T, d) result by hand.

**2. Reshape reads memory in order.** Write the 8 numbers in memory order (row-major). What does
`reshape(1, 2, 2, 2)` give when the axes are read as (B, A, T, d)? Compare with step 1: which
entries are in the wrong place? Now read the same reshape as (B, T, A, d): is every number in its
head? What is left to do?

**3. The merge.** Start from your (B, A, T, d) table and undo step 2 in reverse order. Why can the
final reshape not be a view (look at the strides of a transposed array)?

**4. The backward.** Both functions only move numbers. If $y = \text{split}(x)$ and
$\bar y$ is given, which function gives $\bar x$? (Each number's gradient follows the number back.)

**Check on paper**: with T = d, which wrong layouts still have the right shape? (The grader uses
such a case.)

When you are done, open the solution page on purpose: `docs/exercises/solutions/08_heads.md`.
"""

QUESTIONS = (
    Question(
        "Why does `x.reshape(B, A, T, d)` have the right shape but the wrong contents? Which numbers does "
        "head 0, token 1 hold then?",
        "A reshape re-reads memory in row-major order: token 0's H numbers come first, then token 1's. "
        "Read as (A, T, d) blocks, head 0 gets the first T*d numbers, i.e. whole tokens 0 .. T/A - 1, "
        "instead of every token's first d columns. Head 0, token 1 holds columns d .. 2d - 1 of token 0."),
    Question(
        "What is the backward of split_heads, and why does a pretrained checkpoint fix which columns belong "
        "to which head?",
        "split_heads only moves numbers, so the gradient moves back the same way: the backward of "
        "split_heads is merge_heads (and vice versa). A checkpoint's query/key/value weights were trained "
        "with head a reading columns [a d, (a+1) d): another assignment of columns to heads mixes "
        "different heads' features and computes a different function with the same weights."),
)

SANITY = (
    ("**Sanity: split then merge is the identity, and head a holds columns [a*d, (a+1)*d).**",
     "x = np.arange(2 * 3 * 8, dtype=float).reshape(2, 3, 8)\n"
     "y = mine.split_heads(x, 4)\n"
     "print(\"round trip:\", np.array_equal(mine.merge_heads(y), x), \"| head 1, token 0:\", y[0, 1, 0],\n"
     "      \"(columns 2, 3 of token 0:\", x[0, 0, 2:4], \")\")"),
)


def _split_candidates(x, heads):
    b, steps, hidden = x.shape
    d = hidden // heads
    return [
        (lambda: x.reshape(b, heads, steps, d), "reshaping straight to (B, A, T, d) mixes tokens across heads: "
         "a head then holds whole tokens instead of every token's own slice (the derivation's step 2)."),
        (lambda: x.reshape(b, steps, d, heads).transpose(0, 3, 1, 2), "head a owns the contiguous columns "
         "[a*d, (a+1)*d), not every A-th column: the hidden axis is cut in the wrong order."),
        (lambda: x.reshape(b, steps, heads, d).transpose(0, 2, 3, 1), "the last two axes are swapped: each "
         "head's result is (d, T), tokens along the last axis; the contract is (T, d)."),
    ]


def _merge_candidates(y):
    b, heads, steps, d = y.shape
    return [
        (lambda: y.reshape(b, steps, heads * d), "reshaping straight to (B, T, H) mixes the tokens of different "
         "heads: the head axis must first move back behind the token axis (undo the split in reverse order)."),
        (lambda: y.transpose(0, 2, 3, 1).reshape(b, steps, heads * d), "each token's columns come out "
         "interleaved (head 0's first, head 1's first, ...): the head axis must come before the head-size axis."),
        (lambda: y.swapaxes(2, 3).reshape(b, steps, heads * d), "the token and head-size axes are swapped "
         "instead of the head and token axes."),
    ]


def _split_check(t, shape, heads, dtype=numpy.float64):
    x = t.rng.normal(size=shape).astype(dtype)
    given = x.copy()
    got = t.call("split_heads", given, heads)
    b, steps, hidden = shape
    t.compare("split", got, split_heads(x, heads), candidates=_split_candidates(x, heads),
              shape_hint=f"the result is (B, A, T, d) = {(b, heads, steps, hidden // heads)}: heads before tokens.")
    if not numpy.array_equal(given, x):
        raise CheckFailed("split_heads changed its input x.", "the input belongs to the caller: leave it as it is.")
    if numpy.asarray(got).dtype != x.dtype:
        raise CheckFailed(f"split_heads returned {numpy.asarray(got).dtype} for a {x.dtype} input.",
                          "moving numbers never changes their dtype: no conversion is needed.")
    if isinstance(got, numpy.ndarray) and not numpy.shares_memory(got, given):
        t.note("a copy: a view would do (reshape and transpose need none)")


def _merge_check(t, shape, dtype=numpy.float64):
    y = t.rng.normal(size=shape).astype(dtype)
    got = t.call("merge_heads", y.copy())
    b, heads, steps, d = shape
    t.compare("merged", got, merge_heads(y), candidates=_merge_candidates(y),
              shape_hint=f"the result is (B, T, H) = {(b, steps, heads * d)}.")
    if numpy.asarray(got).dtype != y.dtype:
        raise CheckFailed(f"merge_heads returned {numpy.asarray(got).dtype} for a {y.dtype} input.",
                          "moving numbers never changes their dtype: no conversion is needed.")


def check(t):
    with t.check("split_heads: (2, 5, 12) with 3 heads -> (2, 3, 5, 4)"):
        _split_check(t, (2, 5, 12), 3)
    with t.check("split_heads: T equal to d, (2, 4, 12) with 3 heads (wrong layouts keep the shape)"):
        _split_check(t, (2, 4, 12), 3)
    with t.check("split_heads: other sizes, (1, 7, 10) with 5 heads, float32"):
        _split_check(t, (1, 7, 10), 5, numpy.float32)
    with t.check("split_heads: edge cases, one head (3, 4, 6) and head size 1 (2, 3, 4)"):
        _split_check(t, (3, 4, 6), 1)
        _split_check(t, (2, 3, 4), 4)
    with t.check("merge_heads: (2, 3, 5, 4) -> (2, 5, 12)"):
        _merge_check(t, (2, 3, 5, 4))
    with t.check("merge_heads: T equal to d, (2, 3, 4, 4), float32"):
        _merge_check(t, (2, 3, 4, 4), numpy.float32)
    with t.check("merge_heads: edge cases, one head and head size 1"):
        _merge_check(t, (3, 1, 4, 6))
        _merge_check(t, (2, 4, 3, 1))
    with t.check("the two are inverses: merge_heads(split_heads(x)) is x, split_heads(merge_heads(y)) is y"):
        x = t.rng.normal(size=(2, 6, 15))
        t.compare("merge_heads(split_heads(x))", t.call("merge_heads", t.call("split_heads", x.copy(), 3)), x,
                  hint="each function may be right on its own checks only if both are; look at the first one "
                       "that fails above.")
        y = t.rng.normal(size=(2, 5, 6, 3))
        t.compare("split_heads(merge_heads(y))", t.call("split_heads", t.call("merge_heads", y.copy()), 5), y,
                  hint="each function may be right on its own checks only if both are; look at the first one "
                       "that fails above.")


EXERCISE = Exercise(
    number=8, name="heads", title="multi-head split and merge",
    functions=(split_heads, merge_heads),
    imports="import numpy as np",
    minutes=25,
    assesses="memory layout: reshape vs transpose, which columns belong to which head, views and copies; why "
             "a checkpoint fixes the layout; the backward of a pure data movement",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/attention.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
