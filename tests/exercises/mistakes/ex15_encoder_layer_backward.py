"""Learner mistakes in exercise 15 (encoder_layer_backward), and correct alternatives that must pass."""
from mistakes import Mistake

SOLUTION = '''
def encoder_layer_forward(x, params, num_heads, eps, mask_bias=None, hidden_act="gelu", hidden_dropout_p=0.0,
                          attention_dropout_p=0.0, rng=None, training=False):
    p = params
    a, c_att = multi_head_attention_forward(x, p["w_qkv"], p["b_qkv"], p["w_o"], p["b_o"], num_heads, mask_bias,
                                            attention_dropout_p, rng, training)
    a, c_drop1 = dropout_forward(a, hidden_dropout_p, rng, training)
    h, c_ln1 = layer_norm_forward(x + a, p["gamma1"], p["beta1"], eps)      # post-LN: normalise the sum
    f, c_ffn = ffn_forward(h, p["w1"], p["b1"], p["w2"], p["b2"], hidden_act)
    f, c_drop2 = dropout_forward(f, hidden_dropout_p, rng, training)
    out, c_ln2 = layer_norm_forward(h + f, p["gamma2"], p["beta2"], eps)
    return out, EncoderLayerCache(c_att, AddNormCache(c_drop1, c_ln1, REFERENCE_OPS), c_ffn, AddNormCache(c_drop2, c_ln2, REFERENCE_OPS))


def encoder_layer_backward(dout, cache):
    ds2, dgamma2, dbeta2 = layer_norm_backward(dout, cache.ffn_add_norm.layer_norm)    # s2 = h + drop(f)
    df = dropout_backward(ds2, cache.ffn_add_norm.dropout)                             # the branch was dropped
    dh_ffn, dw1, db1, dw2, db2 = ffn_backward(df, cache.ffn)
    dh = ds2 + dh_ffn                                                  # h used twice: residual + FFN
    ds1, dgamma1, dbeta1 = layer_norm_backward(dh, cache.attention_add_norm.layer_norm)  # s1 = x + drop(a)
    da = dropout_backward(ds1, cache.attention_add_norm.dropout)
    dx_att, dw_qkv, db_qkv, dw_o, db_o = multi_head_attention_backward(da, cache.attention)
    dx = ds1 + dx_att                                                  # x used twice: residual + attention
    grads = dict(w_qkv=dw_qkv, b_qkv=db_qkv, w_o=dw_o, b_o=db_o, gamma1=dgamma1, beta1=dbeta1,
                 w1=dw1, b1=db1, w2=dw2, b2=db2, gamma2=dgamma2, beta2=dbeta2)
    return dx, grads
'''


def _changed(*pairs):
    source = SOLUTION
    for old, new in pairs:
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def _m(name, pairs, diagnosis, forward_ok=False):
    return Mistake("encoder_layer_backward", name, _changed(*pairs), diagnosis=diagnosis, forward_ok=forward_ok)


