"""Exercise 14: multi-head self-attention with the fused QKV projection, forward and the whole backward
(minibert.model.blocks.multi_head_attention_forward / _backward, used as they are)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise, Question
from minibert.model.blocks import multi_head_attention_backward, multi_head_attention_forward
from minibert.ops.attention import (attention_mask_bias, merge_heads, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)
from minibert.ops.linear import linear_backward, linear_forward

STATEMENT = r"""
## The forward

BERT's self-attention block, with $A$ heads of size $d = H / A$, on $x$ of shape $(B, T, H)$:

$$
[\,Q \mid K \mid V\,] = x\, W_{qkv}^\top + b_{qkv} \quad (B, T, 3H), \qquad
C_a = \operatorname{attention}(Q_a, K_a, V_a) \quad (B, T, d) \text{ per head } a,
$$
$$
\text{out} = [\,C_1 \mid \dots \mid C_A\,]\, W_o^\top + b_o \quad (B, T, H).
$$

- $W_{qkv}$ of shape $(3H, H)$ is BERT's three $(H, H)$ query, key and value weights stacked
  (queries first), so the three projections are one matrix product; weights are stored
  (out, in), as in PyTorch.
- Head $a$ owns the contiguous columns $[a d, (a+1) d)$ of $Q$, $K$ and $V$ (exercise 08), and the
  attention of each head is exercise 07's, with its padding mask and dropout on the probabilities.

You may use minibert's `linear_forward` / `linear_backward`, `split_heads` / `merge_heads` and
`scaled_dot_product_attention_forward` / `_backward` (imported in your file; you wrote your own in
exercises 02, 07 and 08). The work here is the composition, and above all the backward.

## What to work out

- The forward's steps as a chain of ops, with the shape after each one.
- Going back: which gradient each step receives and returns, in which order, and with which shape.
- $x$ is used three times (for $Q$, $K$ and $V$): how does that show up in $\bar x$? How is
  $\bar W_{qkv}$ laid out, and why must it match $W_{qkv}$'s layout row for row?

## Your functions

