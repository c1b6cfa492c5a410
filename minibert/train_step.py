"""One optimizer step of pretraining: micro-batches -> accumulated gradients -> clip -> AdamW.

Gradient accumulation reproduces one big batch *exactly*: the MLM loss of a
batch is the mean over all its predicted positions, so a micro-batch holding
n_i of the N predictions contributes with weight n_i / N (not 1 / K), and the
NSP loss (a mean over sequences) with weight b_i / B.
"""
from __future__ import annotations

import math

import numpy

from minibert.ops.losses import IGNORE_INDEX
from minibert.optim import clip_grad_norm


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf; the message names the step."""


def count_predictions(batch) -> int:
    return int((numpy.asarray(batch["labels"]) != IGNORE_INDEX).sum())


def pretraining_step(model, optimizer, micro_batches, lr, max_grad_norm=1.0, step=None):
    """Forward/backward every micro-batch (dicts of host arrays: input_ids, token_type_ids,
    attention_mask, labels, next_sentence_label), clip, update. Returns a dict of metrics
    (loss, mlm_loss, nsp_loss, mlm_accuracy, nsp_accuracy, grad_norm, lr, tokens)."""
    total_pred = sum(count_predictions(b) for b in micro_batches)
    total_seq = sum(len(b["input_ids"]) for b in micro_batches)
    model.zero_grad()
    mlm_loss = nsp_loss = 0.0
    mlm_correct = nsp_correct = tokens = 0
    for b in micro_batches:
        out = model.forward(b["input_ids"], b["token_type_ids"], b["attention_mask"],
                            labels=b["labels"], next_sentence_label=b["next_sentence_label"])
        w_mlm = out["mlm_count"] / max(total_pred, 1)
        w_nsp = out["nsp_count"] / total_seq
        model.backward(mlm_weight=w_mlm, nsp_weight=w_nsp)
        mlm_loss += w_mlm * float(out["mlm_loss"])
        nsp_loss += w_nsp * float(out["nsp_loss"])
        mlm_correct += out["mlm_correct"]
        nsp_correct += out["nsp_correct"]
        tokens += int(numpy.asarray(b["attention_mask"]).sum())
    loss = mlm_loss + nsp_loss
    if not math.isfinite(loss):
        where = f" at step {step}" if step is not None else ""
        raise NonFiniteLossError(f"loss is {loss}{where} (mlm {mlm_loss}, nsp {nsp_loss}); parameters were not updated")
    trainable = [k for k in model.grads if k not in optimizer.frozen]     # as torch: frozen tensors have no grad
    norm = clip_grad_norm(model.grads, max_grad_norm, trainable) if max_grad_norm else float("nan")
    optimizer.step(model.grads, lr=lr)
    return {"loss": loss, "mlm_loss": mlm_loss, "nsp_loss": nsp_loss,
            "mlm_accuracy": mlm_correct / max(total_pred, 1), "nsp_accuracy": nsp_correct / total_seq,
            "grad_norm": norm, "lr": lr, "tokens": tokens}
