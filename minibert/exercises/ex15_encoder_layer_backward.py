"""Exercise 15: one post-LN encoder layer, forward and backward: the residual paths
(minibert.model.blocks.encoder_layer_forward / _backward, used as they are)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.model.blocks import (ENCODER_LAYER_PARAMETERS, encoder_layer_backward, encoder_layer_forward,
                                   ffn_backward, ffn_forward, multi_head_attention_backward,
                                   multi_head_attention_forward)
from minibert.ops.attention import attention_mask_bias
from minibert.ops.dropout import dropout_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward

STATEMENT = r"""
## The forward

One encoder layer of BERT, on $x$ of shape $(B, T, H)$, **post-LN** as in the original Transformer:

$$
h = \operatorname{LN}_1\big(x + \operatorname{drop}(\operatorname{Attention}(x))\big), \qquad
\text{out} = \operatorname{LN}_2\big(h + \operatorname{drop}(\operatorname{FFN}(h))\big).
$$

Attention is exercise 14's block (with the padding mask and its own dropout on the probabilities),
FFN is $\operatorname{GELU}(h W_1^\top + b_1) W_2^\top + b_2$, each LN has its own $\gamma, \beta$, and
the two `drop`s use `hidden_dropout_p`. You may use minibert's `multi_head_attention_forward` /
`_backward`, `ffn_forward` / `_backward`, `layer_norm_forward` / `_backward` and `dropout_forward` /
`_backward` (imported in your file): the work is the two residual connections, forward and back.

## What to work out

- The gradient that reaches $h$, and the one that reaches $x$: along how many paths each?
- Where the dropout masks act in the backward, and where they do not.
- The order of the dropout draws (attention probabilities, attention output, FFN output) is part of
  the contract, so that your layer equals minibert's for the same generator.

## Your functions

`encoder_layer_forward(x, params, num_heads, eps, mask_bias=None, hidden_act="gelu",
hidden_dropout_p=0.0, attention_dropout_p=0.0, rng=None, training=False)` returns `(out, cache)` and
`encoder_layer_backward(dout, cache)` returns `(dx, grads)`.
"""

CONTRACTS = (
    ("encoder_layer_forward", """One post-LN encoder layer.   x: (B, T, H)   ->   out: (B, T, H), cache.

    params: a dict: w_qkv (3H, H), b_qkv (3H,), w_o (H, H), b_o (H,) (attention, exercise 14);
    gamma1, beta1 (H,) (the LayerNorm after attention); w1 (I, H), b1 (I,), w2 (H, I), b2 (H,) (the
    FFN); gamma2, beta2 (H,) (the LayerNorm after the FFN).
    mask_bias: (B, 1, 1, T) or None. hidden_act: the FFN's activation name (ffn_forward's).
    Dropout (training=True): attention_dropout_p on the attention probabilities, hidden_dropout_p on
    each sub-layer's output before its residual add, drawn from rng in the order: probabilities,
    attention output, FFN output.

    The cache must be EncoderLayerCache(attention, attention_add_norm, ffn, ffn_add_norm): the
    attention's and the FFN's caches, and for each Add & Norm an AddNormCache(dropout, layer_norm, ops)
    (its dropout cache, its LayerNorm cache and the op table that ran them: REFERENCE_OPS, the table
    of the functions your file imports). The grader also runs your backward on minibert's own cache,
    which has this form.
    """),
    ("encoder_layer_backward", """dout: (B, T, H), cache: EncoderLayerCache   ->   (dx (B, T, H), grads).

    grads: a dict with one gradient per key of params, each of its parameter's shape.
    Which gradients reach h, and which reach x? Along which paths?
    """),
)

DERIVATION = r"""
## Derive it

1. **Scalar case of a residual.** Let $s = x + g(x)$ with scalars. What is $ds/dx$? Given $\bar s$,
   what is $\bar x$? Why is the residual called a "gradient highway"?
2. **A value used twice.** In $\text{out} = \operatorname{LN}_2(h + \operatorname{drop}(\operatorname{FFN}(h)))$,
   $h$ is read twice. Write $\bar h$ as a sum over its two uses, each term in words (which backward
   produces it).
