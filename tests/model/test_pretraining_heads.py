"""BertForPreTraining's heads (minibert/model/heads/pretraining.py): finite differences of every parameter,
parity with transformers' BertForPreTraining (loss, MLM logits, every gradient), label errors. The
pretraining step (20 steps against transformers, accumulation, a NaN loss) is in train/test_pretrain.py."""
import numpy as np
import pytest

from minibert import gradcheck
from minibert.model.heads.pretraining import BertForPreTraining
from helpers import perturbed, pretraining_batch
from reference import hf_model, rel_diff


def test_pretraining_heads_finite_differences():
    cfg = gradcheck.odd_config()
    model = perturbed(BertForPreTraining, cfg)
    rng = np.random.default_rng(0)
    batch = pretraining_batch(cfg, rng)

    def loss():
        return float(model.forward(**batch)["loss"])

    model.forward(**batch)
    model.zero_grad()
    model.backward()
    worst = (0.0, "")
    for name, p in model.params.items():
        idx = gradcheck.pick_indices(model.grads[name], rng, 4)
        num = gradcheck.numerical_gradient(loss, p, idx)
        err = gradcheck.rel_error(model.grads[name].reshape(-1)[idx], num)
        worst = max(worst, (err, name))
    assert worst[0] < 1e-6, worst


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_parity_with_transformers_bert_for_pretraining(act, dtype, tol):
    import torch
    cfg = gradcheck.odd_config(hidden_act=act)
    model = perturbed(BertForPreTraining, cfg, dtype)
    ref = hf_model(model).eval()
    batch = pretraining_batch(cfg, np.random.default_rng(1))
    out = model.forward(**batch)
    model.zero_grad()
    model.backward()
    r = ref(**{k: torch.tensor(v) for k, v in batch.items()})
    r.loss.backward()
    assert abs(float(out["loss"]) - r.loss.item()) <= tol * max(1, abs(r.loss.item()))
    named = dict(ref.named_parameters())
    assert set(named) == set(model.grads)
    for k, p in named.items():
        assert rel_diff(model.grads[k], p.grad.numpy()) <= tol, k
    # the MLM logits at the labelled positions equal transformers' logits there
    mask = batch["labels"].reshape(-1) != -100
    full = r.prediction_logits.detach().numpy().reshape(-1, cfg.vocab_size)[mask]
    assert rel_diff(out["mlm_logits"], full) <= tol


def test_label_shape_errors():
    cfg = gradcheck.odd_config()
    model = BertForPreTraining(cfg)
    b = pretraining_batch(cfg, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"labels has shape \(3, 6\)"):
        model.forward(b["input_ids"], labels=b["labels"][:, :6])
    with pytest.raises(ValueError, match="next_sentence_label has 2 entries for a batch of 3"):
        model.forward(b["input_ids"], next_sentence_label=np.array([0, 1]))
    with pytest.raises(ValueError, match="label 99 out of range"):
        bad = b["labels"].copy()
        bad[0, 0] = 99
        model.forward(b["input_ids"], labels=bad)
