"""CuPy's kernel factories, compiled on first use and cached: the GPU side of minibert/ops/fused.py.

The kernels' CUDA sources live next to their NumPy twins (minibert/ops/fused.py, minibert/backend/xp.py);
this file only turns a source into a CuPy kernel object, once per source, so that CuPy stays imported
in minibert/backend/ alone and only inside functions (`import minibert` never needs CuPy).

    elementwise_kernel(in_params, out_params, body, name)   cupy.ElementwiseKernel, cached
    reduction_kernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name)
                                                             cupy.ReductionKernel, cached
    raw_kernel(source, name)                                 cupy.RawKernel (NVRTC), cached
    fused_kernels_available(array)                           whether the fused CUDA kernels run on it
    launch_rows(kernel, n_rows, threads, args)               one block per row (row-wise kernels)

What CuPy does with the objects (its documented API): an ElementwiseKernel wraps `body` in a loop over
the broadcast elements of its arguments (one CUDA thread per element) and compiles it per dtype on the
first call; a ReductionKernel maps every element, reduces along the given axis and post-maps the result;
a RawKernel is the CUDA source as it is, launched as `kernel(grid, block, args)` with cupy arrays passed
as pointers (their data must be C-contiguous: the callers make sure).

Turning the kernels off: `MINIBERT_FUSED_KERNELS=0` (read at import) or `kernels.ENABLED = False`; the
NumPy twins then run on CuPy arrays too (the gpu tests compare the two that way).
"""
from __future__ import annotations

import functools
import os

from minibert.backend.xp import _modules

ENABLED = os.environ.get("MINIBERT_FUSED_KERNELS", "1") != "0"

# dtypes the row-wise RawKernels are written for (their sources are templates on T = float / double)
CUDA_TYPES = {"float32": "float", "float64": "double"}


def _cupy():
    import cupy  # the kernels are only ever built for CuPy arrays: CuPy is there when this runs
    return cupy


def fused_kernels_available(array) -> bool:
    """True when `array` is a real CuPy array of float32 or float64 and the kernels are enabled.

    False for NumPy arrays and for the strict stand-in (tests/strict_xp.py), whose operations are
    NumPy's: they run the NumPy twin. Looks CuPy up among the backends already in use (never imports
    it), so asking costs nothing on a machine without CuPy.
    """
    if not ENABLED:
        return False
    cupy = _modules.get("cupy")
    return (cupy is not None and isinstance(array, cupy.ndarray)
            and array.dtype.name in CUDA_TYPES)


@functools.lru_cache(maxsize=None)
def elementwise_kernel(in_params: str, out_params: str, body: str, name: str):
    """cupy.ElementwiseKernel(in_params, out_params, body, name), made once per source."""
    return _cupy().ElementwiseKernel(in_params, out_params, body, name)


@functools.lru_cache(maxsize=None)
def reduction_kernel(in_params: str, out_params: str, map_expr: str, reduce_expr: str, post_map_expr: str,
                     identity: str, name: str):
    """cupy.ReductionKernel(...), made once per source."""
    return _cupy().ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name)


@functools.lru_cache(maxsize=None)
def raw_kernel(source: str, name: str):
    """cupy.RawKernel(source, name) (compiled by NVRTC on its first launch), made once per source."""
    return _cupy().RawKernel(source, name)


def row_kernel(template: str, name: str, dtype):
    """The RawKernel of a row-wise template for this dtype: `T` -> float / double, and the kernel's
    name gets the type as suffix (`extern "C"` names cannot be overloaded)."""
    ctype = CUDA_TYPES[dtype.name]
    source = template.replace("TYPE", ctype)
    return raw_kernel(source, f"{name}_{ctype}")


def launch_rows(kernel, n_rows: int, threads: int, args: tuple) -> None:
    """Launch `kernel` with one block of `threads` threads per row (grid = n_rows blocks)."""
    if n_rows:
        kernel((n_rows,), (threads,), args)


def threads_for(row_length: int) -> int:
    """Threads per block for a row of this length: a power of two (the block reductions halve it),
    from 32 (one warp) to 256; each thread then takes every threads-th element of the row."""
    t = 32
    while t < row_length and t < 256:
        t *= 2
    return t


def kernel_parameters(source: str, name: str) -> list[str]:
    """The parameter names of `extern "C" __global__ void name(...)` in a CUDA source, in order."""
    head = source.split(f"void {name}(", 1)
    if len(head) != 2:
        raise ValueError(f"kernel {name!r} is not defined in its source")
    params = head[1].split(")", 1)[0]
    return [p.split()[-1].lstrip("*") for p in params.split(",") if p.strip()]


def launch_args(source: str, name: str, **values) -> tuple:
    """The launch arguments in the order of the kernel's signature, taken by name: a renamed or added
    parameter is an error here rather than a silently shifted pointer on the device."""
    names = kernel_parameters(source, name)
    if set(names) != set(values):
        raise ValueError(f"kernel {name}: signature {names}, arguments given {sorted(values)}")
    return tuple(values[n] for n in names)
