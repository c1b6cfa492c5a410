"""Dropout with an explicit, seeded random generator ("inverted" dropout, as PyTorch).

Training: each element is zeroed with probability p and the survivors are
scaled by 1/(1-p), so the expected value is unchanged and evaluation needs no
rescaling. The mask is drawn on the host with a NumPy Generator (the same
numbers on CPU and GPU), then moved to the array's device.
"""
from __future__ import annotations

import math

import numpy

from minibert.backend import get_xp
from minibert.backend.blocks import BLOCK_ELEMENTS


def dropout_mask(shape, p, rng, xp, dtype):
    """A (shape) array of 0 and 1/(1-p): keep with probability 1-p."""
    if math.prod(shape) > 2 * BLOCK_ELEMENTS:
        return xp.asarray(_dropout_mask_in_blocks(shape, p, rng, dtype))
    keep = rng.random(shape, dtype=numpy.float32) >= p
    return xp.asarray(keep.astype(dtype) * dtype.type(1.0 / (1.0 - p)))


def _dropout_mask_in_blocks(shape, p, rng, dtype):
    """dropout_mask's formula on flat pieces of BLOCK_ELEMENTS, written into one array: the same numbers.

    The generator fills an array in C order, and drawing it piece after piece continues the same
    stream (tests/ops/test_fused.py checks the mask and the generator's next number). The formula
    on the whole array makes four full passes over memory (the uniforms, the comparison, astype, the
    scale: a BERT-mini attention mask at 32 x 128 is 8 MB a layer); here the uniforms and the
    booleans stay in two block-sized buffers and each block of the mask is written once.
    Runs in the calling thread, blocks in order: the random stream must not depend on threads."""
    mask = numpy.empty(shape, dtype=dtype)
    flat = mask.reshape(-1)
    uniform = numpy.empty(BLOCK_ELEMENTS, dtype=numpy.float32)
    keep = numpy.empty(BLOCK_ELEMENTS, dtype=bool)
    scale = dtype.type(1.0 / (1.0 - p))
    for i in range(0, flat.size, BLOCK_ELEMENTS):
        n = min(BLOCK_ELEMENTS, flat.size - i)
        rng.random(n, dtype=numpy.float32, out=uniform[:n])
        numpy.greater_equal(uniform[:n], p, out=keep[:n])
        numpy.multiply(keep[:n], scale, out=flat[i:i + n])      # 0 or 1/(1-p), as keep.astype(dtype) * scale
    return mask


def dropout_forward(x, p, rng=None, training=True, mask=None):
    """y = x * mask. Identity (cache None) when not training or p == 0.

    `mask` can be given explicitly (gradient checks use a fixed mask); otherwise
    it is drawn from `rng`, a numpy.random.Generator.
    """
    mask = mask_to_use(x, p, rng, training, mask)
    if mask is None:
        return x, None
    return x * mask, mask


def mask_to_use(x, p, rng=None, training=True, mask=None):
    """The mask dropout_forward multiplies x by: None when not training or p == 0, else `mask`
    if given, else one drawn from `rng`. (A fused Add & Norm draws it here and multiplies itself.)"""
    if not training or p == 0.0:
        return None
    if mask is None:
        if rng is None:
            raise ValueError("dropout in training mode needs a seeded rng (numpy.random.Generator) or a mask")
        mask = dropout_mask(x.shape, p, rng, get_xp(x), x.dtype)
    return mask


def dropout_backward(dy, cache):
    """dx = dy * mask (the same elements are dropped and scaled)."""
    mask = cache
    return dy if mask is None else dy * mask