`multi_head_attention_forward(x, w_qkv, b_qkv, w_o, b_o, num_heads, mask_bias=None, dropout_p=0.0,
rng=None, training=False, dropout_mask=None, ops=None)` returns `(out, cache)` and
`multi_head_attention_backward(dout, cache)` returns `(dx, dw_qkv, db_qkv, dw_o, db_o)`.
"""

CONTRACTS = (
    ("multi_head_attention_forward", """Self-attention with A heads and the fused QKV projection, then the output projection.

    x: (B, T, H)   w_qkv: (3H, H), the query, key and value weights stacked in that order   b_qkv: (3H,)
    w_o: (H, H)   b_o: (H,)   mask_bias: (B, 1, 1, T) or None (exercise 07's additive mask)
    dropout_p, rng, training, dropout_mask: the attention-probability dropout, passed on to
    scaled_dot_product_attention_forward as they are.
    ops: minibert's signature (a BertModel passes its op table, minibert/model/ops_table.py). The
    grader passes None, meaning minibert's own functions: call the ones your file imports. (The
    capstone puts your ops into the model, not this block.)
    ->  out: (B, T, H), cache.

    The cache must be MultiHeadAttentionCache(qkv, sdpa, output, num_heads, ops): the fused
    projection's LinearCache, the attention's AttentionCache, the output projection's LinearCache, A,
    and the op table the forward ran: REFERENCE_OPS, the table of the functions your file imports
    (the grader also runs your backward on minibert's own cache, which has this form).
    """),
    ("multi_head_attention_backward", """dout: (B, T, H), cache: MultiHeadAttentionCache from the forward
    ->  (dx (B, T, H), dw_qkv (3H, H), db_qkv (3H,), dw_o (H, H), db_o (H,)).

    Each gradient has the shape and layout of what it is the gradient of. Which step of the forward
    does each line of your backward undo, and what shape does it hand on?
    """),
)

DERIVATION = r"""
## Derive it

1. **Name the intermediate arrays** of the forward and write each one's shape:
   $qkv$ $(B, T, 3H)$, then $Q, K, V$ split into heads $(B, A, T, d)$, then $C$ $(B, A, T, d)$,
   then merged $(B, T, H)$, then out. Every step is an op whose backward you already have.
2. **Scalar case first.** For one token and one head ($B = T = A = 1$): out $= c\, W_o^\top + b_o$.
   What are $\partial\,\text{out}_i / \partial c_j$ and $\partial\,\text{out}_i / \partial (W_o)_{ij}$?
   Vectorise it over the $B \cdot T$ rows: which rows get summed for $\bar b_o$?
3. **The heads.** Splitting and merging only move numbers. If a forward step moved entry $u$ to
   position $v$, where does the backward send the gradient of $v$? Which of split and merge is
   the backward of which?
4. **Three uses of one input.** $qkv$ is a single array whose three slices were used separately.
   The backward produces $\bar Q, \bar K, \bar V$ per head. Build $\overline{qkv}$ from them so
   that column $j$ of $\overline{qkv}$ is the gradient of column $j$ of $qkv$. Then $x$'s
   gradient comes out of a single linear backward: why is that the *sum* of the three paths
   through $Q$, $K$ and $V$?
5. **Shapes check.** $\bar W_{qkv}$ must be $(3H, H)$ with rows $[0, H)$ for the queries: which
   rows would be wrong if $\overline{qkv}$'s slices were in another order, and would the shapes
   tell you?
"""

HINTS = (
    "Check the shapes first, then the order: dW_qkv's first H rows belong to the queries, the next H to the "
    "keys, the last H to the values, exactly as w_qkv's rows. If only some rows are off, the slices of the "
    "fused gradient are in the wrong order or laid out per head.",
    "Going back through the heads is the inverse of what the forward did to them: the gradient of the merged "
    "context must be split into heads the same way the forward split Q, K and V, and the head gradients "
    "merged back the same way the context was merged.",
    "x fed all three projections: its gradient is one linear backward of the whole fused (B, T, 3H) gradient, "
    "which adds the three paths. docs/attention.md (multi-head attention) and exercise 08's layout.",
)

QUESTIONS = (
    Question("Why does one $(H \\to 3H)$ matrix product compute exactly the same numbers as three "
             "$(H \\to H)$ ones, and why is it faster? Does the fusion change any gradient?",
             "The rows of $W_{qkv}$ are the three weights stacked, so each output column is the same dot "
             "product as before; one large matmul uses the BLAS (or GPU) better than three small ones. The "
             "gradients are the same numbers: $\\bar W_{qkv}$ is the three weight gradients stacked in the "
             "same order, and $\\bar x$ is the sum of the three paths, which the single product computes."),
    Question("Each head's keys and values are slices of the same $x$. If you zeroed the gradient of one "
             "head's $V$, which rows of $\\bar W_{qkv}$ and which entries of $\\bar x$ would change?",
             "Only the rows $[2H + a d, 2H + (a+1) d)$ of $\\bar W_{qkv}$ (and those entries of "
             "$\\bar b_{qkv}$) become zero, but *every* entry of $\\bar x$ can change, because each input "
             "feature feeds every head's value through $W_v$."),
)

SANITY = (
    ("**Sanity check: one head equals plain attention.** With $A = 1$ and identity-like weights, your block "
     "must give the same output as exercise 07's attention on $x$ itself.",
     "from minibert.ops.attention import scaled_dot_product_attention_forward\n\n"
     "rng = np.random.default_rng(0)\nH = 4\nx = rng.normal(size=(2, 3, H))\n"
     "eye = np.eye(H)\nw_qkv = np.concatenate([eye, eye, eye])\n"
     "out, _ = mine.multi_head_attention_forward(x, w_qkv, np.zeros(3 * H), eye, np.zeros(H), 1)\n"
     "plain, _ = scaled_dot_product_attention_forward(x[:, None], x[:, None], x[:, None])\n"
     "print(\"max difference:\", np.abs(out - plain[:, 0]).max())"),
)

B, T, H, A = 2, 5, 12, 3


def _params(t, hidden):
    w_qkv = t.rng.normal(size=(3 * hidden, hidden)) * 0.4
    b_qkv = t.rng.normal(size=3 * hidden) * 0.3
    w_o = t.rng.normal(size=(hidden, hidden)) * 0.4
    b_o = t.rng.normal(size=hidden) * 0.3
    return w_qkv, b_qkv, w_o, b_o


def _mask_bias(batch, steps):
    mask = numpy.ones((batch, steps), dtype=numpy.int64)
    mask[-1, steps - 2:] = 0                          # the last sequence: 2 padded keys
    return attention_mask_bias(mask, numpy.dtype(numpy.float64))


def _reshape_heads(a, heads):
    """(B, T, H) -> (B, A, T, d) by a plain reshape: exercise 08's classic mistake."""
    b, steps, hidden = a.shape
    return a.reshape(b, heads, steps, hidden // heads)


def _reshape_merge(c):
    b, heads, steps, d = c.shape
    return c.reshape(b, steps, heads * d)


def _forward_variant(x, w_qkv, b_qkv, w_o, b_o, heads, mask_bias, *, order=(0, 1, 2), split=split_heads,
                     merge=merge_heads, interleaved=False, project=True, wo_transposed=False, use_mask=True,
                     drop=None):
    """The block computed as a known mistake computes it."""
    hidden = x.shape[-1]
    qkv = linear_forward(x, w_qkv, b_qkv)[0]                       # (B, T, 3H)
    if interleaved:                                                # (B, T, A, 3, d): per-head [q k v]
        b, steps, _ = qkv.shape
        per = qkv.reshape(b, steps, heads, 3, hidden // heads).transpose(3, 0, 2, 1, 4)
        q, k, v = per[0], per[1], per[2]
    else:
        parts = [qkv[..., i * hidden:(i + 1) * hidden] for i in range(3)]
        q, k, v = (split(parts[i], heads) for i in order)
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    ctx = scaled_dot_product_attention_forward(q, k, v, mask_bias if use_mask else None, **kwargs)[0]
    ctx = merge(ctx)
    if not project:
        return ctx
    return ctx @ w_o + b_o if wo_transposed else linear_forward(ctx, w_o, b_o)[0]


def _forward_candidates(args, drop):
    def v(**kw):
        return lambda: _forward_variant(*args, drop=drop, **kw)
    return [
        (v(order=(1, 0, 2)), "queries and keys are swapped: w_qkv's rows are stacked queries first, then keys, "
         "then values, and the columns of the fused projection follow that order."),
        (v(order=(0, 2, 1)), "keys and values are swapped: the fused projection's columns are [Q | K | V]."),
        (v(interleaved=True), "the fused projection is laid out [Q | K | V], each H wide, not head by head "
         "([q k v] of head 0, then head 1...): slice Q, K and V first, then split each into heads."),
        (v(split=_reshape_heads), "the heads are cut by a plain reshape to (B, A, T, d), which mixes tokens "
         "across heads (exercise 08): Q, K, V are split as (B, T, A, d) with the token axis moved after."),
        (v(merge=_reshape_merge), "the heads' contexts are merged by a plain reshape, which mixes tokens "
         "across heads (exercise 08)."),
        (v(project=False), "the output projection (w_o, b_o) is missing: the merged context goes through one "
         "more dense layer."),
        (v(wo_transposed=True), "w_o is used transposed: weights are stored (out, in), so the projection "
         "multiplies by its transpose (exercise 02)."),
        (v(use_mask=False), "the padding mask is not passed on to the attention."),
    ]


def _forward_check(t, batch, steps, hidden, heads, masked=False, drop=None):
    x = t.rng.normal(size=(batch, steps, hidden))
    params = _params(t, hidden)
    mask_bias = _mask_bias(batch, steps) if masked else None
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    expected = multi_head_attention_forward(x.copy(), *params, heads, mask_bias, **kwargs)[0]
    got = t.call("multi_head_attention_forward", x.copy(), *(p.copy() for p in params), heads, mask_bias, **kwargs)
    out = t.unpack(got, "multi_head_attention_forward", "out, cache")[0]
    t.compare("out", out, expected, candidates=_forward_candidates((x, *params, heads, mask_bias), drop),
              hint="follow the forward step by step and compare each intermediate's shape with the statement.")


def _backward_variants(dout, cache):
    """(dx, dw_qkv, db_qkv) as known mistakes compute them, from minibert's cache."""
    heads = cache.num_heads
    dctx = linear_backward(dout, cache.output)[0]

    def fused(parts, merge=merge_heads):
        return linear_backward(numpy.concatenate([merge(p) for p in parts], axis=-1), cache.qkv)

    dq, dk, dv = scaled_dot_product_attention_backward(split_heads(dctx, heads), cache.sdpa)
    zero = numpy.zeros_like(dq)
    out = {
        "order": fused((dk, dq, dv)),
        "merge": fused((dq, dk, dv), merge=_reshape_merge),
        "query only": fused((dq, zero, zero)),
    }
    try:
        rq, rk, rv = scaled_dot_product_attention_backward(_reshape_heads(dctx, heads), cache.sdpa)
        out["split"] = fused((rq, rk, rv))
    except Exception:                  # noqa: BLE001 - a variant that does not apply to these shapes
        pass
    return out


def _texts():
    return {
        "order": "the fused gradient's slices are in the wrong order: its columns must line up with the forward's "
                 "[Q | K | V] columns (queries first), or the rows of dw_qkv land on the wrong weights.",
        "merge": "the head gradients are merged back by a plain reshape, which mixes tokens across heads: undo "
                 "the split the way merge_heads undoes it.",
        "query only": "only the query path reaches x: x also fed K and V, and its gradient is the sum of the "
                      "three paths (one linear backward of the whole fused gradient).",
        "split": "the context's gradient is cut into heads by a plain reshape: split it exactly as the forward "
                 "split Q, K and V (the inverse of the merge).",
    }


def _candidates(variants, index):
    return [(arrays[index], _texts()[name]) for name, arrays in variants.items()]


def _compare_grads(t, got, ref, variants, dout, cache, *, loss=None, wrt=None, failed=False):
    """Compare the five gradients with minibert's (and finite differences when `loss` is given)."""
    dx, dw_qkv, db_qkv, dw_o, db_o = got
    rx, rw_qkv, rb_qkv, rw_o, rb_o = ref
    hidden = rx.shape[-1]
    specs = [
        ("dw_o", dw_o, rw_o, [(rw_o.T, "dw_o is transposed: it has w_o's (out, in) layout, rows for the "
                                        "outputs (exercise 02).")], ""),
        ("db_o", db_o, rb_o, [], "db_o has b_o's shape (H,): sum over the batch *and* the tokens."),
        ("dw_qkv", dw_qkv, rw_qkv, _candidates(variants, 1), f"dw_qkv has w_qkv's shape (3H, H) = "
         f"({3 * hidden}, {hidden}), queries' rows first."),
        ("db_qkv", db_qkv, rb_qkv, _candidates(variants, 2), f"db_qkv has b_qkv's shape (3H,) = ({3 * hidden},): "
         f"sum over the batch and the tokens."),
        ("dx", dx, rx, _candidates(variants, 0), ""),
    ]
    for label, mine, expected, cands, shape_hint in specs:
        if loss is None:
            t.compare(label, mine, expected, candidates=cands, shape_hint=shape_hint,
                      hint="compare this gradient's shape and layout with its parameter's.")
        else:
            t.gradient(label, mine, expected, loss, wrt[label], candidates=cands, shape_hint=shape_hint,
                       forward_failed=failed, hint="compare this gradient's shape and layout with its parameter's.")


def _backward_check(t, batch, steps, hidden, heads, forward_ok, drop=None):
    x = t.rng.normal(size=(batch, steps, hidden))
    params = _params(t, hidden)
    mask_bias = _mask_bias(batch, steps)
    kwargs = {} if drop is None else dict(dropout_p=0.25, training=True, dropout_mask=drop)
    dout = t.rng.normal(size=(batch, steps, hidden))
    ref_cache = multi_head_attention_forward(x.copy(), *params, heads, mask_bias, **kwargs)[1]
    ref = multi_head_attention_backward(dout, ref_cache)
    variants = _backward_variants(dout, ref_cache)
    w_qkv, b_qkv, w_o, b_o = params
    _, cache, forward, own = t.forward_for_backward("multi_head_attention_forward", x.copy(), *params, heads,
                                                    mask_bias, **kwargs)
    got = t.unpack(t.call("multi_head_attention_backward", dout.copy(), cache), "multi_head_attention_backward",
                   "dx, dw_qkv, db_qkv, dw_o, db_o")

    def loss():
        return float((forward(x.copy(), w_qkv.copy(), b_qkv.copy(), w_o.copy(), b_o.copy(), heads, mask_bias,
                              **kwargs) * dout).sum())

    wrt = dict(dx=x, dw_qkv=w_qkv, db_qkv=b_qkv, dw_o=w_o, db_o=b_o)
    _compare_grads(t, got, ref, variants, dout, ref_cache, loss=loss, wrt=wrt, failed=own and not forward_ok)


def _backward_on_reference_cache(t, batch, steps, hidden, heads):
    x = t.rng.normal(size=(batch, steps, hidden))
    params = _params(t, hidden)
    mask_bias = _mask_bias(batch, steps)
    dout = t.rng.normal(size=(batch, steps, hidden))
    ref_cache = multi_head_attention_forward(x, *params, heads, mask_bias)[1]
    ref = multi_head_attention_backward(dout, ref_cache)
    got = t.unpack(t.call("multi_head_attention_backward", dout.copy(), ref_cache), "multi_head_attention_backward",
                   "dx, dw_qkv, db_qkv, dw_o, db_o")
    _compare_grads(t, got, ref, _backward_variants(dout, ref_cache), dout, ref_cache)


def _dropout_mask(t, batch, heads, steps):
    return (t.rng.random((batch, heads, steps, steps)) >= 0.25) / 0.75


def check(t):
    with t.check(f"forward: x ({B}, {T}, {H}), {A} heads, no mask"):
        _forward_check(t, B, T, H, A)
    with t.check("forward: x (3, 7, 10), 5 heads of size 2, a padding mask"):
        _forward_check(t, 3, 7, 10, 5, masked=True)
    with t.check("forward: training with a fixed dropout mask on the attention probabilities"):
        _forward_check(t, B, T, H, A, masked=True, drop=_dropout_mask(t, B, A, T))
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: the five gradients for x (3, 7, 10), 5 heads, a padding mask"):
        _backward_check(t, 3, 7, 10, 5, forward_ok)
    with t.check(f"backward: x ({B}, {T}, {H}), {A} heads, attention dropout"):
        _backward_check(t, B, T, H, A, forward_ok, drop=_dropout_mask(t, B, A, T))
    with t.check("backward on minibert's own cache: x (2, 4, 6), 2 heads"):
        _backward_on_reference_cache(t, 2, 4, 6, 2)


EXERCISE = Exercise(
    number=14, name="attention_backward",
    title="multi-head self-attention with the fused QKV projection: the whole backward",
    functions=(multi_head_attention_forward, multi_head_attention_backward),
    imports="import numpy as np\n\n"
            "from minibert.model.blocks import MultiHeadAttentionCache          # the cache your forward returns\n"
            "from minibert.model.ops_table import REFERENCE_OPS                 # the op table your cache records\n"
            "from minibert.ops.attention import (merge_heads, scaled_dot_product_attention_backward,  # you may\n"
            "                                    scaled_dot_product_attention_forward, split_heads)   # use these\n"
            "from minibert.ops.linear import LinearCache, linear_backward, linear_forward",
    minutes=60,
    assesses="composing a block's backward from its ops in reverse; the layout of a fused (3H, H) weight and "
             "its gradient; a value used three times gets the sum of three gradients; shapes as a check",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/attention.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
