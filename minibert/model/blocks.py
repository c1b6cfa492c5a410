"""BERT's blocks: the ops of minibert/ops/ put together into the pieces a BertModel stacks.

Legend: B batch, T tokens, H hidden, A heads, d = H / A head size, I intermediate (4H in BERT),
V vocabulary, P max positions. Weights are stored (out, in), as in PyTorch and Hugging Face.

    embeddings            x = dropout(LayerNorm(word[ids] + position[0..T) + token_type[types]))
                          ids, types (B, T) -> x (B, T, H)
    multi-head attention  [Q | K | V] = x W_qkv^T + b_qkv            (B, T, H) -> (B, T, 3H), one matmul
                          C_a = softmax(Q_a K_a^T / sqrt(d) + mask) V_a   each head a: (B, T, d)
                          out = [C_1 | ... | C_A] W_o^T + b_o           (B, T, H)
    Add & Norm            out = LayerNorm(x + dropout(sublayer_out))    (B, T, H), post-LN as in BERT
    feed-forward          FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2      (B, T, H) -> (B, T, I) -> (B, T, H)
    pooler                pooled = tanh(x[:, 0] W_p^T + b_p)            (B, T, H) -> (B, H), the [CLS] vector

An encoder layer is attention, Add & Norm, feed-forward, Add & Norm (encoder_layer_forward below; BertModel
runs the same steps on its named parameters, minibert/model/bert.py).

Each block is a forward/backward pair like the ops. The forward returns (out, cache), the cache a
NamedTuple of the caches of the ops it ran (`cache.sdpa.probs`); the backward takes the upstream
gradient and the cache, goes through the forward's lines in reverse, and returns the gradients of
the inputs and parameters as separate arrays: no two outputs of a backward share memory, so the
caller may add into any of them.

Every op is called through an op table (`ops.linear_forward(...)`, minibert/model/ops_table.py):
a forward takes `ops=` (None: REFERENCE_OPS, minibert's own functions) and keeps it in its cache
(`cache.ops`), so the backward runs the backwards of the same ops.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from minibert.backend import get_xp
from minibert.model.ops_table import REFERENCE_OPS, Ops
from minibert.ops.attention import AttentionCache
from minibert.ops.dropout import mask_to_use
from minibert.ops.embedding import EmbeddingCache
from minibert.ops.fused import ResidualLayerNormCache
from minibert.ops.layer_norm import LayerNormCache
from minibert.ops.linear import LinearCache

# -- embeddings ----------------------------------------------------------------------------------
# BERT's input: the sum of three embeddings, then LayerNorm and dropout. Positions are learned
# vectors (not the Transformer's sinusoids), sliced to T.


class EmbeddingsCache(NamedTuple):
    word: EmbeddingCache            # the word lookup's
    token_type: EmbeddingCache      # the token-type lookup's
    layer_norm: LayerNormCache
    dropout: Any                    # the dropout's mask, or None
    position_shape: tuple           # (P, H), the shape of the position table's gradient
    ops: Ops                        # the op table the forward ran


def bert_embeddings_forward(ids, token_type_ids, word, position, token_type, gamma, beta, eps,
                            dropout_p=0.0, rng=None, training=False, dropout_mask=None, ops=None):
    """BERT's input: the sum of three embeddings, then LayerNorm and dropout.

        x = word[ids] + position[0..T) + token_type[token_type_ids]     (B, T, H)
        out = dropout(LayerNorm(x))

    ids, token_type_ids: (B, T)   word: (V, H)   position: (P, H)   token_type: (type_vocab_size, H)
    gamma, beta: (H,)   ->   out: (B, T, H), cache: EmbeddingsCache.
    """
    ops = REFERENCE_OPS if ops is None else ops
    T = ids.shape[1]
    x, c_word = ops.embedding_forward(ids, word)                   # (B,T,H)
    t, c_type = ops.embedding_forward(token_type_ids, token_type)  # (B,T,H)
    x += t
    x += position[:T]                                              # (T,H) broadcast over B
    x, c_ln = ops.layer_norm_forward(x, gamma, beta, eps)
    x, c_drop = ops.dropout_forward(x, dropout_p, rng, training, dropout_mask)
    return x, EmbeddingsCache(c_word, c_type, c_ln, c_drop, position.shape, ops)


def bert_embeddings_backward(dout, cache, dword=None, padding_idx=None):
    """Returns (dword (V, H), dposition (P, H), dtoken_type (type_vocab_size, H), dgamma (H,), dbeta (H,)).

    In the forward pass x = word[ids] + position[0..T) + token_type[types], out = dropout(LN(x)),
    so going back:
        dx = LayerNorm backward of (dropout backward of dout)               (B, T, H)
        the sum sends the same dx to all three tables:
        dposition[t] = sum over the batch of dx[:, t]        (rows T.. of the table get 0)
        dtoken_type, dword: dx scatter-added into the rows that were looked up
    `dword` may be the model's gradient buffer, added into directly (see embedding_backward).
    """
    xp, ops = get_xp(dout), cache.ops
    dx = ops.dropout_backward(dout, cache.dropout)
    dx, dgamma, dbeta = ops.layer_norm_backward(dx, cache.layer_norm)
    T = dx.shape[1]
    dposition = xp.zeros(cache.position_shape, dtype=dx.dtype)
    dposition[:T] = dx.sum(axis=0)                                 # (B,T,H) summed over B -> (T,H)
    dtoken_type = ops.embedding_backward(dx, cache.token_type)
    dword = ops.embedding_backward(dx, cache.word, dweight=dword, padding_idx=padding_idx)
    return dword, dposition, dtoken_type, dgamma, dbeta


# -- multi-head attention ------------------------------------------------------------------------
# Self-attention with A heads: the Q, K, V projections, A heads of scaled dot-product attention
# (minibert/ops/attention.py), the output projection.


class MultiHeadAttentionCache(NamedTuple):
    qkv: LinearCache                # the fused Q/K/V projection's
    sdpa: AttentionCache            # scaled dot-product attention's: sdpa.probs are the attention maps
    output: LinearCache             # the output projection's
    num_heads: int
    ops: Ops                        # the op table the forward ran


def multi_head_attention_forward(x, w_qkv, b_qkv, w_o, b_o, num_heads, mask_bias=None,
                                 dropout_p=0.0, rng=None, training=False, dropout_mask=None, ops=None):
    """Self-attention with A heads, then the output projection.

    x: (B, T, H)   w_qkv: (3H, H) = [W_q; W_k; W_v] stacked   b_qkv: (3H,)   w_o: (H, H)   b_o: (H,)
    mask_bias: (B, 1, 1, T) or None   ->   out: (B, T, H), cache: MultiHeadAttentionCache.

    Q, K and V are three Linear(H, H) layers in BERT (and in its checkpoints);
    running them as one (H -> 3H) matmul computes exactly the same numbers and
    is faster, because one big matmul uses the BLAS better than three small ones.
    """
    ops = REFERENCE_OPS if ops is None else ops
    H = x.shape[-1]
    qkv, c_qkv = ops.linear_forward(x, w_qkv, b_qkv)               # (B,T,H) @ (H,3H) -> (B,T,3H)
    q = ops.split_heads(qkv[..., :H], num_heads)                   # (B,A,T,d) views, no copy
    k = ops.split_heads(qkv[..., H:2 * H], num_heads)
    v = ops.split_heads(qkv[..., 2 * H:], num_heads)
    ctx, c_att = ops.scaled_dot_product_attention_forward(q, k, v, mask_bias, dropout_p, rng, training,
                                                          dropout_mask)
    ctx = ops.merge_heads(ctx)                                     # (B,A,T,d) -> (B,T,H)
    out, c_o = ops.linear_forward(ctx, w_o, b_o)                   # (B,T,H) @ (H,H) -> (B,T,H)
    return out, MultiHeadAttentionCache(c_qkv, c_att, c_o, num_heads, ops)


def multi_head_attention_backward(dout, cache):
    """Returns (dx (B, T, H), dw_qkv (3H, H), db_qkv (3H,), dw_o (H, H), db_o (H,)).

    In the forward pass qkv = x W_qkv^T + b_qkv, [Q|K|V] = split(qkv), C = attention(Q, K, V),
    out = merge(C) W_o^T + b_o, so going back:
        dC = split(linear backward of dout)           (B,A,T,d), with dW_o, db_o
        dQ, dK, dV = attention backward of dC         (B,A,T,d) each
        dqkv = [merge(dQ) | merge(dK) | merge(dV)]    (B,T,3H)
        dx = linear backward of dqkv                  (B,T,H), with dW_qkv, db_qkv
    """
    xp, ops = get_xp(dout), cache.ops
    dctx, dw_o, db_o = ops.linear_backward(dout, cache.output)     # (B,T,H)
    dq, dk, dv = ops.scaled_dot_product_attention_backward(ops.split_heads(dctx, cache.num_heads), cache.sdpa)
    B, A, T, d = dq.shape
    dqkv = _fused_qkv_base(dq, dk, dv)
    if dqkv is None:                                               # merge heads straight into the fused layout
        dqkv = xp.empty((B, T, 3, A, d), dtype=dq.dtype)
        dqkv[:, :, 0] = dq.transpose(0, 2, 1, 3)                   # (B,A,T,d) -> (B,T,A,d)
        dqkv[:, :, 1] = dk.transpose(0, 2, 1, 3)
        dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
    dx, dw_qkv, db_qkv = ops.linear_backward(dqkv.reshape(B, T, 3 * A * d), cache.qkv)
    return dx, dw_qkv, db_qkv, dw_o, db_o


def _fused_qkv_base(dq, dk, dv):
    """The (B, T, 3, A, d) array that dq, dk, dv are views of, when the attention backward wrote them
    there (attention_backward_in_chunks does: no copy needed); else None."""
    base = getattr(dq, "base", None)
    B, A, T, d = dq.shape
    if (base is None or getattr(base, "shape", None) != (B, T, 3, A, d) or not base.flags.c_contiguous
            or dk.base is not base or dv.base is not base):
        return None
    for i, g in enumerate((dq, dk, dv)):
        if g.__array_interface__["data"][0] != base[:, :, i].__array_interface__["data"][0] or \
                g.strides != base[:, :, i].transpose(0, 2, 1, 3).strides:
            return None
    return base


# -- Add & Norm ----------------------------------------------------------------------------------
# BERT's residual connection, post-LN as in the original Transformer (GPT-2 and later moved the
# LayerNorm before the sub-layer, "pre-LN"):
#
#     out = LayerNorm(x + dropout(sublayer_out))


class AddNormCache(NamedTuple):
    dropout: Any                    # the dropout's mask, or None
    layer_norm: LayerNormCache
    ops: Ops                        # the op table the forward ran


def add_norm_forward(x, sublayer_out, gamma, beta, eps, dropout_p=0.0, rng=None, training=False,
                     dropout_mask=None, ops=None):
    """x, sublayer_out: (B, T, H)   gamma, beta: (H,)   ->   out: (B, T, H), cache: AddNormCache."""
    ops = REFERENCE_OPS if ops is None else ops
    if ops.residual_layer_norm_forward is not None:
        # fast path, the same numbers: dropout, residual add and LayerNorm in one pass over
        # cache-sized row blocks (minibert/ops/fused.py); the readable lines are below
        mask = mask_to_use(sublayer_out, dropout_p, rng, training, dropout_mask)
        out, c = ops.residual_layer_norm_forward(x, sublayer_out, gamma, beta, eps, mask)
        return out, AddNormCache(c.mask, c.layer_norm, ops)
    s, c_drop = ops.dropout_forward(sublayer_out, dropout_p, rng, training, dropout_mask)
    s = s + x                                  # the residual: the layer learns a correction to x
    out, c_ln = ops.layer_norm_forward(s, gamma, beta, eps)
    return out, AddNormCache(c_drop, c_ln, ops)


def add_norm_backward(dout, cache):
    """Returns (dx, dsublayer_out, dgamma, dbeta), each its own array.

    In the forward pass s = x + dropout(sub), out = LayerNorm(s), so going back:
        ds   = LayerNorm backward of dout        (B, T, H)
        dx   = ds                                the residual passes it on unchanged ("gradient highway")
        dsub = dropout backward of ds            ds * mask
    """
    if cache.ops.residual_layer_norm_backward is not None:      # fast path of the lines below (ops/fused.py)
        return cache.ops.residual_layer_norm_backward(dout, ResidualLayerNormCache(cache.layer_norm, cache.dropout))
    ds, dgamma, dbeta = cache.ops.layer_norm_backward(dout, cache.layer_norm)
    dsub = cache.ops.dropout_backward(ds, cache.dropout)
    if dsub is ds:
        # No dropout (eval mode, p = 0): dropout's backward handed ds back. dx and dsub are equal
        # numbers but must not be one array (the caller adds into them): one (B, T, H) copy.
        dsub = ds.copy()
    return ds, dsub, dgamma, dbeta


# -- feed-forward --------------------------------------------------------------------------------
# The position-wise feed-forward network, the same for every token: H -> I (GELU) -> H.
#
#     FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2      W_1: (I, H), W_2: (H, I), I = 4H in BERT


class FeedForwardCache(NamedTuple):
    intermediate: LinearCache       # x W_1^T + b_1 (transformers' "intermediate.dense")
    activation: Any                 # the activation's cache: GELU's local derivative
    output: LinearCache             # f W_2^T + b_2 (transformers' "output.dense")
    hidden_act: str                 # "gelu" or "gelu_new", to find the activation's backward
    ops: Ops                        # the op table the forward ran


def ffn_forward(x, w1, b1, w2, b2, hidden_act="gelu", ops=None):
    """x: (B, T, H)   w1: (I, H)   b1: (I,)   w2: (H, I)   b2: (H,)   ->   out: (B, T, H).

    cache: FeedForwardCache.
    """
    ops = REFERENCE_OPS if ops is None else ops
    act_forward, _ = ops.activation(hidden_act)
    if hidden_act == "gelu" and ops.bias_gelu_forward is not None:
        # fast path, the same numbers: the matmul alone, then b_1's add and GELU in one pass over
        # cache-sized row blocks, written over the matmul's output (minibert/ops/fused.py)
        f, c1 = ops.linear_forward(x, w1)      # (B,T,H) @ (H,I) -> (B,T,I), no bias: db_1 comes from the fused backward
        f, c_act = ops.bias_gelu_forward(f, b1)
    else:
        f, c1 = ops.linear_forward(x, w1, b1)  # (B,T,H) @ (H,I) -> (B,T,I)
        f, c_act = act_forward(f)              # GELU, elementwise
    out, c2 = ops.linear_forward(f, w2, b2)    # (B,T,I) @ (I,H) -> (B,T,H)
    return out, FeedForwardCache(c1, c_act, c2, hidden_act, ops)


def ffn_backward(dout, cache):
    """Returns (dx (B, T, H), dw1 (I, H), db1 (I,), dw2 (H, I), db2 (H,)).

    In the forward pass u = x W_1^T + b_1, f = GELU(u), out = f W_2^T + b_2, so going back:
        df = dout W_2            (with dW_2, db_2)
        du = df * GELU'(u)
        dx = du W_1              (with dW_1, db_1)
    """
    ops = cache.ops
    _, act_backward = ops.activation(cache.hidden_act)
    df, dw2, db2 = ops.linear_backward(dout, cache.output)         # (B,T,H) -> (B,T,I)
    if cache.hidden_act == "gelu" and ops.bias_gelu_forward is not None:    # the forward's fast path
        du, db1 = ops.bias_gelu_backward(df, cache.activation)     # du over df (fresh from the matmul), db_1
        dx, dw1, _ = ops.linear_backward(du, cache.intermediate)   # (B,T,I) -> (B,T,H)
    else:
        du = act_backward(df, cache.activation)
        dx, dw1, db1 = ops.linear_backward(du, cache.intermediate)     # (B,T,I) -> (B,T,H)
    return dx, dw1, db1, dw2, db2


# -- one encoder layer --------------------------------------------------------------------------
# The four blocks above in BERT's order, post-LN:
#
#     h   = LayerNorm(x + dropout(MultiHeadAttention(x)))        (B, T, H)
#     out = LayerNorm(h + dropout(FFN(h)))                       (B, T, H)
#
# x and h are each used twice (by a sub-layer and by the residual), so each gets the sum of two
# gradients. The same numbers as BertModel's layer (tests/model/test_blocks.py); exercise 15's reference.

ENCODER_LAYER_PARAMETERS = ("w_qkv", "b_qkv", "w_o", "b_o", "gamma1", "beta1",
                            "w1", "b1", "w2", "b2", "gamma2", "beta2")


class EncoderLayerCache(NamedTuple):
    """One encoder layer's forward, for its backward: the caches of its four blocks."""
    attention: MultiHeadAttentionCache       # attention.sdpa.probs: this layer's attention maps
    attention_add_norm: AddNormCache         # h = LN(x + drop(attention))
    ffn: FeedForwardCache
    ffn_add_norm: AddNormCache               # out = LN(h + drop(ffn))


