"""Gradient checking: every hand-written backward against central finite differences, in float64.

For an op y = f(x) and a fixed random upstream gradient dy, the backward must
return dL/dx for L = sum(y * dy). Numerically, entry by entry,

    dL/dx[i] ~ (L(x + h e_i) - L(x - h e_i)) / (2h)        (error O(h^2))

and the two are compared with a relative error,
max|a - b| / max(max|a|, max|b|, 1e-2), i.e. relative to the largest entry of
the gradient (one tiny entry cannot blow the ratio up). The floor 1e-2 is for
gradients that are exactly zero, like the key bias's (softmax ignores a shift
shared by all scores of a row): there the finite difference is pure rounding
noise, ~1e-10, and the check becomes absolute, |a - b| < 1e-8. In float64
with h = 1e-5 a correct backward gives about 1e-9 or less; a wrong one 1e-2
or more. The bar is 1e-6.

    python -m minibert gradcheck          # the table for every op and the whole model
"""
from __future__ import annotations

import dataclasses
import time

import numpy

from minibert import backend
from minibert.model.bert import BertModel
from minibert.model.blocks import (add_norm_backward, add_norm_forward, bert_embeddings_backward,
                                   bert_embeddings_forward, ffn_backward, ffn_forward,
                                   multi_head_attention_backward, multi_head_attention_forward, pooler_backward,
                                   pooler_forward)
from minibert.model.config import BertConfig
from minibert.model.heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification)
from minibert.ops import (IGNORE_INDEX, attention_mask_bias, cross_entropy_backward, cross_entropy_forward,
                          dropout_backward, dropout_forward, embedding_backward, embedding_forward, gelu_backward,
                          gelu_forward, gelu_tanh_backward, gelu_tanh_forward, layer_norm_backward,
                          layer_norm_forward, linear_backward, linear_forward, mse_backward, mse_forward,
                          scaled_dot_product_attention_backward, scaled_dot_product_attention_forward,
                          softmax_backward, softmax_forward, tanh_backward, tanh_forward)
from minibert.ops.dropout import dropout_mask
from minibert.ops.losses import (cosine_embedding_loss_backward, cosine_embedding_loss_forward,
                                 kl_div_with_temperature_backward, kl_div_with_temperature_forward,
                                 soft_target_cross_entropy_backward, soft_target_cross_entropy_forward)

TOLERANCE = 1e-6
STEP = 1e-5


SCALE_FLOOR = 1e-2


def rel_error(a, b) -> float:
    """max|a - b| / max(max|a|, max|b|, 1e-2): the error relative to the gradient's scale."""
    a = backend.to_host(a).astype(numpy.float64)
    b = backend.to_host(b).astype(numpy.float64)
    scale = max(float(numpy.max(numpy.abs(a), initial=0.0)), float(numpy.max(numpy.abs(b), initial=0.0)),
                SCALE_FLOOR)
    return float(numpy.max(numpy.abs(a - b), initial=0.0) / scale)


def numerical_gradient(loss_fn, x, indices, h=STEP):
    """Central differences of the scalar loss_fn() with respect to x at the given flat indices.

    x is perturbed in place and restored, so loss_fn must read x (not a copy).
    Returns a host array of len(indices).
    """
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient needs a C-contiguous array (reshape would copy and perturb nothing)")
    flat = x.reshape(-1)   # a view: writing to it writes x
    grads = numpy.empty(len(indices))
    for n, i in enumerate(indices):
        old = float(flat[i])
        flat[i] = old + h
        plus = loss_fn()
        flat[i] = old - h
        minus = loss_fn()
        flat[i] = old
        grads[n] = (plus - minus) / (2 * h)
    return grads


def pick_indices(analytic, rng, max_entries):
    """All flat indices of a small tensor; else a sample, half where the analytic gradient is non-zero
    (so a sparse gradient, like an embedding table's, is really tested) and half anywhere."""
    size = analytic.size
    if size <= max_entries:
        return numpy.arange(size)
    nonzero = numpy.flatnonzero(backend.to_host(analytic).reshape(-1))
    k = max_entries // 2
    picked = rng.choice(nonzero, size=min(k, len(nonzero)), replace=False) if len(nonzero) else []
    anywhere = rng.choice(size, size=max_entries - len(picked), replace=False)
    return numpy.unique(numpy.concatenate([numpy.asarray(picked, dtype=numpy.int64), anywhere]))


@dataclasses.dataclass
class CheckResult:
    name: str
    max_rel_error: float
    checked: int
    worst: str

    @property
    def passed(self) -> bool:
        return self.max_rel_error < TOLERANCE


