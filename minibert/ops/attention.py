"""Scaled dot-product attention and multi-head attention.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V

Why 1/sqrt(d): if the d entries of a query and a key are independent with
mean 0 and variance 1, their dot product has variance d. Without the scale,
scores grow with d, the softmax saturates to one-hot, and its gradient
vanishes. Dividing by sqrt(d) keeps the scores at unit variance.

The padding mask is additive and acts on *keys* only: a padded key gets a
huge negative score (the dtype's minimum, as in Hugging Face; Google used
-10000) so no query attends to it. Padded *queries* are computed as usual
(their outputs are ignored later), exactly as in the references.

Shapes: B batch, A heads, T tokens, d = H / A head size.

Mixed precision: the six matmuls (QK^T, PV and the four of the backward) go
through `matmul` (minibert/backend/precision.py): float16 operands inside
`mixed_precision()`, float32 otherwise. The mask, softmax and dropout stay float32.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy

from minibert.backend.blocks import on_threads
from minibert.backend.precision import fp16_enabled, matmul
from minibert.ops.dropout import dropout_forward, mask_to_use
from minibert.ops.fused import (
    fusable_mask_bias,
    masked_softmax_dropout_forward,
    softmax_dropout_backward,
)
from minibert.ops.softmax import softmax_forward


class AttentionCache(NamedTuple):
    """What scaled_dot_product_attention_backward needs from the forward (and attention maps: probs)."""
    q_scaled: Any       # (B, A, T, d) Q / sqrt(d)
    k: Any              # (B, A, T, d)
    v: Any              # (B, A, T, d)
    probs: Any          # (B, A, T, T) softmax of the scores, before dropout
    dropped: Any        # (B, A, T, T) after dropout (the weights that multiplied V)
    dropout: Any        # the dropout's cache: its mask, or None without dropout
    scale: float        # 1 / sqrt(d)


def attention_mask_bias(attention_mask, dtype):
    """(B, T) of 1 (token) / 0 (padding) -> (B, 1, 1, T) additive bias: 0 or the dtype's minimum.

    Broadcasts over heads and query positions: it masks keys only.
    """
    lowest = numpy.finfo(dtype).min
    bias = (1.0 - attention_mask.astype(dtype)) * dtype.type(lowest)
    return bias[:, None, None, :]


def scaled_dot_product_attention_forward(q, k, v, mask_bias=None, dropout_p=0.0, rng=None,
                                         training=False, dropout_mask=None):
    """q, k, v: (B, A, T, d)   mask_bias: (B, 1, 1, T) or None   ->   out: (B, A, T, d).

    cache: AttentionCache(q_scaled, k, v, probs, dropped, dropout, scale). The
    probabilities (cache.probs) are kept for the backward and for attention maps.
    """
    if CHUNKED and _worth_chunking(q, k, v, mask_bias):
        return attention_forward_in_chunks(q, k, v, mask_bias, dropout_p, rng, training, dropout_mask)
    scale = 1.0 / math.sqrt(q.shape[-1])
    q_scaled = q * scale                                     # fold 1/sqrt(d) into Q: (B,A,T,d) is smaller than (B,A,T,T)
    scores = matmul(q_scaled, k.swapaxes(-1, -2))            # (B,A,T,d) @ (B,A,d,T) -> (B,A,T,T)
    if fusable_mask_bias(scores, mask_bias):
        # fast path, the same numbers as the three lines below: mask add, softmax and dropout in one
        # pass over cache-sized blocks of batch rows (minibert/ops/fused.py)
        drop_cache = mask_to_use(scores, dropout_p, rng, training, dropout_mask)
        probs, dropped = masked_softmax_dropout_forward(scores, mask_bias, drop_cache)
    else:
        if mask_bias is not None:
            scores += mask_bias                              # masked keys -> dtype minimum
        probs, _ = softmax_forward(scores, inplace=True)     # (B,A,T,T), rows sum to 1
        dropped, drop_cache = dropout_forward(probs, dropout_p, rng, training, dropout_mask)
    out = matmul(dropped, v)                                 # (B,A,T,T) @ (B,A,T,d) -> (B,A,T,d)
    return out, AttentionCache(q_scaled, k, v, probs, dropped, drop_cache, scale)


# -- the same forward in cache-sized chunks ------------------------------------------------------
# The formula above makes four passes over (B, A, T, T) arrays that do not fit in any cache (MiniLM,
# B = 32, T = 128: 12 heads x 64 KB x 32 = 25 MB): the matmul writes the scores to memory, the
# softmax reads and writes them (in blocks, backend/blocks.py), dropout reads them and writes a
# second array, P V reads that. Attention is independent per (batch row, head), so the same lines can
# run on a chunk of a few heads' scores (ATTENTION_CHUNK numbers, 512 KB of float32) that stays in the
# L2 cache from Q K^T to P V. What it fuses and why:
#   - QK^T, the mask add, the softmax, the dropout and PV run chunk after chunk (cache, see above);
#   - K^T is copied to contiguous (B, A, d, Tk) memory (B*T*H numbers, small): NumPy's stacked matmul
#     with a transposed second operand (k.swapaxes(-1, -2), the formula's) does not reach the BLAS
#     at its speed (measured 290 ms against 22-38 ms for MiniLM's 32 x 12 heads, same bits);
#   - the matmuls write straight into their final arrays (numpy.matmul out=): P into the kept
#     probabilities, P V into a (B, T, A, d) array seen as (B, A, T, d), so merge_heads afterwards is a
#     reshape of contiguous memory instead of a (B, T, H) copy.
#   - the chunks run on the block threads (backend/blocks.py: on_threads), BLAS at one thread in each:
#     NumPy hands a stacked matmul to the BLAS one (T x d) GEMM at a time, too small for BLAS's own
#     threads to pay (measured, BERT-mini 32 x 128: 34 -> 23 ms per layer, forward + backward).
# Every row of scores gets the same softmax in the same order of operations, and the dropout masks
# are drawn before the chunks in one call, the numbers the formula draws; each chunk writes its own
# parts of preallocated arrays, so the thread that ran it changes nothing.
# The one change of order: Q K^T's d-term sums, which the BLAS (contiguous K^T) may add in another
# order than NumPy's own loop (the formula's transposed view). Results: bit for bit in float32 here,
# within 4 d ulps in float64 (tests/ops/test_attention_chunks.py). The cache is the formula's cache.

CHUNKED = True                  # False: always run the formula above (tests compare the two)
ATTENTION_CHUNK = 1 << 17       # scores per chunk: 128 Ki floats = 512 KB of float32


def _worth_chunking(q, k, v, mask_bias) -> bool:
    """NumPy 4-D arrays of the formula's shapes, and more than one chunk of scores."""
    arrays = (q, k, v) if mask_bias is None else (q, k, v, mask_bias)
    if not all(isinstance(a, numpy.ndarray) and a.ndim == 4 for a in arrays):
        return False
    B, A, T, _ = q.shape
    return (k.shape[:2] == v.shape[:2] == (B, A) and k.shape[2] == v.shape[2] and
            B * A * T * k.shape[2] > ATTENTION_CHUNK)


