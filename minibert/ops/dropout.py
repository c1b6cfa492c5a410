"""Dropout with an explicit, seeded random generator ("inverted" dropout, as PyTorch).

Training: each element is zeroed with probability p and the survivors are
scaled by 1/(1-p), so the expected value is unchanged and evaluation needs no
rescaling.

Where the mask is drawn depends on the generator `rng` it is given:
- a NumPy Generator (the NumPy backend; also any caller that passes one): on the
  host, then moved to the array's device (no move under NumPy);
- a device generator (CuPy's `cupy.random.Generator`, from backend.device_generator,
  as BertModel.dropout_generator() gives on a GPU): on the device, so nothing crosses
  the bus (BERT-base: ~590 MB per step if the masks were copied over).
Either way the mask is an array of the activations' dtype holding 0 and 1/(1-p): the
ops that use it (dropout, the fused Add & Norm, attention) multiply by it as it is.
"""
from __future__ import annotations

import numpy

from minibert.backend import get_xp
from minibert.backend.xp import is_host_generator


def dropout_mask(shape, p, rng, xp, dtype):
    """A (shape) array of 0 and 1/(1-p): keep with probability 1-p.

    The same comparison on either side: uniform float32 draws u, keep where u >= p.
    """
    scale = dtype.type(1.0 / (1.0 - p))
    if is_host_generator(rng):                                   # host draw (NumPy), then one copy if needed
        keep = rng.random(shape, dtype=numpy.float32) >= p
        return xp.asarray(keep.astype(dtype) * scale)
    keep = rng.random(shape, dtype=numpy.float32) >= p           # device draw: a device array already
    return keep.astype(dtype) * scale


def dropout_forward(x, p, rng=None, training=True, mask=None):
    """y = x * mask. Identity (cache None) when not training or p == 0.

    `mask` can be given explicitly (gradient checks use a fixed mask); otherwise
    it is drawn from `rng`, a numpy.random.Generator or a device generator.
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
            raise ValueError("dropout in training mode needs a seeded rng (numpy.random.Generator or a "
                             "device generator) or a mask")
        mask = dropout_mask(x.shape, p, rng, get_xp(x), x.dtype)
    return mask


def dropout_backward(dy, cache):
    """dx = dy * mask (the same elements are dropped and scaled)."""
    mask = cache
    return dy if mask is None else dy * mask
