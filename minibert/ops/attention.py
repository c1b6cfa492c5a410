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

from minibert.backend.precision import matmul
from minibert.ops.dropout import dropout_forward, mask_to_use
from minibert.ops.fused import fusable_mask_bias, masked_softmax_dropout_forward, softmax_dropout_backward
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
    dv = matmul(dropped.swapaxes(-1, -2), dout)              # (B,A,T,T)^T @ (B,A,T,d) -> (B,A,T,d)
    dprobs = matmul(dout, v.swapaxes(-1, -2))                # (B,A,T,d) @ (B,A,d,T) -> (B,A,T,T)
    dscores = softmax_dropout_backward(dprobs, probs, drop_cache)   # fast path of the two lines below (ops/fused.py)
    # readable: dprobs = dropout_backward(dprobs, drop_cache)
    # dscores = softmax_backward(dprobs, probs)
    dq = matmul(dscores, k)                                  # (B,A,T,T) @ (B,A,T,d) -> (B,A,T,d)
    dq *= scale
    dk = matmul(dscores.swapaxes(-1, -2), q_scaled)          # (B,A,T,T)^T @ (B,A,T,d) -> (B,A,T,d)
    return dq, dk, dv


def split_heads(x, num_heads):
    """(B, T, H) -> (B, A, T, d): a view, no copy. Head a owns columns [a*d, (a+1)*d)."""
    B, T, H = x.shape
    return x.reshape(B, T, num_heads, H // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, A, T, d) -> (B, T, H), the inverse of split_heads (one copy, to contiguous memory)."""
    B, A, T, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, A * d)


