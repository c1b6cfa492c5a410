"""Embedding lookup: row `ids[b, t]` of a table.

The backward is a scatter-add: a token id that occurs k times in the batch
collects the sum of its k upstream gradients. Assigning instead of adding is
the classic bug (only the last occurrence would count).
"""
from __future__ import annotations

from minibert.backend import get_xp, scatter_add
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward


def embedding_forward(ids, weight):
    """out[b, t] = weight[ids[b, t]].

    ids: (B, T) integers in [0, V)   weight: (V, H)   ->   out: (B, T, H)
    """
    return weight[ids], (ids, weight.shape)


def embedding_backward(dout, cache, dweight=None, padding_idx=None):
    """dW[v] = sum over (b, t) with ids[b, t] == v of dout[b, t].

    dout: (B, T, H) -> dW: (V, H). If `dweight` (a (V, H) gradient buffer) is
    given, the rows are added straight into it and it is returned: this avoids
    a vocabulary-sized temporary (30522 x H) on every step.
    `padding_idx`: positions holding this id send no gradient, as PyTorch's
    nn.Embedding(padding_idx=...) that Hugging Face uses for [PAD]; the [PAD]
    vector then stays as initialised (zero). Google's TF code has no such rule.
    """
    ids, shape = cache
    if dweight is None:
        dweight = get_xp(dout).zeros(shape, dtype=dout.dtype)
    flat_ids = ids.reshape(-1)
    rows = dout.reshape(-1, shape[1])
    if padding_idx is not None:
        keep = flat_ids != padding_idx
        flat_ids, rows = flat_ids[keep], rows[keep]
    scatter_add(dweight, flat_ids, rows)
    return dweight


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
