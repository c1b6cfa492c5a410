"""Layer normalisation over the last axis (the hidden size H).

    mu    = mean_j x_j
    var   = mean_j (x_j - mu)^2          (biased, as in BERT and PyTorch)
    rstd  = 1 / sqrt(var + eps)          (eps = 1e-12 in BERT)
    xhat  = (x - mu) * rstd
    y     = gamma * xhat + beta

Each row is normalised on its own. The functions below are the formulas, written for the whole
array; on large NumPy arrays the backend runs them on cache-sized blocks of rows
(`@rows_in_blocks`, minibert/backend/blocks.py) and returns the same numbers.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from minibert.backend import get_xp
from minibert.backend.blocks import rows_in_blocks


class LayerNormCache(NamedTuple):
    """What layer_norm_backward needs from the forward."""
    xhat: Any       # (..., H) the normalised input (x - mu) * rstd
    rstd: Any       # (..., 1) 1 / sqrt(var + eps), one per row
    gamma: Any      # (H,)


@rows_in_blocks()
def layer_norm_forward(x, gamma, beta, eps):
    """x: (..., H)   gamma, beta: (H,)   ->   y: (..., H).

    cache keeps only what the backward needs: xhat, rstd and gamma.
    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py).
    """
    xp = get_xp(x)
    mu = x.mean(axis=-1, keepdims=True)                                 # (..., 1)
    xhat = x - mu                                                       # (..., H), centred
    var = xp.einsum("...k,...k->...", xhat, xhat)[..., None] / x.shape[-1]   # (..., 1), mean of squares
    rstd = 1.0 / xp.sqrt(var + eps)                                     # (..., 1)
    xhat *= rstd                                                        # normalised, in place
    y = xhat * gamma                                                    # (..., H) * (H,)
    y += beta
    return y, LayerNormCache(xhat, rstd, gamma)


@rows_in_blocks(sums=(1, 2))        # dgamma and dbeta are sums over rows: the blocks' sums are added
def layer_norm_backward(dy, cache):
    """Returns (dx, dgamma, dbeta).

    In the forward pass y = gamma * xhat + beta, so
      dbeta  = sum over rows of dy
      dgamma = sum over rows of dy * xhat
      dxhat  = dy * gamma
    and because every xhat_j depends on all x_i through mu and rstd, the
    Jacobian-vector product (derived in docs/layer_norm.md) is
      dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    The two mean terms are what a naive "dx = dxhat * rstd" forgets.
    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py).
    """
    xp = get_xp(dy)
    xhat, rstd, gamma = cache                                           # LayerNormCache, as the forward made it
    H = xhat.shape[-1]
    dy2 = dy.reshape(-1, H)                                             # (N, H), N = all rows
    dbeta = dy2.sum(axis=0)                                             # (H,)
    dgamma = xp.einsum("nk,nk->k", dy2, xhat.reshape(-1, H))            # (H,) sum of dy * xhat
    dxhat = dy * gamma                                                  # (..., H)
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)                     # (..., 1)
    mean_dxhat_xhat = xp.einsum("...k,...k->...", dxhat, xhat)[..., None] / H   # (..., 1)
    dx = dxhat                                                          # in place from here on
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd
    return dx, dgamma, dbeta
