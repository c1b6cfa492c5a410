"""minibert/train/optim.py: AdamW (torch's and Google's variants, frozen parameters, cache-sized blocks), the
warm-up + linear-decay schedule and global-norm clipping against torch / transformers, then all three
together on a task head for 10 steps against transformers + torch.optim.AdamW."""
import numpy as np
import pytest

from minibert import BertConfig, gradcheck
from minibert.model.heads import BertForSequenceClassification
from minibert.train.optim import AdamW, clip_grad_norm, decays, linear_warmup_decay
from helpers import head_config, padded_batch, perturbed
from reference import hf_model, rel_diff, torch_batch


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


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("variant", ["torch", "google"])
def test_adamw_in_blocks_gives_the_whole_array_numbers(threads, variant, monkeypatch):
    """adamw_step runs its formula on cache-sized pieces of each parameter (parallel.for_blocks):
    three steps must give bit for bit what the formula gives on the whole arrays, for a parameter
    with a ragged last piece, a small one (one call) and a non-decayed one."""
    from minibert.backend import blocks as parallel
    from minibert.train.optim import _adamw_update, adamw_step, decays
    monkeypatch.setattr(parallel, "THREADS", threads)
    monkeypatch.setattr(parallel, "_pool", None)
    rng = np.random.default_rng(0)
    shapes = {"big.weight": (301, 1029), "LayerNorm.bias": (301, 1029), "small.weight": (7, 5)}
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    assert params["big.weight"].size > 2 * parallel.BLOCK_ELEMENTS
    want = {k: [v.copy(), np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t in (1, 2, 3):
        grads = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
        adamw_step(params, grads, m, v, t, 1e-2, eps=1e-6, weight_decay=0.1, variant=variant)
        for k, (p, mk, vk) in want.items():
            _adamw_update(p, grads[k], mk, vk, t, 1e-2, 0.9, 0.999, 1e-6, 0.1 if decays(k) else 0.0, variant)
    for k, (p, mk, vk) in want.items():
        assert np.array_equal(params[k], p) and np.array_equal(m[k], mk) and np.array_equal(v[k], vk), k


def classification_batches(cfg, n, rng, B=8, T=20):
    """n sequence-classification batches: two segments, each row at least 6 tokens long, random labels."""
    return [dict(padded_batch(cfg, B, T, rng, min_length=6, first_id=5, segments="halves")._asdict(),
                 labels=rng.integers(0, cfg.num_labels, B)) for _ in range(n)]


@pytest.mark.parametrize("frozen", [None, (True, 1)], ids=["all-trainable", "embeddings+layer0-frozen"])
def test_ten_optimizer_steps_match_transformers(frozen):
    """float64, dropout off, the same batches: AdamW (no decay on bias/LayerNorm, 0.01 elsewhere),
    warm-up then linear decay, clipping at global norm 1: the same loss at every step."""
    import torch
    import transformers
    cfg = BertConfig.preset("tiny", vocab_size=500, num_labels=3, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(cfg, seed=0, dtype="float64").eval()
    ref = hf_model(model).eval()
    if frozen:
        model.freeze(*frozen)
        for name, p in ref.named_parameters():
            p.requires_grad_(name not in model.frozen_names())
    lr, warmup, total = 2e-3, 3, 10
    opt = AdamW(model.params, lr=lr, weight_decay=0.01, frozen=model.frozen_names())
    trainable = [(n, p) for n, p in ref.named_parameters() if p.requires_grad]
    topt = torch.optim.AdamW([{"params": [p for n, p in trainable if decays(n)], "weight_decay": 0.01},
                              {"params": [p for n, p in trainable if not decays(n)], "weight_decay": 0.0}], lr=lr)
    tsched = transformers.get_linear_schedule_with_warmup(topt, warmup, total)
    before = {k: model.params[k].copy() for k in model.frozen_names()}
    clipped = 0
    for step, batch in enumerate(classification_batches(cfg, total, np.random.default_rng(0))):
        model.zero_grad()
        out = model.forward(**batch)
        model.backward()
        norm = clip_grad_norm(model.grads, 1.0, [k for k in model.grads if k not in opt.frozen])
        opt.step(model.grads, lr=linear_warmup_decay(step, lr, warmup, total))
        topt.zero_grad()
        r = ref(**torch_batch(batch))
        r.loss.backward()
        tnorm = float(torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0))
        topt.step()
        tsched.step()
        clipped += tnorm > 1.0
        assert abs(float(out["loss"]) - r.loss.item()) <= 1e-8 * abs(r.loss.item()), (step, out["loss"], r.loss)
        assert abs(norm - tnorm) <= 1e-8 * tnorm, step
    assert clipped >= 3, clipped                                    # clipping was exercised
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v, err_msg=f"frozen {k} changed")
    for k, p in ref.named_parameters():
        assert rel_diff(model.params[k], p.detach().numpy()) <= 1e-8, k


def test_optimizer_leaves_frozen_parameters_untouched():
    cfg = head_config("sequence")
    model = perturbed(BertForSequenceClassification, cfg).train().freeze(embeddings=True, layers=1)
    before = {k: v.copy() for k, v in model.params.items()}
    opt = AdamW(model.params, lr=1e-2, weight_decay=0.01, frozen=model.frozen_names())
    rng = np.random.default_rng(10)
    for _ in range(3):
        model.zero_grad()
        model.forward(**gradcheck.task_head_inputs(model, rng))
        model.backward()
        opt.step(model.grads)
    for k, v in model.params.items():
        changed = not np.array_equal(v, before[k])
        assert changed == (k not in model.frozen_names()), k


# -- AdamW over the flat buffers (issue 17) ---------------------------------------------------------------

def _flat_config(layers=2):
    return BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=24, max_position_embeddings=20)


