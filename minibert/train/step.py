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

What the host reads from the device (a GPU waits for each read; docs/backend.md): ONE small array per
optimizer step, after the last backward and before AdamW,

    [loss term 1, ..., loss term K, (right answers per term, when the model counts them on the device),
     overflow flag (with a scaler), gradient norm (when clipping)]

(`read_together`). Until then everything stays on the device: each micro-batch's loss terms are added
into float64 scalars there, the overflow flag, the unscaling, the gradient norm and the clipping factor
are computed there and the clipping is applied without the host looking at the norm
(optim.clip_grads_on_device). One read, because the host needs three answers before the update: is
the loss finite (else stop, naming the step), did a scaled gradient overflow (else skip), and what to
log; asking them together costs one synchronisation instead of one per micro-batch and per parameter.
The batches stay host arrays: what the loss terms average over and the token count are counted on the
host copy, and the model copies each input to the device once, in its forward.
"""
from __future__ import annotations

import contextlib
import math

import numpy

from minibert import backend
from minibert.errors import MinibertError
from minibert.train.amp import autocast
from minibert.train.optim import clip_grads_on_device


class NonFiniteLossError(MinibertError, FloatingPointError):
    """The loss became NaN or inf; the message names the step. Exit code 3 on the command line."""

    exit_code = 3


def loss_weights(counts: list[tuple[int, ...]], totals: tuple[int, ...] | None = None) -> list[tuple[float, ...]]:
    """Per micro-batch, each loss term's share n_ik / N_k of the whole batch's denominator (0 when N_k is 0).

    totals: the N_k, by default those of `counts`; a data-parallel rank passes the totals summed over
    every rank (train/distributed.py), so each rank's micro-batches weigh their share of the global batch.
    """
    totals = count_totals(counts) if totals is None else totals
    return [tuple(n / max(total, 1) for n, total in zip(c, totals)) for c in counts]


def count_totals(counts: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Each loss term's denominator N_k over all the micro-batches of a step."""
    return tuple(sum(c[k] for c in counts) for k in range(len(counts[0])))


def read_together(values) -> list:
    """The host numbers of `values` (0-d device arrays, NumPy scalars or Python numbers) in ONE
    device -> host transfer: the device ones are stacked as float64 and read with one `to_host`.

    float64 holds every loss (float32 or float64), every count below 2**53 and a flag (0.0 / 1.0)
    exactly. Host values pass through as they are; with no device value nothing is read at all.
    """
    values = list(values)
    on_device = [i for i, v in enumerate(values) if _on_device(v)]
    if on_device:
        xp = backend.get_xp(values[on_device[0]])
        host = backend.to_host(xp.stack([values[i].astype(xp.float64) for i in on_device]))   # the one read
        for i, number in zip(on_device, host.tolist()):
            values[i] = number
    return [float(v) if isinstance(v, (numpy.floating, numpy.ndarray)) else v for v in values]


def _on_device(v) -> bool:
    """An array of a non-NumPy backend (CuPy, the tests' strict stand-in): reading it is a transfer."""
    return hasattr(v, "shape") and not isinstance(v, (numpy.ndarray, numpy.generic))


def finish_gradients(model, optimizer, max_grad_norm=1.0, scaler=None) -> tuple:
    """The device half of the end of a step: [overflow flag, unscale,] gradient norm, clipping. Reads nothing.

    Returns (found_inf, norm): found_inf a 0-d bool device array (False without a scaler), looked at
    before unscaling; norm the 0-d device norm of the unscaled gradients before clipping (NaN, a host
    float, without clipping). The clipping is applied whatever the flag: on an overflow the step is
    skipped, and the next one zeroes the gradients anyway.
    """
    trainable = [k for k in model.grads if k not in optimizer.frozen]     # as torch: frozen tensors have no grad
    found_inf = False
    quiet = numpy.errstate(over="ignore", invalid="ignore") if scaler is not None else contextlib.nullcontext()
    with quiet:                                         # an overflowed step's gradients are squared too (unused)
        if scaler is not None:
            found_inf = scaler.unscale_on_device(model.grads, trainable)
        norm = clip_grads_on_device(model.grads, max_grad_norm, trainable) if max_grad_norm else float("nan")
    return found_inf, norm


def update(model, optimizer, lr, found_inf: bool, norm: float, scaler=None) -> dict:
    """The host half of the end of a step, once the flag and the norm are read: skip (and halve the
    scale) on an overflow, else AdamW [and count a good step]. Returns {"grad_norm", "skipped", "loss_scale"}."""
    loss_scale = 1.0 if scaler is None else scaler.scale
    if found_inf:                                       # inf/NaN in a scaled gradient: no update
        scaler.update(found_inf=True)
        return {"grad_norm": float("nan"), "skipped": True, "loss_scale": loss_scale}
    optimizer.step(model.grads, lr=lr)
    if scaler is not None:
        scaler.update(found_inf=False)
    return {"grad_norm": norm, "skipped": False, "loss_scale": loss_scale}


