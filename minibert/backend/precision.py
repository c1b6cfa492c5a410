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

The precision setting (`set_precision`, the `--precision` flag of pretrain and finetune) names what
float32 matmuls compute (docs/mixed_precision.md, "Choosing a precision"):

    fp32   full float32 products and sums (cuBLAS CUBLAS_COMPUTE_32F). The NumPy default; what
           parity tests pin on a GPU.
    tf32   CuPy only (Ampere or later), the default there: cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32,
           tensor cores reading each float32 operand rounded to TF32 (10-bit mantissa, float32 range)
           and summing in float32. On NumPy it is an error (PrecisionError): there is no TF32 to run,
           and a silent no-op would let a run claim numbers it did not compute.
    fp16   the mixed precision above (float16 matmuls inside autocast, with loss scaling in training);
           float32 matmuls outside it (evaluation) stay full fp32.

How CuPy is told: `cupy._core.set_compute_type(numpy.float32, COMPUTE_TYPE_TF32 / COMPUTE_TYPE_DEFAULT)`,
the setter CuPy's own tests use (cupy/_core/_routines_linalg.pyx; it is what the documented environment
variable CUPY_TF32=1 sets, but CUPY_TF32 is read only once, at CuPy's first float32 matmul, so it cannot
be switched in a running process). That covers cupy.matmul / dot on 2-D operands (gemmEx). Stacks of
matrices (attention) go through backend/kernels.py: strided_batched_matmul instead of cupy.matmul, which
copies them to contiguous memory and calls a GEMM that ignores the compute type.

Loss scaling keeps small float16 gradients from underflowing (docs/mixed_precision.md); its two
operations on the device arrays are here, `has_overflow` and `unscale`. The policy (when to skip a
step, how the scale grows and shrinks) is minibert/train/amp.py's LossScaler.
"""
from __future__ import annotations

import contextlib

import numpy

from minibert.backend.blocks import matmul_rows
from minibert.backend.kernels import batched_gemm_available, strided_batched_matmul
from minibert.backend.xp import BackendError, _modules, get_xp, name

_state = {"fp16": False, "precision": None,      # precision None: the backend's default (default_precision)
          "cupy_applied": None}                    # the precision CuPy's compute type was last set for

PRECISIONS = ("fp32", "tf32", "fp16")


class PrecisionError(BackendError):
    """A precision that the selected backend cannot compute (tf32 on NumPy), or an unknown name."""


def default_precision(backend_name: str | None = None) -> str:
    """tf32 on CuPy (the tensor cores of an Ampere-or-later GPU), fp32 everywhere else."""
    return "tf32" if (backend_name or name()) == "cupy" else "fp32"


def set_precision(precision: str | None) -> str:
    """Select the matmuls' precision for the selected backend (None: its default); returns the name.

    fp32 / tf32 set CuPy's compute type for float32 matmuls; fp16 sets fp32 there and leaves the float16
    matmuls to `mixed_precision()` (entered by the training step's autocast with a loss scaler).
    """
    precision = precision or default_precision()
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if precision == "tf32" and name() != "cupy":
        raise PrecisionError(f"precision tf32 needs the cupy backend (TF32 tensor cores, Ampere or later); the "
                             f"{name()} backend computes float32 matmuls in full float32: use fp32 (or fp16)")
    _state["precision"] = precision
    if name() == "cupy":
        _cupy_compute_type(tf32=precision == "tf32")
    return precision


@contextlib.contextmanager
def using_precision(precision: str | None):
    """`with using_precision("fp32"): ...` sets the precision for a block (set_precision) and puts the
    previous setting back on exit (on CuPy, its compute type too). Yields the name in effect."""
    previous = _state["precision"]
    try:
        yield set_precision(precision)
    finally:
        _state["precision"] = previous
        if name() == "cupy" and "cupy" in _modules:
            _cupy_compute_type(tf32=get_precision() == "tf32")


def get_precision() -> str:
    """The precision in effect: the one set, else the selected backend's default."""
    return _state["precision"] or default_precision()


def _tf32() -> bool:
    return get_precision() == "tf32"


def _cupy_compute_type(tf32: bool) -> None:
    """CuPy's compute type for float32 matmuls: TF32 or the default (full float32). CuPy warns and keeps
    the default on GPUs older than Ampere (compute capability < 8.0)."""
    cupy = _modules["cupy"]
    linalg = cupy._core._routines_linalg
    cupy._core.set_compute_type(numpy.float32, linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT)
    _state["cupy_applied"] = get_precision()


def _cupy_compute_type_follows(a) -> None:
    """Before a CuPy matmul: CuPy's compute type set for the precision in effect, if it is not yet (a
    program that never called set_precision gets the default, tf32, on its first matmul)."""
    if _state["cupy_applied"] != get_precision() and "cupy" in _modules and isinstance(a, _modules["cupy"].ndarray):
        _cupy_compute_type(tf32=_tf32())


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
        if batched_gemm_available(a, b):    # CuPy stacks (attention): one GEMM, no copies, the compute type
            return strided_batched_matmul(a, b, tf32=_tf32())
        _cupy_compute_type_follows(a)       # CuPy 2-D matmuls (gemmEx) read CuPy's compute type
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
        elif batched_gemm_available(a16, b16):     # CuPy stacks: strided-batched GEMM on the float16 copies
            c = strided_batched_matmul(a16, b16, tf32=False)   # (astype keeps a transposed view's layout)
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
