"""Embedding lookup: row `ids[b, t]` of a table.

The backward is a scatter-add: a token id that occurs k times in the batch
collects the sum of its k upstream gradients. Assigning instead of adding is
the classic bug (only the last occurrence would count).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp, scatter_add


class EmbeddingCache(NamedTuple):
    """What embedding_backward needs from the forward: the ids, not the table."""
    ids: Any             # (B, T) integers
    weight_shape: tuple  # (V, H), the shape of the table's gradient


def embedding_forward(ids, weight):
    """out[b, t] = weight[ids[b, t]].

    ids: (B, T) integers in [0, V)   weight: (V, H)   ->   out: (B, T, H)
    cache: EmbeddingCache(ids, weight_shape).
    """
    return weight[ids], EmbeddingCache(ids, weight.shape)


def embedding_backward(dout, cache, dweight=None, padding_idx=None):
    """dW[v] = sum over (b, t) with ids[b, t] == v of dout[b, t].

    dout: (B, T, H) -> dW: (V, H). If `dweight` (a (V, H) gradient buffer) is
    given, the rows are added straight into it and it is returned: this avoids
    a vocabulary-sized temporary (30522 x H) on every step.
    `padding_idx`: positions holding this id send no gradient, as PyTorch's
    nn.Embedding(padding_idx=...) that Hugging Face uses for [PAD]; the [PAD]
    vector then stays as initialised (zero). Google's TF code has no such rule.
    """
    ids, (V, H) = cache                                  # EmbeddingCache(ids, weight_shape)
    if dweight is None:
        dweight = get_xp(dout).zeros((V, H), dtype=dout.dtype)
    flat_ids = ids.reshape(-1)                           # (N,)
    rows = dout.reshape(-1, H)                           # (N, H): row n goes to dW[flat_ids[n]]
    if padding_idx is not None:
        keep = flat_ids != padding_idx                   # (N,) bool
        if get_xp(dout) is numpy:                        # host: drop the [PAD] rows (fewer rows to add)
            flat_ids, rows = flat_ids[keep], rows[keep]
        else:                                            # device: no shape that depends on the data (that
            rows = get_xp(dout).where(keep[:, None], rows, 0)   # would sync): [PAD] rows add zeros instead
    scatter_add(dweight, flat_ids, rows)
    return dweight


