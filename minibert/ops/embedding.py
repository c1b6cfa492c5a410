"""Embedding lookup: row `ids[b, t]` of a table.

The backward is a scatter-add: a token id that occurs k times in the batch
collects the sum of its k upstream gradients. Assigning instead of adding is
the classic bug (only the last occurrence would count).
"""
from __future__ import annotations

from minibert.backend import get_xp, scatter_add


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