def apply_gradients(model, optimizer, lr, max_grad_norm=1.0, scaler=None) -> dict:
    """The end of a training step: [unscale, skip on overflow,] clip, AdamW, [update the scale].

    The gradients in model.grads were computed with every backward weight times
    the loss scale (`scaler.scale`, or 1 without a scaler). Frozen parameters
    (optimizer.frozen) are left out of the overflow check, the clipping and the update.
    Returns {"grad_norm", "skipped", "loss_scale"}: grad_norm of the unscaled
    gradients before clipping (NaN when not computed: a skipped step or no
    clipping), loss_scale the scale this step's backward used. One device -> host
    read (the flag and the norm together); `train_step` adds the loss to that read.
    """
    found_inf, norm = finish_gradients(model, optimizer, max_grad_norm, scaler)
    found_inf, norm = read_together([found_inf, norm])
    return update(model, optimizer, lr, bool(found_inf), norm, scaler)


def train_step(model, objective, optimizer, micro_batches, weights, lr, max_grad_norm=1.0, scaler=None,
               step=None, group=None) -> dict:
    """Forward and backward every micro-batch with its weights, then clip and update, with ONE device -> host read.

    micro_batches: dicts of host arrays (input_ids, token_type_ids, attention_mask and the labels); the
    model copies each to the device once.
    weights: per micro-batch, one weight per loss term (`loss_weights`).
    Returns {"loss", "losses" (each term's weighted mean), "correct" (summed per term), "tokens",
    "grad_norm", "skipped", "loss_scale"}. A NaN or inf loss raises NonFiniteLossError before any update.

    group: a data-parallel ProcessGroup (train/distributed.py) whose ranks each ran their share of the
    global batch with global weights: after the backwards the flat gradient is summed over the ranks
    (one Allreduce) and so are the losses, right answers and tokens (one small Allreduce), so every rank
    clips, checks and updates with the same numbers. None or one rank: nothing of this happens.
    """
    model.zero_grad()
    losses = [0.0] * len(objective.loss_keys)           # float64 scalars on the device once a term is added
    correct = [0] * len(objective.correct_keys)
    tokens = 0
    with autocast(scaler) as loss_scale:                  # fp16 matmuls with a scaler; loss_scale 1.0 without
        for batch, w in zip(micro_batches, weights):
            out = objective.forward(model, batch)
            objective.backward(model, tuple(x * loss_scale for x in w))   # backward of (sum_k w_k loss_k) * scale
            for k, key in enumerate(objective.loss_keys):
                losses[k] = losses[k] + w[k] * _float64(out[key])        # on the device: nothing read
            for k, key in enumerate(objective.correct_keys):
                correct[k] = correct[k] + out.get(key, 0)                 # host ints, or device counts
            tokens += int(backend.to_host(batch["attention_mask"]).sum())    # the host batch: no read
    K, C = len(losses), len(correct)
    if group is not None and group.distributed:
        group.allreduce_(model.grads.buffers.grad)                         # g = sum over ranks, in place
        numbers = group.allreduce_numbers(read_together([*losses, *correct, tokens]))   # (a read per step)
        losses, correct, tokens = numbers[:K], numbers[K:K + C], int(numbers[K + C])
    found_inf, norm = finish_gradients(model, optimizer, max_grad_norm, scaler)
    numbers = read_together([*losses, *correct, found_inf, norm])          # the step's one read
    losses, correct, (found_inf, norm) = numbers[:K], numbers[K:K + C], numbers[K + C:]
    correct = [int(c) for c in correct]
    loss = sum(losses)
    if not math.isfinite(loss):
        where = f" at step {step}" if step is not None else ""
        terms = (" (" + ", ".join(f"{key.removesuffix('_loss')} {v}" for key, v in zip(objective.loss_keys, losses))
                 + ")") if len(losses) > 1 else ""
        raise NonFiniteLossError(f"loss is {loss}{where}{terms}; parameters were not updated")
    result = update(model, optimizer, lr, bool(found_inf), norm, scaler)
    return {"loss": loss, "losses": dict(zip(objective.loss_keys, losses)),
            "correct": dict(zip(objective.correct_keys, correct)), "tokens": tokens, **result}


def _float64(x):
    """A loss term as float64: a 0-d array cast on its device (NumPy: the exact float of the float32), a
    host number as a Python float. w * float64(loss) is then the float64 product the host computed."""
    return x.astype("float64") if hasattr(x, "astype") else float(x)