def check_op(name, forward, backward, inputs, wrt, rng, max_entries=40):
    """Compare backward with finite differences for every input named in `wrt`.

    forward(**inputs) -> (out, cache); backward(dout, cache) -> dict name -> gradient.
    The loss is L = sum(out * dout) for a fixed random dout.
    """
    xp = backend.get_xp()
    out, cache = forward(**inputs)
    dout = xp.asarray(rng.normal(size=out.shape))

    def loss():
        return float((forward(**inputs)[0] * dout).sum())

    analytic = backward(dout, cache)
    worst_err, worst_name, checked = 0.0, "", 0
    for key in wrt:
        idx = pick_indices(analytic[key], rng, max_entries)
        numeric = numerical_gradient(loss, inputs[key], idx)
        err = rel_error(analytic[key].reshape(-1)[xp.asarray(idx)], numeric)
        checked += len(idx)
        if err >= worst_err:
            worst_err, worst_name = err, key
    return CheckResult(name, worst_err, checked, worst_name)


# -- the ops, on odd sizes so a transposed or mis-broadcast axis cannot pass --------------

B, T, H, A, I, V = 3, 7, 36, 3, 37, 11


def _normal(rng, *shape, scale=1.0):
    return backend.to_device(rng.normal(0.0, scale, size=shape), dtype=numpy.float64)


def _padding_mask(xp):
    mask = numpy.ones((B, T), dtype=numpy.int64)
    mask[1, 5:] = 0          # sequence 1 has 5 tokens, sequence 2 has 3
    mask[2, 3:] = 0
    return xp.asarray(mask)


