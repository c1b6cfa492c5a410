"""BertModel (minibert/model/bert.py): whole-model gradient check, parity with transformers, init, modes,
inference mode, freezing errors, and clear errors on bad input. BertConfig is tested in test_config.py."""
import numpy as np
import pytest

from minibert import BertConfig, BertModel, gradcheck
from helpers import padded_batch, perturbed
from reference import hf_config, hf_model, rel_diff


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_whole_model_finite_differences(act):
    results = gradcheck.check_model(gradcheck.odd_config(hidden_act=act), np.random.default_rng(3), per_param=6)
    assert len(results) == 39
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-6, worst


CONFIGS = {
    "odd": gradcheck.odd_config(),
    "tiny": BertConfig.preset("tiny"),
    "mini": BertConfig.preset("mini"),
}


@pytest.mark.parametrize("name", ["odd", "tiny", "mini"])
@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_parity_with_transformers(name, act, dtype, tol):
    """Same weights (copied by name), same padded input, same upstream gradient:
    outputs and the gradient of every parameter agree with transformers' BertModel."""
    import torch
    torch.manual_seed(0)
    cfg = BertConfig.from_dict({**CONFIGS[name].to_dict(), "hidden_act": act})
    model = perturbed(BertModel, cfg, dtype, noise_seed=100)
    ref = hf_model(model).eval()
    ids, types, mask = padded_batch(cfg, B=4, T=16 if name != "odd" else 7)
    seq, pooled = model.forward(ids, types, mask)
    rng = np.random.default_rng(7)
    d_seq = rng.normal(size=seq.shape).astype(dtype)
    d_pooled = rng.normal(size=pooled.shape).astype(dtype)
    model.zero_grad()
    model.backward(d_seq, d_pooled)

    out = ref(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types), attention_mask=torch.tensor(mask))
    loss = (out.last_hidden_state * torch.tensor(d_seq)).sum() + (out.pooler_output * torch.tensor(d_pooled)).sum()
    loss.backward()
    assert rel_diff(seq, out.last_hidden_state.detach().numpy()) <= tol
    assert rel_diff(pooled, out.pooler_output.detach().numpy()) <= tol
    ref_params = dict(ref.named_parameters())
    assert set(ref_params) == set(model.grads)
    for key, p in ref_params.items():
        assert rel_diff(model.grads[key], p.grad.numpy()) <= tol, key


def test_parameter_names_and_shapes_match_transformers():
    import transformers
    cfg = gradcheck.odd_config()
    model = BertModel(cfg)
    ref = transformers.BertModel(hf_config(cfg))
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.endswith("position_ids")}
    assert {k: tuple(v.shape) for k, v in model.params.items()} == ref_shapes
    assert model.num_parameters() == sum(p.numel() for p in ref.parameters())


def test_initialisation_follows_bert():
    cfg = BertConfig.preset("tiny")
    p = BertModel(cfg, seed=0).params
    w = p["encoder.layer.0.intermediate.dense.weight"]
    assert w.dtype == np.float32 and abs(float(w.std()) - 0.02) < 1e-3 and abs(float(w.mean())) < 1e-3
    assert np.all(p["encoder.layer.0.intermediate.dense.bias"] == 0)
    assert np.all(p["embeddings.LayerNorm.weight"] == 1) and np.all(p["embeddings.LayerNorm.bias"] == 0)
    assert np.all(p["embeddings.word_embeddings.weight"][cfg.pad_token_id] == 0)
    assert np.array_equal(w, BertModel(cfg, seed=0).params["encoder.layer.0.intermediate.dense.weight"])
    assert not np.array_equal(w, BertModel(cfg, seed=1).params["encoder.layer.0.intermediate.dense.weight"])


def test_backward_adds_into_gradients_and_zero_grad_clears():
    cfg = gradcheck.odd_config()
    model = perturbed(BertModel, cfg, "float64", noise_seed=100)
    ids, types, mask = padded_batch(cfg)
    d = np.random.default_rng(0)
    seq, pooled = model.forward(ids, types, mask)
    d_seq, d_pool = d.normal(size=seq.shape), d.normal(size=pooled.shape)
    model.zero_grad()
    model.backward(d_seq, d_pool)
    once = {k: v.copy() for k, v in model.grads.items()}
    model.forward(ids, types, mask)
    model.backward(d_seq, d_pool)
    for k in once:
        assert np.allclose(model.grads[k], 2 * once[k]), k
    model.zero_grad()
    assert all(not np.any(g) for g in model.grads.values())