3. **Dropout on one branch only.** With $s_2 = h + m \odot f$ (the scaled mask $m$ fixed),
   what are $\partial s_2 / \partial h$ and $\partial s_2 / \partial f$? Which gradient gets the mask?
4. **LayerNorm comes last.** The LN sits *after* the sum: which gradient does the residual branch
   carry, $\overline{\text{out}}$ itself or what comes out of LN's backward? Compare with pre-LN
   ($\text{out} = h + \operatorname{FFN}(\operatorname{LN}(h))$), where the other is true.
5. **Vectorise and check shapes.** Write the backward as eight lines in the reverse order of the
   forward, each with the shape of what it returns; the parameter gradients come from the four
   blocks' backwards.
"""

HINTS = (
    "Look at which gradient is wrong first, in backward order: the second LayerNorm's, then the FFN's, then "
    "the first LayerNorm's, then attention's, then dx. The first one that is off tells you which step of "
    "your backward to re-derive.",
    "Every array the forward used twice (x and h) must receive two gradients that add. And the residual "
    "branch starts after LayerNorm's backward, not before it.",
    "A sub-layer's output went through dropout before the add, the residual did not: only one of the two "
    "gradients leaving the add is multiplied by the mask. docs/encoder.md walks through the layer.",
)

QUESTIONS = (
    Question("In a post-LN layer, does the gradient reaching $x$ through the residual pass unchanged through "
             "the whole stack of layers? Compare with pre-LN, and say why pre-LN trains deep stacks without "
             "warm-up more easily.",
             "No: in post-LN the residual sum is followed by LayerNorm, so every layer multiplies the "
             "residual gradient by LN's Jacobian ($r$ times a projection), and the sum of the branch adds "
             "to it; the highway passes through $L$ LayerNorms. In pre-LN ($x + F(\\operatorname{LN}(x))$) "
             "the residual path is the identity from the top to the bottom, so gradients keep their scale "
             "in deep stacks and training is stable with less warm-up (at some cost in final quality "
             "without care)."),
    Question("Why does the dropout mask multiply the sub-layer's gradient but not the residual's?",
             "Dropout was applied to the sub-layer's output only, before the add: $s = x + m \\odot f$ gives "
             "$\\partial s / \\partial f = m$ and $\\partial s / \\partial x = 1$."),
)

SANITY = (
    ("**Sanity check: the residual carries the gradient.** With the attention's output weights at zero, "
     "the layer is $\\operatorname{LN}_2(h + \\dots)$ with $h = \\operatorname{LN}_1(x + b_o)$: $\\bar x$ is still "
     "not zero, and it flows only through the residual.",
     "rng = np.random.default_rng(0)\nB, T, H, I = 2, 3, 8, 16\n"
     "shapes = dict(w_qkv=(3 * H, H), b_qkv=(3 * H,), w_o=(H, H), b_o=(H,), gamma1=(H,), beta1=(H,),\n"
     "              w1=(I, H), b1=(I,), w2=(H, I), b2=(H,), gamma2=(H,), beta2=(H,))\n"
     "p = {k: rng.normal(size=s) * 0.3 for k, s in shapes.items()}\np[\"w_o\"][:] = 0\n"
     "x = rng.normal(size=(B, T, H))\nout, cache = mine.encoder_layer_forward(x, p, 2, 1e-12)\n"
     "dx, grads = mine.encoder_layer_backward(np.ones_like(out), cache)\n"
     "print(\"|dx| =\", np.abs(dx).sum(), \" |dw_qkv| =\", np.abs(grads[\"w_qkv\"]).sum(), \"(0: no path)\")"),
)

EPS = 1e-12


def _params(t, hidden, inter):
    shapes = dict(w_qkv=(3 * hidden, hidden), b_qkv=(3 * hidden,), w_o=(hidden, hidden), b_o=(hidden,),
                  gamma1=(hidden,), beta1=(hidden,), w1=(inter, hidden), b1=(inter,), w2=(hidden, inter),
                  b2=(hidden,), gamma2=(hidden,), beta2=(hidden,))
    p = {k: t.rng.normal(size=s) * 0.4 for k, s in shapes.items()}
    p["gamma1"] += 1.0
    p["gamma2"] += 1.0
    return p


def _mask_bias(batch, steps):
    mask = numpy.ones((batch, steps), dtype=numpy.int64)
    mask[-1, steps - 2:] = 0
    return attention_mask_bias(mask, numpy.dtype(numpy.float64))


def _forward_variant(x, p, heads, mask_bias, pd, seed, kind):
    """The layer as a known mistake computes it (dropout drawn in the contract's order from `seed`)."""
    rng = numpy.random.default_rng(seed) if seed is not None else None
    training = seed is not None

    def drop(v):
        return dropout_forward(v, pd, rng, training)[0]

    def ln(v, which):
        return layer_norm_forward(v, p["gamma" + which], p["beta" + which], EPS)[0]

    def att(v):
        return multi_head_attention_forward(v, p["w_qkv"], p["b_qkv"], p["w_o"], p["b_o"], heads, mask_bias,
                                            pd, rng, training)[0]

    def ffn(v):
        return ffn_forward(v, p["w1"], p["b1"], p["w2"], p["b2"])[0]

    if kind == "pre-LN":
        h = x + drop(att(ln(x, "1")))
        return h + drop(ffn(ln(h, "2")))
    a = att(x)
    if kind == "no residual":
        h = ln(drop(a), "1")
        return ln(drop(ffn(h)), "2")
    if kind == "residual after LN":
        h = ln(drop(a), "1") + x
        return ln(drop(ffn(h)), "2") + h
    if kind == "dropout after the add":
        h = ln(drop(x + a), "1")
        return ln(drop(h + ffn(h)), "2")
    if kind == "FFN reads x":
        h = ln(x + drop(a), "1")
        return ln(h + drop(ffn(x)), "2")
    if kind == "LayerNorms swapped":
        h = ln(x + drop(a), "2")
        return ln(h + drop(ffn(h)), "1")
    raise ValueError(kind)


FORWARD_MISTAKES = {
    "pre-LN": "this is the pre-LN layer (x + sublayer(LN(x))): BERT is post-LN, the LayerNorm comes after the "
              "residual add, LN(x + sublayer(x)).",
    "no residual": "the residual connections are missing: each LayerNorm normalises the sum of the sub-layer's "
                   "input and its (dropped) output.",
    "residual after LN": "the residual is added after the LayerNorm: post-LN normalises the sum, "
                         "LN(x + dropout(sublayer)).",
    "dropout after the add": "dropout goes on the sub-layer's output before the add, not on the sum: the "
                             "residual itself is never dropped.",
    "FFN reads x": "the feed-forward network reads the layer's input x: it reads h, the attention sub-layer's "
                   "normalised output.",
    "LayerNorms swapped": "the two LayerNorms' parameters are swapped: gamma1/beta1 follow attention, "
                          "gamma2/beta2 the FFN.",
}


def _forward_check(t, batch, steps, hidden, heads, inter, masked, pd):
    x = t.rng.normal(size=(batch, steps, hidden))
    p = _params(t, hidden, inter)
    mask_bias = _mask_bias(batch, steps) if masked else None
    seed = int(t.rng.integers(2 ** 31)) if pd else None
    kwargs = dict(hidden_dropout_p=pd, attention_dropout_p=pd, training=bool(pd))
    rng = (lambda: numpy.random.default_rng(seed)) if pd else (lambda: None)
    expected = encoder_layer_forward(x.copy(), p, heads, EPS, mask_bias, rng=rng(), **kwargs)[0]
    got = t.call("encoder_layer_forward", x.copy(), {k: v.copy() for k, v in p.items()}, heads, EPS, mask_bias,
                 rng=rng(), **kwargs)
    out = t.unpack(got, "encoder_layer_forward", "out, cache")[0]
    t.compare("out", out, expected, candidates=[
        ((lambda kind=kind: _forward_variant(x, p, heads, mask_bias, pd, seed, kind)), text)
        for kind, text in FORWARD_MISTAKES.items()],
        hint="write the layer's two lines from the statement and compare each step's shape; check the order of "
             "the dropout draws.")


def _backward_variant(dout, cache, kind):
    """(dx, grads) as a known backward mistake computes them, from minibert's cache."""
    an2, an1 = cache.ffn_add_norm, cache.attention_add_norm

    def mask(c, v):
        return v if c.dropout is None else v * c.dropout

    ds2, dgamma2, dbeta2 = layer_norm_backward(dout, an2.layer_norm)
    df = ds2 if kind == "sub-layer gradient not dropped" else mask(an2, ds2)
    dh_ffn, dw1, db1, dw2, db2 = ffn_backward(df, cache.ffn)
    residual2 = {"residual from dout": dout, "residual dropped": mask(an2, ds2)}.get(kind, ds2)
    dh = {"dh without the residual": dh_ffn, "dh without the FFN path": residual2}.get(kind, residual2 + dh_ffn)
    ds1, dgamma1, dbeta1 = layer_norm_backward(dh, an1.layer_norm)
    da = ds1 if kind == "sub-layer gradient not dropped" else mask(an1, ds1)
    dx_att, dw_qkv, db_qkv, dw_o, db_o = multi_head_attention_backward(da, cache.attention)
    residual1 = {"residual from dout": dh, "residual dropped": mask(an1, ds1)}.get(kind, ds1)
    dx = {"dx without the residual": dx_att, "dx without the attention path": residual1}.get(kind, residual1 + dx_att)
    grads = dict(w_qkv=dw_qkv, b_qkv=db_qkv, w_o=dw_o, b_o=db_o, gamma1=dgamma1, beta1=dbeta1,
                 w1=dw1, b1=db1, w2=dw2, b2=db2, gamma2=dgamma2, beta2=dbeta2)
    if kind == "LayerNorm gradients swapped":
        grads.update(gamma1=dgamma2, beta1=dbeta2, gamma2=dgamma1, beta2=dbeta1)
    return dx, grads


BACKWARD_MISTAKES = {
    "dh without the residual": "h was used twice (by the FFN and by the second residual): its gradient is the "
                               "sum of both paths; the residual's is missing.",
    "dh without the FFN path": "h was used twice: the gradient coming back through the FFN is missing from it.",
    "dx without the residual": "x was used twice (by attention and by the first residual): the residual's "
                               "gradient is missing from dx.",
    "dx without the attention path": "x was used twice: the gradient back through attention is missing from dx.",
    "residual from dout": "the residual branch carries the gradient from *after* the LayerNorm: post-LN "
                          "normalises the sum, so both branches start from LayerNorm's backward.",
    "residual dropped": "the residual's gradient is multiplied by the dropout mask: only the sub-layer's "
                        "output was dropped.",
    "sub-layer gradient not dropped": "the sub-layer's gradient misses the dropout mask: its output was "
                                      "dropped before the add.",
    "LayerNorm gradients swapped": "the two LayerNorms' gradients are swapped: gamma1/beta1 are the "
                                   "LayerNorm after attention.",
}

ORDER = ("gamma2", "beta2", "w2", "b2", "w1", "b1", "gamma1", "beta1", "w_o", "b_o", "w_qkv", "b_qkv")


def _grads_dict(t, grads):
    if not isinstance(grads, dict):
        raise CheckFailed(f"encoder_layer_backward's second output is {type(grads).__name__}; it must be a dict "
                          f"with one gradient per key of params.")
    missing = [k for k in ENCODER_LAYER_PARAMETERS if k not in grads]
    if missing:
        raise CheckFailed(f"grads has no {', '.join(missing)}: it needs one gradient per key of params.")
    return grads


def _compare(t, dx, grads, ref, variants, *, loss=None, x=None, p=None, failed=False):
    dx_ref, grads_ref = ref
    grads = _grads_dict(t, grads)
    for label, mine, expected, index in [(f"grads[{k!r}]", grads[k], grads_ref[k], k) for k in ORDER] + \
            [("dx", dx, dx_ref, None)]:
        cands = [(v[1][index] if index else v[0], BACKWARD_MISTAKES[kind]) for kind, v in variants.items()]
        hint = "re-derive the step of the backward that produces this gradient (see the hints for the order)."
        if loss is None:
            t.compare(label, mine, expected, candidates=cands, hint=hint)
        else:
            t.gradient(label, mine, expected, loss, x if index is None else p[index], candidates=cands, hint=hint,
                       forward_failed=failed, entries=6)


def _variants(dout, cache):
    found = {}
    for kind in BACKWARD_MISTAKES:
        found[kind] = _backward_variant(dout, cache, kind)
    return found


def _backward_check(t, batch, steps, hidden, heads, inter, pd, forward_ok, on_reference_cache=False):
    x = t.rng.normal(size=(batch, steps, hidden))
    p = _params(t, hidden, inter)
    mask_bias = _mask_bias(batch, steps)
    dout = t.rng.normal(size=(batch, steps, hidden))
    seed = int(t.rng.integers(2 ** 31))
    kwargs = dict(hidden_dropout_p=pd, attention_dropout_p=pd, training=bool(pd))

    def rng():
        return numpy.random.default_rng(seed) if pd else None

    _, ref_cache = encoder_layer_forward(x.copy(), p, heads, EPS, mask_bias, rng=rng(), **kwargs)
    ref = encoder_layer_backward(dout, ref_cache)
    variants = _variants(dout, ref_cache)
    if on_reference_cache:
        got = t.call("encoder_layer_backward", dout.copy(), ref_cache)
        dx, grads = t.unpack(got, "encoder_layer_backward", "dx, grads")
        _compare(t, dx, grads, ref, variants)
        return
    _, cache, forward, own = t.forward_for_backward("encoder_layer_forward", x.copy(), p, heads, EPS, mask_bias,
                                                    rng=rng(), **kwargs)
    if not own:
        # Your forward failed (reported above), perhaps after drawing some masks from the generator it was
        # given, which minibert's forward then shared: take the cache of minibert's forward on a fresh one.
        cache = ref_cache
    dx, grads = t.unpack(t.call("encoder_layer_backward", dout.copy(), cache), "encoder_layer_backward", "dx, grads")

    def loss():
        return float((forward(x.copy(), {k: v.copy() for k, v in p.items()}, heads, EPS, mask_bias, rng=rng(),
                              **kwargs) * dout).sum())

    _compare(t, dx, grads, ref, variants, loss=loss, x=x, p=p, failed=own and not forward_ok)


def check(t):
    with t.check("forward: x (2, 5, 12), 3 heads, I = 20, evaluation"):
        _forward_check(t, 2, 5, 12, 3, 20, False, 0.0)
    with t.check("forward: x (3, 4, 10), 2 heads, I = 13, a padding mask"):
        _forward_check(t, 3, 4, 10, 2, 13, True, 0.0)
    with t.check("forward: training, dropout 0.2 (drawn in the contract's order)"):
        _forward_check(t, 2, 5, 12, 3, 20, True, 0.2)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: dx and the 12 parameter gradients, x (3, 4, 10), 2 heads, a padding mask"):
        _backward_check(t, 3, 4, 10, 2, 13, 0.0, forward_ok)
    with t.check("backward: training, dropout 0.2 on both residual branches and the probabilities"):
        _backward_check(t, 2, 5, 12, 3, 20, 0.2, forward_ok)
    with t.check("backward on minibert's own cache (dropout 0.3)"):
        _backward_check(t, 2, 3, 8, 2, 11, 0.3, forward_ok, on_reference_cache=True)


EXERCISE = Exercise(
    number=15, name="encoder_layer_backward",
    title="one post-LN encoder layer: forward and backward through the residual paths",
    functions=(encoder_layer_forward, encoder_layer_backward),
    imports="import numpy as np\n\n"
            "from minibert.model.blocks import AddNormCache, EncoderLayerCache   # the caches your forward returns\n"
            "from minibert.model.ops_table import REFERENCE_OPS                 # the op table your cache records\n"
            "from minibert.model.blocks import (ffn_backward, ffn_forward, multi_head_attention_backward,  # you\n"
            "                                   multi_head_attention_forward)                   # may use these\n"
            "from minibert.ops.dropout import dropout_backward, dropout_forward\n"
            "from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward",
    minutes=60,
    assesses="residual connections in the backward: a value used twice gets the sum of two gradients; post-LN "
             "vs pre-LN; dropout on the sub-layer branch only; composing four blocks' backwards",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/encoder.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