def op_checks(rng):
    """Yield (name, forward, backward, inputs, wrt) for every op."""
    xp = backend.get_xp()
    f64 = numpy.dtype(numpy.float64)
    mask_bias = attention_mask_bias(_padding_mask(xp), f64)
    fixed_drop = dropout_mask((B, T, H), 0.3, rng, xp, f64)

    yield ("linear", lambda x, w, b: linear_forward(x, w, b),
           lambda d, c: dict(zip("xwb", linear_backward(d, c))),
           dict(x=_normal(rng, B, T, H), w=_normal(rng, I, H), b=_normal(rng, I)), "xwb")

    ids = xp.asarray(numpy.array([[1, 2, 1, 4, 1, 9, 2]] * B))        # repeated ids: scatter-add
    yield ("embedding (repeated ids)", lambda w: embedding_forward(ids, w),
           lambda d, c: {"w": embedding_backward(d, c)}, dict(w=_normal(rng, V, H)), "w")

    types = xp.asarray(rng.integers(0, 2, size=(B, T)))
    yield ("embeddings: word+position+type, LayerNorm, dropout",
           lambda word, pos, typ, g, b: bert_embeddings_forward(ids, types, word, pos, typ, g, b, 1e-12,
                                                                0.3, training=True, dropout_mask=fixed_drop),
           lambda d, c: dict(zip(("word", "pos", "typ", "g", "b"), bert_embeddings_backward(d, c))),
           dict(word=_normal(rng, V, H), pos=_normal(rng, 19, H), typ=_normal(rng, 2, H),
                g=_normal(rng, H), b=_normal(rng, H)), ("word", "pos", "typ", "g", "b"))

    yield ("layer_norm", lambda x, g, b: layer_norm_forward(x, g, b, 1e-12),
           lambda d, c: dict(zip("xgb", layer_norm_backward(d, c))),
           dict(x=_normal(rng, B, T, H), g=_normal(rng, H), b=_normal(rng, H)), "xgb")

    for name, fwd, bwd in (("gelu (exact, erf)", gelu_forward, gelu_backward),
                           ("gelu_new (tanh approximation)", gelu_tanh_forward, gelu_tanh_backward),
                           ("tanh", tanh_forward, tanh_backward),
                           ("softmax", lambda x: softmax_forward(x), softmax_backward)):
        yield (name, fwd, lambda d, c, bwd=bwd: {"x": bwd(d, c)}, dict(x=_normal(rng, B, T, I, scale=2.0)), "x")

    yield ("dropout (fixed mask)", lambda x: dropout_forward(x, 0.3, training=True, mask=fixed_drop),
           lambda d, c: {"x": dropout_backward(d, c)}, dict(x=_normal(rng, B, T, H)), "x")

    d = H // A
    att_drop = dropout_mask((B, A, T, T), 0.2, rng, xp, f64)
    yield ("scaled dot-product attention (padding mask, dropout)",
           lambda q, k, v: scaled_dot_product_attention_forward(q, k, v, mask_bias, 0.2, training=True,
                                                                dropout_mask=att_drop),
           lambda dd, c: dict(zip("qkv", scaled_dot_product_attention_backward(dd, c))),
           dict(q=_normal(rng, B, A, T, d), k=_normal(rng, B, A, T, d), v=_normal(rng, B, A, T, d)), "qkv")

    yield ("multi-head attention (split, attend, merge, project)",
           lambda x, wqkv, bqkv, wo, bo: multi_head_attention_forward(x, wqkv, bqkv, wo, bo, A, mask_bias),
           lambda dd, c: dict(zip(("x", "wqkv", "bqkv", "wo", "bo"), multi_head_attention_backward(dd, c))),
           dict(x=_normal(rng, B, T, H), wqkv=_normal(rng, 3 * H, H, scale=0.3), bqkv=_normal(rng, 3 * H),
                wo=_normal(rng, H, H), bo=_normal(rng, H)), ("x", "wqkv", "bqkv", "wo", "bo"))

    for act in ("gelu", "gelu_new"):
        yield (f"feed-forward H -> I -> H ({act})",
               lambda x, w1, b1, w2, b2, act=act: ffn_forward(x, w1, b1, w2, b2, act),
               lambda dd, c: dict(zip(("x", "w1", "b1", "w2", "b2"), ffn_backward(dd, c))),
               dict(x=_normal(rng, B, T, H), w1=_normal(rng, I, H), b1=_normal(rng, I),
                    w2=_normal(rng, H, I), b2=_normal(rng, H)), ("x", "w1", "b1", "w2", "b2"))

    yield ("residual + LayerNorm (post-LN, dropout)",
           lambda x, s, g, b: add_norm_forward(x, s, g, b, 1e-12, 0.3, training=True, dropout_mask=fixed_drop),
           lambda dd, c: dict(zip("xsgb", add_norm_backward(dd, c))),
           dict(x=_normal(rng, B, T, H), s=_normal(rng, B, T, H), g=_normal(rng, H), b=_normal(rng, H)), "xsgb")

    yield ("pooler (dense + tanh on [CLS])", lambda x, w, b: pooler_forward(x, w, b),
           lambda dd, c: dict(zip("xwb", pooler_backward(dd, c))),
           dict(x=_normal(rng, B, T, H), w=_normal(rng, H, H, scale=0.3), b=_normal(rng, H)), "xwb")

    labels = rng.integers(0, V, size=B * T)
    labels[[0, 4, 9, 10]] = IGNORE_INDEX                                # ignored positions
    labels = xp.asarray(labels)
    yield ("cross-entropy (ignore_index -100)", lambda logits: cross_entropy_forward(logits, labels),
           lambda dd, c: {"logits": cross_entropy_backward(dd, c)},
           dict(logits=_normal(rng, B * T, V, scale=3.0)), ("logits",))

    target = _normal(rng, B, 5)
    yield ("mean squared error", lambda pred: mse_forward(pred, target),
           lambda dd, c: {"pred": mse_backward(dd, c)}, dict(pred=_normal(rng, B, 5)), ("pred",))


def distill_loss_checks(rng):
    """Yield (name, forward, backward, inputs, wrt) for the distillation losses (train/distill.py): the
    student's logits / hidden states vary, the teacher's are constants. `run` checks them last, with a
    generator of their own, so every row before them draws the numbers it always drew."""
    xp = backend.get_xp()
    labels = rng.integers(0, V, size=B * T)
    labels[[0, 4, 9, 10]] = IGNORE_INDEX                                # rows not counted
    teacher, kept = _normal(rng, B * T, V, scale=3.0), xp.asarray(labels != IGNORE_INDEX)
    for name, fwd, bwd in (("KL divergence with temperature (T=2, some rows)", kl_div_with_temperature_forward,
                            kl_div_with_temperature_backward),
                           ("soft-target cross-entropy (T=2, some rows)", soft_target_cross_entropy_forward,
                            soft_target_cross_entropy_backward)):
        yield (name, lambda s, fwd=fwd: fwd(s, teacher, 2.0, kept), lambda dd, c, bwd=bwd: {"s": bwd(dd, c)},
               dict(s=_normal(rng, B * T, V, scale=3.0)), ("s",))
    h_teacher, real = _normal(rng, B, T, H), _padding_mask(xp) == 1
    yield ("cosine embedding loss (padding mask)", lambda h: cosine_embedding_loss_forward(h, h_teacher, real),
           lambda dd, c: {"h": cosine_embedding_loss_backward(dd, c)}, dict(h=_normal(rng, B, T, H)), ("h",))


