"""Softmax cross-entropy with an ignore index (IGNORE_INDEX = -100, PyTorch's default); mean squared error;
the distillation losses (KL with temperature, soft-target cross-entropy, cosine embedding loss: at the end).

    loss = -(1/n) sum over rows r with label[r] != -100 of log p[r, label[r]]

Rows labelled -100 (padding, unmasked tokens) count neither in the sum nor in
n. Averaging over all rows instead is a classic bug: the loss shrinks as the
share of ignored rows grows.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp

IGNORE_INDEX = -100     # the label of a row without a target (padding, unmasked tokens); defined only here


class CrossEntropyCache(NamedTuple):
    """What cross_entropy_backward needs from the forward."""
    probs: Any          # (N, C) softmax of the logits (the backward overwrites it with the gradient)
    safe_labels: Any    # (N,) the labels, with 0 in place of the ignored ones (safe to index with)
    valid: Any          # (N,) bool, False for ignored rows
    n: Any              # the number of counted rows: a 0-d integer array on the logits' device


def check_labels(labels, num_classes, ignore_index=IGNORE_INDEX):
    """Raise ValueError if a label of the host (NumPy) array `labels` is neither in [0, num_classes)
    nor ignore_index (the message names the smallest, or else the largest, such label).

    cross_entropy_forward calls it for NumPy labels, where reading a min or max is free. Device
    labels are trusted there (reading them back would make the GPU wait): the models check their
    labels on the host, before the copy (minibert/model/heads/base.py, labels_to_device)."""
    counted = labels[labels != ignore_index]
    if counted.size:
        lo, hi = int(counted.min()), int(counted.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"cross_entropy: label {lo if lo < 0 else hi} out of range [0, {num_classes}) "
                             f"(use {ignore_index} for positions without a label)")


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """logits: (N, C), labels: (N,) ints in [0, C) or ignore_index -> loss (scalar array).

    If every row is ignored the loss is 0 with zero gradient. PyTorch returns
    nan there; minibert does not, so that a NaN loss always means a real
    numerical problem (and a batch without predictions does no harm).

    Nothing here depends on the labels' values for a shape or a branch: the mean
    is over a `valid` mask with the count n kept on the device, divided by
    max(n, 1) (an all-ignored batch: 0 / 1 = 0), so a GPU never waits for the host.
    """
    xp = get_xp(logits)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: logits must be (N, C) and labels (N,); got {logits.shape} and {labels.shape}")
    if xp is numpy:
        check_labels(labels, logits.shape[1], ignore_index)                 # host: free
    valid = labels != ignore_index                                  # (N,) bool
    n = valid.sum()                                                 # counted rows, kept on the device
    safe = xp.where(valid, labels, 0)                               # any in-range class for ignored rows
    rows = xp.arange(logits.shape[0])
    # One (N, C) buffer goes logits -> shifted -> exp -> probabilities, in place: with
    # C = 30522 vocabulary entries a temporary per step would cost more than the math.
    probs = logits - logits.max(axis=1, keepdims=True)              # (N, C) shifted, for a stable log-sum-exp
    picked = probs[rows, safe]                                      # (N,) shifted logit of the label
    xp.exp(probs, out=probs)
    z = probs.sum(axis=1)                                           # (N,) sum_c exp(shifted)
    nll = xp.log(z) - picked                                        # -log softmax at the label
    loss = (nll * valid).sum() / xp.maximum(n, 1).astype(nll.dtype)  # mean over the counted rows (0 if none)
    probs /= z[:, None]                                             # softmax, kept for the backward
    return loss, CrossEntropyCache(probs, safe, valid, n)


def cross_entropy_backward(dloss, cache):
    """dlogits[r] = (softmax(logits[r]) - onehot(label[r])) * dloss / n for counted rows, 0 otherwise.

    Works in place on the cached probabilities (call it once per forward).
    """
    probs, safe_labels, valid, n = cache                            # CrossEntropyCache; probs becomes dlogits
    xp = get_xp(probs)
    probs[xp.arange(probs.shape[0]), safe_labels] -= 1.0            # softmax - onehot(label)
    probs *= (valid * (dloss / xp.maximum(n, 1)))[:, None].astype(probs.dtype, copy=False)   # float64 scale
    return probs


def mse_forward(pred, target):
    """Mean squared error, PyTorch's MSELoss (reduction "mean"), for regression heads.

    pred, target: the same shape (N, ...) -> loss = (1/n) sum (pred - target)^2 over all n entries
    (a scalar array). cache: the difference.
    """
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"mse: prediction has shape {tuple(pred.shape)} but target {tuple(target.shape)}")
    diff = pred - target                                            # (N, ...)
    return (diff * diff).sum() / diff.size, diff


def mse_backward(dloss, cache):
    """In the forward loss = (1/n) sum diff^2 with diff = pred - target, so dpred = 2 diff dloss / n."""
    diff = cache
    return diff * (2.0 * dloss / diff.size)


# -- distillation: a student learns from a teacher's outputs (minibert/train/distill.py) ------------

class SoftTargetCache(NamedTuple):
    """What the backward of the temperature losses needs from their forward."""
    p_student: Any      # (N, C) softmax(s / T)
    p_teacher: Any      # (N, C) softmax(t / T)
    weight: Any         # (N,) 1.0 for counted rows, 0.0 for the others (logits' dtype)
    n: Any              # counted rows: a 0-d integer array on the logits' device
    temperature: float


def _log_softmax(x):
    """log softmax over the last axis of (N, C), stable: x - max - log sum exp(x - max)."""
    xp = get_xp(x)
    shifted = x - x.max(axis=-1, keepdims=True)                     # (N, C), every entry <= 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _row_weight(valid, rows, like):
    """(N,) 0/1 weights of the counted rows (every row when valid is None) and their count n (0-d, on the
    device): a mean over the counted rows is sum(w * value) / max(n, 1), with nothing read by the host."""
    xp = get_xp(like)
    if valid is None:
        valid = xp.ones(rows, dtype=bool)
    elif tuple(valid.shape) != (rows,):
        raise ValueError(f"the mask of counted rows has shape {tuple(valid.shape)}, expected {(rows,)}")
    valid = xp.asarray(valid)
    return valid.astype(like.dtype), valid.astype(xp.int64).sum()


def _softened(student_logits, teacher_logits, temperature, valid):
    """The two softened distributions of the temperature losses, checked: (log p_s, log p_t, p_s, p_t, w, n)."""
    if student_logits.ndim != 2 or tuple(teacher_logits.shape) != tuple(student_logits.shape):
        raise ValueError(f"student and teacher logits must both be (N, C); got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")
    xp = get_xp(student_logits)
    log_ps = _log_softmax(student_logits / temperature)             # (N, C) log softmax(s / T)
    log_pt = _log_softmax(teacher_logits / temperature)             # (N, C) log softmax(t / T)
    weight, n = _row_weight(valid, student_logits.shape[0], student_logits)
    return log_ps, log_pt, xp.exp(log_ps), xp.exp(log_pt), weight, n


def kl_div_with_temperature_forward(student_logits, teacher_logits, temperature=1.0, valid=None):
    """Hinton's distillation loss, as DistilBERT: the KL divergence of the softened distributions, times T^2.

        p_s = softmax(s / T), p_t = softmax(t / T)                   s, t: (N, C) student and teacher logits
        L = T^2 * (1/n) sum over counted rows r of sum_c p_t[r,c] (log p_t[r,c] - log p_s[r,c])

    valid: (N,) bool, the rows counted (e.g. the masked-LM positions, the labelled sequences); None: all,
    n their number (0 rows: loss 0, zero gradient, as cross_entropy_forward). The teacher is a constant
    (no gradient to it). It equals torch's kl_div(log_softmax(s/T), softmax(t/T), "batchmean") * T * T.

    Why T^2: the gradient of the softened KL is (p_s - p_t) / T per logit (see the backward), and for
    large T, p_s - p_t ~ (s - t) / (C T): the gradient shrinks like 1/T^2. Multiplying by T^2 keeps the
    soft term's gradient about the same size whatever T, so a weight alpha between it and the hard
    cross-entropy means the same thing at every temperature (Hinton et al. 2015, section 2).
    """
    log_ps, log_pt, p_s, p_t, weight, n = _softened(student_logits, teacher_logits, temperature, valid)
    per_row = (p_t * (log_pt - log_ps)).sum(axis=1)                 # (N,) KL(p_t || p_s)
    loss = temperature * temperature * (per_row * weight).sum() / get_xp(n).maximum(n, 1).astype(per_row.dtype)
    return loss, SoftTargetCache(p_s, p_t, weight, n, float(temperature))


def soft_target_cross_entropy_forward(student_logits, teacher_logits, temperature=1.0, valid=None):
    """DistilBERT's pretraining term: the cross-entropy of the student against the teacher's softened
    distribution, times T^2 (why T^2: kl_div_with_temperature_forward).

        L = T^2 * (1/n) sum over counted rows r of -sum_c p_t[r,c] log p_s[r,c]
          = KL with temperature + T^2 * (mean entropy of p_t)

    The teacher's entropy does not depend on the student, so this loss and the KL have the same
    gradient (one backward serves both: soft_target_cross_entropy_backward is
    kl_div_with_temperature_backward); only the logged value differs. The KL is 0 when the student
    matches the teacher, this one is the teacher's entropy there: it never reaches 0.
    """
    log_ps, _, p_s, p_t, weight, n = _softened(student_logits, teacher_logits, temperature, valid)
    per_row = -(p_t * log_ps).sum(axis=1)                           # (N,) H(p_t, p_s)
    loss = temperature * temperature * (per_row * weight).sum() / get_xp(n).maximum(n, 1).astype(per_row.dtype)
    return loss, SoftTargetCache(p_s, p_t, weight, n, float(temperature))


def kl_div_with_temperature_backward(dloss, cache):
    """dL/ds[r] = T^2 * (1/T) (p_s[r] - p_t[r]) / n * dloss = T (p_s[r] - p_t[r]) dloss / n, 0 for rows not counted.

    (d/ds of -sum_c p_t log softmax(s/T)_c is (p_s - p_t) / T: the softmax cross-entropy gradient,
    divided by T for the chain rule through s / T.) A new (N, C) array; the cache is not changed.
    """
    p_s, p_t, weight, n, temperature = cache
    xp = get_xp(p_s)
    scale = weight * (temperature * dloss / xp.maximum(n, 1))       # (N,)
    return (p_s - p_t) * scale[:, None].astype(p_s.dtype, copy=False)


soft_target_cross_entropy_backward = kl_div_with_temperature_backward     # the same gradient (see the forward)


COSINE_EPS = 1e-12      # added to each squared norm, as torch's cosine_embedding_loss: a zero vector gives cos 0


class CosineCache(NamedTuple):
    student: Any        # (..., H) h_s
    teacher: Any        # (..., H) h_t
    cos: Any            # (...,) cos(h_s, h_t)
    ss: Any             # (...,) |h_s|^2 + eps
    denom: Any          # (...,) sqrt((|h_s|^2 + eps)(|h_t|^2 + eps))
    weight: Any         # (...,) 1.0 for counted vectors, 0.0 for the others
    n: Any              # counted vectors (0-d, on the device)


def cosine_embedding_loss_forward(student, teacher, valid=None):
    """DistilBERT's hidden-state alignment: the mean over counted positions of 1 - cos(h_s, h_t).

        cos = h_s . h_t / sqrt((|h_s|^2 + eps)(|h_t|^2 + eps))       h_s, h_t: (..., H); eps = 1e-12
        L = (1/n) sum over counted positions of (1 - cos)

    valid: (...) bool, the positions counted (the real tokens: the attention mask); None: all. It is
    torch's cosine_embedding_loss(h_s, h_t, target=1) (mean reduction) over the counted rows. Only the
    direction of h_s is pulled towards h_t, not its length: the loss is the same for 2 h_s.
    """
    if tuple(student.shape) != tuple(teacher.shape):
        raise ValueError(f"student and teacher hidden states must have the same shape; got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    xp = get_xp(student)
    lead = tuple(student.shape[:-1])
    if valid is not None and tuple(valid.shape) != lead:
        raise ValueError(f"the mask of counted positions has shape {tuple(valid.shape)}, expected {lead}")
    weight, n = _row_weight(None if valid is None else xp.asarray(valid).reshape(-1), int(numpy.prod(lead)), student)
    weight = weight.reshape(lead)
    dot = (student * teacher).sum(axis=-1)                          # (...,) h_s . h_t
    ss = (student * student).sum(axis=-1) + COSINE_EPS              # (...,) |h_s|^2 + eps
    tt = (teacher * teacher).sum(axis=-1) + COSINE_EPS              # (...,) |h_t|^2 + eps
    denom = xp.sqrt(ss * tt)
    cos = dot / denom
    loss = ((1.0 - cos) * weight).sum() / xp.maximum(n, 1).astype(cos.dtype)
    return loss, CosineCache(student, teacher, cos, ss, denom, weight, n)


def cosine_embedding_loss_backward(dloss, cache):
    """dL/dh_s = -(dloss / n) * (h_t / denom - cos * h_s / (|h_s|^2 + eps)) at counted positions, 0 elsewhere.

    From cos = (h_s . h_t) / (|h_s|' |h_t|') with |h_s|' = sqrt(|h_s|^2 + eps):
        d cos / d h_s = h_t / (|h_s|' |h_t|') - (h_s . h_t) h_s / (|h_s|'^3 |h_t|') = h_t / denom - cos h_s / |h_s|'^2
    (the part along h_s cancels the change of length: cos depends on the direction only). Returns (..., H).
    """
    s, t, cos, ss, denom, weight, n = cache
    xp = get_xp(s)
    scale = -weight * (dloss / xp.maximum(n, 1))                    # (...,) -dloss / n at counted positions
    dcos = t / denom[..., None] - (cos / ss)[..., None] * s         # (..., H) d cos / d h_s
    return dcos * scale[..., None].astype(s.dtype, copy=False)
