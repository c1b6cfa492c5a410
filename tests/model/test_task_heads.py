"""Fine-tuning heads (minibert/model/heads/: sequence and token classification, question answering) and
layer freezing under them.

Finite differences (float64, dropout on with fixed masks); parity with transformers'
BertForSequenceClassification / TokenClassification / QuestionAnswering on identical weights
(logits, loss, every parameter gradient); checkpoints both ways; inference mode; freezing: zero
and exact gradients, the frozen backward not run; clear errors; on the device (the `xp` fixture).
Their config fields are tested in test_config.py, 10 optimizer steps against transformers in
train/test_optim.py, the fine-tuning loop in train/test_finetune.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import minibert.model.bert
from minibert import BertConfig, BertModel, gradcheck
from minibert.model.io import CheckpointError, load_arrays, save_arrays
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.ops.dropout import dropout_mask
from minibert.model.heads import (BertForQuestionAnswering, BertForSequenceClassification,
                                  BertForTokenClassification)
from helpers import HEADS, LABELS, head_config, padded_batch, perturbed, pretraining_batch
from reference import hf_config, hf_model, hf_random, rel_diff, torch_batch

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def logits_of(out):
    return np.stack([out["start_logits"], out["end_logits"]], -1) if "start_logits" in out else out["logits"]


def hf_logits(r):
    if hasattr(r, "start_logits"):
        return np.stack([r.start_logits.detach().numpy(), r.end_logits.detach().numpy()], -1)
    return r.logits.detach().numpy()


# -- gradients: finite differences ----------------------------------------------------------------

@pytest.mark.parametrize("label,cls,cfg", gradcheck.task_head_checks(), ids=lambda x: getattr(x, "__name__", None))
def test_finite_differences(label, cls, cfg):
    """float64 central differences, every parameter, dropout on (fixed masks), padding, ignored labels."""
    results = gradcheck.check_task_head(cls, cfg, np.random.default_rng(5), per_param=6)
    assert len(results) == (41 if cls is BertForSequenceClassification else 39)     # no pooler in the others
    worst = max(results, key=lambda r: r.max_rel_error)
    assert worst.max_rel_error < 1e-6, worst


# -- parity with transformers ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sequence", "regression", "token", "qa"])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_parity_with_transformers(kind, dtype, tol):
    """Identical weights, padded inputs: logits, loss and the gradient of every parameter."""
    cls = HEADS.get(kind, BertForSequenceClassification)
    cfg = head_config(kind, hidden_act="gelu_new" if kind == "token" else "gelu")
    model = perturbed(cls, cfg, dtype)
    ref = hf_model(model).eval()
    batch = gradcheck.task_head_inputs(model, np.random.default_rng(1), batch=4, seq=9)
    if kind == "qa":
        assert batch["start_positions"][0] > 9 and batch["end_positions"][-1] < 0      # ignored / clamped
    out = model.forward(**batch)
    model.zero_grad()
    model.backward()
    r = ref(**torch_batch(batch, torch.float64 if dtype == "float64" else torch.float32))
    r.loss.backward()
    assert abs(float(out["loss"]) - r.loss.item()) <= tol * max(1.0, abs(r.loss.item())), (out["loss"], r.loss)
    assert rel_diff(logits_of(out), hf_logits(r)) <= tol
    named = dict(ref.named_parameters())
    assert set(named) == set(model.grads)
    for k, p in named.items():
        assert rel_diff(model.grads[k], p.grad.numpy()) <= tol, k


def test_correct_and_count_are_host_ints():
    model = perturbed(BertForTokenClassification, head_config("token"))
    batch = gradcheck.task_head_inputs(model, np.random.default_rng(2))
    out = model.forward(**batch)
    labels = batch["labels"]
    pred = out["logits"].argmax(-1)
    assert out["count"] == int((labels != -100).sum())
    assert out["correct"] == int(((pred == labels) & (labels != -100)).sum())
    assert isinstance(out["correct"], int) and isinstance(out["count"], int)


def test_classifier_dropout_is_used_in_training_mode():
    """classifier_dropout (not hidden_dropout_prob) masks the pooled vector before the classifier."""
    cfg = head_config("sequence", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.5)
    model = perturbed(BertForSequenceClassification, cfg)
    batch = gradcheck.task_head_inputs(model, np.random.default_rng(3))
    state = model.bert.rng.bit_generator.state
    _, pooled = model.bert.forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    mask = dropout_mask(pooled.shape, 0.5, rng, np, pooled.dtype)     # the head's draw (the encoder draws none)
    model.bert.rng.bit_generator.state = state
    out = model.train().forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    expected = (pooled * mask) @ model.params["classifier.weight"].T + model.params["classifier.bias"]
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-13)
    assert BertConfig(hidden_dropout_prob=0.2).classifier_dropout_prob == 0.2


def test_gradient_accumulation_with_weights_equals_one_big_batch():
    """Token classification: micro-batches with unequal label counts, weight n_i / N."""
    cfg = head_config("token")
    rng = np.random.default_rng(4)
    probe = BertForTokenClassification(cfg, dtype="float64")
    big = gradcheck.task_head_inputs(probe, rng, batch=6, seq=7)
    big["labels"][:2, 2:] = -100
    grads = []
    for parts in ([slice(0, 6)], [slice(0, 2), slice(2, 6)]):
        model = perturbed(BertForTokenClassification, cfg)
        model.zero_grad()
        total = int((big["labels"] != -100).sum())
        for sl in parts:
            out = model.forward(**{k: v[sl] for k, v in big.items()})
            model.backward(weight=out["count"] / total)
        grads.append({k: v.copy() for k, v in model.grads.items()})
    for k in grads[0]:
        assert np.max(np.abs(grads[0][k] - grads[1][k])) < 1e-13, k


# -- checkpoints -----------------------------------------------------------------------------------

def forward_both(model, hf, seed=6):
    batch = gradcheck.task_head_inputs(model, np.random.default_rng(seed))
    inputs = {k: batch[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        return logits_of(model.forward(**inputs)), hf_logits(hf(**torch_batch(inputs)))


@pytest.mark.parametrize("kind", ["sequence", "token", "qa"])
def test_transformers_checkpoint_loads_in_minibert(kind, tmp_path):
    cfg = head_config(kind, id2label={i: f"tag{i}" for i in range(LABELS[kind])})
    hf = hf_random(HEADS[kind].__name__, cfg, std=0.3)
    hf.save_pretrained(tmp_path)                       # safetensors, transformers' default
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # nothing new, nothing unused: no warning
        model = HEADS[kind].from_pretrained(tmp_path, dtype="float64", require_head=True)
    assert not model.training and model.config.id2label == cfg.id2label
    assert model.loading_info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    ours, theirs = forward_both(model, hf)
    assert np.abs(ours - theirs).max() <= 1e-12


@pytest.mark.parametrize("kind", ["sequence", "token", "qa"])
def test_minibert_checkpoint_loads_in_transformers(kind, tmp_path):
    model = perturbed(HEADS[kind], head_config(kind, label2id=None, id2label={i: f"c{i}" for i in range(LABELS[kind])}))
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf, info = getattr(transformers, HEADS[kind].__name__).from_pretrained(tmp_path, output_loading_info=True,
                                                                           dtype=torch.float64)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert hf.config.id2label == model.config.id2label and hf.config.num_labels == LABELS[kind]
    ours, theirs = forward_both(model, hf.eval())
    assert np.abs(ours - theirs).max() <= 1e-12


def test_pooler_present_or_absent_as_transformers(tmp_path):
    """A sequence checkpoint (with pooler) into the token head: pooler unused. A token checkpoint
    (no pooler) into the sequence head: a new pooler, BERT's init. transformers reports the same keys."""
    seq_dir, tok_dir = tmp_path / "seq", tmp_path / "tok"
    hf_random(HEADS["sequence"].__name__, head_config("sequence", num_labels=None), std=0.3).save_pretrained(seq_dir)
    hf_random(HEADS["token"].__name__, head_config("token", num_labels=3), std=0.3).save_pretrained(tok_dir)
    with pytest.warns(UserWarning, match=r"2 weights of the checkpoint are not used: bert\.pooler\."):
        tok = BertForTokenClassification.from_pretrained(seq_dir, dtype="float64")
    hf_tok, info = transformers.BertForTokenClassification.from_pretrained(seq_dir, output_loading_info=True,
                                                                           dtype=torch.float64)
    assert set(tok.loading_info["unexpected_keys"]) == set(info["unexpected_keys"]) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    ours, theirs = forward_both(tok, hf_tok.eval())
    assert np.abs(ours - theirs).max() <= 1e-12
    with pytest.warns(UserWarning, match=r"2 weights are new.*bert\.pooler\.dense\.weight, bert\.pooler\.dense\.bias"):
        seq = BertForSequenceClassification.from_pretrained(tok_dir, dtype="float64")
    _, info = transformers.BertForSequenceClassification.from_pretrained(tok_dir, output_loading_info=True)
    assert set(seq.loading_info["missing_keys"]) == set(info["missing_keys"]) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    w = seq.params["bert.pooler.dense.weight"]
    assert np.all(seq.params["bert.pooler.dense.bias"] == 0) and 0.015 < w.std() < 0.025     # normal(0, 0.02)
    arrays = load_arrays(tok_dir / "model.safetensors")
    for k in seq.params:
        if "pooler" not in k:
            np.testing.assert_array_equal(seq.params[k], arrays[k], err_msg=k)