MODEL_STEP = 1e-4


def check_model(config: BertConfig, rng, per_param=4, batch=B, seq=T, h=MODEL_STEP):
    """Finite-difference check of BertModel's backward for every parameter (a few entries each).

    Parameters are perturbed from BERT's init (non-zero biases and LayerNorm) so a
    wrong gradient cannot hide behind zeros; a padding mask is present, dropout off.
    The step is 1e-4 here (1e-5 for single ops): the whole model's loss is a sum of
    many terms, so its rounding noise, about eps * |L| / h, is larger, and it is what
    the exactly-zero key-bias gradient measures; the larger step keeps that noise
    near 1e-8 while the O(h^2) truncation error stays below it.
    """

    model = BertModel(config, seed=int(rng.integers(1 << 30)), dtype="float64").eval()
    for v in model.params.values():                         # in place: the params are views (model/flat.py)
        v += backend.to_device(rng.normal(0.0, 0.1, size=v.shape), dtype=numpy.float64)
    xp = backend.get_xp()
    ids = rng.integers(1, config.vocab_size, size=(batch, seq))
    ids[1, -2:] = config.pad_token_id                                       # real [PAD] tokens
    types = rng.integers(0, config.type_vocab_size, size=(batch, seq))
    mask = (ids != config.pad_token_id).astype(numpy.int64)
    seq_out, pooled = model.forward(ids, types, mask)
    d_seq = xp.asarray(rng.normal(size=seq_out.shape))
    d_pooled = xp.asarray(rng.normal(size=pooled.shape))
    model.zero_grad()
    model.backward(d_seq, d_pooled)

    def loss():
        s, p = model.forward(ids, types, mask)
        return float((s * d_seq).sum() + (p * d_pooled).sum())

    return check_every_parameter(model, loss, rng, per_param, h)


def check_every_parameter(model, loss, rng, per_param, h) -> list:
    """Compare model.grads (already filled by a backward) with central differences of `loss`
    at `per_param` sampled entries of every parameter; one CheckResult per parameter."""
    xp = backend.get_xp()
    results = []
    for name, param in model.params.items():
        idx = pick_indices(model.grads[name], rng, per_param)
        if name.endswith("word_embeddings.weight"):
            idx = _without_pad_row(idx, param.shape[1], model.config.pad_token_id)
        numeric = numerical_gradient(loss, param, idx, h)
        err = rel_error(model.grads[name].reshape(-1)[xp.asarray(idx)], numeric)
        results.append(CheckResult(name, err, len(idx), name))
    return results


