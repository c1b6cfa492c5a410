"""Softmax cross-entropy with an ignore index (IGNORE_INDEX = -100, PyTorch's default); mean squared error.

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
