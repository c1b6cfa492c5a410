"""One optimizer step, the same for every model: micro-batches -> accumulated gradients -> clip -> AdamW.

    weights = loss_weights([objective.counts(b) for b in micro_batches])
    metrics = train_step(model, objective, optimizer, micro_batches, weights, lr)

A model's loss is a sum of terms, each a mean over something: the masked-LM
loss over the predicted positions and the next-sentence loss over the
sequences (pretraining), the classification loss over the labelled sequences
or tokens, the span loss over the windows (fine-tuning). Gradient
accumulation reproduces one big batch *exactly* when each micro-batch's
term k is weighted by its share of that term's denominator,

    w_ik = n_ik / N_k          n_ik: what term k of micro-batch i averages over, N_k = sum_i n_ik

(not 1 / K for K micro-batches: micro-batches with more predictions weigh more).
`loss_weights` computes them, `train_step` runs every micro-batch's forward and
`backward(w_i * loss_scale)`, and `apply_gradients` ends the step.

An *objective* says how a kind of training talks to its model (pretraining:
train/pretrain.py; fine-tuning tasks: train/finetune_tasks.py):

    objective.loss_keys              the model outputs that are loss terms, e.g. ("mlm_loss", "nsp_loss")
    objective.correct_keys           the matching counts of right answers (accuracy), e.g. ("mlm_correct", ...)
    objective.counts(batch)          each term's denominator in this micro-batch (host ints)
    objective.forward(model, batch)  the model's forward with the batch's labels -> its output dict
    objective.backward(model, w)     adds d(sum_k w[k] * loss_k) into model.grads

Mixed precision (`scaler=LossScaler()`, minibert/train/amp.py): the forwards and
backwards run with float16 matmuls, every backward weight is multiplied by the
loss scale, and `apply_gradients` unscales, skips the step on inf/NaN, clips
and updates.
"""
from __future__ import annotations

import math

from minibert import backend
from minibert.errors import MinibertError
from minibert.train.amp import autocast
from minibert.train.optim import clip_grad_norm


class NonFiniteLossError(MinibertError, FloatingPointError):
    """The loss became NaN or inf; the message names the step. Exit code 3 on the command line."""

    exit_code = 3


def loss_weights(counts: list[tuple[int, ...]]) -> list[tuple[float, ...]]:
    """Per micro-batch, each loss term's share n_ik / N_k of the whole batch's denominator (0 when N_k is 0)."""
    totals = count_totals(counts)
    return [tuple(n / max(total, 1) for n, total in zip(c, totals)) for c in counts]


def count_totals(counts: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Each loss term's denominator N_k over all the micro-batches of a step."""
    return tuple(sum(c[k] for c in counts) for k in range(len(counts[0])))


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


def train_step(model, objective, optimizer, micro_batches, weights, lr, max_grad_norm=1.0, scaler=None,
               step=None) -> dict:
    """Forward and backward every micro-batch with its weights, then `apply_gradients`.

    micro_batches: dicts of host arrays (input_ids, token_type_ids, attention_mask and the labels).
    weights: per micro-batch, one weight per loss term (`loss_weights`).
    Returns {"loss", "losses" (each term's weighted mean), "correct" (summed per term), "tokens",
    "grad_norm", "skipped", "loss_scale"}. A NaN or inf loss raises NonFiniteLossError before any update.
    """
    model.zero_grad()
    losses = [0.0] * len(objective.loss_keys)
    correct = [0] * len(objective.correct_keys)
    tokens = 0
    with autocast(scaler) as loss_scale:                  # fp16 matmuls with a scaler; loss_scale 1.0 without
        for batch, w in zip(micro_batches, weights):
            out = objective.forward(model, batch)
            objective.backward(model, tuple(x * loss_scale for x in w))   # backward of (sum_k w_k loss_k) * scale
            for k, key in enumerate(objective.loss_keys):
                losses[k] += w[k] * float(out[key])        # one device -> host number per term, for the log
            for k, key in enumerate(objective.correct_keys):
                correct[k] += out.get(key, 0)
            tokens += int(backend.to_host(batch["attention_mask"]).sum())
    loss = sum(losses)
    if not math.isfinite(loss):
        where = f" at step {step}" if step is not None else ""
        terms = (" (" + ", ".join(f"{key.removesuffix('_loss')} {v}" for key, v in zip(objective.loss_keys, losses))
                 + ")") if len(losses) > 1 else ""
        raise NonFiniteLossError(f"loss is {loss}{where}{terms}; parameters were not updated")
    update = apply_gradients(model, optimizer, lr, max_grad_norm, scaler)
    return {"loss": loss, "losses": dict(zip(objective.loss_keys, losses)),
            "correct": dict(zip(objective.correct_keys, correct)), "tokens": tokens, **update}
