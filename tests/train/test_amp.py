"""Mixed precision (minibert/train/amp.py): loss scaling rescuing underflowing gradients, skipped overflow
steps, the scale's growth, checkpoints of the scaler, the step on the device (the `xp` fixture, real
CuPy), and torch's GradScaler as the reference for the scaling rule. The float16 matmul itself is in
backend/test_precision.py."""
import json

import numpy as np
import pytest

from minibert import backend, gradcheck
from minibert.train.amp import LossScaler, autocast, has_overflow, unscale
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.ops.linear import linear_backward, linear_forward
from minibert.backend.precision import fp16_enabled, matmul, mixed_precision
from minibert.train.optim import AdamW
from minibert.train.pretrain import pretraining_step
from minibert.train.step import apply_gradients
from reference import rel_diff
from helpers import F16_EPS, pretraining_batch


def model_grads(cfg, batch, weight=1.0, fp16_mode=False, scale=1.0):
    """BertForPreTraining's gradients of weight * loss, backward of loss * scale, divided by scale."""
    model = BertForPreTraining(cfg, seed=0).eval()
    with mixed_precision(fp16_mode):
        model.forward(**batch)
        model.zero_grad()
        model.backward(mlm_weight=weight * scale, nsp_weight=weight * scale)
    unscale(model.grads, scale)
    return {k: backend.to_host(g) for k, g in model.grads.items()}


# -- (a) an underflowing gradient rescued by loss scaling ------------------------------------

def test_linear_weight_gradient_underflow_is_rescued_by_loss_scaling():
    """dy of order 5e-9 is below half float16's smallest subnormal (2**-24 = 6e-8): rounded to float16
    it is 0, so dW = dy^T x and dx = dy W are exactly 0. Scaled by 2**16 it is ~3e-4, inside the range."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    w = rng.normal(size=(5, 8)).astype(np.float32)
    dy = (5e-9 * rng.normal(size=(16, 5))).astype(np.float32)
    assert np.abs(dy).max() < 2.0 ** -25
    _, cache = linear_forward(x, w)
    dx32, dw32, _ = linear_backward(dy, cache)
    with mixed_precision():
        dx16, dw16, _ = linear_backward(dy, cache)
        scale = 2.0 ** 16
        dxs, dws, _ = linear_backward(dy * np.float32(scale), cache)
    assert not dw16.any() and not dx16.any()                                     # everything flushed to zero
    for scaled, ref in [(dws / scale, dw32), (dxs / scale, dx32)]:
        assert rel_diff(scaled / np.abs(ref).max(), ref / np.abs(ref).max()) < 4 * F16_EPS


def test_model_gradients_underflow_without_scaling_and_match_float32_with_it():
    """The whole pretraining model with its loss weighted by 2**-16 (gradients of order 1e-5 and
    below, as in a deep network): in float16 three quarters of the gradient entries flush to zero;
    with the loss scale 2**16 the unscaled gradients match float32's to ~5e-4."""
    cfg = gradcheck.odd_config()
    batch = pretraining_batch(cfg, np.random.default_rng(1))
    w = 2.0 ** -16
    g32 = model_grads(cfg, batch, w)
    g16 = model_grads(cfg, batch, w, fp16_mode=True)
    g16_scaled = model_grads(cfg, batch, w, fp16_mode=True, scale=LossScaler().scale)
    # the key biases' exact gradient is 0 (softmax ignores a shift shared by all keys): compare the rest
    keys = [k for k in g32 if not k.endswith("key.bias")]
    flat = lambda g: np.concatenate([g[k].ravel() for k in keys])            # noqa: E731
    zeros = lambda g: float(np.mean(flat(g) == 0))                            # noqa: E731
    error = lambda g: float(np.linalg.norm(flat(g) - flat(g32)) / np.linalg.norm(flat(g32)))   # noqa: E731
    assert zeros(g32) < 0.05 and zeros(g16) > 0.5, (zeros(g32), zeros(g16))
    assert error(g16) > 0.1
    assert abs(zeros(g16_scaled) - zeros(g32)) < 0.01
    assert error(g16_scaled) < 2e-3, error(g16_scaled)
    for k in keys:                                  # every parameter, not just the big ones
        assert np.linalg.norm(g16_scaled[k] - g32[k]) <= 0.03 * np.linalg.norm(g32[k]), k


# -- (b) an overflow step is skipped ------------------------------------------------------------

