"""Every matrix product of the model, in float32 or in mixed precision (float16 in, float32 sums).

All of BERT's matmuls call `matmul(a, b)`: the dense layers' forward and backward
(so also Q/K/V, the attention output, the FFN, the pooler, the NSP head and the
tied MLM decoder, which are dense layers) and attention's Q K^T and P V with
their backward.

Default: `matmul(a, b)` returns `a @ b` and does nothing else, so every result
is bit for bit what it was before mixed precision existed.

Inside `with mixed_precision(): ...` it computes what a GPU's float16 matmul
computes in mixed-precision training (PyTorch's autocast):

    C = fp16( fp16(A) @ fp16(B) )     products and sums in float32, C stored in float16

and hands C back as float32, so everything between the matmuls (bias adds,
LayerNorm, softmax, GELU, the loss, the gradient buffers) stays float32.
fp16(x) rounds to the nearest float16: |x| > 65504 becomes inf, |x| < 3e-8
becomes 0 (see docs/mixed_precision.md for why that needs loss scaling).

- CuPy: really float16. The operands are cast to float16 and `a16 @ b16` calls
  cuBLAS gemmEx with float16 A, B and C and compute type CUBLAS_COMPUTE_32F
  (CuPy's default for float16: float32 accumulation; tensor cores on Volta and
  later; CUPY_TF32 does not affect float16). The float16 C is then cast to float32.
- NumPy: there is no float16 BLAS (NumPy's own float16 matmul is a slow loop),
  so the same numbers are emulated with float32 sgemm: round A and B to float16
  and back, multiply in float32, round C to float16 and back. Only the order of
  the float32 additions can differ from the GPU's.

Mixed precision needs float32 operands (float32 master weights); a float64
model raises a TypeError that says so.

Loss scaling keeps small float16 gradients from underflowing (docs/mixed_precision.md); its two
operations on the device arrays are here, `has_overflow` and `unscale`. The policy (when to skip a
step, how the scale grows and shrinks) is minibert/train/amp.py's LossScaler.
"""
from __future__ import annotations

import contextlib

import numpy

from minibert.backend.blocks import matmul_rows
from minibert.backend.xp import get_xp

_state = {"fp16": False}


@contextlib.contextmanager
def mixed_precision(enabled: bool = True):
    """`with mixed_precision(): ...` runs every `matmul` in the block with float16 operands;
    `mixed_precision(False)` turns it off for a block. The previous mode comes back on exit."""
    previous = _state["fp16"]
    _state["fp16"] = bool(enabled)
    try:
        yield
    finally:
        _state["fp16"] = previous


def fp16_enabled() -> bool:
    """Whether matmuls currently run in mixed precision."""
    return _state["fp16"]


def matmul(a, b):
    """a @ b, or its mixed-precision version inside `mixed_precision()` (float32 result either way).
    a @ b runs on the row-block threads when MINIBERT_MATMUL_ROWS=1 (blocks.matmul_rows; else it is a @ b)."""
    if not _state["fp16"]:
        return matmul_rows(a, b)
    return matmul_fp16(a, b)


def matmul_fp16(a, b):
    """fp16(fp16(a) @ fp16(b)) with float32 accumulation, returned as float32. a, b: float32 (or float16)."""
    for x in (a, b):
        if x.dtype not in (numpy.float32, numpy.float16):
            raise TypeError(f"mixed precision (fp16) matmuls take float32 arrays (float32 master weights); "
                            f"got {x.dtype}. Build the model with dtype='float32'.")
    xp = get_xp(a, b)
    with numpy.errstate(over="ignore", invalid="ignore"):   # |x| > 65504 -> inf (and inf*0 -> NaN) silently, as on
                                                            # a GPU: the loss scaler looks for them in the gradients
        a16 = a.astype(numpy.float16)
        b16 = b.astype(numpy.float16)
        if xp is numpy:                            # emulation: float32 sgemm on float16 values
            c = a16.astype(numpy.float32) @ b16.astype(numpy.float32)
            c = c.astype(numpy.float16)            # C is stored in float16, as cuBLAS writes it
        else:                                      # CuPy: cuBLAS float16 GEMM, float32 compute, float16 C
            c = a16 @ b16
    return c.astype(numpy.float32)


# -- loss scaling: the device work (the policy is train/amp.py's LossScaler) ----------------------

def has_overflow(grads: dict, names=None) -> bool:
    """True when any entry of the named gradients (default: all) is inf or NaN.

    One reduction per array on the device (isfinite(g).all()), the flags
    combined on the device, and one host sync for the final boolean.
    """
    names = list(grads if names is None else names)
    if not names:
        return False
    xp = get_xp(grads[names[0]])
    finite = xp.stack([xp.isfinite(grads[k]).all() for k in names])   # (n_arrays,) booleans, on the device
    return not bool(finite.all())                                       # the one device -> host transfer


def unscale(grads: dict, scale: float, names=None) -> None:
    """Divide the named gradients (default: all) by `scale`, in place: g *= 1/scale.

    With a power-of-two scale the multiplication is exact, so the unscaled
    gradient is the one a backward without scaling would have produced in float32.
    """
    inv = 1.0 / scale
    for k in (grads if names is None else names):
        grads[k] *= inv
