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

On a GPU (CuPy arrays) each of these functions runs a fused CUDA kernel instead of its NumPy formula
(its *twin*): one kernel launch where CuPy would launch one per operation (GELU alone is about 11), and
one read and one write of each array instead of one per operation. The CUDA sources are the strings
next to each twin, and say what they fuse; minibert/backend/kernels.py compiles them (cached) and
`fused_kernels_available(array)` picks: a CuPy array -> the kernel; NumPy or the strict stand-in -> the
twin (MINIBERT_FUSED_KERNELS=0 runs the twins on CuPy too). The kernels compute the twins' formulas
but not bit for bit: CUDA's erf instead of erf.py's polynomial, sums over a row added by a tree of
threads instead of NumPy's order, multiply-adds contracted to FMAs. tests/ops/test_fused_cuda.py
(marked gpu) compares every kernel with its twin on the same CuPy inputs, to the tolerances stated
there (float32: a few ulps of the row's scale; float64: ~1e-12).
"""
from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.backend.blocks import rows_in_blocks
from minibert.backend.grad_mode import grad_enabled
from minibert.backend.kernels import (elementwise_kernel, fused_kernels_available, launch_args, launch_rows,
                                      reduction_kernel, row_kernel, threads_for)
from minibert.ops.erf import _AS_A, _AS_P, erf_and_gaussian
from minibert.ops.layer_norm import LayerNormCache

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _same_dtype(x, *others) -> bool:
    """Whether the optional arrays (dropout mask, mask bias) have x's dtype, as the CUDA kernels read them
    (a mask in another dtype, e.g. uint8 flags, takes the twin)."""
    return all(o is None or o.dtype == x.dtype for o in others)


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
    if fused_kernels_available(z):          # CuPy: one CUDA kernel (BIAS_GELU_CUDA below)
        return _bias_gelu_forward_cuda(z, bias)
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
    if fused_kernels_available(dy):         # CuPy: GELU_BACKWARD_CUDA below
        return _bias_gelu_backward_cuda(dy, cache)
    du = _mul_into(dy, cache)
    dbias = du.reshape(-1, du.shape[-1]).sum(axis=0)       # (I,), as linear_backward's db
    return du, dbias


# bias + GELU on CuPy: one ElementwiseKernel (one thread per element) does the bias add, erf, exp and
# both outputs; the twin on CuPy would be ~11 kernels and 11 passes over the (B, T, 4H) activation.
# Exact GELU with CUDA's erf (erff in float32, erf in float64: the overloads of CUDA's math library),
# not erf.py's A&S polynomial that the float32 twin uses: the two agree to ~2e-7 absolute in erf, so
# GELU and GELU' agree with the twin to a few float32 ulps (tests/ops/test_fused_cuda.py), not bit for bit.
BIAS_GELU_CUDA = dict(
    in_params="T z, T bias",                            # z: (..., I) x W^T without bias; bias: (I,), broadcast
    out_params="T y, T dgelu",                          # y: GELU(z + bias) (may be z itself), dgelu: GELU'
    body="""
    const T u = z + bias;                                        // linear's bias add
    const T cdf = (T)0.5 * ((T)1 + erf(u * (T)0.7071067811865476));   // Phi(u) = (1 + erf(u / sqrt 2)) / 2
    const T pdf = exp((T)-0.5 * u * u) * (T)0.3989422804014327;       // phi(u) = exp(-u^2/2) / sqrt(2 pi)
    dgelu = cdf + u * pdf;                                       // GELU'(u) = Phi(u) + u phi(u)
    y = u * cdf;                                                 // GELU(u)  = u Phi(u)
    """,
    name="minibert_bias_gelu_forward")

# the same without the derivative: inference (no_grad) writes one output
BIAS_GELU_INFERENCE_CUDA = dict(
    in_params="T z, T bias",
    out_params="T y",
    body="""
    const T u = z + bias;
    y = u * ((T)0.5 * ((T)1 + erf(u * (T)0.7071067811865476)));  // u Phi(u)
    """,
    name="minibert_bias_gelu_inference")

# backward: du = dy * GELU'(u), in dy's buffer (dbias is then CuPy's column sum of du, as the twin's)
GELU_BACKWARD_CUDA = dict(
    in_params="T dgelu",
    out_params="T du",                                  # du is dy, read and overwritten
    body="du = du * dgelu;",
    name="minibert_gelu_backward")


def _bias_gelu_forward_cuda(z, bias):
    """bias_gelu_forward on CuPy: BIAS_GELU_CUDA, y written over z."""
    if not grad_enabled():
        elementwise_kernel(**BIAS_GELU_INFERENCE_CUDA)(z, bias, z)
        return z, None
    dgelu = get_xp(z).empty_like(z)
    elementwise_kernel(**BIAS_GELU_CUDA)(z, bias, z, dgelu)
    return z, dgelu


def _bias_gelu_backward_cuda(dy, cache):
    """bias_gelu_backward on CuPy: GELU_BACKWARD_CUDA over dy, then the bias gradient (a column sum)."""
    elementwise_kernel(**GELU_BACKWARD_CUDA)(cache, dy)
    return dy, dy.reshape(-1, dy.shape[-1]).sum(axis=0)


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
    if fused_kernels_available(x) and _same_dtype(x, mask):   # CuPy: RESIDUAL_LAYER_NORM_FORWARD_CUDA below
        return _residual_layer_norm_forward_cuda(x, sub, gamma, beta, eps, mask)
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
    if fused_kernels_available(dy) and _same_dtype(dy, cache.mask):   # CuPy: RESIDUAL_LAYER_NORM_BACKWARD_CUDA below
        return _residual_layer_norm_backward_cuda(dy, cache)
    xp = get_xp(dy)
    (xhat, rstd, gamma), mask = cache
    dx, dsub = xp.empty_like(dy), xp.empty_like(dy)
    return _residual_layer_norm_backward_into(dy, xhat, rstd, gamma, mask, dx, dsub)


# -- the row-wise CUDA kernels: one thread block per row ---------------------------------------------
# LayerNorm and softmax need sums (and a max) over each row before they can write it. The kernels below
# give each row one block of threads (a power of two, 32..256, kernels.threads_for): thread t takes
# elements t, t + threads, ... of the row, and the block adds (or maxes) the threads' partial results in
# shared memory, halving the active threads at each step. A row is read from memory once per pass
# (twice or three times), all passes in one launch. TYPE is float or double (kernels.row_kernel).

ROW_REDUCE_CUDA = r"""
__device__ TYPE block_sum(TYPE v, TYPE* buf) {          // sum of v over the block's threads
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) buf[threadIdx.x] += buf[threadIdx.x + half];
        __syncthreads();
    }
    const TYPE total = buf[0];
    __syncthreads();                                    // buf is free again for the next reduction
    return total;
}

