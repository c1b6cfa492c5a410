"""Layer normalisation over the last axis (the hidden size H).

    mu    = mean_j x_j
    var   = mean_j (x_j - mu)^2          (biased, as in BERT and PyTorch)
    rstd  = 1 / sqrt(var + eps)          (eps = 1e-12 in BERT)
    xhat  = (x - mu) * rstd
    y     = gamma * xhat + beta

Each row is normalised on its own, so on NumPy the rows are processed in
blocks on all cores (`map_rows`, ops/parallel.py); the formulas below are
what runs on each block.
"""
from __future__ import annotations

from minibert.backend import get_xp
from minibert.backend.blocks import map_rows


def _layer_norm_rows(x, gamma, beta, eps):
    """The forward formula on rows x: (..., H) -> (y, xhat, rstd)."""
    xp = get_xp(x)
    mu = x.mean(axis=-1, keepdims=True)                                 # (..., 1)
    xhat = x - mu                                                       # (..., H), centred
    var = xp.einsum("...k,...k->...", xhat, xhat)[..., None] / x.shape[-1]   # (..., 1), mean of squares
    rstd = 1.0 / xp.sqrt(var + eps)                                     # (..., 1)
    xhat *= rstd                                                        # normalised, in place
    y = xhat * gamma
    y += beta
    return y, xhat, rstd


def layer_norm_forward(x, gamma, beta, eps):
    """x: (..., H)   gamma, beta: (H,)   ->   y: (..., H).

    cache keeps only what the backward needs: xhat, rstd and gamma.
    """
    y, xhat, rstd = map_rows(lambda rows: _layer_norm_rows(rows, gamma, beta, eps), [x])
    return y, (xhat, rstd, gamma)


def _layer_norm_backward_rows(dy, xhat, rstd, gamma):
    """The backward formula on rows -> (dx, dgamma, dbeta); dgamma and dbeta summed over these rows."""
    xp = get_xp(dy)
    H = xhat.shape[-1]
    dy2 = dy.reshape(-1, H)
    dbeta = dy2.sum(axis=0)                                             # (H,)
    dgamma = xp.einsum("nk,nk->k", dy2, xhat.reshape(-1, H))            # (H,) sum of dy * xhat
    dxhat = dy * gamma                                                  # (..., H)
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)                     # (..., 1)
    mean_dxhat_xhat = xp.einsum("...k,...k->...", dxhat, xhat)[..., None] / H   # (..., 1)
    dx = dxhat
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd
    return dx, dgamma, dbeta


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
    """
    xhat, rstd, gamma = cache
    return map_rows(lambda d, xh, r: _layer_norm_backward_rows(d, xh, r, gamma), [dy, xhat, rstd], reduce=(1, 2))
