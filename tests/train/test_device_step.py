"""The training step on the device (issue 17): at most ONE device -> host read per optimizer step, none
per micro-batch or per parameter, and no host -> device copy of its own; on NumPy the same numbers.

Counted under the strict CuPy stand-in (tests/strict_xp.py), which records every read and copy. The
tests split each read and copy by where it comes from: the model's ("model": minibert/model or
minibert/ops code is on the call stack; tests/backend/test_device_resident.py holds the model to none)
or the step's (everything else: train/step.py, optim.py, amp.py and the backend helpers they call).
The step's are asserted here, and the whole step's (model included) in the strict end-to-end tests.
"""
import math
import traceback

import numpy as np
import pytest

import strict_xp
from minibert import BertConfig, backend
from minibert.model.heads import BertForPreTraining, BertForSequenceClassification
from minibert.train.amp import LossScaler
from minibert.train.finetune import finetune_step
from minibert.train.finetune_tasks import get_task
from minibert.train.optim import AdamW, clip_grad_norm, global_grad_norm
from minibert.train.pretrain import pretraining_step
from minibert.train.step import NonFiniteLossError, read_together
from helpers import pretraining_batch

CFG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
           max_position_embeddings=32)


class Origins:
    """Every read and copy the stand-in counts, each with where it came from ("model" or "step")."""

    def __init__(self):
        self.d2h, self.h2d = [], []

    def step_reads(self):
        return [where for origin, where in self.d2h if origin == "step"]

    def step_copies(self):
        return [shape for origin, shape in self.h2d if origin == "step"]


def _stack() -> list:
    """The caller's frames, innermost last, without the stand-in's and this file's own."""
    return [f for f in traceback.extract_stack()
            if not f.filename.endswith(("strict_xp.py", "test_device_step.py"))]


def _origin(frames) -> str:
    files = [f.filename.replace("\\", "/") for f in frames]
    return "model" if any("/minibert/model/" in f or "/minibert/ops/" in f for f in files) else "step"


@pytest.fixture
def origins(monkeypatch):
    """Replace the stand-in's counters (inside this test only) by ones that also note each read's and
    copy's origin; like the originals they count only inside `strict_xp.counting()`."""
    seen = Origins()

    def noted_read(kind):
        if strict_xp._counts is not None:
            frame = _stack()[-1]
            where = f"{frame.filename.rsplit('/', 2)[-2]}/{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
            strict_xp._counts.d2h.append((kind, where))
            seen.d2h.append((_origin(_stack()), f"{kind} at {where}"))

    def noted_copy(data):
        if strict_xp._counts is not None:
            strict_xp._counts.h2d.append((int(data.nbytes), tuple(data.shape)))
            seen.h2d.append((_origin(_stack()), (int(data.nbytes), tuple(data.shape))))

    monkeypatch.setattr(strict_xp, "_read", noted_read)
    monkeypatch.setattr(strict_xp, "_copy_in", noted_copy)
    with backend.using("strict"):
        yield seen


def _pretraining(seed=0):
    cfg = BertConfig(**CFG)
    rng = np.random.default_rng(seed)
    return cfg, BertForPreTraining(cfg, seed=0).train(), [pretraining_batch(cfg, rng, B=4, T=16) for _ in range(2)]


