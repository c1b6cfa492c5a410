"""BERT's pooler: a dense layer and tanh on the first token ([CLS]).

    pooled = tanh(x[:, 0] W_p^T + b_p)        (B, H)

Its output feeds next-sentence prediction and sentence classification.
"""
from __future__ import annotations

from minibert.backend import get_xp
from minibert.ops.activations import tanh_backward, tanh_forward
from minibert.ops.linear import linear_backward, linear_forward


def pooler_forward(x, weight, bias):
    """x: (B, T, H) -> pooled: (B, H)."""
    z, c_dense = linear_forward(x[:, 0], weight, bias)     # (B,H) @ (H,H) -> (B,H)
    pooled, c_tanh = tanh_forward(z)
    return pooled, (c_dense, c_tanh, x.shape)


def pooler_backward(dpooled, cache):
    """Returns (dx (B, T, H), dW, db); dx is zero except at position 0."""
    c_dense, c_tanh, x_shape = cache
    dz = tanh_backward(dpooled, c_tanh)
    dfirst, dw, db = linear_backward(dz, c_dense)
    dx = get_xp(dfirst).zeros(x_shape, dtype=dfirst.dtype)
    dx[:, 0] = dfirst
    return dx, dw, db