def encoder_layer_forward(x, params, num_heads, eps, mask_bias=None, hidden_act="gelu", hidden_dropout_p=0.0,
                          attention_dropout_p=0.0, rng=None, training=False):
    """One post-LN encoder layer.   x: (B, T, H)   ->   out: (B, T, H), cache: EncoderLayerCache.

    params: a dict with the keys of ENCODER_LAYER_PARAMETERS: w_qkv (3H, H), b_qkv (3H,), w_o (H, H),
    b_o (H,), gamma1, beta1 (H,) (after attention), w1 (I, H), b1 (I,), w2 (H, I), b2 (H,), gamma2,
    beta2 (H,) (after the FFN). Dropout masks are drawn from `rng` in the order attention
    probabilities, attention output, FFN output (BertModel's order).
    """
    p = params
    drop = dict(rng=rng, training=training)
    a, c_att = multi_head_attention_forward(x, p["w_qkv"], p["b_qkv"], p["w_o"], p["b_o"], num_heads, mask_bias,
                                            attention_dropout_p, **drop)                       # (B,T,H)
    h, c_an1 = add_norm_forward(x, a, p["gamma1"], p["beta1"], eps, hidden_dropout_p, **drop)   # LN(x + drop(a))
    f, c_ffn = ffn_forward(h, p["w1"], p["b1"], p["w2"], p["b2"], hidden_act)                 # (B,T,H)
    out, c_an2 = add_norm_forward(h, f, p["gamma2"], p["beta2"], eps, hidden_dropout_p, **drop)  # LN(h + drop(f))
    return out, EncoderLayerCache(c_att, c_an1, c_ffn, c_an2)


