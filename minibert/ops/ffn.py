"""The position-wise feed-forward network: H -> I (GELU) -> H, applied to every token alike.

    FFN(x) = GELU(x W_1^T + b_1) W_2^T + b_2      W_1: (I, H), W_2: (H, I), I = 4H in BERT
"""
from __future__ import annotations

from minibert.ops.activations import ACTIVATIONS
from minibert.ops.linear import linear_backward, linear_forward


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