def test_plain_bert_and_pretraining_checkpoints_get_a_new_head(tmp_path):
    bare, pre = tmp_path / "bare", tmp_path / "pre"
    cfg = head_config("sequence")
    encoder = BertModel(cfg, seed=1, dtype="float64")
    encoder.save_pretrained(bare)
    with pytest.warns(UserWarning, match=r"2 weights are new, initialised with BERT's rule.*classifier\.weight, "
                                         r"classifier\.bias"):
        model = BertForSequenceClassification.from_pretrained(bare, dtype="float64", seed=3)
    fresh = BertForSequenceClassification(cfg, seed=3, dtype="float64")
    np.testing.assert_array_equal(model.params["classifier.weight"], fresh.params["classifier.weight"])   # seeded
    for k, v in encoder.params.items():
        np.testing.assert_array_equal(model.params["bert." + k], v)
    with pytest.raises(CheckpointError, match=r"has no trained BertForQuestionAnswering head: missing "
                                              r"qa_outputs\.weight, qa_outputs\.bias \(a plain BertModel"):
        BertForQuestionAnswering.from_pretrained(bare, require_head=True, num_labels=2)

    torch.manual_seed(0)
    transformers.BertForPreTraining(hf_config(cfg)).save_pretrained(pre)
    with pytest.warns(UserWarning) as record:
        model = BertForTokenClassification.from_pretrained(pre)
    messages = " | ".join(str(w.message) for w in record)
    assert "classifier.weight, classifier.bias" in messages and "not used: cls." in messages
    assert "bert.pooler.dense.weight" in model.loading_info["unexpected_keys"]