def encoder_layer_backward(dout, cache):
    """Returns (dx (B, T, H), grads): grads a dict with a gradient for each key of ENCODER_LAYER_PARAMETERS.

    The forward's lines in reverse:
        out = LN(h + drop(f)):   dh = ds2 (the residual),   df = drop backward of ds2
        f = FFN(h):              dh += FFN backward of df   (h was used twice: the gradients add)
        h = LN(x + drop(a)):     dx = ds1,                  da = drop backward of ds1
        a = attention(x):        dx += attention backward of da
    """
    dh, df, dgamma2, dbeta2 = add_norm_backward(dout, cache.ffn_add_norm)
    dh_ffn, dw1, db1, dw2, db2 = ffn_backward(df, cache.ffn)
    dh += dh_ffn
    dx, da, dgamma1, dbeta1 = add_norm_backward(dh, cache.attention_add_norm)
    dx_att, dw_qkv, db_qkv, dw_o, db_o = multi_head_attention_backward(da, cache.attention)
    dx += dx_att
    grads = dict(w_qkv=dw_qkv, b_qkv=db_qkv, w_o=dw_o, b_o=db_o, gamma1=dgamma1, beta1=dbeta1,
                 w1=dw1, b1=db1, w2=dw2, b2=db2, gamma2=dgamma2, beta2=dbeta2)
    return dx, grads