def _finetuning(seed=0):
    cfg = BertConfig(**CFG, num_labels=2)
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(2):
        b = pretraining_batch(cfg, rng, B=4, T=16)
        batches.append({k: b[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
                       | {"labels": rng.integers(0, 2, 4)})
    return get_task("sst2", max_seq_len=16), BertForSequenceClassification(cfg, seed=0).train(), batches


def _batch_copies(batches):
    """The batch's arrays as the model copies them: whole, except the masked-LM labels, of which the
    head copies the labelled positions and their targets (found in the host labels, so the number of
    rows is known without asking the device: minibert/model/heads/pretraining.py)."""
    copies = []
    for b in batches:
        for k, v in b.items():
            if k == "labels" and v.ndim == 2:
                n = int((v != -100).sum())
                copies += [(n * 8, (n,)), (n * v.itemsize, (n,))]     # int64 positions, the targets
            else:
                copies.append((int(v.nbytes), tuple(v.shape)))
    return sorted(copies)


# -- the step's own reads and copies (the model's are another branch's) ------------------------------

def test_a_pretraining_step_reads_once(origins):
    """Two micro-batches, dropout on, clipping: the step reads one small array, copies nothing itself."""
    _, model, batches = _pretraining()
    with strict_xp.counting() as c:
        m = pretraining_step(model, AdamW(model.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    assert len(origins.step_reads()) == 1, origins.step_reads()          # was 50: 4 losses + 46 norms
    assert origins.step_reads()[0].startswith("get"), origins.step_reads()
    assert origins.step_copies() == []
    assert len(c.d2h) == len(origins.d2h) and len(c.h2d) == len(origins.h2d)   # the wrappers saw everything
    assert math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) and not m["skipped"]


def test_a_fine_tuning_step_reads_once(origins):
    task, model, batches = _finetuning()
    with strict_xp.counting():
        m = finetune_step(model, task, AdamW(model.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    assert len(origins.step_reads()) == 1, origins.step_reads()          # was 43: 2 losses + 41 norms
    assert origins.step_copies() == []
    assert math.isfinite(m["loss"]) and 0 <= m["accuracy"] <= 1


def test_an_fp16_step_reads_its_overflow_flag_with_the_loss(origins):
    """With a loss scaler the overflow flag joins the same read, whether the step is taken or skipped."""
    _, model, batches = _pretraining()
    opt = AdamW(model.params, lr=1e-3)
    for init_scale, skipped in ((2.0 ** 8, False), (2.0 ** 40, True)):
        origins.d2h.clear()
        with strict_xp.counting():
            m = pretraining_step(model, opt, batches, 1e-3, 1.0, step=1, scaler=LossScaler(init_scale))
        assert m["skipped"] is skipped and len(origins.step_reads()) == 1, origins.step_reads()


def test_a_nan_loss_names_its_step_and_updates_nothing(origins):
    _, model, batches = _pretraining()
    model.params["cls.predictions.bias"][5] = float("nan")
    before = {k: backend.to_host(v) for k, v in model.params.items()}
    opt = AdamW(model.params, lr=1e-3)
    with strict_xp.counting(), pytest.raises(NonFiniteLossError, match=r"loss is nan at step 7 \(mlm nan"):
        pretraining_step(model, opt, batches, 1e-3, 1.0, step=7)
    assert len(origins.step_reads()) == 1 and opt.t == 0
    for k, v in model.params.items():
        assert np.array_equal(backend.to_host(v), before[k], equal_nan=True), k


# -- the whole step, the model's reads and copies included: green once r17-device is merged --------------

def test_a_pretraining_step_end_to_end_reads_once_and_copies_only_the_batch(origins):
    _, model, batches = _pretraining()
    with strict_xp.counting() as c:
        pretraining_step(model, AdamW(model.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    assert len(c.d2h) <= 1, c.d2h
    assert sorted(c.h2d) == _batch_copies(batches)


def test_a_fine_tuning_step_end_to_end_reads_once_and_copies_only_the_batch(origins):
    task, model, batches = _finetuning()
    with strict_xp.counting() as c:
        finetune_step(model, task, AdamW(model.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    assert len(c.d2h) <= 1, c.d2h
    assert sorted(c.h2d) == _batch_copies(batches)


# -- NumPy: the numbers of the host loop, bit for bit -----------------------------------------------------

def _host_loop_norm(grads, names):
    """What global_grad_norm computed before (one float() per parameter): the numbers to keep."""
    total = 0.0
    for k in names:
        total += float((grads[k] * grads[k]).sum())
    return math.sqrt(total)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-3, 10.0])                    # clipping off, on
def test_norm_and_clipping_are_the_host_loops_bit_for_bit(dtype, scale):
    rng = np.random.default_rng(3)
    shapes = [(1000, 37), (37,), (3, 5, 7), (1,)] * 4                # 16 arrays: cumsum past numpy's 8-way unroll
    grads = {f"g{i}": (scale * rng.standard_normal(s)).astype(dtype) for i, s in enumerate(shapes)}
    names = [k for k in grads if k != "g2"]
    assert global_grad_norm(grads, names) == _host_loop_norm(grads, names)
    expected = {k: v.copy() for k, v in grads.items()}
    norm = _host_loop_norm(expected, names)
    coef = 1.0 / (norm + 1e-6)
    if coef < 1.0:
        for k in names:
            expected[k] *= coef
    assert clip_grad_norm(grads, 1.0, names) == norm
    for k in grads:
        assert grads[k].dtype == dtype and np.array_equal(grads[k], expected[k]), k
    assert (coef < 1.0) == (scale == 10.0)


def test_a_nan_gradient_is_not_spread_by_clipping():
    """A NaN norm leaves the factor at 1, as the host rule `if coef < 1.0` did: the finite gradients stay."""
    grads = {"a": np.array([1.0, np.nan], np.float32), "b": np.array([3.0, 4.0], np.float32)}
    assert math.isnan(clip_grad_norm(grads, 1.0))
    assert np.array_equal(grads["b"], [3.0, 4.0]) and grads["a"][0] == 1.0
    assert global_grad_norm({}, []) == 0.0 and clip_grad_norm({}, 1.0, []) == 0.0


def test_read_together_reads_device_values_once_and_host_values_never():
    with backend.using("strict") as sx, strict_xp.counting() as c:
        numbers = read_together([sx.asarray(np.float32(1.5)), 2, sx.asarray(np.array(True)), float("nan")])
    assert numbers[:3] == [1.5, 2, 1.0] and math.isnan(numbers[3])
    assert [k for k, _ in c.d2h] == ["get"]
    with strict_xp.counting() as c:
        assert read_together([np.float32(0.25), np.float64(2.0), 3]) == [0.25, 2.0, 3]
    assert c.d2h == []


@pytest.mark.gpu
def test_cupy_reduction_kernels_match_numpy():
    """backend/reductions.py's CuPy kernels (one pass, no temporary) against NumPy's formulas, and a CuPy
    pretraining step reading once (the model's own reads are r17-device's)."""
    from minibert.backend.reductions import all_finite, sum_of_squares
    rng = np.random.default_rng(0)
    g = rng.standard_normal((1000, 37)).astype(np.float32)
    with backend.using("cupy") as cp:
        d = cp.asarray(g)
        assert abs(float(sum_of_squares(d)) / float((g.astype(np.float64) ** 2).sum()) - 1) < 1e-5
        assert bool(all_finite(d)) and sum_of_squares(d).shape == ()
        d[3, 4] = np.inf
        assert not bool(all_finite(d))
        d[3, 4] = np.nan
        assert not bool(all_finite(d))
        _, model, batches = _pretraining()
        model.eval()                                 # dropout off: the same network as the NumPy run's
        m = pretraining_step(model, AdamW(model.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    with backend.using("numpy"):
        _, host, _ = _pretraining()
        m_host = pretraining_step(host.eval(), AdamW(host.params, lr=1e-3), batches, 1e-3, 1.0, step=1)
    assert abs(m["loss"] / m_host["loss"] - 1) < 1e-5 and abs(m["grad_norm"] / m_host["grad_norm"] - 1) < 1e-4


def test_on_a_device_the_norm_and_clipping_run_over_the_flat_gradient_in_a_few_operations():
    """Not one reduction and one multiply per tensor (BERT-base: 199 of each) but one over the flat
    buffer; the same norm as the per-tensor sum to float64 rounding, and the same clipped gradients."""
    from minibert.train.optim import clip_grads_on_device, grad_norm_on_device
    with backend.using("strict"):
        _, model, batches = _pretraining()
        model.forward(batches[0]["input_ids"], batches[0]["token_type_ids"], batches[0]["attention_mask"],
                      labels=batches[0]["labels"], next_sentence_label=batches[0]["next_sentence_label"])
        model.backward()
        per_tensor = [backend.to_host(model.grads[k]).astype(np.float64) for k in model.grads]
        want = math.sqrt(sum(float((g * g).sum()) for g in per_tensor))
        with strict_xp.counting() as c:
            norm = clip_grads_on_device(model.grads, max_norm=want / 2)
        assert c.total_ops() <= 10, c.ops                # one pass, the factor (5 scalar ops), one multiply; was ~3 per tensor
        assert abs(float(backend.to_host(norm)) - want) <= 1e-6 * want
        after = math.sqrt(sum(float((backend.to_host(g).astype(np.float64) ** 2).sum()) for g in model.grads.values()))
        assert abs(after - want / 2) <= 1e-4 * want                              # clipped to max_norm
        assert float(backend.to_host(grad_norm_on_device(model.grads, list(model.grads)[1:]))) < want   # a subset: per tensor
