"""Fused fast paths: two or three ops of the model run as one pass over cache-sized blocks of rows.

Each function here does the work of a composition of readable ops (named in its docstring) and
gives the same numbers, bit for bit: every element goes through the same floating-point
operations in the same order, and sums over rows are added block by block exactly as the
readable `@rows_in_blocks` op adds them. What changes is where the numbers are written:

- the composition makes a fresh (N, K) array at each step and streams it through memory; a fused
  function runs all the steps on one block of rows while it is in the CPU cache;
- outputs are written into arrays the caller owns or that are allocated once (`out=` arguments,
  written block by block), so `rows_in_blocks` finds each output *is* its input block and does
  not stitch the blocks into yet another fresh array (backend/blocks.py, "written into").

The model uses these through extra fields of its op table (minibert/model/ops_table.py,
FUSED_OPS). When a table replaces one of the ops a fused field stands for (a learner's GELU, a
counting wrapper), the fused field is dropped and the model runs the readable composition, so the
replaced op is the one that runs. tests/ops/test_fused.py checks every function here against its
composition.

    bias_gelu_forward / bias_gelu_backward         linear's bias add + exact GELU (the FFN's inner step)
    residual_layer_norm_forward / ..._backward     dropout mask * sublayer + residual, then LayerNorm (Add & Norm)
    masked_softmax_dropout_forward / softmax_dropout_backward
                                                   attention's mask add, softmax and dropout (inside the
                                                   attention op: scaled_dot_product_attention_forward)
"""
from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.backend.blocks import rows_in_blocks
from minibert.backend.grad_mode import grad_enabled
from minibert.ops.erf import _AS_A, _AS_P, erf_and_gaussian
from minibert.ops.layer_norm import LayerNormCache

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# -- bias + GELU ---------------------------------------------------------------------------------

_scratch = threading.local()               # each thread's three block-sized scratch buffers


def _scratch_buffers(shape, dtype):
    """Three (shape) arrays of dtype, reused from block to block in this thread (views of flat buffers)."""
    n = math.prod(shape)
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None or bufs[0].dtype != dtype or bufs[0].size < n:
        bufs = _scratch.bufs = [numpy.empty(n, dtype=dtype) for _ in range(3)]
    return [b[:n].reshape(shape) for b in bufs]


def _erf_and_gaussian_float32_scratch(u):
    """erf_and_gaussian(u / sqrt 2) for a float32 NumPy block u: erf.py's A&S 7.1.26, the same
    operations in the same order, every step in one of three scratch buffers reused from block to
    block (no allocation per step; the issue measured this at about half the time of fresh
    temporaries). The sign is taken from u (the same as that of u / sqrt 2).
    Returns (erf(u / sqrt 2), exp(-u^2 / 2)) in two of the scratch buffers, valid until the next block."""
    a, poly, t = _scratch_buffers(u.shape, u.dtype)
    numpy.multiply(u, _INV_SQRT2, out=a)        # x = u / sqrt 2, as gelu_forward's argument to erf
    numpy.abs(a, out=a)                         # a = |x|
    numpy.multiply(a, _AS_P, out=t)
    t += 1.0
    numpy.reciprocal(t, out=t)                  # t = 1 / (1 + p a)
    numpy.multiply(t, _AS_A[4], out=poly)
    for c in _AS_A[3::-1]:                      # Horner, as erf.py
        poly += c
        poly *= t
    numpy.multiply(a, a, out=a)                 # a is not needed any more: exp(-a^2) in its buffer
    numpy.negative(a, out=a)
    numpy.exp(a, out=a)
    poly *= a
    numpy.subtract(1.0, poly, out=poly)         # erf(|x|)
    numpy.copysign(poly, u, out=poly)           # erf is odd
    return poly, a