__device__ TYPE max_nan(TYPE a, TYPE b) {               // max that keeps a NaN (as NumPy's max)
    return (a != a || a > b) ? a : b;
}

__device__ TYPE block_max(TYPE v, TYPE* buf) {          // max of v over the block's threads
    buf[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) buf[threadIdx.x] = max_nan(buf[threadIdx.x], buf[threadIdx.x + half]);
        __syncthreads();
    }
    const TYPE total = buf[0];
    __syncthreads();
    return total;
}
"""


# residual + LayerNorm on CuPy, forward: one block per row of H does dropout(sub) + x, the mean, the
# variance (two passes over the row, as the twin: no E[s^2] - mu^2 cancellation), x-hat and
# gamma x-hat + beta. CuPy would launch ~10 kernels over (N, H) arrays for the twin.
RESIDUAL_LAYER_NORM_FORWARD_CUDA = ROW_REDUCE_CUDA + r"""
extern "C" __global__ void residual_layer_norm_forward_TYPE(
        const TYPE* x, const TYPE* sub, const TYPE* mask, const int has_mask,
        const TYPE* gamma, const TYPE* beta, const TYPE eps, const int H,
        TYPE* y, TYPE* xhat, const int keep_xhat, TYPE* rstd) {
    __shared__ TYPE buf[256];
    const long long row = blockIdx.x;
    const long long o = row * H;                        // the row's offset in every (N, H) array
    TYPE part = 0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const TYPE s = (has_mask ? sub[o + j] * mask[o + j] : sub[o + j]) + x[o + j];   // dropout, residual
        y[o + j] = s;                                   // s lives in y's row until y is made
        part += s;
    }
    const TYPE mu = block_sum(part, buf) / H;
    part = 0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const TYPE c = y[o + j] - mu;
        part += c * c;
    }
    const TYPE r = (TYPE)1 / sqrt(block_sum(part, buf) / H + eps);       // 1 / sqrt(var + eps)
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const TYPE xh = (y[o + j] - mu) * r;
        if (keep_xhat) xhat[o + j] = xh;
        y[o + j] = xh * gamma[j] + beta[j];
    }
    if (threadIdx.x == 0) rstd[row] = r;
}
"""

# backward: one block per row: dxhat = dy gamma, its two row means, dx = rstd (dxhat - mean(dxhat)
# - xhat mean(dxhat xhat)), dsub = dx * mask, in one launch; dgamma = sum over rows of dy xhat is one
# ReductionKernel (no (N, H) product in memory), dbeta CuPy's column sum.
RESIDUAL_LAYER_NORM_BACKWARD_CUDA = ROW_REDUCE_CUDA + r"""
extern "C" __global__ void residual_layer_norm_backward_TYPE(
        const TYPE* dy, const TYPE* xhat, const TYPE* rstd, const TYPE* gamma,
        const TYPE* mask, const int has_mask, const int H, TYPE* dx, TYPE* dsub) {
    __shared__ TYPE buf[256];
    const long long row = blockIdx.x;
    const long long o = row * H;
    TYPE part_g = 0, part_gx = 0;
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const TYPE g = dy[o + j] * gamma[j];            // dxhat
        dx[o + j] = g;
        part_g += g;
        part_gx += g * xhat[o + j];
    }
    const TYPE mean_g = block_sum(part_g, buf) / H;
    const TYPE mean_gx = block_sum(part_gx, buf) / H;
    const TYPE r = rstd[row];
    for (int j = threadIdx.x; j < H; j += blockDim.x) {
        const TYPE d = (dx[o + j] - mean_g - xhat[o + j] * mean_gx) * r;
        dx[o + j] = d;                                  // the residual's gradient
        dsub[o + j] = has_mask ? d * mask[o + j] : d;   // dropout backward
    }
}
"""

DGAMMA_CUDA = dict(in_params="T dy, T xhat", out_params="T dgamma", map_expr="dy * xhat",
                   reduce_expr="a + b", post_map_expr="dgamma = a", identity="0", name="minibert_dgamma")


def _rows(a, n_last):
    """a as a C-contiguous (N, n_last) array (no copy when it already is one)."""
    return get_xp(a).ascontiguousarray(a).reshape(-1, n_last)


def _residual_layer_norm_forward_cuda(x, sub, gamma, beta, eps, mask):
    xp = get_xp(x)
    H = x.shape[-1]
    x2, sub2 = _rows(x, H), _rows(sub, H)
    N = x2.shape[0]
    keep = grad_enabled()
    y = xp.empty_like(x2)
    xhat = xp.empty_like(x2) if keep else y             # y stands in for the pointer when x-hat is not kept
    rstd = xp.empty((N, 1), dtype=x.dtype)
    name = "residual_layer_norm_forward_TYPE"
    args = launch_args(RESIDUAL_LAYER_NORM_FORWARD_CUDA, name,
                       x=x2, sub=sub2, mask=sub2 if mask is None else _rows(mask, H),
                       has_mask=numpy.int32(mask is not None), gamma=xp.ascontiguousarray(gamma),
                       beta=xp.ascontiguousarray(beta), eps=x.dtype.type(eps), H=numpy.int32(H),
                       y=y, xhat=xhat, keep_xhat=numpy.int32(keep), rstd=rstd)
    launch_rows(row_kernel(RESIDUAL_LAYER_NORM_FORWARD_CUDA, name[:-5], x.dtype), N, threads_for(H), args)
    shape = x.shape
    cache = LayerNormCache(xhat.reshape(shape) if keep else None, rstd.reshape(shape[:-1] + (1,)), gamma)
    return y.reshape(shape), ResidualLayerNormCache(cache, mask)


def _residual_layer_norm_backward_cuda(dy, cache):
    xp = get_xp(dy)
    (xhat, rstd, gamma), mask = cache
    H = dy.shape[-1]
    dy2, xhat2 = _rows(dy, H), _rows(xhat, H)
    N = dy2.shape[0]
    dx, dsub = xp.empty_like(dy2), xp.empty_like(dy2)
    name = "residual_layer_norm_backward_TYPE"
    args = launch_args(RESIDUAL_LAYER_NORM_BACKWARD_CUDA, name,
                       dy=dy2, xhat=xhat2, rstd=xp.ascontiguousarray(rstd), gamma=xp.ascontiguousarray(gamma),
                       mask=dy2 if mask is None else _rows(mask, H), has_mask=numpy.int32(mask is not None),
                       H=numpy.int32(H), dx=dx, dsub=dsub)
    launch_rows(row_kernel(RESIDUAL_LAYER_NORM_BACKWARD_CUDA, name[:-5], dy.dtype), N, threads_for(H), args)
    dgamma = reduction_kernel(**DGAMMA_CUDA)(dy2, xhat2, axis=0)           # (H,) sum over rows of dy xhat
    dbeta = dy2.sum(axis=0)                                                 # (H,)
    return dx.reshape(dy.shape), dsub.reshape(dy.shape), dgamma, dbeta


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


def masked_softmax_dropout_forward(scores, mask_bias, mask, out=None):
    """Fuses attention's mask add, softmax and dropout:  probs = softmax(scores + mask_bias) over
    scores, dropped = probs * mask.

    scores: (B, A, T, T) (the caller owns it: overwritten by the probabilities)
    mask_bias: (B, 1, 1, T) or None   mask: (B, A, T, T) of 0 and 1/(1-p) (dropout_mask), or None
    ->   (probs, dropped): dropped is probs itself without a mask, as dropout_forward's identity.
    out: where to write `dropped` (optional; a contiguous array of scores' shape; otherwise a new one).

    Composition it replaces (ops/attention.py): `scores += mask_bias`,
    `probs = softmax_forward(scores, inplace=True)`, `dropped = dropout_forward(probs, ...)`: three
    passes over the (B, A, T, T) scores (8 MB a layer for BERT-mini at 32 x 128) become one, a batch
    row (A T T numbers, 256 KB at T = 128) at a time.
    """
    if fused_kernels_available(scores) and _same_dtype(scores, mask, mask_bias):   # CuPy: the CUDA kernel below
        return _masked_softmax_dropout_forward_cuda(scores, mask_bias, mask)
    B, A, T, _ = scores.shape
    xp = get_xp(scores)
    flat = scores.reshape(B, A * T * T)
    bias = None if mask_bias is None else mask_bias.reshape(B, T)
    mask_flat = None if mask is None else mask.reshape(B, A * T * T)
    if mask is None:
        dropped = None
    elif out is not None:                                   # the caller's contiguous array (attention's chunk)
        dropped = out.reshape(flat.shape)
    else:
        dropped = xp.empty_like(flat)
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
    if fused_kernels_available(dp) and _same_dtype(dp, probs, mask):   # CuPy: SOFTMAX_DROPOUT_BACKWARD_CUDA below
        return _softmax_dropout_backward_cuda(dp, probs, mask)
    return _softmax_dropout_backward_into(dp, probs, mask)


# mask add + softmax + dropout on CuPy, forward: one block per row of T keys (a (batch, head, query)
# triple): adds the key bias of its batch row, the max, exp and the sum, p = e / sum into the scores,
# p * mask into `dropped`. The twin on CuPy: ~7 kernels, each a pass over (B, A, T, T).
MASKED_SOFTMAX_DROPOUT_FORWARD_CUDA = ROW_REDUCE_CUDA + r"""
extern "C" __global__ void masked_softmax_dropout_forward_TYPE(
        TYPE* scores, const TYPE* bias, const int has_bias, const TYPE* mask, const int has_mask,
        TYPE* dropped, const int T, const long long rows_per_batch) {
    __shared__ TYPE buf[256];
    const long long row = blockIdx.x;
    const long long o = row * T;
    const long long ob = (row / rows_per_batch) * T;    // the bias row of this batch row: (B, T)
    TYPE m = scores[o] + (has_bias ? bias[ob] : (TYPE)0);    // a value of the row: the max starts there
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const TYPE v = scores[o + j] + (has_bias ? bias[ob + j] : (TYPE)0);   // masked keys -> dtype min
        scores[o + j] = v;
        m = max_nan(m, v);
    }
    m = block_max(m, buf);
    TYPE part = 0;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const TYPE e = exp(scores[o + j] - m);         // every exponent <= 0: no overflow
        scores[o + j] = e;
        part += e;
    }
    const TYPE total = block_sum(part, buf);
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const TYPE p = scores[o + j] / total;
        scores[o + j] = p;                              // the probabilities, kept for the backward
        if (has_mask) dropped[o + j] = p * mask[o + j]; // dropout
    }
}
"""

# backward: one block per row: dp *= mask (dropout backward), the row's dot(dp, p), then
# dscores = p (dp - dot), written over dp.
SOFTMAX_DROPOUT_BACKWARD_CUDA = ROW_REDUCE_CUDA + r"""
extern "C" __global__ void softmax_dropout_backward_TYPE(
        TYPE* dp, const TYPE* p, const TYPE* mask, const int has_mask, const int T) {
    __shared__ TYPE buf[256];
    const long long o = (long long)blockIdx.x * T;
    TYPE part = 0;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const TYPE g = has_mask ? dp[o + j] * mask[o + j] : dp[o + j];
        dp[o + j] = g;
        part += g * p[o + j];
    }
    const TYPE dot = block_sum(part, buf);
    for (int j = threadIdx.x; j < T; j += blockDim.x) dp[o + j] = (dp[o + j] - dot) * p[o + j];
}
"""


def _masked_softmax_dropout_forward_cuda(scores, mask_bias, mask):
    xp = get_xp(scores)
    B, A, T, _ = scores.shape
    if not scores.flags.c_contiguous:                    # the kernel writes the probabilities in place
        raise ValueError("masked_softmax_dropout_forward: the scores must be C-contiguous (they are overwritten)")
    dropped = scores if mask is None else xp.empty_like(scores)
    name = "masked_softmax_dropout_forward_TYPE"
    args = launch_args(MASKED_SOFTMAX_DROPOUT_FORWARD_CUDA, name,
                       scores=scores, bias=scores if mask_bias is None else _rows(mask_bias, T),
                       has_bias=numpy.int32(mask_bias is not None),
                       mask=scores if mask is None else xp.ascontiguousarray(mask),
                       has_mask=numpy.int32(mask is not None), dropped=dropped, T=numpy.int32(T),
                       rows_per_batch=numpy.int64(A * T))
    launch_rows(row_kernel(MASKED_SOFTMAX_DROPOUT_FORWARD_CUDA, name[:-5], scores.dtype), B * A * T,
                threads_for(T), args)
    return scores, dropped


def _softmax_dropout_backward_cuda(dp, probs, mask):
    xp = get_xp(dp)
    if not dp.flags.c_contiguous:
        raise ValueError("softmax_dropout_backward: dp must be C-contiguous (it is overwritten)")
    T = dp.shape[-1]
    name = "softmax_dropout_backward_TYPE"
    args = launch_args(SOFTMAX_DROPOUT_BACKWARD_CUDA, name, dp=dp, p=xp.ascontiguousarray(probs),
                       mask=dp if mask is None else xp.ascontiguousarray(mask),
                       has_mask=numpy.int32(mask is not None), T=numpy.int32(T))
    launch_rows(row_kernel(SOFTMAX_DROPOUT_BACKWARD_CUDA, name[:-5], dp.dtype), dp.size // T, threads_for(T), args)
    return dp


def fusable_mask_bias(scores, mask_bias) -> bool:
    """Whether masked_softmax_dropout_forward takes this mask: None or one bias per key, (B, 1, 1, T)."""
    return mask_bias is None or mask_bias.shape == (scores.shape[0], 1, 1, scores.shape[-1])
