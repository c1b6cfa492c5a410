"""One optimizer step of pretraining: micro-batches -> accumulated gradients -> clip -> AdamW.

Gradient accumulation reproduces one big batch *exactly*: the MLM loss of a
batch is the mean over all its predicted positions, so a micro-batch holding
n_i of the N predictions contributes with weight n_i / N (not 1 / K), and the
NSP loss (a mean over sequences) with weight b_i / B.

Mixed precision (`scaler=LossScaler()`, minibert/train/amp.py): the forwards and
backwards run with float16 matmuls, every backward weight is multiplied by the
loss scale, and `apply_gradients` unscales, skips the step on inf/NaN, clips
and updates. `apply_gradients` is the end of every training step, pretraining
or fine-tuning.
"""
from __future__ import annotations

import math

import numpy

from minibert.errors import MinibertError
from minibert.ops.losses import IGNORE_INDEX
from minibert.train.amp import autocast
from minibert.train.optim import clip_grad_norm


class NonFiniteLossError(MinibertError, FloatingPointError):
    """The loss became NaN or inf; the message names the step. Exit code 3 on the command line."""

    exit_code = 3


def count_predictions(batch) -> int:
    return int((numpy.asarray(batch["labels"]) != IGNORE_INDEX).sum())


def apply_gradients(model, optimizer, lr, max_grad_norm=1.0, scaler=None) -> dict:
    """The end of a training step: [unscale, skip on overflow,] clip, AdamW, [update the scale].

    The gradients in model.grads were computed with every backward weight times
    the loss scale (`scaler.scale`, or 1 without a scaler). Frozen parameters
    (optimizer.frozen) are left out of the overflow check, the clipping and the update.
    Returns {"grad_norm", "skipped", "loss_scale"}: grad_norm of the unscaled
    gradients before clipping (NaN when not computed: a skipped step or no
    clipping), loss_scale the scale this step's backward used.
    """
    trainable = [k for k in model.grads if k not in optimizer.frozen]     # as torch: frozen tensors have no grad
    loss_scale = 1.0 if scaler is None else scaler.scale
    if scaler is not None and scaler.unscale_(model.grads, trainable):   # inf/NaN: no update, halve the scale
        scaler.update(found_inf=True)
        return {"grad_norm": float("nan"), "skipped": True, "loss_scale": loss_scale}
    norm = clip_grad_norm(model.grads, max_grad_norm, trainable) if max_grad_norm else float("nan")
    optimizer.step(model.grads, lr=lr)
    if scaler is not None:
        scaler.update(found_inf=False)
    return {"grad_norm": norm, "skipped": False, "loss_scale": loss_scale}


def pretraining_step(model, optimizer, micro_batches, lr, max_grad_norm=1.0, step=None, scaler=None):
    """Forward/backward every micro-batch (dicts of host arrays: input_ids, token_type_ids,
    attention_mask, labels, next_sentence_label), clip, update. Returns a dict of metrics
    (loss, mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy, grad_norm, lr, tokens, skipped,
    loss_scale). `scaler`: a minibert.train.amp.LossScaler for mixed precision (None: float32)."""
    total_pred = sum(count_predictions(b) for b in micro_batches)
    total_seq = sum(len(b["input_ids"]) for b in micro_batches)
    model.zero_grad()
    mlm_loss = nsp_loss = 0.0
    mlm_correct = nsp_correct = tokens = 0
    with autocast(scaler) as loss_scale:                  # fp16 matmuls with a scaler; loss_scale 1.0 without
        for b in micro_batches:
            out = model.forward(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                                labels=b["labels"], next_sentence_label=b["next_sentence_label"])
            w_mlm = out["mlm_count"] / max(total_pred, 1)
            w_nsp = out["nsp_count"] / total_seq
            model.backward(mlm_weight=w_mlm * loss_scale, nsp_weight=w_nsp * loss_scale)   # backward of loss * scale
            mlm_loss += w_mlm * float(out["mlm_loss"])
            nsp_loss += w_nsp * float(out["nsp_loss"])
            mlm_correct += out["mlm_correct"]
            nsp_correct += out["nsp_correct"]
            tokens += int(numpy.asarray(b["attention_mask"]).sum())
    loss = mlm_loss + nsp_loss
    if not math.isfinite(loss):
        where = f" at step {step}" if step is not None else ""
        raise NonFiniteLossError(f"loss is {loss}{where} (mlm {mlm_loss}, nsp {nsp_loss}); parameters were not updated")
    update = apply_gradients(model, optimizer, lr, max_grad_norm, scaler)
    return {"loss": loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": mlm_correct / max(total_pred, 1), "nsp_accuracy": nsp_correct / total_seq,
            "lr": lr, "tokens": tokens, **update}
