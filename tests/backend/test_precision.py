"""minibert/backend/precision.py: the one matmul every model product goes through, plain `@` by default, and
in the float16 mode operands and result rounded to float16 with float32 sums (the emulation of a GPU's
half-precision matmul); its range, its overflow and underflow. Loss scaling is in train/test_amp.py."""
import operator

import numpy as np
import pytest

from minibert import gradcheck
from minibert.backend.precision import fp16_enabled, matmul, mixed_precision
from minibert.model.heads.pretraining import BertForPreTraining
from minibert.ops import attention as attention_mod
from minibert.ops import linear as linear_mod
from helpers import F16_EPS, pretraining_batch


def fp16(x):
    """Round to the nearest float16, back in float32 (the reference for what the matmul's operands become)."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


# -- the default mode is plain `@` ------------------------------------------------------

def test_default_matmul_is_plain_matmul_and_the_mode_is_scoped():
    rng = np.random.default_rng(0)
    for sa, sb in [((13, 7), (7, 5)), ((2, 3, 7, 4), (2, 3, 4, 7))]:
        a, b = rng.normal(size=sa).astype(np.float32), rng.normal(size=sb).astype(np.float32)
        assert np.array_equal(matmul(a, b), a @ b)
    assert not fp16_enabled()
    with pytest.raises(RuntimeError):
        with mixed_precision():
            assert fp16_enabled()
            with mixed_precision(False):
                assert not fp16_enabled()
            assert fp16_enabled()
            raise RuntimeError("the mode must be restored on the way out")
    assert not fp16_enabled()


def test_default_mode_model_is_bit_identical_to_plain_matmul(monkeypatch):
    """Forward and backward of the whole pretraining model, routed through matmul (default mode),
    against the same code with the plain `@` operator put back: every number identical."""
    cfg = gradcheck.odd_config()
    batch = pretraining_batch(cfg, np.random.default_rng(1))

    def run():
        model = BertForPreTraining(cfg, seed=0).train()              # dropout on: the same masks both times
        out = model.forward(**batch)
        model.zero_grad()
        model.backward()
        return float(out["loss"]), out["mlm_logits"], model.grads

    loss, logits, grads = run()
    monkeypatch.setattr(linear_mod, "matmul", operator.matmul)
    monkeypatch.setattr(attention_mod, "matmul", operator.matmul)
    loss_at, logits_at, grads_at = run()
    assert loss == loss_at and np.array_equal(logits, logits_at)
    for k in grads:
        assert np.array_equal(grads[k], grads_at[k]), k


def test_every_model_matmul_goes_through_matmul(monkeypatch):
    """Per encoder layer 6 matmuls forward (Q/K/V fused, QK^T, PV, output, FFN x2) and 12 backward;
    pooler, MLM transform, tied decoder and NSP: 1 forward + 2 backward each."""
    cfg = gradcheck.odd_config()
    calls = []

    def counting(a, b):
        calls.append((a.shape, b.shape))
        return matmul(a, b)

    monkeypatch.setattr(linear_mod, "matmul", counting)
    monkeypatch.setattr(attention_mod, "matmul", counting)
    model = BertForPreTraining(cfg, seed=0).eval()
    with mixed_precision():
        model.forward(**pretraining_batch(cfg, np.random.default_rng(1)))
        n_forward = len(calls)
        model.zero_grad()
        model.backward()
    L = cfg.num_hidden_layers
    assert n_forward == 6 * L + 4
    assert len(calls) - n_forward == 12 * L + 8


# -- the float16 numerics -----------------------------------------------------------------

def test_fp16_matmul_rounds_operands_and_result_to_float16_and_sums_in_float32():
    rng = np.random.default_rng(0)
    for sa, sb in [((13, 37), (37, 11)), ((2, 3, 7, 5), (2, 3, 5, 7))]:            # dense and attention shapes
        a, b = rng.normal(size=sa).astype(np.float32), rng.normal(size=sb).astype(np.float32)
        with mixed_precision():
            c = matmul(a, b)
        assert c.dtype == np.float32
        assert np.array_equal(c, fp16(fp16(a) @ fp16(b)))                          # the emulation, exactly
        # against the exact product of the rounded operands: only the final rounding to float16 (float32 sums)
        exact = fp16(a).astype(np.float64) @ fp16(b).astype(np.float64)
        assert np.all(np.abs(c - exact) <= F16_EPS * np.abs(exact) + 1e-6)
        # against float32: ~1e-3 relative, the price of 11-bit significands
        err = np.abs(c - a @ b).max() / np.abs(a @ b).max()
        assert 1e-4 < err < 5e-3, err


def test_fp16_matmul_range_overflow_and_underflow():
    with mixed_precision():
        big = matmul(np.array([[70000.0]], np.float32), np.array([[1.0]], np.float32))
        product = matmul(np.array([[300.0]], np.float32), np.array([[300.0]], np.float32))
        tiny = matmul(np.array([[1e-8]], np.float32), np.array([[1.0]], np.float32))
        subnormal = matmul(np.array([[1e-6]], np.float32), np.array([[1.0]], np.float32))
    assert np.isinf(big[0, 0])                      # operand above 65504
    assert np.isinf(product[0, 0])                  # 90000 does not fit the float16 result
    assert tiny[0, 0] == 0.0                        # below half the smallest subnormal (2**-24 = 6e-8): flushed
    assert subnormal[0, 0] != 0 and abs(subnormal[0, 0] - 1e-6) <= 2.0 ** -25   # subnormal: absolute step 6e-8


def test_fp16_needs_float32_arrays():
    a = np.ones((2, 2))
    with mixed_precision(), pytest.raises(TypeError, match="float32 master weights.*got float64"):
        matmul(a, a)
