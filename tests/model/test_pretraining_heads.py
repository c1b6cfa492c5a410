"""BertForPreTraining heads, AdamW, schedule, clipping, accumulation: finite differences and parity
with transformers' BertForPreTraining + torch.optim.AdamW."""
import numpy as np
import pytest

from minibert import BertConfig, gradcheck
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.train.optim import AdamW, clip_grad_norm, decays, linear_warmup_decay
from minibert.train.pretrain import pretraining_step
from minibert.train.step import NonFiniteLossError
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


def test_adamw_matches_torch():
    import torch
    rng = np.random.default_rng(0)
    names = ["layer.weight", "layer.bias", "LayerNorm.weight"]
    params = {n: rng.normal(size=(5, 3)) for n in names}
    tparams = {n: torch.tensor(v.copy(), requires_grad=True) for n, v in params.items()}
    opt = AdamW(params, lr=1e-2, weight_decay=0.1)
    topt = torch.optim.AdamW([{"params": [tparams["layer.weight"]], "weight_decay": 0.1},
                              {"params": [tparams["layer.bias"], tparams["LayerNorm.weight"]], "weight_decay": 0.0}],
                             lr=1e-2)
    for _ in range(7):
        grads = {n: rng.normal(size=(5, 3)) for n in names}
        for n in names:
            tparams[n].grad = torch.tensor(grads[n])
        opt.step(grads)
        topt.step()
    for n in names:
        assert np.max(np.abs(params[n] - tparams[n].detach().numpy())) < 1e-14, n
    assert not decays("cls.predictions.bias") and not decays("x.LayerNorm.weight") and decays("x.dense.weight")


def test_google_adamw_variant_has_no_bias_correction():
    p = {"w": np.array([1.0])}
    opt = AdamW(p, lr=0.1, weight_decay=0.0, variant="google")
    opt.step({"w": np.array([0.5])})
    # m = 0.05, v = 0.00025: update = m / (sqrt(v) + 1e-6) = 0.05 / 0.0158124 = 3.1621 (torch's would be 1)
    assert np.isclose(p["w"][0], 1.0 - 0.1 * 0.05 / (np.sqrt(0.00025) + 1e-6))
    with pytest.raises(ValueError, match="unknown AdamW variant"):
        AdamW(p, variant="keras")


def test_schedule_matches_transformers():
    import torch
    import transformers
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=5e-4)
    sched = transformers.get_linear_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=50)
    for step in range(55):
        assert np.isclose(linear_warmup_decay(step, 5e-4, 10, 50), opt.param_groups[0]["lr"], rtol=1e-12, atol=0)
        opt.step()
        sched.step()


def test_clip_grad_norm_matches_torch():
    import torch
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(4, 4)), "b": rng.normal(size=7)}
    t = [torch.nn.Parameter(torch.zeros(4, 4, dtype=torch.float64)), torch.nn.Parameter(torch.zeros(7, dtype=torch.float64))]
    t[0].grad, t[1].grad = torch.tensor(grads["a"]), torch.tensor(grads["b"])
    norm = clip_grad_norm(grads, 1.0)
    tnorm = torch.nn.utils.clip_grad_norm_(t, 1.0)
    assert np.isclose(norm, float(tnorm))
    assert np.allclose(grads["a"], t[0].grad.numpy()) and np.allclose(grads["b"], t[1].grad.numpy())


def reference_optimizer(ref, lr, warmup, total):
    import torch
    import transformers
    decay = [p for n, p in ref.named_parameters() if decays(n)]
    no_decay = [p for n, p in ref.named_parameters() if not decays(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr)
    return opt, transformers.get_linear_schedule_with_warmup(opt, warmup, total)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-8), ("float32", 1e-3)])
def test_loss_curve_matches_transformers_for_20_steps(dtype, tol):
    """Same weights, same batches, dropout off: 20 AdamW steps with warm-up and clipping give
    the same loss at every step as BertForPreTraining + torch.optim.AdamW + the same schedule."""
    import torch
    cfg = BertConfig.preset("tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(cfg, seed=0, dtype=dtype)
    ref = hf_model(model)
    model.eval(), ref.eval()
    rng = np.random.default_rng(0)
    batches = [pretraining_batch(cfg, rng, B=4, T=24) for _ in range(20)]
    lr, warmup, total = 1e-3, 4, 20
    opt = AdamW(model.params, lr=lr, weight_decay=0.01)
    topt, tsched = reference_optimizer(ref, lr, warmup, total)
    clipped = 0
    for step, batch in enumerate(batches):
        m = pretraining_step(model, opt, [batch], linear_warmup_decay(step, lr, warmup, total), max_grad_norm=1.0)
        topt.zero_grad()
        r = ref(**{k: torch.tensor(v) for k, v in batch.items()})
        r.loss.backward()
        tnorm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        topt.step()
        tsched.step()
        clipped += float(tnorm) > 1.0
        assert abs(m["loss"] - r.loss.item()) <= tol * abs(r.loss.item()), (step, m["loss"], r.loss.item())
        assert abs(m["grad_norm"] - float(tnorm)) <= tol * float(tnorm), step
    assert clipped >= 10        # clipping really was exercised


def test_gradient_accumulation_equals_one_big_batch():
    cfg = gradcheck.odd_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    big = pretraining_batch(cfg, rng, B=32, T=12)
    big["labels"][5, 1:6] = big["input_ids"][5, 1:6]         # micro-batches with unequal prediction counts
    micro = [{k: v[i * 8:(i + 1) * 8] for k, v in big.items()} for i in range(4)]
    results = []
    for batches in ([big], micro):
        model = BertForPreTraining(cfg, seed=0, dtype="float64").eval()
        opt = AdamW(model.params, lr=1e-3)
        metrics = pretraining_step(model, opt, batches, lr=1e-3)
        results.append((metrics, {k: v.copy() for k, v in model.params.items()}))
    (m1, p1), (m2, p2) = results
    assert abs(m1["loss"] - m2["loss"]) < 1e-10 and abs(m1["grad_norm"] - m2["grad_norm"]) < 1e-10
    for k in p1:
        assert np.max(np.abs(p1[k] - p2[k])) < 1e-10, k


def test_nan_loss_names_the_step():
    cfg = gradcheck.odd_config()
    model = BertForPreTraining(cfg, seed=0, dtype="float64").eval()
    model.params["cls.predictions.bias"][:] = np.nan
    before = model.params["cls.seq_relationship.weight"].copy()
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 17"):
        pretraining_step(model, AdamW(model.params), [pretraining_batch(cfg, np.random.default_rng(0))], 1e-3, step=17)
    assert np.array_equal(before, model.params["cls.seq_relationship.weight"])


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