def test_another_number_of_labels_is_an_error_unless_reinitialised(tmp_path):
    hf_random(HEADS["sequence"].__name__, head_config("sequence"), std=0.3).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight has shape \(3, 36\) in the checkpoint but "
                                              r"\(5, 36\) in the model.*ignore_mismatched_sizes=True"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    with pytest.warns(UserWarning, match="weights are new"):
        model = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert model.params["classifier.weight"].shape == (5, 36) and model.config.id2label[4] == "LABEL_4"
    assert model.loading_info["mismatched_keys"] == ["classifier.weight", "classifier.bias"]
    with pytest.raises(TypeError, match="'num_label', which is not a BertConfig field"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_label=5)


# -- deterministic training against transformers ----------------------------------------------------

# -- freezing ----------------------------------------------------------------------------------------

def run_backward(model, batch):
    model.zero_grad()
    model.forward(**batch)
    model.backward()
    return {k: v.copy() for k, v in model.grads.items()}


@pytest.mark.parametrize("cls", [BertForSequenceClassification, BertForTokenClassification,
                                 BertForQuestionAnswering, BertForPreTraining])
@pytest.mark.parametrize("embeddings,layers", [(True, 0), (True, 1), (True, 2)])
def test_frozen_gradients_are_zero_and_the_rest_exact(cls, embeddings, layers):
    cfg = gradcheck.odd_config(num_labels=2 if cls is BertForQuestionAnswering else 3)
    model = perturbed(cls, cfg)
    rng = np.random.default_rng(7)
    if cls is BertForPreTraining:
        batch = pretraining_batch(cfg, rng)
    else:
        batch = gradcheck.task_head_inputs(model, rng)
    full = run_backward(model, batch)
    model.freeze(embeddings=embeddings, layers=layers)
    frozen = set(model.frozen_names())
    assert len(frozen) == 5 * embeddings + 16 * layers
    part = run_backward(model, batch)
    for k, g in part.items():
        if k in frozen:
            assert not g.any(), k                   # the tied decoder's share included
        else:
            assert np.array_equal(g, full[k]), k    # bit for bit: the same operations ran
    model.freeze()                                  # unfreeze
    assert model.frozen_names() == [] and all(np.array_equal(run_backward(model, batch)[k], full[k]) for k in full)