def _without_pad_row(idx, hidden: int, pad_token_id: int):
    """The sampled flat indices of the word-embedding table less those in the [PAD] row. Its lookup
    gradient is zeroed on purpose (Hugging Face's padding_idx: the [PAD] vector is never trained
    through the lookup), while the outputs at [PAD] positions still enter the check's loss, so a
    finite difference there measures a dependence the model deliberately does not follow."""
    return idx[idx // hidden != pad_token_id]


def task_head_inputs(model, rng, batch=B, seq=T) -> dict:
    """A padded batch with labels for a task head (minibert.model.heads): some labels ignored
    (-100), and for question answering a start past the sequence (ignored) and a negative end
    (clamped to 0), so every rule of the loss is exercised."""
    cfg = model.config
    ids = rng.integers(1, cfg.vocab_size, size=(batch, seq))
    ids[1, -2:] = cfg.pad_token_id
    types = rng.integers(0, cfg.type_vocab_size, size=(batch, seq))
    mask = (ids != cfg.pad_token_id).astype(numpy.int64)
    inputs = dict(input_ids=ids, token_type_ids=types, attention_mask=mask)
    name = type(model).__name__
    if name == "BertForQuestionAnswering":
        start = rng.integers(0, seq, size=batch)
        end = rng.integers(0, seq, size=batch)
        start[0], end[-1] = seq + 3, -2
        return dict(inputs, start_positions=start, end_positions=end)
    if name == "BertForTokenClassification":
        labels = rng.integers(0, cfg.num_labels, size=(batch, seq))
        labels[mask == 0] = IGNORE_INDEX
        return dict(inputs, labels=labels)
    if model.is_regression:
        return dict(inputs, labels=rng.normal(size=batch if cfg.num_labels == 1 else (batch, cfg.num_labels)))
    labels = rng.integers(0, cfg.num_labels, size=batch)
    labels[-1] = IGNORE_INDEX
    return dict(inputs, labels=labels)


def check_task_head(cls, config: BertConfig, rng, per_param=4, h=MODEL_STEP):
    """Finite-difference check of a task head (and the BertModel under it) for every parameter.

    Training mode, so every dropout is on, with fixed masks: the dropout generator is
    rewound to the same state before every forward, so each forward draws the same masks
    and the loss is a smooth function of the parameters. Parameters perturbed from the
    init, padding and ignored labels present.
    """
    model = cls(config, seed=int(rng.integers(1 << 30)), dtype="float64").train()
    for k, v in model.params.items():
        v += backend.to_device(rng.normal(0.0, 0.1, size=v.shape), dtype=numpy.float64)
    inputs = task_head_inputs(model, rng)
    state = model.bert.rng.bit_generator.state

    def loss():
        model.bert.rng.bit_generator.state = state                        # the same dropout masks
        return float(model.forward(**inputs)["loss"])

    loss()
    model.zero_grad()
    model.backward()
    return check_every_parameter(model, loss, rng, per_param, h)


def task_head_checks():
    """(label, class, config) for every task head row of the table (odd sizes, dropout on)."""
    return [("3 classes", BertForSequenceClassification, odd_config(num_labels=3, classifier_dropout=0.2)),
            ("regression (MSE)", BertForSequenceClassification, odd_config(num_labels=1)),
            ("5 classes", BertForTokenClassification, odd_config(num_labels=5, classifier_dropout=0.2)),
            ("start/end spans", BertForQuestionAnswering, odd_config(hidden_act="gelu_new"))]


def odd_config(**overrides) -> BertConfig:
    """The odd sizes of google-research/bert's own tests, so shape bugs fail loudly."""
    fields = dict(vocab_size=99, hidden_size=36, num_hidden_layers=2, num_attention_heads=3,
                  intermediate_size=37, max_position_embeddings=19, hidden_act="gelu")
    fields.update(overrides)
    return BertConfig(**fields)


def run(config_name="tiny", seed=0, per_param=4, stream=print) -> bool:
    """Print the table for every op and the whole model; return True if all pass."""
    rng = numpy.random.default_rng(seed)
    rows = []
    start = time.perf_counter()
    for name, fwd, bwd, inputs, wrt in op_checks(rng):
        rows.append(check_op(name, fwd, bwd, inputs, wrt, rng))
    configs = [("odd sizes", odd_config(hidden_act=act)) for act in ("gelu", "gelu_new")]
    if config_name != "odd":
        configs.append((config_name, BertConfig.preset(config_name)))
    for label, cfg in configs:
        results = check_model(cfg, rng, per_param)
        worst = max(results, key=lambda r: r.max_rel_error)
        rows.append(CheckResult(f"BertModel, {label}, {cfg.hidden_act}: {len(results)} parameters",
                                worst.max_rel_error, sum(r.checked for r in results), worst.name))
    for label, cls, cfg in task_head_checks():
        results = check_task_head(cls, cfg, rng, per_param)
        worst = max(results, key=lambda r: r.max_rel_error)
        rows.append(CheckResult(f"{cls.__name__}, {label}, dropout: {len(results)} parameters",
                                worst.max_rel_error, sum(r.checked for r in results), worst.name))
    distill_rng = numpy.random.default_rng([seed, 19])
    for name, fwd, bwd, inputs, wrt in distill_loss_checks(distill_rng):
        rows.append(check_op(name, fwd, bwd, inputs, wrt, distill_rng))
    width = max(len(r.name) for r in rows)
    stream(f"Gradient check: float64 central differences (h={STEP} for ops, {MODEL_STEP} for the whole model), "
           f"pass if max relative error < {TOLERANCE:g}")
    stream(f"backend: {backend.name()}\n")
    stream(f"{'op':<{width}}  {'entries':>7}  {'max rel error':>13}  result")
    stream("-" * (width + 33))
    for r in rows:
        stream(f"{r.name:<{width}}  {r.checked:>7}  {r.max_rel_error:>13.2e}  {'pass' if r.passed else 'FAIL (' + r.worst + ')'}")
    failed = [r for r in rows if not r.passed]
    stream("-" * (width + 33))
    stream(f"{len(rows) - len(failed)}/{len(rows)} passed in {time.perf_counter() - start:.1f} s")
    return not failed


