"""minibert/model/flat.py: every parameter (and gradient) a view into one flat array, the dicts unchanged.

The numbers themselves are pinned by the fingerprint and the parity tests; here: the views share
one storage (a head model's BertModel included, the tied decoder being the word-embedding view),
the dicts keep their keys, shapes and dtypes, loading writes into the views, rebinding is refused,
zero_grad is one fill, freezing still keeps frozen gradients at zero."""
import copy

import numpy as np
import pytest

from minibert import BertConfig, backend, gradcheck
from minibert.model.bert import BertModel, bert_parameter_shapes
from minibert.model.flat import FlatBuffers, ParameterDict
from minibert.model.heads import BertForSequenceClassification
from minibert.model.heads.pretraining import BertForPreTraining, pretraining_head_shapes
from helpers import head_config, padded_batch


def tiny(layers=2):
    return BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=24, max_position_embeddings=20)


def assert_views_of(d: dict, flat, buffers):
    """Every entry of d is a view into `flat`, at its slot, and together they tile it exactly."""
    covered = np.zeros(flat.size, dtype=int)
    for k, v in d.items():
        slot = buffers.slots[k]
        assert np.shares_memory(v, flat), k
        assert v.shape == slot.shape and v.flags.c_contiguous, k
        v_flat = v.reshape(-1)
        assert v_flat.__array_interface__["data"][0] == flat[slot.start:].__array_interface__["data"][0], k
        covered[slot.start:slot.stop] += 1
    assert (covered == 1).all()


def test_bert_model_params_and_grads_are_views_into_one_buffer():
    cfg = tiny()
    model = BertModel(cfg, seed=0)
    shapes = bert_parameter_shapes(cfg)
    assert list(model.params) == list(shapes) == list(model.grads)           # the same names, HF's order
    for k, s in shapes.items():
        assert model.params[k].shape == s and model.params[k].dtype == np.float32, k
    assert model.buffers.data.ndim == 1 and model.buffers.data.size == model.num_parameters()
    assert_views_of(model.params, model.buffers.data, model.buffers)
    assert_views_of(model.grads, model.buffers.grad, model.buffers)
    # matrices first, then vectors (AdamW's two runs)
    starts = {k: model.buffers.slots[k].start for k in shapes}
    assert max(starts[k] for k in shapes if len(shapes[k]) == 2) < min(starts[k] for k in shapes if len(shapes[k]) == 1)
    # a write through the flat array is a write into the dict's arrays, and back
    model.buffers.data[:] = 2.0
    assert all((v == 2.0).all() for v in model.params.values())
    model.params["pooler.dense.bias"][...] = 3.0
    assert (model.buffers.data == 3.0).sum() == cfg.hidden_size


def test_a_head_model_has_one_buffer_shared_with_its_bert_and_the_tied_decoder():
    cfg = tiny()
    model = BertForPreTraining(cfg, seed=0)
    assert list(model.params) == ["bert." + k for k in bert_parameter_shapes(cfg)] + list(pretraining_head_shapes(cfg))
    assert_views_of(model.params, model.buffers.data, model.buffers)
    assert_views_of(model.grads, model.buffers.grad, model.buffers)
    for k in model.bert.params:                     # BertModel's views are the head model's, same memory
        assert np.shares_memory(model.bert.params[k], model.params["bert." + k])
        assert np.shares_memory(model.bert.grads[k], model.grads["bert." + k])
    assert model.bert.buffers.data is model.buffers.data and model.bert.buffers.grad is model.buffers.grad
    assert "cls.predictions.decoder.weight" not in model.params    # tied: the word-embedding view is the decoder
    # the numbers of a head model's BertModel are those of a BertModel made alone with the same seed
    alone = BertModel(cfg, seed=0)
    for k, v in alone.params.items():
        assert np.array_equal(model.bert.params[k], v), k