def test_overflowing_step_is_skipped_and_the_scale_halved():
    cfg = gradcheck.odd_config()
    batch = pretraining_batch(cfg, np.random.default_rng(1))
    model = BertForPreTraining(cfg, seed=0).eval()          # no dropout: the retried step sees the same network
    opt = AdamW(model.params, lr=1e-3)
    before = {k: v.copy() for k, v in model.params.items()}
    scaler = LossScaler(init_scale=2.0 ** 40)       # scaled MLM gradients ~1e9 > 65504: inf in float16
    m = pretraining_step(model, opt, [batch], lr=1e-3, scaler=scaler)
    assert m["skipped"] and m["loss_scale"] == 2.0 ** 40 and np.isfinite(m["loss"])
    assert has_overflow(model.grads)
    for k, v in model.params.items():
        assert np.array_equal(v, before[k]), k
    assert opt.t == 0 and not any(v.any() for v in opt.m.values())
    assert scaler.scale == 2.0 ** 39 and scaler.skipped_steps == 1 and scaler.growth_tracker == 0
    # a sane scale: the step is taken, and it is the float32 step to within float16's precision
    scaler.scale = 2.0 ** 16
    m = pretraining_step(model, opt, [batch], lr=1e-3, scaler=scaler)
    ref = BertForPreTraining(cfg, seed=0).eval()
    m32 = pretraining_step(ref, AdamW(ref.params, lr=1e-3), [batch], lr=1e-3)
    assert not m["skipped"] and opt.t == 1 and scaler.skipped_steps == 1
    assert abs(m["loss"] - m32["loss"]) < 1e-3 * m32["loss"] and abs(m["grad_norm"] / m32["grad_norm"] - 1) < 1e-3
    assert max(rel_diff(model.params[k], ref.params[k]) for k in ref.params) < 2e-3 * 2   # lr 1e-3: AdamW moves ~lr
    assert max(rel_diff(model.params[k], before[k]) for k in before) > 5e-4                 # ...and it did move


def test_overflow_in_a_frozen_parameter_does_not_skip():
    cfg = gradcheck.odd_config()
    model = BertForPreTraining(cfg, seed=0)
    frozen = "bert.embeddings.position_embeddings.weight"
    opt = AdamW(model.params, frozen=[frozen])
    model.zero_grad()
    model.grads[frozen][0, 0] = np.inf
    scaler = LossScaler(init_scale=4.0)
    assert not apply_gradients(model, opt, 1e-3, scaler=scaler)["skipped"]
    model.grads["cls.predictions.bias"][3] = np.nan
    assert apply_gradients(model, opt, 1e-3, scaler=scaler)["skipped"] and scaler.scale == 2.0


# -- (c) growth, and torch's GradScaler as the reference for the rule ----------------------------

def test_scale_grows_after_growth_interval_good_steps():
    cfg = gradcheck.odd_config()
    model = BertForPreTraining(cfg, seed=0)
    opt = AdamW(model.params, lr=1e-4)
    scaler = LossScaler(init_scale=2.0 ** 8, growth_interval=3)
    used = []
    for step in range(7):
        m = pretraining_step(model, opt, [pretraining_batch(cfg, np.random.default_rng(step))], 1e-4, scaler=scaler)
        assert not m["skipped"]
        used.append(m["loss_scale"])
    assert used == [2.0 ** 8] * 3 + [2.0 ** 9] * 3 + [2.0 ** 10]
    assert scaler.growth_tracker == 1 and scaler.skipped_steps == 0 and opt.t == 7


def test_scaling_rule_matches_torch_grad_scaler():
    """The same sequence of good and overflowing gradients through torch.amp.GradScaler (CPU) and
    LossScaler: the same scale and growth tracker after every step, the same steps skipped."""
    import torch
    pattern = [False, True, False, False, False, True, True, False, False, False, False, False]
    p = torch.nn.Parameter(torch.ones(3))
    ref = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=2)
    sgd = torch.optim.SGD([p], lr=0.1)
    scaler = LossScaler(init_scale=8.0, growth_interval=2)
    skipped = 0
    for bad in pattern:
        ref.scale(p.sum())                                   # sets up torch's scale tensor
        value = float("inf") if bad else 1.0
        p.grad = torch.full((3,), value * ref.get_scale())
        before = p.detach().clone()
        ref.step(sgd)
        ref.update()
        skipped += bool(torch.equal(before, p.detach()))
        grads = {"w": np.full(3, value * scaler.scale, np.float32)}
        scaler.update(scaler.unscale_(grads))
        if not bad:
            assert np.array_equal(grads["w"], np.ones(3, np.float32))   # unscaled exactly
        assert scaler.scale == ref.get_scale()
        assert scaler.growth_tracker == int(ref.state_dict()["_growth_tracker"])
    assert scaler.skipped_steps == skipped == sum(pattern)


# -- (d) checkpoints ---------------------------------------------------------------------------

