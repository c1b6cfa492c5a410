"""Softmax over the last axis, and its backward.

    p_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j

Subtracting the max changes nothing mathematically (it cancels) but keeps
exp() from overflowing on large logits. Rows are independent: on large NumPy
arrays the backend runs both functions on cache-sized blocks of rows
(`@rows_in_blocks`, minibert/backend/blocks.py), with the same numbers.
"""
from __future__ import annotations

from minibert.backend import get_xp
from minibert.backend.blocks import rows_in_blocks


@rows_in_blocks()
def softmax_forward(x, inplace=False):
    """x: (..., K) -> p: (..., K). cache: p. With inplace=True, x is overwritten by p
    (saves a full-size temporary on the (B, A, T, T) attention scores).
    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py)."""
    xp = get_xp(x)
    p = x if inplace else x.copy()
    p -= p.max(axis=-1, keepdims=True)                  # x - m: every exponent <= 0, exp cannot overflow
    xp.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)                  # (..., K) / (..., 1): rows sum to 1
    return p, p


@rows_in_blocks()
def softmax_backward(dp, cache):
    """Jacobian-vector product of softmax (derived in docs/softmax.md):
    dp_j/dx_i = p_j (delta_ij - p_i), so
      dx = p * (dp - sum_j dp_j p_j).
    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py)."""
    p = cache
    xp = get_xp(p)
    row_dot = xp.einsum("...k,...k->...", dp, p)[..., None]   # sum_j dp_j p_j, (..., 1), no (..., K) temporary
    dx = dp - row_dot
    dx *= p                                                   # p * (dp - sum(dp * p))
    return dx
