"""The distillation losses (minibert/ops/losses.py): KL with temperature, soft-target cross-entropy, cosine
embedding loss. Their backward against float64 finite differences, their values and gradients against
torch (to 1e-12 in float64), their edge cases, and a run under the strict stand-in for CuPy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minibert import backend, gradcheck
from minibert.ops.losses import (cosine_embedding_loss_backward, cosine_embedding_loss_forward,
                                 kl_div_with_temperature_backward, kl_div_with_temperature_forward,
                                 soft_target_cross_entropy_backward, soft_target_cross_entropy_forward)

DISTILL = list(gradcheck.distill_loss_checks(np.random.default_rng(0)))


def test_the_three_losses_are_in_the_gradcheck_table():
    lines = []
    gradcheck.run("odd", stream=lines.append)
    assert sum(line.endswith("pass") for line in lines if line.startswith(("KL", "soft-target", "cosine"))) == 3


@pytest.mark.parametrize("check", DISTILL, ids=[c[0] for c in DISTILL])
def test_gradient_matches_finite_differences(check):
    name, fwd, bwd, inputs, wrt = check
    result = gradcheck.check_op(name, fwd, bwd, inputs, wrt, np.random.default_rng(1), max_entries=80)
    assert result.max_rel_error < 1e-6, f"{name}: max relative error {result.max_rel_error:.2e}"


def test_a_wrong_temperature_scaling_fails_the_check():
    """The check can fail: a backward missing the factor T (Hinton's T^2 with the 1/T of the chain rule)."""
    name, fwd, bwd, inputs, wrt = DISTILL[0]
    wrong = lambda d, c: {"s": bwd(d, c)["s"] / 2.0}          # noqa: E731  (T = 2 in the check)
    assert gradcheck.check_op(name, fwd, wrong, inputs, wrt, np.random.default_rng(1)).max_rel_error > 0.1


def _logits(rng, n=9, c=13, scale=3.0):
    return rng.normal(0, scale, size=(n, c)), rng.normal(0, scale, size=(n, c))


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 8.0])
def test_kl_matches_torch_batchmean_times_t_squared(T):
    s, t = _logits(np.random.default_rng(3))
    loss, cache = kl_div_with_temperature_forward(s, t, T)
    grad = kl_div_with_temperature_backward(0.7, cache)
    ts = torch.tensor(s, requires_grad=True)
    ref = F.kl_div(F.log_softmax(ts / T, dim=1), F.softmax(torch.tensor(t) / T, dim=1), reduction="batchmean") * T * T
    (ref * 0.7).backward()
    assert abs(float(loss) - ref.item()) < 1e-12
    np.testing.assert_allclose(grad, ts.grad.numpy(), rtol=0, atol=1e-12)


def test_kl_over_some_rows_is_torch_over_those_rows():
    """valid selects the rows (masked-LM positions): the mean is over them alone, the others get no gradient."""
    s, t = _logits(np.random.default_rng(4))
    valid = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    loss, cache = kl_div_with_temperature_forward(s, t, 2.0, valid)
    grad = kl_div_with_temperature_backward(1.0, cache)
    ts = torch.tensor(s[valid], requires_grad=True)
    ref = F.kl_div(F.log_softmax(ts / 2, dim=1), F.softmax(torch.tensor(t[valid]) / 2, dim=1),
                   reduction="batchmean") * 4
    ref.backward()
    assert abs(float(loss) - ref.item()) < 1e-12
    np.testing.assert_allclose(grad[valid], ts.grad.numpy(), rtol=0, atol=1e-12)
    assert not grad[~valid].any()


