"""Linear (dense) layer: y = x W^T + b.

Shapes (legend used across minibert): B batch, T tokens, H hidden, I
intermediate, A heads, d head size, V vocabulary, N = B*T rows.
The weight is stored (out, in), PyTorch's and Hugging Face's layout, so a real
checkpoint's `...dense.weight` drops in unchanged. (Google's TF checkpoints
store the transpose, (in, out).)

Mixed precision: the three matmuls go through `matmul`, which inside
`mixed_precision()` rounds x, W and dy to float16 and sums in float32
(minibert/backend/precision.py); the bias add and db stay float32.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from minibert.backend.precision import matmul


class LinearCache(NamedTuple):
    """What linear_backward needs from the forward."""
    x: Any              # (..., in) the input
    weight: Any         # (out, in)
    has_bias: bool      # whether there is a db to return


def linear_forward(x, weight, bias=None):
    """y = x @ W^T + b.

    x: (..., in)   weight: (out, in)   bias: (out,) or None   ->   y: (..., out)
    cache: what the backward needs, LinearCache(x, weight, has_bias).
    """
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1])            # (N, in): one big 2-D matmul, not a loop over B
    y = matmul(x2, weight.T)                   # (N, in) @ (in, out) -> (N, out); fp16 operands under mixed precision
    if bias is not None:
        y += bias                              # broadcast over rows, in place (no temporary)
    return y.reshape(*lead, weight.shape[0]), LinearCache(x, weight, bias is not None)


def linear_backward(dy, cache, need_dx=True):
    """Gradients of y = x W^T + b.

    In the forward pass y[n, o] = sum_i x[n, i] W[o, i] + b[o], so
      dx = dy @ W          (N, out) @ (out, in) -> (N, in)
      dW = dy^T @ x        (out, N) @ (N, in)   -> (out, in)
      db = sum_n dy[n]     (out,)
    Returns (dx, dW, db); dx is None when need_dx is False (the first layer's
    input, or a frozen stack below), db is None when there was no bias.
    """
    x, weight, has_bias = cache                # LinearCache, as the forward made it
    x2 = x.reshape(-1, x.shape[-1])            # (N, in)
    dy2 = dy.reshape(-1, dy.shape[-1])         # (N, out)
    dW = matmul(dy2.T, x2)                     # (out, N) @ (N, in): dy is rounded to fp16 here (why loss scaling)
    db = dy2.sum(axis=0) if has_bias else None
    dx = matmul(dy2, weight).reshape(x.shape) if need_dx else None   # (N, out) @ (out, in) -> (N, in)
    return dx, dW, db
