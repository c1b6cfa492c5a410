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

import numpy

from minibert.backend.xp import _modules, elementwise_kernel, get_xp   # elementwise_kernel: one factory, in xp.py

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


# -- batched matmuls in the layout cuBLAS reads (attention's Q K^T, P V and their backward) ----------
# cupy.matmul on 4-D operands copies each operand to C-contiguous memory first (cupy/_core/
# _routines_linalg.pyx: _matmul calls ascontiguousarray), then calls the float32 strided-batched GEMM
# (cublasSgemmStridedBatched), which ignores the compute type, so TF32 is never used there. Attention's
# transposed operands (K^T, P'^T, dS^T: a swapaxes(-1, -2) view) are column-major matrices that cuBLAS
# reads as they are with its transpose flag, and a stack of them with one stride between matrices is one
# strided-batched call: cublasGemmStridedBatchedEx, with the compute type of the precision setting.
# An operand whose batch axes cannot be walked with one stride (K as a view of the fused QKV array:
# batch strides T*3H and d) is copied once, as cupy.matmul would.

def gemm_operand(shape, strides, itemsize):
    """How cuBLAS can read a stack of matrices (..., R, C) in place: (transposed, ld, batch_stride), in
    elements, or None when it cannot (then the operand is copied to C-contiguous memory).

    row-major matrices (strides (ld, 1), ld >= C): transposed False;
    column-major (a transposed view, strides (1, ld), ld >= R): transposed True;
    the batch axes of size > 1 must be one arithmetic sequence (stride[i] == stride[i+1] * shape[i+1]).
    """
    *batch, R, C = shape
    *bstrides, sr, sc = strides
    if any(s % itemsize for s in strides) or any(s < 0 for s in strides):
        return None
    sr, sc = sr // itemsize, sc // itemsize
    if sc == 1 and sr >= max(C, 1):
        transposed, ld = False, sr
    elif sr == 1 and sc >= max(R, 1):
        transposed, ld = True, sc
    elif C == 1 and sr >= 1:                  # a column: its row stride is the ld of a row-major (R, 1)
        transposed, ld = False, sr
    else:
        return None
    dims = [(n, s // itemsize) for n, s in zip(batch, bstrides) if n != 1]
    for (_, s0), (n1, s1) in zip(dims, dims[1:]):
        if s0 != s1 * n1:
            return None
    return transposed, ld, (dims[-1][1] if dims else 0)


def strided_batched_plan(a, b):
    """The cublasGemmStridedBatchedEx arguments for C = a @ b, a: (..., M, K), b: (..., K, N), the same
    batch shape (or a 2-D operand, reused for every matrix: batch stride 0); C: (..., M, N) C-contiguous.

    cuBLAS is column-major: a C-contiguous C (M x N) is the column-major N x M matrix C^T, so the call
    computes C^T = b^T a^T: its first operand is b, its second a. Returns (a, b, plan): the operands
    (copied to C-contiguous only when gemm_operand refuses them) and the plan's dict.
    """
    xp = get_xp(a)
    M, K = a.shape[-2:]
    N = b.shape[-1]
    batch = a.shape[:-2] if a.ndim >= b.ndim else b.shape[:-2]
    layouts = []
    for x in (a, b):
        lay = gemm_operand(x.shape, x.strides, x.itemsize)
        if lay is None:
            x = xp.ascontiguousarray(x)
            lay = gemm_operand(x.shape, x.strides, x.itemsize)
        layouts.append((x, lay))
    (a, (ta, lda, sa)), (b, (tb, ldb, sb)) = layouts
    count = 1
    for n in batch:
        count *= n
    plan = dict(transa=int(tb), transb=int(ta), m=N, n=M, k=K, lda=ldb, strideA=sb, ldb=lda, strideB=sa,
                ldc=N, strideC=M * N, batchCount=count, batch_shape=tuple(batch))
    return a, b, plan


def batched_gemm_available(a, b) -> bool:
    """Whether `strided_batched_matmul` takes these operands: CuPy stacks of matrices (3-D or more, the
    same batch shape, as attention's), of one dtype, float32 or float16. A stack times a 2-D matrix is
    better as one 2-D GEMM over all the rows (ops/linear.py reshapes to 2-D), so it is not taken here."""
    cupy = _modules.get("cupy")
    if cupy is None or not (isinstance(a, cupy.ndarray) and isinstance(b, cupy.ndarray)):
        return False
    return (a.ndim >= 3 and a.shape[:-2] == b.shape[:-2] and b.ndim == a.ndim and a.dtype == b.dtype
            and a.dtype.name in ("float32", "float16") and a.shape[-1] == b.shape[-2])


def strided_batched_matmul(a, b, tf32: bool):
    """a @ b for CuPy stacks of matrices with one cublasGemmStridedBatchedEx call and no copy of
    transposed views. float32 operands: compute type CUBLAS_COMPUTE_32F_FAST_TF32 when tf32 (tensor cores,
    10-bit mantissa products, float32 sums) else CUBLAS_COMPUTE_32F; float16 operands: float32 compute,
    float16 result (as precision.matmul_fp16 describes). The caller checked batched_gemm_available."""
    cupy = _cupy()
    from cupy.cuda import cublas, device, runtime   # CuPy's cuBLAS bindings (the GPU path only)
    a, b, plan = strided_batched_plan(a, b)
    c = cupy.empty(plan["batch_shape"] + (plan["n"], plan["m"]), dtype=a.dtype)
    half = a.dtype == numpy.float16
    dtype = runtime.CUDA_R_16F if half else runtime.CUDA_R_32F
    compute = cublas.CUBLAS_COMPUTE_32F_FAST_TF32 if (tf32 and not half) else cublas.CUBLAS_COMPUTE_32F
    one, zero = numpy.array(1, numpy.float32), numpy.array(0, numpy.float32)   # alpha, beta: float32 for 32F compute
    cublas.gemmStridedBatchedEx(
        device.get_cublas_handle(), plan["transa"], plan["transb"], plan["m"], plan["n"], plan["k"],
        one.ctypes.data, b.data.ptr, dtype, plan["lda"], plan["strideA"],
        a.data.ptr, dtype, plan["ldb"], plan["strideB"],
        zero.ctypes.data, c.data.ptr, dtype, plan["ldc"], plan["strideC"],
        plan["batchCount"], compute, cublas.CUBLAS_GEMM_DEFAULT_TENSOR_OP)
    return c
