"""BERT's blocks: the ops of minibert/ops/ put together into the pieces a BertModel stacks.

    embeddings          x = dropout(LayerNorm(word[ids] + position[0..T) + token_type[types]))
    multi-head attention   the Q/K/V projections (fused into one matmul), A heads of scaled
                        dot-product attention, the output projection
    Add & Norm          out = LayerNorm(x + dropout(sublayer_out))            (post-LN, as in BERT)
    feed-forward        FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2               (H -> I -> H)
    pooler              pooled = tanh(x[:, 0] W_p^T + b_p)                     (the [CLS] vector)

Each block is a forward/backward pair like the ops: forward returns (out, cache), backward takes
the upstream gradient and the cache and returns the input and parameter gradients.
Legend: B batch, T tokens, H hidden, A heads, d = H / A, I intermediate (4H), V vocabulary.
"""
from __future__ import annotations

from minibert.backend import get_xp
from minibert.ops.activations import ACTIVATIONS, tanh_backward, tanh_forward
from minibert.ops.attention import (merge_heads, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.embedding import embedding_backward, embedding_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward

# -- embeddings --------------------------------------------------------------------------------
# BERT's input: the sum of three embeddings, then LayerNorm and dropout.

def bert_embeddings_forward(ids, token_type_ids, word, position, token_type, gamma, beta, eps,
                            dropout_p=0.0, rng=None, training=False, dropout_mask=None):
    """BERT's input: the sum of three embeddings, then LayerNorm and dropout.

        x = word[ids] + position[0..T) + token_type[token_type_ids]     (B, T, H)
        out = dropout(LayerNorm(x))

    ids, token_type_ids: (B, T)   word: (V, H)   position: (P, H)   token_type: (type_vocab_size, H)
    Positions are learned vectors (not the Transformer's sinusoids), sliced to T.
    """
    T = ids.shape[1]
    x, c_word = embedding_forward(ids, word)                       # (B,T,H)
    t, c_type = embedding_forward(token_type_ids, token_type)      # (B,T,H)
    x += t
    x += position[:T]                                              # (T,H) broadcast over B
    x, c_ln = layer_norm_forward(x, gamma, beta, eps)
    x, c_drop = dropout_forward(x, dropout_p, rng, training, dropout_mask)
    return x, (c_word, c_type, c_ln, c_drop, position.shape)


def bert_embeddings_backward(dout, cache, dword=None, padding_idx=None):
    """Returns (dword (V,H), dposition (P,H), dtoken_type (2,H), dgamma, dbeta).

    The sum sends the same gradient to all three tables. `dword` may be the
    model's gradient buffer, added into directly (see embedding_backward).
    """
    c_word, c_type, c_ln, c_drop, pos_shape = cache
    xp = get_xp(dout)
    dx = dropout_backward(dout, c_drop)
    dx, dgamma, dbeta = layer_norm_backward(dx, c_ln)
    T = dx.shape[1]
    dposition = xp.zeros(pos_shape, dtype=dx.dtype)
    dposition[:T] = dx.sum(axis=0)                                 # sum over the batch: (T, H)
    dtoken_type = embedding_backward(dx, c_type)
    dword = embedding_backward(dx, c_word, dweight=dword, padding_idx=padding_idx)
    return dword, dposition, dtoken_type, dgamma, dbeta


# -- multi-head attention ----------------------------------------------------------------------
# Multi-head self-attention: Q, K, V projections, A heads of attention, output projection.

def multi_head_attention_forward(x, w_qkv, b_qkv, w_o, b_o, num_heads, mask_bias=None,
                                 dropout_p=0.0, rng=None, training=False, dropout_mask=None):
    """Self-attention with A heads, then the output projection.

    x: (B, T, H)   w_qkv: (3H, H) = [W_q; W_k; W_v] stacked   b_qkv: (3H,)   w_o: (H, H)   b_o: (H,)
    -> (B, T, H).

    Q, K and V are three Linear(H, H) layers in BERT (and in its checkpoints);
    running them as one (H -> 3H) matmul computes exactly the same numbers and
    is faster, because one big matmul uses the BLAS better than three small ones.
    """
    H = x.shape[-1]
    qkv, c_qkv = linear_forward(x, w_qkv, b_qkv)                   # (B,T,H) @ (H,3H) -> (B,T,3H)
    q = split_heads(qkv[..., :H], num_heads)                       # (B,A,T,d) views, no copy
    k = split_heads(qkv[..., H:2 * H], num_heads)
    v = split_heads(qkv[..., 2 * H:], num_heads)
    ctx, c_att = scaled_dot_product_attention_forward(q, k, v, mask_bias, dropout_p, rng, training, dropout_mask)
    ctx = merge_heads(ctx)                                         # (B,A,T,d) -> (B,T,H)
    out, c_o = linear_forward(ctx, w_o, b_o)                       # (B,T,H) @ (H,H) -> (B,T,H)
    return out, (c_qkv, c_att, c_o, num_heads)


def multi_head_attention_backward(dout, cache):
    """Returns (dx, dw_qkv (3H, H), db_qkv (3H,), dw_o, db_o), the forward's steps in reverse."""
    c_qkv, c_att, c_o, num_heads = cache
    xp = get_xp(dout)
    dctx, dw_o, db_o = linear_backward(dout, c_o)
    dq, dk, dv = scaled_dot_product_attention_backward(split_heads(dctx, num_heads), c_att)
    B, A, T, d = dq.shape
    dqkv = xp.empty((B, T, 3, A, d), dtype=dq.dtype)               # merge heads straight into the fused layout
    dqkv[:, :, 0] = dq.transpose(0, 2, 1, 3)
    dqkv[:, :, 1] = dk.transpose(0, 2, 1, 3)
    dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
    dx, dw_qkv, db_qkv = linear_backward(dqkv.reshape(B, T, 3 * A * d), c_qkv)
    return dx, dw_qkv, db_qkv, dw_o, db_o


# -- Add & Norm --------------------------------------------------------------------------------
# BERT's post-LN residual connection ("Add & Norm"):
#
#     out = LayerNorm(x + dropout(sublayer_out))
#
# (Post-LN as in the original Transformer and BERT; GPT-2 and later moved the
# LayerNorm before the sub-layer, "pre-LN".)

def add_norm_forward(x, sublayer_out, gamma, beta, eps, dropout_p=0.0, rng=None, training=False,
                     dropout_mask=None):
    """x, sublayer_out: (B, T, H) -> (B, T, H)."""
    s, c_drop = dropout_forward(sublayer_out, dropout_p, rng, training, dropout_mask)
    s = s + x                                  # the residual: the layer learns a correction to x
    out, c_ln = layer_norm_forward(s, gamma, beta, eps)
    return out, (c_drop, c_ln)


def add_norm_backward(dout, cache):
    """Returns (dx, dsublayer_out, dgamma, dbeta).

    In the forward pass s = x + dropout(sub), so the gradient of s flows to x
    unchanged (the residual "gradient highway") and to sub through dropout.
    Without dropout, dx and dsublayer_out are the *same array* (no copy is
    made): read both before writing into either."""
    c_drop, c_ln = cache
    ds, dgamma, dbeta = layer_norm_backward(dout, c_ln)
    dsub = dropout_backward(ds, c_drop)
    return ds, dsub, dgamma, dbeta


# -- feed-forward ------------------------------------------------------------------------------
# The position-wise feed-forward network: H -> I (GELU) -> H, applied to every token alike.
#
# FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2      W_1: (I, H), W_2: (H, I), I = 4H in BERT

def ffn_forward(x, w1, b1, w2, b2, hidden_act="gelu"):
    """x: (B, T, H) -> (B, T, H)."""
    act_forward, _ = ACTIVATIONS[hidden_act]
    f, c1 = linear_forward(x, w1, b1)          # (B,T,H) @ (H,I) -> (B,T,I)
    f, c_act = act_forward(f)                  # GELU, elementwise
    out, c2 = linear_forward(f, w2, b2)        # (B,T,I) @ (I,H) -> (B,T,H)
    return out, (c1, c_act, c2, hidden_act)


def ffn_backward(dout, cache):
    """Returns (dx, dw1, db1, dw2, db2)."""
    c1, c_act, c2, hidden_act = cache
    _, act_backward = ACTIVATIONS[hidden_act]
    df, dw2, db2 = linear_backward(dout, c2)
    df = act_backward(df, c_act)
    dx, dw1, db1 = linear_backward(df, c1)
    return dx, dw1, db1, dw2, db2


# -- pooler ------------------------------------------------------------------------------------
# BERT's pooler: a dense layer and tanh on the first token ([CLS]).
#
#     pooled = tanh(x[:, 0] W_p^T + b_p)        (B, H)
#
# Its output feeds next-sentence prediction and sentence classification.

def pooler_forward(x, weight, bias):
    """x: (B, T, H) -> pooled: (B, H)."""
    z, c_dense = linear_forward(x[:, 0], weight, bias)     # (B,H) @ (H,H) -> (B,H)
    pooled, c_tanh = tanh_forward(z)
    return pooled, (c_dense, c_tanh, x.shape)


def pooler_backward(dpooled, cache):
    """Returns (dx (B, T, H), dW, db); dx is zero except at position 0."""
    c_dense, c_tanh, x_shape = cache
    dz = tanh_backward(dpooled, c_tanh)
    dfirst, dw, db = linear_backward(dz, c_dense)
    dx = get_xp(dfirst).zeros(x_shape, dtype=dfirst.dtype)
    dx[:, 0] = dfirst
    return dx, dw, db
