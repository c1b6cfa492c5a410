"""Exercise 08: multi-head split and merge (minibert.ops.attention.split_heads / merge_heads, used as they are)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise
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

## What to work out

- Why `x.reshape(B, A, T, d)` has the right shape but the wrong contents (which numbers end up in
  head 0, token 1?).
- Why the split is a *view* (no copy) but the merge needs one (`reshape` of a transposed array).
- The backward of the split is the merge, and the other way round: both only move numbers.

## Your functions

`split_heads(x, num_heads)`: $(B, T, H) \to (B, A, T, d)$, and `merge_heads(x)`:
$(B, A, T, d) \to (B, T, H)$.
"""

HINTS = (
    "Write down where entry x[b, t, a * d + j] must go: to out[b, a, t, j].",
    "Reshape to (B, T, A, d) first (this only cuts H into A pieces of d), then swap the T and A axes "
    "with `transpose(0, 2, 1, 3)`.",
    "merge_heads undoes it in reverse order: `transpose(0, 2, 1, 3)` back to (B, T, A, d), then "
    "`reshape(B, T, A * d)`.",
)


def check(t):
    b, steps, heads, d = 2, 5, 3, 4
    x = t.rng.normal(size=(b, steps, heads * d))
    with t.check("split_heads: (2, 5, 12) with 3 heads -> (2, 3, 5, 4)"):
        given = x.copy()
        got = t.call("split_heads", given, heads)
        t.compare("split", got, split_heads(x, heads), candidates=[
            (x.reshape(b, heads, steps, d), "reshaping straight to (B, A, T, d) mixes tokens across heads: "
             "reshape to (B, T, A, d), then transpose the T and A axes."),
            (x.reshape(b, steps, d, heads).transpose(0, 3, 1, 2), "head a owns the contiguous columns "
             "[a*d, (a+1)*d), not every A-th column: reshape to (B, T, A, d), not (B, T, d, A)."),
        ], shape_hint="the result is (B, A, T, d) = (2, 3, 5, 4): heads before tokens.")
        if isinstance(got, numpy.ndarray) and not numpy.shares_memory(got, given):
            t.note("a copy: reshape + transpose would give a view, no copy needed")
    with t.check("merge_heads: (2, 3, 5, 4) -> (2, 5, 12)"):
        y = t.rng.normal(size=(b, heads, steps, d))
        got = t.call("merge_heads", y.copy())
        t.compare("merged", got, merge_heads(y), candidates=[
            (y.reshape(b, steps, heads * d), "reshaping straight to (B, T, H) mixes the tokens of different "
             "heads: transpose back to (B, T, A, d) first, then reshape."),
            (y.transpose(0, 2, 3, 1).reshape(b, steps, heads * d), "transpose to (B, T, A, d) (axes 0, 2, 1, 3), "
             "so that each head's d columns stay together."),
        ], shape_hint="the result is (B, T, H) = (2, 5, 12).")
    with t.check("merge_heads(split_heads(x)) gives x back; other sizes (1, 7, 10), 5 heads"):
        x2 = t.rng.normal(size=(1, 7, 10))
        split = t.call("split_heads", x2.copy(), 5)
        t.compare("split", split, split_heads(x2, 5))
        back = t.call("merge_heads", split_heads(x2, 5).copy())
        t.compare("merge_heads(split_heads(x))", back, x2)


EXERCISE = Exercise(
    number=8, name="heads", title="multi-head split and merge",
    functions=(split_heads, merge_heads),
    imports="import numpy as np",
    minutes=20,
    assesses="memory layout: reshape vs transpose, which columns belong to which head, views and copies; why "
             "a checkpoint fixes the layout",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/attention.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
