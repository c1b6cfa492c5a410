"""Softmax over the last axis, and its backward.

    p_i = exp(x_i - m) / sum_j exp(x_j - m),   m = max_j x_j

Subtracting the max changes nothing mathematically (it cancels) but keeps
exp() from overflowing on large logits.
"""
from __future__ import annotations

from minibert.backend import get_xp


def softmax_forward(x, inplace=False):
    """x: (..., K) -> p: (..., K). cache: p. With inplace=True, x is overwritten by p
    (saves a full-size temporary on the (B, A, T, T) attention scores)."""
    xp = get_xp(x)
    p = x if inplace else x.copy()
    p -= p.max(axis=-1, keepdims=True)
    xp.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p, p


def softmax_backward(dp, cache):
    """Jacobian-vector product of softmax (derived in docs/softmax.md):
    dp_j/dx_i = p_j (delta_ij - p_i), so
      dx = p * (dp - sum_j dp_j p_j)."""
    p = cache
    xp = get_xp(p)
    row_dot = xp.einsum("...k,...k->...", dp, p)[..., None]   # sum_j dp_j p_j, (..., 1), no (..., K) temporary
    dx = dp - row_dot
    dx *= p                                             # p * (dp - sum(dp * p))
    return dx