def test_rebinding_a_parameter_is_refused_and_in_place_writes_work():
    model = BertForSequenceClassification(head_config("sequence"), seed=0)
    name = "classifier.bias"
    with pytest.raises(TypeError, match="write into them"):
        model.params[name] = np.zeros(model.params[name].shape, np.float32)
    for forbidden in (lambda d: d.update({name: 0}), lambda d: d.pop(name), lambda d: d.setdefault("x", 0),
                      lambda d: d.__delitem__(name), lambda d: d.clear()):
        with pytest.raises(TypeError, match="write into them"):
            forbidden(model.params)
    view = model.grads[name]
    model.grads[name] += 1.0                         # `+=` stores back the same array: allowed
    assert model.grads[name] is view and (model.buffers.grad[model.buffers.slots[name].start] == 1.0)
    plain = copy.deepcopy(model.params)              # copies are plain dicts of copied arrays
    assert type(plain) is dict and not np.shares_memory(plain[name], model.params[name])
    assert isinstance(model.params, dict) and isinstance(model.params, ParameterDict)


def test_zero_grad_clears_the_flat_gradient_and_freezing_keeps_frozen_gradients_zero():
    cfg = head_config("sequence")
    model = BertForSequenceClassification(cfg, seed=0, dtype="float64").train()
    batch = gradcheck.task_head_inputs(model, np.random.default_rng(0))
    model.forward(**batch)
    model.backward()
    assert np.count_nonzero(model.buffers.grad) > 0.5 * model.buffers.grad.size
    model.zero_grad()
    assert not model.buffers.grad.any()
    model.freeze(embeddings=True, layers=1)
    model.forward(**batch)
    model.backward()
    frozen = set(model.frozen_names())
    assert frozen and all(not model.grads[k].any() for k in frozen)
    assert all(model.grads[k].any() for k in ("classifier.weight", "bert.pooler.dense.weight"))
    # BertModel on its own: zero_grad of a section (its part of a bigger buffer) clears only its views
    model.buffers.grad[:] = 1.0
    model.bert.zero_grad()
    assert not any(model.bert.grads[k].any() for k in model.bert.grads)
    assert (model.grads["classifier.weight"] == 1.0).all()


def test_loading_writes_into_the_views(tmp_path):
    cfg = head_config("sequence")
    source = BertForSequenceClassification(cfg, seed=1)
    source.save_pretrained(tmp_path)
    loaded = BertForSequenceClassification.from_pretrained(tmp_path)
    assert_views_of(loaded.params, loaded.buffers.data, loaded.buffers)
    for k, v in source.params.items():
        assert np.array_equal(loaded.params[k], v), k
    assert np.array_equal(loaded.buffers.data, source.buffers.data)          # the same layout too
    bare = tmp_path / "bare"
    source.bert.save_pretrained(bare)
    encoder = BertModel.from_pretrained(bare)
    assert_views_of(encoder.params, encoder.buffers.data, encoder.buffers)
    for k, v in source.bert.params.items():
        assert np.array_equal(encoder.params[k], v), k


def test_given_values_are_copied_in_and_the_model_stays_on_the_device(xp):
    cfg = tiny(layers=1)
    with backend.using("numpy"):
        host = BertModel(cfg, seed=3)
    model = BertModel(cfg, params=dict(host.params))
    assert type(model.buffers.data) is np.ndarray          # values on the host: a host model, as before the buffers
    model = BertModel(cfg, params={k: xp.asarray(v) for k, v in host.params.items()})
    assert isinstance(model.buffers.data, xp.ndarray)
    assert all(isinstance(v, xp.ndarray) for v in model.params.values())
    for k, v in host.params.items():
        assert np.array_equal(backend.to_host(model.params[k]), v), k
    fresh = FlatBuffers({"w": (2, 3), "b": (3,)}, np.float64, xp=xp)
    assert isinstance(fresh.data, xp.ndarray) and fresh.params["w"].shape == (2, 3)


def test_flat_buffers_of_a_padded_batch_model_give_the_same_backward_on_both_backends(xp):
    """The flat gradient under the strict stand-in equals NumPy's exactly (the views work as device arrays)."""
    cfg = tiny()
    ids, types, mask = padded_batch(cfg, 3, 7, np.random.default_rng(0))

    def grads():
        model = BertModel(cfg, seed=0, dtype="float64").eval()
        seq, pooled = model.forward(ids, types, mask)
        model.zero_grad()
        model.backward(seq * 0 + 1, None)
        return backend.to_host(model.buffers.grad)

    dev = grads()
    with backend.using("numpy"):
        assert np.array_equal(dev, grads())