@rows_in_blocks()
def _bias_gelu_into(z, bias, dgelu):
    """Per block: u = z + bias (in z), GELU'(u) into dgelu, GELU(u) over z. Returns (z, dgelu).

    The operations of `z += bias` (linear_forward) and gelu_forward, in their order; only the
    destinations differ (gelu_forward makes y = x * cdf a new array and keeps GELU' in phi's).
    """
    z += bias                               # u = x W^T + b, as linear_forward adds it
    if isinstance(z, numpy.ndarray) and z.dtype == numpy.float32:
        cdf, pdf = _erf_and_gaussian_float32_scratch(z)
    else:                                   # float64 (Chebyshev erf), CuPy: erf.py's function
        cdf, pdf = erf_and_gaussian(z * _INV_SQRT2)
    cdf += 1.0
    cdf *= 0.5                              # Phi(u)
    if dgelu is not None:                   # None at inference (no_grad): the derivative is not made
        pdf *= _INV_SQRT_2PI                # phi(u)
        pdf *= z
        get_xp(z).add(pdf, cdf, out=dgelu)  # GELU'(u) = Phi(u) + u phi(u), straight into the cache array
    z *= cdf                                # GELU(u) = u Phi(u), over u: u is not needed any more
    return z, dgelu


def bias_gelu_forward(z, bias):
    """Fuses linear_forward's bias add with gelu_forward:  y = GELU(z + bias), written over z.

    z: (..., I) the matmul x W^T, without its bias (the caller owns it: it is overwritten)
    bias: (I,)   ->   y: (..., I) (z itself), cache: GELU'(z + bias), as gelu_forward's cache.

    Composition it replaces: `u = z + bias` (in linear_forward), `y, d = gelu_forward(u)`.
    Why: on the FFN's (B, T, 4H) activation (16 MB for BERT-mini at 32 x 128) the composition makes
    two fresh full-size arrays (y and the stitched derivative) and streams each step through memory;
    here the bias add, the erf and both outputs run on one cache-sized block at a time.
    Inside no_grad() (model.inference()) GELU'(u) is not computed: the cache is None.
    """
    dgelu = get_xp(z).empty_like(z) if grad_enabled() else None
    y, dgelu = _bias_gelu_into(z, bias, dgelu)
    return y, dgelu


@rows_in_blocks()
def _mul_into(dy, cache):
    dy *= cache                             # dx = dy * GELU'(u), in dy's buffer
    return dy


def bias_gelu_backward(dy, cache):
    """Fuses gelu_backward with linear_backward's db:  returns (du, dbias); du is written over dy.

    dy: (..., I) the gradient of GELU's output (the caller owns it: it is overwritten)
    cache: GELU'(u) from bias_gelu_forward   ->   du = dy * GELU'(u) (..., I), dbias = sum of du's rows (I,).

    dbias is summed over the whole array as linear_backward sums db (`dy2.sum(axis=0)`): the same
    numbers as the composition. The multiply runs in cache-sized blocks and in place (no fresh
    16 MB array).
    """
    du = _mul_into(dy, cache)
    dbias = du.reshape(-1, du.shape[-1]).sum(axis=0)       # (I,), as linear_backward's db
    return du, dbias


# -- residual add + LayerNorm (Add & Norm) -------------------------------------------------------

class ResidualLayerNormCache(NamedTuple):
    """What residual_layer_norm_backward needs."""
    layer_norm: LayerNormCache      # xhat (N, H), rstd (N, 1), gamma (H,)
    mask: Any                       # the dropout mask (0 or 1/(1-p)), or None without dropout