@pytest.mark.parametrize("layers", [0, 1, 2])
def test_frozen_layers_backward_is_not_run(monkeypatch, layers):
    """Count the ops' backward calls: only layers >= K run, the embeddings' never; the pooler
    (which trains) still does; with everything frozen the token head skips its input gradient."""
    calls = {"attention": 0, "ffn": 0, "embeddings": 0, "pooler": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    for name, attr in (("attention", "multi_head_attention_backward"), ("ffn", "ffn_backward"),
                       ("embeddings", "bert_embeddings_backward"), ("pooler", "pooler_backward")):
        monkeypatch.setattr(minibert.model.bert, attr, counting(name, getattr(minibert.model.bert, attr)))
    cfg = head_config("sequence")
    model = perturbed(BertForSequenceClassification, cfg).freeze(embeddings=True, layers=layers)
    run_backward(model, gradcheck.task_head_inputs(model, np.random.default_rng(8)))
    L = cfg.num_hidden_layers
    assert calls == {"attention": L - layers, "ffn": L - layers, "embeddings": 0, "pooler": 1}
    model.freeze()
    run_backward(model, gradcheck.task_head_inputs(model, np.random.default_rng(8)))
    assert calls["embeddings"] == 1 and calls["attention"] == 2 * L - layers


def test_fully_frozen_encoder_under_a_token_head_skips_the_input_gradient(monkeypatch):
    import minibert.model.heads.token_classification as th
    seen = []
    real = th.linear_backward
    monkeypatch.setattr(th, "linear_backward", lambda dy, cache, need_dx=True: seen.append(need_dx) or
                        real(dy, cache, need_dx))
    cfg = head_config("token")
    model = perturbed(BertForTokenClassification, cfg).freeze(embeddings=True, layers=cfg.num_hidden_layers)
    grads = run_backward(model, gradcheck.task_head_inputs(model, np.random.default_rng(9)))
    assert seen == [False]
    assert [k for k, g in grads.items() if g.any()] == ["classifier.weight", "classifier.bias"]


# -- errors ---------------------------------------------------------------------------------------------

def test_bad_labels_raise_clear_errors():
    seq = BertForSequenceClassification(head_config("sequence"))
    tok = BertForTokenClassification(head_config("token"))
    qa = BertForQuestionAnswering(head_config("qa"))
    ids = np.ones((3, 7), dtype=np.int64)
    with pytest.raises(ValueError, match=r"labels contains 3, outside \[0, num_labels=3\) \(use -100"):
        seq.forward(ids, labels=np.array([0, 3, 1]))
    with pytest.raises(ValueError, match=r"labels contains -2, outside \[0, num_labels=5\)"):
        tok.forward(ids, labels=np.full((3, 7), -2))
    with pytest.raises(ValueError, match=r"labels has shape \(3, 1\), expected \(3,\)"):
        seq.forward(ids, labels=np.zeros((3, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"labels has shape \(3, 6\), expected \(3, 7\)"):
        tok.forward(ids, labels=np.zeros((3, 6), dtype=np.int64))
    with pytest.raises(TypeError, match="integer array of class indices"):
        seq.forward(ids, labels=np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"end_positions has shape \(2,\), expected \(3,\)"):
        qa.forward(ids, start_positions=np.zeros(3, dtype=np.int64), end_positions=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="start_positions and end_positions go together"):
        qa.forward(ids, start_positions=np.zeros(3, dtype=np.int64))
    reg = BertForSequenceClassification(head_config("regression"))
    with pytest.raises(ValueError, match=r"labels has shape \(3, 2\), expected \(3,\) or \(3, 1\)"):
        reg.forward(ids, labels=np.zeros((3, 2)))
    reg.forward(ids)
    with pytest.raises(RuntimeError, match="backward\\(\\) needs a forward\\(\\) with labels"):
        reg.backward()
    with pytest.raises(RuntimeError, match="backward\\(\\) needs a forward\\(\\) with labels first"):
        reg.backward()


def test_head_weights_that_are_not_finite_are_refused(tmp_path):
    model = perturbed(BertForSequenceClassification, head_config("sequence"))
    model.save_pretrained(tmp_path)
    arrays = load_arrays(tmp_path / "model.safetensors")
    arrays["classifier.bias"][1] = np.inf
    save_arrays(tmp_path / "model.safetensors", arrays, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="classifier.bias holds 1 NaN or infinite"):
        BertForSequenceClassification.from_pretrained(tmp_path)


# -- device cleanliness ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sequence", "regression", "token", "qa"])
def test_heads_stay_on_the_device(kind, xp):
    """Forward and backward, partly frozen, under each backend (the strict CuPy stand-in raises at any
    host/device mix), in training mode (dropout on: drawn on the device under strict, so compared with
    a second run of the same seed) and with dropout off (the numbers equal the NumPy run's exactly)."""
    from minibert import backend
    cls = HEADS.get(kind, BertForSequenceClassification)
    cfg = head_config(kind)

    def run(dropout):
        model = cls(cfg, seed=0, dtype="float64").freeze(embeddings=True, layers=1)
        model.train() if dropout else model.eval()
        batch = gradcheck.task_head_inputs(model, np.random.default_rng(11))
        out = model.forward(**batch)
        model.zero_grad()
        model.backward(weight=0.5)
        return model, float(out["loss"]), {k: backend.to_host(g) for k, g in model.grads.items()}

    model, loss_dev, grads_dev = run(dropout=False)
    assert isinstance(model.params[next(iter(model.head_shapes(cfg)))], xp.ndarray)
    with backend.using("numpy"):
        _, loss_host, grads_host = run(dropout=False)
    assert loss_dev == loss_host
    for k in grads_host:
        assert np.array_equal(grads_dev[k], grads_host[k]), k
    _, loss_a, grads_a = run(dropout=True)
    _, loss_b, grads_b = run(dropout=True)
    assert loss_a == loss_b and loss_a != loss_dev
    for k in grads_a:
        assert np.array_equal(grads_a[k], grads_b[k]), k


def test_inference_mode_of_a_head_model():
    from minibert.model.heads import BertForSequenceClassification
    cfg = gradcheck.odd_config(num_labels=3)
    model = BertForSequenceClassification(cfg, seed=0, dtype="float64").train()
    ids, types, mask = padded_batch(cfg)
    labels = np.array([0, 2, 1])
    with model.inference():
        out = model.forward(ids, types, mask, labels=labels)
        assert model.bert._cache is None
        with pytest.raises(RuntimeError, match="inference"):
            model.backward()
    assert model.training
    model.eval()
    assert np.array_equal(out["logits"], model.forward(ids, types, mask, labels=labels)["logits"])
    model.backward()