# -- pooler --------------------------------------------------------------------------------------
# A dense layer and tanh on the first token ([CLS]); its output feeds next-sentence prediction and
# sentence classification.
#
#     pooled = tanh(x[:, 0] W_p^T + b_p)        (B, H)


class PoolerCache(NamedTuple):
    dense: LinearCache
    tanh: Any                       # tanh's cache: its output
    x_shape: tuple                  # (B, T, H), the shape of dx
    ops: Ops                        # the op table the forward ran


def pooler_forward(x, weight, bias, ops=None):
    """x: (B, T, H)   weight: (H, H)   bias: (H,)   ->   pooled: (B, H), cache: PoolerCache."""
    ops = REFERENCE_OPS if ops is None else ops
    z, c_dense = ops.linear_forward(x[:, 0], weight, bias)     # (B,H) @ (H,H) -> (B,H)
    pooled, c_tanh = ops.tanh_forward(z)
    return pooled, PoolerCache(c_dense, c_tanh, x.shape, ops)


def pooler_backward(dpooled, cache):
    """Returns (dx (B, T, H), dW (H, H), db (H,)).

    In the forward pass z = x[:, 0] W_p^T + b_p, pooled = tanh(z), so going back:
        dz = dpooled * (1 - pooled^2),   dx[:, 0] = dz W_p (with dW_p, db_p),   dx[:, 1:] = 0
    """
    dz = cache.ops.tanh_backward(dpooled, cache.tanh)
    dfirst, dw, db = cache.ops.linear_backward(dz, cache.dense)
    dx = get_xp(dfirst).zeros(cache.x_shape, dtype=dfirst.dtype)
    dx[:, 0] = dfirst                                      # only the [CLS] position was used
    return dx, dw, db