def test_scaler_state_round_trips_through_json_and_resumes_exactly():
    pattern = [False, False, True, False, False, False, True, False, False, False, False]
    a = LossScaler(init_scale=2.0 ** 10, growth_interval=3)
    for bad in pattern[:5]:
        a.update(bad)
    b = LossScaler()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict()
    for bad in pattern[5:]:
        a.update(bad)
        b.update(bad)
        assert b.state_dict() == a.state_dict()
    assert a.skipped_steps == 2 and a.scale == 2.0 ** 10 and a.growth_tracker == 1   # by hand: /2, x2, /2, x2


def test_scaler_errors_name_the_problem():
    with pytest.raises(ValueError, match="init_scale must be a positive finite"):
        LossScaler(init_scale=0.0)
    with pytest.raises(ValueError, match="growth_factor must be > 1"):
        LossScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor must be in"):
        LossScaler(backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_interval must be a positive integer"):
        LossScaler(growth_interval=0)
    state = LossScaler().state_dict()
    with pytest.raises(KeyError, match="no 'skipped_steps'"):
        LossScaler().load_state_dict({k: v for k, v in state.items() if k != "skipped_steps"})
    with pytest.raises(ValueError, match="growth_tracker=2000"):
        LossScaler().load_state_dict({**state, "growth_tracker": 2000})


def test_autocast_without_a_scaler_changes_nothing():
    with autocast(None) as loss_scale:
        assert loss_scale == 1.0 and not fp16_enabled()
    scaler = LossScaler(init_scale=2.0 ** 5)
    with autocast(scaler) as loss_scale:
        assert loss_scale == 32.0 and fp16_enabled()
    assert not fp16_enabled()


# -- (e) on the device: the strict CuPy stand-in, and real CuPy ----------------------------------

def fp16_step(cfg, batch, init_scale=2.0 ** 16):
    model = BertForPreTraining(cfg, seed=0)
    scaler = LossScaler(init_scale=init_scale)
    m = pretraining_step(model, AdamW(model.params, lr=1e-3), [batch], 1e-3, scaler=scaler)
    return model, scaler, m


def test_fp16_step_stays_on_device_under_strict_backend(xp):
    """The float16 step (matmuls, overflow check, unscaling, skipping) under each backend, the strict
    one refusing host/device mixing; the numbers agree with the NumPy emulation (float16 products
    summed in float32 in another order: rare one-ulp differences). Dropout off: the strict backend
    draws its masks on the device, from another generator than NumPy's (docs/backend.md, rule 4)."""
    cfg = gradcheck.odd_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    batch = pretraining_batch(cfg, np.random.default_rng(1))
    model, scaler, m = fp16_step(cfg, batch)
    assert isinstance(model.params["bert.pooler.dense.weight"], xp.ndarray)
    assert not m["skipped"] and scaler.growth_tracker == 1
    _, scaler_big, m_big = fp16_step(cfg, batch, init_scale=2.0 ** 40)
    assert m_big["skipped"] and scaler_big.skipped_steps == 1
    with backend.using("numpy"):
        host, _, m_host = fp16_step(cfg, batch)
    assert abs(m["loss"] - m_host["loss"]) < 1e-6 * m_host["loss"]
    for k in host.grads:                            # the unscaled, clipped gradients the update used
        assert rel_diff(backend.to_host(model.grads[k]), host.grads[k]) < 1e-6, k


@pytest.mark.gpu
def test_fp16_on_cupy_matches_the_numpy_emulation():
    cfg = gradcheck.odd_config()
    batch = pretraining_batch(cfg, np.random.default_rng(1))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 64, 48)).astype(np.float32), rng.normal(size=(2, 3, 48, 64)).astype(np.float32)
    with mixed_precision():
        emulated = matmul(a, b)
    with backend.using("cupy") as cp:
        with mixed_precision():
            c = matmul(cp.asarray(a), cp.asarray(b))
        assert c.dtype == np.float32
        assert np.all(np.abs(backend.to_host(c) - emulated) <= 2 * F16_EPS * np.abs(emulated) + 1e-6)
        model, scaler, m = fp16_step(cfg, batch)
        assert not m["skipped"] and model.params["bert.pooler.dense.weight"].dtype == np.float32
        _, scaler_big, m_big = fp16_step(cfg, batch, init_scale=2.0 ** 40)
        assert m_big["skipped"] and scaler_big.scale == 2.0 ** 39
    host, _, m_host = fp16_step(cfg, batch)
    assert abs(m["loss"] - m_host["loss"]) < 1e-4 * m_host["loss"]
    for k in host.grads:
        assert rel_diff(backend.to_host(model.grads[k]), host.grads[k]) < 1e-4, k
