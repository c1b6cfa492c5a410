"""BERT's post-LN residual connection ("Add & Norm"):

    out = LayerNorm(x + dropout(sublayer_out))

(Post-LN as in the original Transformer and BERT; GPT-2 and later moved the
LayerNorm before the sub-layer, "pre-LN".)
"""
from __future__ import annotations

from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward


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