MISTAKES = [
    _m("pre-LN layer", [
        ("    a, c_att = multi_head_attention_forward(x, ", "    n1 = layer_norm_forward(x, p['gamma1'], p['beta1'], eps)[0]\n"
         "    a, c_att = multi_head_attention_forward(n1, "),
        ("    h, c_ln1 = layer_norm_forward(x + a, p[\"gamma1\"], p[\"beta1\"], eps)      # post-LN: normalise the sum",
         "    h, c_ln1 = x + a, layer_norm_forward(x + a, p['gamma1'], p['beta1'], eps)[1]"),
        ("f, c_ffn = ffn_forward(h, ", "f, c_ffn = ffn_forward(layer_norm_forward(h, p['gamma2'], p['beta2'], eps)[0], "),
        ("    out, c_ln2 = layer_norm_forward(h + f, p[\"gamma2\"], p[\"beta2\"], eps)",
         "    out, c_ln2 = h + f, layer_norm_forward(h + f, p['gamma2'], p['beta2'], eps)[1]")],
       r"pre-LN layer"),
    _m("no residuals in the forward", [
        ("layer_norm_forward(x + a, ", "layer_norm_forward(a, "),
        ("layer_norm_forward(h + f, ", "layer_norm_forward(f, ")],
       r"residual connections are missing"),
    _m("residual added after the LayerNorm", [
        ("    h, c_ln1 = layer_norm_forward(x + a, p[\"gamma1\"], p[\"beta1\"], eps)      # post-LN: normalise the sum",
         "    h, c_ln1 = layer_norm_forward(a, p['gamma1'], p['beta1'], eps)\n    h = h + x"),
        ("    out, c_ln2 = layer_norm_forward(h + f, p[\"gamma2\"], p[\"beta2\"], eps)",
         "    out, c_ln2 = layer_norm_forward(f, p['gamma2'], p['beta2'], eps)\n    out = out + h")],
       r"residual is added after the LayerNorm"),
    _m("FFN reads the layer's input", [("f, c_ffn = ffn_forward(h, ", "f, c_ffn = ffn_forward(x, ")],
       r"reads the layer's input x"),
    _m("LayerNorm parameters swapped in the forward", [
        ("x + a, p[\"gamma1\"], p[\"beta1\"]", "x + a, p['gamma2'], p['beta2']"),
        ("h + f, p[\"gamma2\"], p[\"beta2\"]", "h + f, p['gamma1'], p['beta1']")],
       r"LayerNorms' parameters are swapped"),
    _m("backward: dh without the residual", [("dh = ds2 + dh_ffn", "dh = dh_ffn")],
       r"h was used twice.*residual's is missing", forward_ok=True),
    _m("backward: dh without the FFN path", [("dh = ds2 + dh_ffn", "dh = ds2")],
       r"through the FFN is missing", forward_ok=True),
    _m("backward: dx without the residual", [("dx = ds1 + dx_att", "dx = dx_att")],
       r"x was used twice.*residual's gradient is missing", forward_ok=True),
    _m("backward: dx without the attention path", [("dx = ds1 + dx_att", "dx = ds1")],
       r"back through attention is missing", forward_ok=True),
    _m("backward: residual gradients taken before the LayerNorm backward", [
        ("dh = ds2 + dh_ffn", "dh = dout + dh_ffn"), ("dx = ds1 + dx_att", "dx = dh + dx_att")],
       r"from \*after\* the LayerNorm", forward_ok=True),
    _m("backward: residual gradients dropped too", [
        ("dh = ds2 + dh_ffn", "dh = df + dh_ffn"), ("dx = ds1 + dx_att", "dx = da + dx_att")],
       r"residual's gradient is multiplied by the dropout mask", forward_ok=True),
    _m("backward: sub-layer gradients not dropped", [
        ("df = dropout_backward(ds2, cache.ffn_add_norm.dropout)", "df = ds2"),
        ("da = dropout_backward(ds1, cache.attention_add_norm.dropout)", "da = ds1")],
       r"misses the dropout mask", forward_ok=True),
    _m("backward: LayerNorm gradients swapped", [
        ("gamma1=dgamma1, beta1=dbeta1,", "gamma1=dgamma2, beta1=dbeta2,"),
        ("gamma2=dgamma2, beta2=dbeta2)", "gamma2=dgamma1, beta2=dbeta1)")],
       r"LayerNorms' gradients are swapped", forward_ok=True),
]

CORRECT = [
    Mistake("encoder_layer_backward", "gradients accumulated into zeroed buffers", _changed(
        ("    dh = ds2 + dh_ffn                                                  # h used twice: residual + FFN\n",
         "    dh = np.zeros_like(ds2)\n    dh += ds2\n    dh += dh_ffn\n"),
        ("    dx = ds1 + dx_att                                                  # x used twice: residual + attention\n",
         "    dx = np.zeros_like(ds1)\n    for path in (dx_att, ds1):\n        dx += path\n")), diagnosis=""),
    Mistake("encoder_layer_backward", "dropout backward written as a mask product", _changed(
        ("    df = dropout_backward(ds2, cache.ffn_add_norm.dropout)                             # the branch was dropped\n",
         "    m2 = cache.ffn_add_norm.dropout\n    df = ds2 if m2 is None else ds2 * m2\n"),
        ("    da = dropout_backward(ds1, cache.attention_add_norm.dropout)\n",
         "    m1 = cache.attention_add_norm.dropout\n    da = ds1 * (1.0 if m1 is None else m1)\n"),
        ("    grads = dict(w_qkv=dw_qkv, b_qkv=db_qkv, w_o=dw_o, b_o=db_o, gamma1=dgamma1, beta1=dbeta1,\n"
         "                 w1=dw1, b1=db1, w2=dw2, b2=db2, gamma2=dgamma2, beta2=dbeta2)\n",
         "    names = ('w_qkv', 'b_qkv', 'w_o', 'b_o', 'gamma1', 'beta1', 'w1', 'b1', 'w2', 'b2', 'gamma2', 'beta2')\n"
         "    grads = dict(zip(names, (dw_qkv, db_qkv, dw_o, db_o, dgamma1, dbeta1, dw1, db1, dw2, db2, dgamma2,"
         " dbeta2)))\n")), diagnosis=""),
]