@rows_in_blocks()
def _residual_layer_norm_into(x, sub, mask, gamma, beta, eps, y, xhat, keep=True):
    """Per block: s = sub * mask + x, LayerNorm(s) into y, its xhat into xhat. Returns (y, xhat, rstd).

    The operations of dropout_forward (`x * mask`), add_norm_forward (`s + x`) and
    layer_norm_forward, in their order.
    """
    xp = get_xp(x)
    s = y                                                               # s lives in y's rows until y is made
    if mask is not None:
        xp.multiply(sub, mask, out=s)                                   # dropout(sub)
        s += x                                                          # the residual
    else:
        xp.add(sub, x, out=s)                                           # the residual (the same sum)
    mu = s.mean(axis=-1, keepdims=True)                                 # (n, 1)
    xhat = xp.subtract(s, mu, out=xhat)                                 # centred (a block temporary under no_grad)
    var = xp.einsum("...k,...k->...", xhat, xhat)[..., None] / s.shape[-1]
    rstd = 1.0 / xp.sqrt(var + eps)                                     # (n, 1)
    xhat *= rstd
    xp.multiply(xhat, gamma, out=y)                                     # s is not needed any more
    y += beta
    return y, (xhat if keep else None), rstd


def residual_layer_norm_forward(x, sub, gamma, beta, eps, mask=None):
    """Fuses Add & Norm's forward:  y = LayerNorm(x + dropout(sub)),  dropout as `sub * mask`.

    x, sub: (..., H)   gamma, beta: (H,)   mask: (..., H) of 0 and 1/(1-p) (dropout_mask), or None
    ->   y: (..., H), cache: ResidualLayerNormCache(LayerNormCache(xhat, rstd, gamma), mask).

    Composition it replaces: `d, mask = dropout_forward(sub, ...)`, `s = d + x`,
    `y, c = layer_norm_forward(s, gamma, beta, eps)`: three full-size temporaries (d, s, and the
    stitched y and xhat) become none; the steps run on one block of rows at a time.
    """
    xp = get_xp(x)
    keep = grad_enabled()                   # inside no_grad() x-hat stays a block temporary: cache's xhat None
    y, xhat = xp.empty_like(x), (xp.empty_like(x) if keep else None)
    y, xhat, rstd = _residual_layer_norm_into(x, sub, mask, gamma, beta, eps, y, xhat, keep)
    return y, ResidualLayerNormCache(LayerNormCache(xhat, rstd, gamma), mask)


@rows_in_blocks(sums=(2, 3))        # dgamma and dbeta: the blocks' sums are added, as in layer_norm_backward
def _residual_layer_norm_backward_into(dy, xhat, rstd, gamma, mask, dx, dsub):
    """Per block: layer_norm_backward's formula with dx written into dx, then dsub = dx * mask.
    Returns (dx, dsub, dgamma, dbeta)."""
    xp = get_xp(dy)
    H = xhat.shape[-1]
    dy2 = dy.reshape(-1, H)
    dbeta = dy2.sum(axis=0)                                             # (H,)
    dgamma = xp.einsum("nk,nk->k", dy2, xhat.reshape(-1, H))            # (H,)
    xp.multiply(dy, gamma, out=dx)                                      # dxhat, in dx's buffer
    mean_dxhat = dx.mean(axis=-1, keepdims=True)
    mean_dxhat_xhat = xp.einsum("...k,...k->...", dx, xhat)[..., None] / H
    dx -= mean_dxhat
    dx -= xhat * mean_dxhat_xhat
    dx *= rstd                                                          # ds: the residual's gradient
    if mask is not None:
        xp.multiply(dx, mask, out=dsub)                                 # dropout backward
    else:
        dsub[...] = dx                                                  # equal numbers, its own array
    return dx, dsub, dgamma, dbeta


def residual_layer_norm_backward(dy, cache):
    """Fuses Add & Norm's backward. Returns (dx, dsub, dgamma, dbeta), each its own array.

    Composition it replaces: `ds, dgamma, dbeta = layer_norm_backward(dy, c)`, `dx = ds`,
    `dsub = dropout_backward(ds, mask)` (or a copy of ds): dx and dsub are written block by block
    into two arrays allocated once, instead of stitched from fresh blocks and multiplied in
    another pass.
    """
    xp = get_xp(dy)
    (xhat, rstd, gamma), mask = cache
    dx, dsub = xp.empty_like(dy), xp.empty_like(dy)
    return _residual_layer_norm_backward_into(dy, xhat, rstd, gamma, mask, dx, dsub)