def _chunks(B, A, T, Tk):
    """(batch rows, heads) index pairs covering (B, A) in C order, each about ATTENTION_CHUNK scores:
    a range of whole batch rows, or, when one row is larger, a range of heads of one row."""
    per_head = T * Tk
    heads = max(1, min(A, ATTENTION_CHUNK // per_head))
    if heads < A:
        for b in range(B):
            for a in range(0, A, heads):
                yield slice(b, b + 1), slice(a, a + heads)
    else:
        rows = max(1, ATTENTION_CHUNK // (A * per_head))
        for b in range(0, B, rows):
            yield slice(b, b + rows), slice(None)


def _matmul_into(a, b, out):
    """out[...] = matmul(a, b): the BLAS writes into `out` directly (one copy inside mixed_precision())."""
    if fp16_enabled():
        out[...] = matmul(a, b)
    else:
        numpy.matmul(a, b, out=out)


def attention_forward_in_chunks(q, k, v, mask_bias=None, dropout_p=0.0, rng=None, training=False,
                                dropout_mask=None):
    """scaled_dot_product_attention_forward on chunks of (batch rows, heads): the same outputs and
    cache, bit for bit (see the comment above). NumPy arrays only."""
    B, A, T, d = q.shape
    Tk = k.shape[2]
    scale = 1.0 / math.sqrt(d)
    q_scaled = q * scale                                     # (B,A,T,d), as the formula
    k_t = numpy.ascontiguousarray(k.swapaxes(-1, -2))        # (B,A,d,Tk) copy, see below
    dtype = numpy.result_type(q_scaled, k)
    probs = numpy.empty((B, A, T, Tk), dtype=dtype)          # kept for the backward and attention maps
    bias = None if mask_bias is None else numpy.broadcast_to(mask_bias, probs.shape)
    fused_mask = T == Tk and fusable_mask_bias(probs, mask_bias)   # one bias per key: ops/fused.py takes it
    dropping = training and dropout_p != 0.0
    dropped = numpy.empty_like(probs) if dropping else probs
    # every mask drawn first, in one call: the same numbers as chunk after chunk in C order (one
    # stream), and the chunks can then run on any thread in any order
    masks = mask_to_use(probs, dropout_p, rng, training, dropout_mask)   # (B,A,T,Tk) or None
    out_btad = numpy.empty((B, T, A, v.shape[-1]), dtype=numpy.result_type(dropped, v))
    out = out_btad.transpose(0, 2, 1, 3)                     # (B,A,T,d) view: merge_heads is then free
    chunks = list(_chunks(B, A, T, Tk))

    def one_chunk(i):
        c = chunks[i]
        rows = c[0]
        s = probs[c]                                         # (b,a,T,Tk) contiguous chunk of the kept array
        _matmul_into(q_scaled[c], k_t[c], s)                 # scores of this chunk
        m = None if masks is None else masks[c]
        if fused_mask:
            # mask add, softmax and dropout in one pass over the chunk (ops/fused.py), same numbers
            # the dropped-out weights written straight into their chunk of `dropped` (no copy below)
            _, y = masked_softmax_dropout_forward(s, None if mask_bias is None else mask_bias[rows], m,
                                                  out=dropped[c] if dropping else None)
        else:
            if bias is not None:
                s += bias[c]                                 # masked keys -> dtype minimum
            softmax_forward(s, inplace=True)                 # in place: s is now P
            y, _ = dropout_forward(s, dropout_p, rng, training, m)
        if dropping and not numpy.shares_memory(y, dropped[c]):
            dropped[c] = y
        _matmul_into(dropped[c], v[c], out[c])               # (b,a,T,Tk) @ (b,a,Tk,d)

    on_threads(one_chunk, range(len(chunks)))                # chunks write disjoint parts: any thread, any order
    return out, AttentionCache(q_scaled, k, v, probs, dropped, masks, scale)


def scaled_dot_product_attention_backward(dout, cache):
    """Returns (dq, dk, dv). In the forward pass:
         S = (s Q) K^T + mask,  P = softmax(S),  P' = dropout(P),  O = P' V
       so going back:
         dV  = P'^T dO                     (B,A,T,T)^T @ (B,A,T,d)
         dP' = dO V^T                      (B,A,T,d) @ (B,A,d,T)
         dP  = dropout backward of dP'
         dS  = softmax backward of dP      (the mask is a constant: no gradient)
         dQ  = s * dS K,   dK = dS^T (s Q)
    """
    q_scaled, k, v, probs, dropped, drop_cache, scale = cache     # AttentionCache, as the forward made it
    if CHUNKED and _worth_chunking(dout, k, v, None) and isinstance(probs, numpy.ndarray):
        return attention_backward_in_chunks(dout, AttentionCache(*cache))
    dv = matmul(dropped.swapaxes(-1, -2), dout)              # (B,A,T,T)^T @ (B,A,T,d) -> (B,A,T,d)
    dprobs = matmul(dout, v.swapaxes(-1, -2))                # (B,A,T,d) @ (B,A,d,T) -> (B,A,T,T)
    dscores = softmax_dropout_backward(dprobs, probs, drop_cache)   # fast path of the two lines below (ops/fused.py)
    # readable: dprobs = dropout_backward(dprobs, drop_cache)
    # dscores = softmax_backward(dprobs, probs)
    dq = matmul(dscores, k)                                  # (B,A,T,T) @ (B,A,T,d) -> (B,A,T,d)
    dq *= scale
    dk = matmul(dscores.swapaxes(-1, -2), q_scaled)          # (B,A,T,T)^T @ (B,A,T,d) -> (B,A,T,d)
    return dq, dk, dv


def attention_backward_in_chunks(dout, cache):
    """scaled_dot_product_attention_backward on the forward's chunks of (batch rows, heads), the same
    lines as the formula. What it changes and why: the chunk's dS stays in cache from dP' to dQ and dK;
    V^T is first copied to contiguous memory (V is a strided view of the fused QKV array, and NumPy's
    stacked matmul on its transposed view misses the BLAS's speed, see the forward), while P'^T and dS^T,
    transposes of contiguous chunks, go to the BLAS as they are (measured: faster than a copy, the same
    bits); the chunks run on the block threads as the forward's; dQ, dK and dV are written
    into one (B, T, 3, A, d) array, the fused Q/K/V layout, so multi_head_attention_backward needs no
    copy to merge them. The d- and T-term sums may be added in another order than in NumPy's own loop:
    within 4 d (resp. T) ulps (tests/ops/test_attention_chunks.py)."""
    q_scaled, k, v, probs, dropped, drop_cache, scale = cache
    B, A, T, d = q_scaled.shape
    Tk = k.shape[2]
    dqkv = numpy.empty((B, T, 3, A, d), dtype=numpy.result_type(dout, probs))
    dq, dk, dv = (dqkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))   # (B,A,T,d) views
    v_t = numpy.ascontiguousarray(v.swapaxes(-1, -2))                      # (B,A,d,Tk)
    chunks = list(_chunks(B, A, T, Tk))

    def one_chunk(i):
        c = chunks[i]
        _matmul_into(dropped[c].swapaxes(-1, -2), dout[c], dv[c])         # P'^T dO
        dprobs = matmul(dout[c], v_t[c])                                   # dO V^T   (b,a,T,Tk)
        dscores = softmax_dropout_backward(dprobs, probs[c], None if drop_cache is None else drop_cache[c])
        # readable: dscores = softmax_backward(dropout_backward(dprobs, mask), probs)   (ops/fused.py)
        _matmul_into(dscores, k[c], dq[c])                                 # dS K
        dq[c] *= scale
        _matmul_into(dscores.swapaxes(-1, -2), q_scaled[c], dk[c])         # dS^T (s Q)

    on_threads(one_chunk, range(len(chunks)))                              # disjoint writes, as the forward
    return dq, dk, dv


def split_heads(x, num_heads):
    """(B, T, H) -> (B, A, T, d): a view, no copy. Head a owns columns [a*d, (a+1)*d)."""
    B, T, H = x.shape
    return x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, A, T, d) -> (B, T, H), the inverse of split_heads (one copy, to contiguous memory)."""
    B, A, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, A * d)


