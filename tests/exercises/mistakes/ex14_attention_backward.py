"""Learner mistakes in exercise 14 (attention_backward), and correct alternatives that must pass."""
from mistakes import Mistake

SOLUTION = '''
def multi_head_attention_forward(x, w_qkv, b_qkv, w_o, b_o, num_heads, mask_bias=None, dropout_p=0.0, rng=None,
                                 training=False, dropout_mask=None, ops=None):
    H = x.shape[-1]
    qkv, c_qkv = linear_forward(x, w_qkv, b_qkv)                  # (B,T,H) -> (B,T,3H) = [Q | K | V]
    q = split_heads(qkv[..., :H], num_heads)                      # (B,A,T,d)
    k = split_heads(qkv[..., H:2 * H], num_heads)
    v = split_heads(qkv[..., 2 * H:], num_heads)
    ctx, c_att = scaled_dot_product_attention_forward(q, k, v, mask_bias, dropout_p, rng, training, dropout_mask)
    out, c_o = linear_forward(merge_heads(ctx), w_o, b_o)         # (B,T,H) -> (B,T,H)
    return out, MultiHeadAttentionCache(c_qkv, c_att, c_o, num_heads, REFERENCE_OPS)


def multi_head_attention_backward(dout, cache):
    dctx, dw_o, db_o = linear_backward(dout, cache.output)        # (B,T,H), (H,H), (H,)
    dq, dk, dv = scaled_dot_product_attention_backward(split_heads(dctx, cache.num_heads), cache.sdpa)
    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)   # (B,T,3H)
    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)         # the three paths into x add here
    return dx, dw_qkv, db_qkv, dw_o, db_o
'''


def _changed(*pairs):
    """The solution with each (old, new) replacement made once (the old text must be there)."""
    source = SOLUTION
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def _m(name, pairs, diagnosis, forward_ok=False):
    return Mistake("attention_backward", name, _changed(*pairs), diagnosis=diagnosis, forward_ok=forward_ok)


MISTAKES = [
    _m("queries and keys swapped in the forward",
       [("q = split_heads(qkv[..., :H]", "k = split_heads(qkv[..., :H]"),
        ("k = split_heads(qkv[..., H:2 * H]", "q = split_heads(qkv[..., H:2 * H]")],
       r"queries and keys are swapped"),
    _m("keys and values swapped in the forward",
       [("k = split_heads(qkv[..., H:2 * H]", "v = split_heads(qkv[..., H:2 * H]"),
        ("v = split_heads(qkv[..., 2 * H:]", "k = split_heads(qkv[..., 2 * H:]")],
       r"keys and values are swapped"),
    _m("heads split by a plain reshape in the forward",
       [("    q = split_heads(qkv[..., :H], num_heads)", "    B, T, _ = x.shape\n    d = H // num_heads\n"
         "    q = qkv[..., :H].reshape(B, num_heads, T, d)"),
        ("k = split_heads(qkv[..., H:2 * H], num_heads)", "k = qkv[..., H:2 * H].reshape(B, num_heads, T, d)"),
        ("v = split_heads(qkv[..., 2 * H:], num_heads)", "v = qkv[..., 2 * H:].reshape(B, num_heads, T, d)")],
       r"plain reshape to \(B, A, T, d\)"),
    _m("fused projection read head by head",
       [("    q = split_heads(qkv[..., :H], num_heads)", "    B, T, _ = x.shape\n"
         "    per = qkv.reshape(B, T, num_heads, 3, H // num_heads).transpose(3, 0, 2, 1, 4)\n    q = per[0]"),
        ("k = split_heads(qkv[..., H:2 * H], num_heads)", "k = per[1]"),
        ("v = split_heads(qkv[..., 2 * H:], num_heads)", "v = per[2]")],
       r"not head by head"),
    _m("contexts merged by a plain reshape",
       [("out, c_o = linear_forward(merge_heads(ctx), w_o, b_o)",
         "out, c_o = linear_forward(ctx.reshape(x.shape), w_o, b_o)")],
       r"merged by a plain reshape"),
    _m("no output projection",
       [("    out, c_o = linear_forward(merge_heads(ctx), w_o, b_o)",
         "    out = merge_heads(ctx)\n    _, c_o = linear_forward(out, w_o, b_o)")],
       r"output projection \(w_o, b_o\) is missing"),
    _m("w_o not transposed",
       [("    out, c_o = linear_forward(merge_heads(ctx), w_o, b_o)",
         "    out, c_o = linear_forward(merge_heads(ctx), w_o.T, b_o)")],
       r"w_o is used transposed"),
    _m("padding mask not passed on",
       [("(q, k, v, mask_bias, dropout_p", "(q, k, v, None, dropout_p")],
       r"padding mask is not passed"),
    _m("w_qkv not transposed",
       [("qkv, c_qkv = linear_forward(x, w_qkv, b_qkv)", "qkv, c_qkv = (x @ w_qkv + b_qkv), LinearCache(x, w_qkv, True)")],
       r"inner sizes of a matrix product disagree"),
    _m("backward: fused gradient in the order K, Q, V",
       [("[merge_heads(dq), merge_heads(dk), merge_heads(dv)]", "[merge_heads(dk), merge_heads(dq), merge_heads(dv)]")],
       r"slices are in the wrong order", forward_ok=True),
    _m("backward: head gradients merged by a plain reshape",
       [("[merge_heads(dq), merge_heads(dk), merge_heads(dv)]",
         "[g.reshape(dout.shape) for g in (dq, dk, dv)]")],
       r"merged back by a plain reshape", forward_ok=True),
    _m("backward: context gradient split by a plain reshape",
       [("(split_heads(dctx, cache.num_heads), cache.sdpa)", "(dctx.reshape(cache.sdpa.k.shape), cache.sdpa)")],
       r"cut into heads by a plain reshape", forward_ok=True),
    _m("backward: only the query path reaches x",
       [("    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)",
         "    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)\n"
         "    dx = merge_heads(dq) @ cache.qkv.weight[:dq.shape[1] * dq.shape[3]]")],
       r"only the query path reaches x", forward_ok=True),
    _m("backward: dw_o transposed",
       [("return dx, dw_qkv, db_qkv, dw_o, db_o", "return dx, dw_qkv, db_qkv, dw_o.T, db_o")],
       r"dw_o is transposed", forward_ok=True),
    _m("backward: db_o summed over the batch only",
       [("return dx, dw_qkv, db_qkv, dw_o, db_o", "return dx, dw_qkv, db_qkv, dw_o, dout.sum(axis=0)")],
       r"db_o has b_o's shape \(H,\): sum over the batch \*and\* the tokens", forward_ok=True),
    _m("backward: dw_qkv transposed",
       [("return dx, dw_qkv, db_qkv, dw_o, db_o", "return dx, dw_qkv.T, db_qkv, dw_o, db_o")],
       r"dw_qkv has w_qkv's shape \(3H, H\)", forward_ok=True),
    _m("backward: db_qkv summed over the tokens only",
       [("return dx, dw_qkv, db_qkv, dw_o, db_o", "return dx, dw_qkv, dqkv.sum(axis=1), dw_o, db_o")],
       r"db_qkv has b_qkv's shape", forward_ok=True),
]

