"""Two whole-array reductions the training step needs once per parameter: sum(g * g) and "all finite".

    sum_of_squares(g)   sum of g's squared entries, a 0-d array on g's device   (the gradient norm)
    all_finite(g)       whether no entry of g is inf or NaN, a 0-d bool array     (loss scaling)

Neither reads anything back to the host: the training step gathers their results on the device and
reads them once per optimizer step (minibert/train/step.py).

Per backend:
- NumPy: `(g * g).sum()` and `isfinite(g).all()`, the readable formulas. They square into a temporary
  as large as g, but their pairwise sum is the one every NumPy run has logged; a dot product would add
  in another order and change the norm's last bits (and so the clipped updates).
- CuPy: one `cupy.ReductionKernel` each, a single pass over g with no temporary (`cupy.vdot` would
  do `(a * b).sum()` through a temporary whenever CUB is enabled, CuPy's default).
- Another NumPy-like module (the strict CuPy stand-in of the tests): `vdot(g, g)`, one operation.
"""
from __future__ import annotations

import functools

import numpy

from minibert.backend.xp import get_xp


def _is_cupy(xp) -> bool:
    return getattr(xp, "__name__", "") == "cupy"


@functools.lru_cache(maxsize=None)
def _cupy_kernels(cupy):
    """The two CuPy reduction kernels (compiled at their first call, once per dtype)."""
    sum_sq = cupy.ReductionKernel(
        "T x", "T y",                      # input g (float32 or float64), output of the same dtype
        "x * x",                           # map: each entry squared, in registers (no temporary array)
        "a + b",                           # reduce: summed in a tree
        "y = a", "0", "minibert_sum_of_squares")
    finite = cupy.ReductionKernel(
        "T x", "bool y",
        "isfinite(x)",                     # map: True for a finite entry
        "a && b",                          # reduce: all of them
        "y = a", "true", "minibert_all_finite")
    return sum_sq, finite


def sum_of_squares(g):
    """sum(g * g) over every entry of g, as a 0-d array of g's dtype on g's device (nothing is read)."""
    xp = get_xp(g)
    if xp is numpy:
        return (g * g).sum()                                  # the host's numbers (pairwise sum)
    if _is_cupy(xp):
        return _cupy_kernels(xp)[0](g)                        # one pass, no temporary
    flat = g.reshape(-1)
    return xp.vdot(flat, flat)                                # g . g, one operation


def all_finite(g):
    """Whether every entry of g is finite (no inf, no NaN), as a 0-d bool array on g's device."""
    xp = get_xp(g)
    if _is_cupy(xp):
        return _cupy_kernels(xp)[1](g)                        # one pass, no boolean temporary
    return xp.isfinite(g).all()
