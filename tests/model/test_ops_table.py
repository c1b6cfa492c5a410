"""The op table (minibert/model/ops_table.py): the model calls every op through it, and nothing else."""
from __future__ import annotations

import numpy
import pytest

from minibert.model.config import BertConfig
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.model.ops_table import REFERENCE_OPS, Ops


def counting_table(calls: dict) -> Ops:
    """REFERENCE_OPS with every function wrapped to count its calls (the same numbers)."""
    def wrap(name, fn):
        def counted(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args, **kwargs)
        return counted
    return REFERENCE_OPS.replace(**{n: wrap(n, getattr(REFERENCE_OPS, n)) for n in Ops.names()})


def pretraining_pass(ops, hidden_act):
    cfg = BertConfig(vocab_size=29, hidden_size=12, num_hidden_layers=2, num_attention_heads=3,
                     intermediate_size=13, max_position_embeddings=11, hidden_act=hidden_act)
    model = BertForPreTraining(cfg, seed=3, ops=ops).train()
    rng = numpy.random.default_rng(0)
    ids = rng.integers(1, 29, size=(2, 7))
    ids[1, 5:] = 0
    labels = numpy.full((2, 7), -100)
    labels[0, 2], labels[1, 1] = 4, 9
    out = model.forward(ids, (ids > 10).astype(int), (ids != 0).astype(int), labels=labels,
                        next_sentence_label=numpy.array([0, 1]))
    model.zero_grad()
    model.backward()
    return out, model


def test_every_op_goes_through_the_table_and_the_numbers_stay_the_same():
    calls = {}
    out_ref, ref = pretraining_pass(None, "gelu")
    out, model = pretraining_pass(counting_table(calls), "gelu")
    pretraining_pass(counting_table(calls), "gelu_new")
    assert sorted(calls) == sorted(Ops.names()), f"never called through the table: {set(Ops.names()) - set(calls)}"
    assert float(out["loss"]) == float(out_ref["loss"])
    for k in ref.grads:
        assert numpy.array_equal(model.grads[k], ref.grads[k]), k


def test_a_replaced_op_changes_the_model():
    def no_layer_norm(x, gamma, beta, eps):
        return x * 1.0, None
    ops = REFERENCE_OPS.replace(layer_norm_forward=no_layer_norm)
    model = BertForPreTraining(BertConfig.preset("tiny", vocab_size=31), ops=ops).eval()
    seq, _ = model.bert.forward(numpy.array([[2, 3, 4]]))
    assert abs(float(seq.std()) - 1.0) > 0.05          # LayerNorm's output would have std ~1 per row


def test_replace_names_an_unknown_op():
    with pytest.raises(TypeError, match="no field softmax_forward"):
        REFERENCE_OPS.replace(softmax_forward=lambda x: x)
    assert REFERENCE_OPS.activation("gelu_new")[0] is REFERENCE_OPS.gelu_tanh_forward