def _flat_model(layers=2, dtype="float32"):
    from minibert.model.heads.pretraining import BertForPreTraining
    return BertForPreTraining(_flat_config(layers), seed=0, dtype=dtype)


@pytest.mark.parametrize("frozen", [False, True], ids=["all-trainable", "embeddings+layer0-frozen"])
@pytest.mark.parametrize("variant", ["torch", "google"])
def test_flat_adamw_is_the_per_parameter_update_bit_for_bit(variant, frozen):
    """AdamW over a model's flat buffers (a run per decay group) against adamw_step on plain-dict copies
    (one update per parameter): three steps with random gradients, the same bits in every parameter
    and moment; frozen parameters keep their values and have no moments."""
    from minibert.train.optim import adamw_step
    model = _flat_model()
    if frozen:
        model.freeze(embeddings=True, layers=1)
    names = model.frozen_names()
    opt = AdamW(model.params, lr=1e-2, weight_decay=0.1, variant=variant, frozen=names)
    assert opt.runs is not None and len(opt.runs) == 2            # matrices (decayed), vectors (not)
    ref = {k: v.copy() for k, v in model.params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items() if k not in names}
    v = {k: np.zeros_like(p) for k, p in ref.items() if k not in names}
    rng = np.random.default_rng(0)
    for t in (1, 2, 3):
        model.buffers.grad[:] = rng.normal(size=model.buffers.grad.size)
        for k in names:
            model.grads[k][...] = 0.0                              # as the model keeps them
        opt.step(model.grads, lr=1e-2 / t)
        adamw_step(ref, {k: g.copy() for k, g in model.grads.items()}, m, v, t, 1e-2 / t, eps=opt.eps,
                   weight_decay=0.1, variant=variant)
    for k in ref:
        assert np.array_equal(model.params[k], ref[k]), k
    assert set(opt.m) == set(m) == set(k for k in model.params if k not in names)
    for k in m:
        assert np.array_equal(opt.m[k], m[k]) and np.array_equal(opt.v[k], v[k]), k
        assert np.shares_memory(opt.m[k], opt.m_flat) and np.shares_memory(opt.v[k], opt.v_flat), k