CORRECT = [
    Mistake("attention_backward", "separate Q, K, V linear backwards, summed", _changed(
        ("    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)   # (B,T,3H)\n"
         "    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)         # the three paths into x add here\n",
         "    x, w, _ = cache.qkv\n    H = x.shape[-1]\n    dx = np.zeros_like(x)\n    dws, dbs = [], []\n"
         "    for i, g in enumerate((dq, dk, dv)):\n"
         "        part = LinearCache(x, w[i * H:(i + 1) * H], True)\n"
         "        dxi, dwi, dbi = linear_backward(merge_heads(g), part)\n"
         "        dx += dxi\n        dws.append(dwi)\n        dbs.append(dbi)\n"
         "    dw_qkv, db_qkv = np.concatenate(dws), np.concatenate(dbs)\n")), diagnosis=""),
    Mistake("attention_backward", "einsum and a (B, T, 3, A, d) buffer", _changed(
        ("    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)   # (B,T,3H)\n"
         "    dx, dw_qkv, db_qkv = linear_backward(dqkv, cache.qkv)         # the three paths into x add here\n",
         "    B, A, T, d = dq.shape\n    buf = np.stack([dq, dk, dv], axis=2).transpose(0, 3, 2, 1, 4)\n"
         "    dqkv = buf.reshape(B, T, 3 * A * d)\n    x, w, _ = cache.qkv\n"
         "    dx = np.einsum('btj,ji->bti', dqkv, w)\n    dw_qkv = np.einsum('btj,bti->ji', dqkv, x)\n"
         "    db_qkv = dqkv.sum(axis=(0, 1))\n"),
        ("    dctx, dw_o, db_o = linear_backward(dout, cache.output)        # (B,T,H), (H,H), (H,)\n",
         "    ctx, w_o, _ = cache.output\n    dctx = dout @ w_o\n"
         "    dw_o = np.einsum('bto,bti->oi', dout, ctx)\n    db_o = dout.sum(axis=(0, 1))\n")), diagnosis=""),
]