def test_soft_target_ce_is_kl_plus_the_teachers_entropy_with_the_same_gradient():
    s, t = _logits(np.random.default_rng(5))
    T = 3.0
    kl, kl_cache = kl_div_with_temperature_forward(s, t, T)
    ce, ce_cache = soft_target_cross_entropy_forward(s, t, T)
    p_t = torch.softmax(torch.tensor(t) / T, dim=1)
    entropy = float(-(p_t * torch.log(p_t)).sum(dim=1).mean())
    assert abs(float(ce) - (float(kl) + T * T * entropy)) < 1e-12
    ts = torch.tensor(s, requires_grad=True)           # torch's soft-target cross_entropy (probabilities as target)
    ref = F.cross_entropy(ts / T, p_t) * T * T
    ref.backward()
    assert abs(float(ce) - ref.item()) < 1e-12
    np.testing.assert_allclose(soft_target_cross_entropy_backward(1.0, ce_cache), ts.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(kl_div_with_temperature_backward(1.0, kl_cache), ts.grad.numpy(), rtol=0, atol=1e-12)


def test_kl_is_zero_for_a_student_equal_to_the_teacher_and_with_no_rows():
    s, _ = _logits(np.random.default_rng(6))
    loss, cache = kl_div_with_temperature_forward(s, s.copy(), 2.0)
    assert abs(float(loss)) < 1e-12 and np.abs(kl_div_with_temperature_backward(1.0, cache)).max() < 1e-15
    loss, cache = kl_div_with_temperature_forward(s, s + 1.0, 2.0, np.zeros(len(s), dtype=bool))
    assert float(loss) == 0.0 and not kl_div_with_temperature_backward(1.0, cache).any()


def test_temperature_and_shapes_are_checked():
    s, t = _logits(np.random.default_rng(7))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        kl_div_with_temperature_forward(s, t, 0.0)
    with pytest.raises(ValueError, match="both be"):
        kl_div_with_temperature_forward(s, t[:, :5], 1.0)
    with pytest.raises(ValueError, match="same shape"):
        cosine_embedding_loss_forward(s, t[:, :5])


def test_cosine_matches_torch_with_target_one():
    rng = np.random.default_rng(8)
    hs, ht = rng.normal(size=(2, 5, 16)), rng.normal(size=(2, 5, 16))
    real = np.ones((2, 5), dtype=bool)
    real[1, 3:] = False                                   # padding: not counted
    loss, cache = cosine_embedding_loss_forward(hs, ht, real)
    grad = cosine_embedding_loss_backward(1.0, cache)
    x1 = torch.tensor(hs[real], requires_grad=True)
    ref = F.cosine_embedding_loss(x1, torch.tensor(ht[real]), torch.ones(int(real.sum()), dtype=torch.float64))
    ref.backward()
    assert abs(float(loss) - ref.item()) < 1e-12
    np.testing.assert_allclose(grad[real], x1.grad.numpy(), rtol=0, atol=1e-12)
    assert not grad[~real].any()


def test_cosine_ignores_length_and_its_gradient_is_orthogonal_to_h_s():
    rng = np.random.default_rng(9)
    hs, ht = rng.normal(size=(6, 16)), rng.normal(size=(6, 16))
    loss, cache = cosine_embedding_loss_forward(hs, ht)
    assert abs(float(loss) - float(cosine_embedding_loss_forward(3.0 * hs, ht)[0])) < 1e-12
    grad = cosine_embedding_loss_backward(1.0, cache)
    assert np.abs((grad * hs).sum(axis=1)).max() < 1e-12      # only the direction changes
    assert abs(float(cosine_embedding_loss_forward(ht, ht)[0])) < 1e-12


def test_losses_stay_on_the_device(xp):
    """Under the strict stand-in a host/device mix or an implicit read raises."""
    rng = np.random.default_rng(10)
    s, t = (backend.to_device(a) for a in _logits(rng))
    valid = xp.asarray(np.array([1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=bool))
    for fwd, bwd in ((kl_div_with_temperature_forward, kl_div_with_temperature_backward),
                     (soft_target_cross_entropy_forward, soft_target_cross_entropy_backward)):
        loss, cache = fwd(s, t, 2.0, valid)
        assert isinstance(bwd(1.0, cache), xp.ndarray)
    h = backend.to_device(rng.normal(size=(2, 5, 8)))
    loss, cache = cosine_embedding_loss_forward(h, h * 2 + 1, xp.asarray(np.ones((2, 5), dtype=bool)))
    assert isinstance(cosine_embedding_loss_backward(1.0, cache), xp.ndarray)