def test_flat_adamw_state_dict_keeps_its_format_and_loads_into_the_views():
    model = _flat_model().freeze(embeddings=True)
    opt = AdamW(model.params, lr=1e-3, frozen=model.frozen_names())
    model.buffers.grad[:] = 0.5
    opt.step(model.grads)
    state = opt.state_dict()
    trainable = [k for k in model.params if k not in model.frozen_names()]
    assert list(state) == ["t"] + [f"m.{k}" for k in trainable] + [f"v.{k}" for k in trainable]
    assert all(state[f"m.{k}"].shape == model.params[k].shape for k in trainable)
    other = AdamW(model.params, lr=1e-3, frozen=model.frozen_names())
    m_flat = other.m_flat
    other.load_state_dict({k: (v.copy() if k != "t" else v) for k, v in state.items()})
    assert other.m_flat is m_flat and np.array_equal(other.m_flat, opt.m_flat) and other.t == 1
    assert np.array_equal(other.v_flat, opt.v_flat)


def test_adamw_and_zero_grad_operation_counts_do_not_grow_with_the_model():
    """Under the strict stand-in's counter (a proxy for GPU kernel launches): zero_grad is one fill and an
    AdamW step is the readable update once per run (13 operations, 14 with the decay), two runs whatever
    the number of layers, frozen or not. Before the flat buffers: one fill per tensor (39 for BertModel
    with 2 layers) and ~13.4 operations per tensor (523 for that model, 1044 for BertForPreTraining with 4)."""
    from minibert import backend
    from minibert.model.bert import BertModel
    from strict_xp import counting
    seen = set()
    with backend.using("strict"):
        for layers in (1, 3):
            for model in (BertModel(_flat_config(layers)), _flat_model(layers)):
                for frozen in (False, True):
                    if frozen:
                        model.freeze(embeddings=True, layers=1)
                    opt = AdamW(model.params, lr=1e-3, weight_decay=0.01, frozen=model.frozen_names())
                    with counting() as zero:
                        model.zero_grad()
                    with counting() as step:
                        opt.step(model.grads)
                    assert zero.total_ops() == 1 and list(zero.ops) == ["fill"]
                    assert step.total_ops() <= 27 and not step.d2h and not step.h2d, step.ops
                    seen.add((type(model).__name__, step.total_ops()))
    assert {name for name, _ in seen} == {"BertModel", "BertForPreTraining"}
    assert len({ops for _, ops in seen}) == 1, seen                 # the same count for 1 and 3 layers, frozen or not


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["torch", "google"])
def test_fused_adamw_kernel_equals_its_numpy_twin(variant, dtype):
    """On CuPy each run is one fused kernel (_fused_adamw_update); its numbers against the readable
    _adamw_update run with NumPy on the same values: bit for bit (no FMA contraction; IEEE sqrt and /),
    decayed and not, over three steps."""
    from minibert import backend
    from minibert.train.optim import _adamw_update, _fused_adamw_update
    rng = np.random.default_rng(0)
    n = 100_003
    host = [rng.normal(size=n).astype(dtype), None, np.zeros(n, dtype), np.zeros(n, dtype)]
    with backend.using("cupy") as cp:
        dev = [cp.asarray(host[0]), None, cp.asarray(host[2]), cp.asarray(host[3])]
        for t, wd in ((1, 0.1), (2, 0.0), (3, 0.1)):
            g = rng.normal(size=n).astype(dtype)
            _adamw_update(host[0], g, host[2], host[3], t, 1e-2, 0.9, 0.999, 1e-6, wd, variant)
            _fused_adamw_update(dev[0], cp.asarray(g), dev[2], dev[3], t, 1e-2, 0.9, 0.999, 1e-6, wd, variant)
        for h, d in zip(host, dev):
            if h is not None:
                assert np.array_equal(h, cp.asnumpy(d))