# -- mask add + softmax + dropout (inside attention) ---------------------------------------------

@rows_in_blocks()
def _masked_softmax_dropout_into(scores, bias, mask, dropped, T):
    """Per block of batch rows: scores (n, A*T*T) += bias (n, T) broadcast over heads and queries,
    softmax over each row of T keys in place, dropped = probs * mask into `dropped`.
    Returns (scores, dropped): the probabilities and the dropped-out weights."""
    xp = get_xp(scores)
    s = scores.reshape(len(scores), -1, T)                  # (n, A*T, T), a view
    if bias is not None:
        s += bias[:, None, :]                               # (n, 1, T): masked keys -> dtype minimum
    p = s.reshape(-1, T)                                    # (n*A*T, T) rows, as softmax_forward's blocks
    p -= p.max(axis=-1, keepdims=True)
    xp.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    if mask is not None:
        xp.multiply(scores, mask, out=dropped)              # dropout: probs * mask
    return scores, dropped


def masked_softmax_dropout_forward(scores, mask_bias, mask):
    """Fuses attention's mask add, softmax and dropout:  probs = softmax(scores + mask_bias) over
    scores, dropped = probs * mask.

    scores: (B, A, T, T) (the caller owns it: overwritten by the probabilities)
    mask_bias: (B, 1, 1, T) or None   mask: (B, A, T, T) of 0 and 1/(1-p) (dropout_mask), or None
    ->   (probs, dropped): dropped is probs itself without a mask, as dropout_forward's identity.

    Composition it replaces (ops/attention.py): `scores += mask_bias`,
    `probs = softmax_forward(scores, inplace=True)`, `dropped = dropout_forward(probs, ...)`: three
    passes over the (B, A, T, T) scores (8 MB a layer for BERT-mini at 32 x 128) become one, a batch
    row (A T T numbers, 256 KB at T = 128) at a time.
    """
    B, A, T, _ = scores.shape
    xp = get_xp(scores)
    flat = scores.reshape(B, A * T * T)
    bias = None if mask_bias is None else mask_bias.reshape(B, T)
    mask_flat = None if mask is None else mask.reshape(B, A * T * T)
    dropped = None if mask is None else xp.empty_like(flat)
    probs, dropped = _masked_softmax_dropout_into(flat, bias, mask_flat, dropped, T)
    probs = probs.reshape(B, A, T, T)
    return probs, (probs if mask is None else dropped.reshape(B, A, T, T))


@rows_in_blocks()
def _softmax_dropout_backward_into(dp, p, mask):
    xp = get_xp(dp)
    if mask is not None:
        dp *= mask                                          # dropout backward, in place
    row_dot = xp.einsum("...k,...k->...", dp, p)[..., None]
    dp -= row_dot
    dp *= p                                                 # p * (dp - sum(dp * p))
    return dp


def softmax_dropout_backward(dp, probs, mask):
    """Fuses dropout_backward and softmax_backward: dscores = p * (dp*mask - sum(dp*mask * p)), over dp.

    dp: (..., T) the gradient of the dropped-out weights (the caller owns it: overwritten)
    probs: (..., T)   mask: the dropout mask or None   ->   dscores: (..., T), dp's array.
    The same blocks of rows as softmax_backward; one pass instead of two and no fresh arrays.
    """
    return _softmax_dropout_backward_into(dp, probs, mask)


def fusable_mask_bias(scores, mask_bias) -> bool:
    """Whether masked_softmax_dropout_forward takes this mask: None or one bias per key, (B, 1, 1, T)."""
    return mask_bias is None or mask_bias.shape == (scores.shape[0], 1, 1, scores.shape[-1])
