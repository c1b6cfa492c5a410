"""Softmax over the last axis, and its backward.

    p_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j

Subtracting the max changes nothing mathematically (it cancels) but keeps
exp() from overflowing on large logits. Rows are independent, so on NumPy
they are processed in blocks on all cores (`map_rows`, ops/parallel.py).
"""
from __future__ import annotations

from minibert.backend import get_xp
from minibert.backend.blocks import map_rows


def _softmax_rows_inplace(x):
    """Overwrite rows x with their softmax (and return x)."""
    xp = get_xp(x)
    x -= x.max(axis=-1, keepdims=True)
    xp.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return (x,)


def softmax_forward(x, inplace=False):
    """x: (..., K) -> p: (..., K). cache: p. With inplace=True, x is overwritten by p
    (saves a full-size temporary on the (B, A, T, T) attention scores)."""
    p = x if inplace else x.copy()
    (p,) = map_rows(_softmax_rows_inplace, [p], inplace=True)
    return p, p


def _softmax_backward_rows(dp, p):
    xp = get_xp(p)
    row_dot = xp.einsum("...k,...k->...", dp, p)[..., None]   # sum_j dp_j p_j, (..., 1), no (..., K) temporary
    dx = dp - row_dot
    dx *= p                                             # p * (dp - sum(dp * p))
    return (dx,)


def softmax_backward(dp, cache):
    """Jacobian-vector product of softmax (derived in docs/softmax.md):
    dp_j/dx_i = p_j (delta_ij - p_i), so
      dx = p * (dp - sum_j dp_j p_j)."""
    (dx,) = map_rows(_softmax_backward_rows, [dp, cache])
    return dx