def test_train_and_eval_modes():
    cfg = gradcheck.odd_config()
    model = BertModel(cfg, seed=0)
    ids, types, mask = padded_batch(cfg)
    assert model.training                                   # like a fresh torch module
    a, _ = model.forward(ids, types, mask)
    b, _ = model.forward(ids, types, mask)
    assert not np.allclose(a, b)                            # dropout differs between calls
    model.eval()
    c, _ = model.forward(ids, types, mask)
    e, _ = model.forward(ids, types, mask)
    assert np.array_equal(c, e)


def test_attention_ignores_padded_keys():
    cfg = gradcheck.odd_config()
    model = perturbed(BertModel, cfg, "float64", noise_seed=100)
    ids, types, mask = padded_batch(cfg)
    seq, _ = model.forward(ids, types, mask)
    probs = model.attention_probs()
    assert len(probs) == 2 and probs[0].shape == (3, 3, 7, 7)
    assert np.all(probs[0][2, :, :, 3:] == 0)               # keys beyond the 3 real tokens get nothing
    ids2 = ids.copy()
    ids2[2, 3:] = 5                                         # change what sits under the padding
    seq2, _ = model.forward(ids2, types, mask)
    assert np.allclose(seq[2, :3], seq2[2, :3], atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    cfg = gradcheck.odd_config()
    model = BertModel(cfg)
    ids, types, mask = padded_batch(cfg)
    with pytest.raises(ValueError, match=r"id 99, outside the vocabulary \[0, 99\)"):
        model.forward(np.where(ids == ids[0, 0], 99, ids))
    with pytest.raises(ValueError, match="id -1"):
        model.forward(np.full((2, 3), -1))
    with pytest.raises(ValueError, match="sequence length 20 is longer than max_position_embeddings=19"):
        model.forward(np.ones((2, 20), dtype=int))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(3, 6\)"):
        model.forward(ids, types[:, :6])
    with pytest.raises(ValueError, match=r"token_type_ids contains 2, outside \[0, type_vocab_size=2\)"):
        model.forward(ids, types + 1)
    with pytest.raises(ValueError, match=r"attention_mask has shape"):
        model.forward(ids, types, mask[:2])
    with pytest.raises(ValueError, match="only 0 .padding. and 1"):
        model.forward(ids, types, mask * 2)
    with pytest.raises(ValueError, match=r"shape \(batch, seq_len\)"):
        model.forward(ids[0])
    with pytest.raises(TypeError, match="integer array"):
        model.forward(ids.astype(np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        BertModel(cfg).backward(np.zeros((3, 7, 36)))
    model.forward(ids, types, mask)
    with pytest.raises(ValueError, match=r"d_last_hidden_state has shape \(3, 7, 35\), expected \(3, 7, 36\)"):
        model.backward(np.zeros((3, 7, 35)))


def test_inference_mode_keeps_no_cache_and_restores_the_mode():
    cfg = gradcheck.odd_config()
    model = perturbed(BertModel, cfg, "float64", noise_seed=100).train()
    ids, types, mask = padded_batch(cfg)
    with model.inference() as m:
        assert m is model and not model.training
        seq, pooled = model.forward(ids, types, mask)
        with pytest.raises(RuntimeError, match="inference"):
            model.backward(np.ones_like(seq), None)
    assert model.training and model.keep_cache
    seq_eval, pooled_eval = model.eval().forward(ids, types, mask)       # the same numbers as eval mode
    assert np.array_equal(seq, seq_eval) and np.array_equal(pooled, pooled_eval)
    model.backward(np.ones_like(seq), None)                              # outside the block the cache is kept


def test_freeze_errors():
    model = BertModel(gradcheck.odd_config())
    with pytest.raises(ValueError, match=r"layers must be an integer in \[0, 2\]"):
        model.freeze(embeddings=True, layers=3)
    with pytest.raises(ValueError, match="freezes from the bottom up: pass embeddings=True"):
        model.freeze(layers=1)
    with pytest.raises(TypeError, match="embeddings must be True or False"):
        model.freeze(embeddings=1)
