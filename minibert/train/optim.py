"""AdamW, the learning-rate schedule BERT uses, and gradient clipping, all on the params/grads dicts.

AdamW (Loshchilov & Hutter), as torch.optim.AdamW computes it, for each parameter p with gradient g:

    p  <- p * (1 - lr * weight_decay)                  decoupled weight decay (not added to g)
    m  <- beta1 m + (1 - beta1) g                      first moment
    v  <- beta2 v + (1 - beta2) g^2                    second moment
    p  <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Google's BERT optimizer (AdamWeightDecayOptimizer, `variant="google"`) differs:
no bias correction (the 1 - beta^t factors), eps 1e-6, and the decay added
to the Adam direction before the learning rate: p <- p - lr * (m / (sqrt(v) + eps) + wd * p).

Weight decay is skipped for biases and LayerNorm parameters in both (their
names contain "bias" or "LayerNorm"), as both references do.

Over a model's flat buffers (minibert/model/flat.py: every parameter a view into one array, every
gradient a view into another) AdamW keeps its moments flat too and runs the same per-element
update, `_adamw_update`, once per *run*: a stretch of the buffers whose parameters are all trained
and share one weight decay. The buffers put the matrices (decayed) before the biases and LayerNorm
vectors (not decayed), so a BERT has two runs however many layers it has: ~27 array operations per
step instead of ~14 per parameter tensor (~2,800 for BERT-base). On CuPy each run is one fused
kernel (`_ADAMW_TORCH_KERNEL`, `_ADAMW_GOOGLE_KERNEL`) instead of ~14 launches.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.backend.blocks import for_blocks
from minibert.backend.reductions import sum_of_squares
from minibert.backend.xp import elementwise_kernel, is_cupy
from minibert.errors import InputError
from minibert.model.flat import ParameterDict


def decays(name: str) -> bool:
    """Whether weight decay applies: not to biases and LayerNorm gamma/beta."""
    return not ("bias" in name or "LayerNorm" in name or "layer_norm" in name)


def adamw_step(params: dict, grads: dict, m: dict, v: dict, t: int, lr: float, betas=(0.9, 0.999),
               eps: float = 1e-8, weight_decay: float = 0.01, variant: str = "torch") -> None:
    """One AdamW update, in place, of every parameter that has moments in `m` (frozen ones have none).

    params, grads, m, v: dicts name -> array, each of the parameter's shape; params[name],
        m[name] and v[name] are updated in place (the model and the optimizer hold these arrays).
    t: the number of this step, 1 for the first (for the bias correction).
    lr, betas = (beta1, beta2), eps, weight_decay: the hyper-parameters of this step.
    variant: "torch" (torch.optim.AdamW) or "google" (google-research/bert's optimizer).

    For each name in m, with p = params[name], g = grads[name]:
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        wd = weight_decay, or 0 for biases and LayerNorm parameters (see `decays`)
      "torch":  p <- p (1 - lr wd);   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
      "google": p <- p - lr (m / (sqrt(v) + eps) + wd p)        (no bias correction)
    The decay is never added to g: it does not pass through m and v (that is what the W in AdamW means).
    """
    b1, b2 = betas
    for name in m:
        wd = weight_decay if decays(name) else 0.0
        one_piece = lambda p, g, mn, vn: _adamw_update(p, g, mn, vn, t, lr, b1, b2, eps, wd, variant)
        for_blocks(one_piece, (params[name], grads[name], m[name], v[name]))   # same numbers, in cache-sized pieces


def _adamw_update(p, g, mn, vn, t, lr, b1, b2, eps, wd, variant):
    """adamw_step's formula on one parameter (or one piece of it), in place in p, mn and vn."""
    xp = get_xp(p)
    mn *= b1
    mn += (1 - b1) * g                                      # m = b1 m + (1 - b1) g
    vn *= b2
    vn += (1 - b2) * (g * g)                                # v = b2 v + (1 - b2) g^2
    if variant == "torch":
        if wd:
            p *= 1 - lr * wd                                # decoupled decay, before the Adam step
        denom = xp.sqrt(vn)
        denom /= math.sqrt(1 - b2 ** t)
        denom += eps
        p -= (lr / (1 - b1 ** t)) * (mn / denom)
    else:                                                   # Google's: no bias correction
        update = mn / (xp.sqrt(vn) + eps)
        if wd:
            update += wd * p
        p -= lr * update


# -- the fused update (CuPy) --------------------------------------------------------------------------
#
# What the kernels fuse: every line of _adamw_update above, for one element, in one launch. The
# readable update is ~14 array operations, each a kernel on a GPU that streams p, g, m or v (and a
# temporary) through memory; fused, p, g, m and v are read once and p, m, v written once. Each line
# below is a line of _adamw_update in the same order, on the same scalars, computed on the host as
# there and cast to T as NumPy casts a Python float; with fused multiply-add off (--fmad=false)
# every operation rounds once, as NumPy's, and sqrt and / are IEEE (NVRTC's default), so the numbers
# should be NumPy's bit for bit (tests/train/test_optim.py, `gpu`).

_ADAMW_IN = "T g, T b1, T one_minus_b1, T b2, T one_minus_b2, T decay, T bias2_sqrt, T eps, T step"
_ADAMW_OUT = "T p, T m, T v"

_ADAMW_TORCH_KERNEL = """
    m = m * b1 + one_minus_b1 * g;              // m = b1 m + (1 - b1) g
    v = v * b2 + one_minus_b2 * (g * g);        // v = b2 v + (1 - b2) g^2
    p = p * decay;                              // decay = 1 - lr wd (exactly 1 without decay: p unchanged)
    T denom = sqrt(v) / bias2_sqrt + eps;       // sqrt(v) / sqrt(1 - b2^t) + eps
    p = p - step * (m / denom);                 // step = lr / (1 - b1^t)
"""

_ADAMW_GOOGLE_KERNEL = """
    m = m * b1 + one_minus_b1 * g;              // m = b1 m + (1 - b1) g
    v = v * b2 + one_minus_b2 * (g * g);        // v = b2 v + (1 - b2) g^2
    T update = m / (sqrt(v) + eps);             // no bias correction
    if (decay != 0) update = update + decay * p;   // decay = wd, added to the direction
    p = p - step * update;                      // step = lr
"""


def _fused_adamw_update(p, g, mn, vn, t, lr, b1, b2, eps, wd, variant):
    """_adamw_update in one CuPy kernel launch (p, mn, vn updated in place); the same numbers."""
    if variant == "torch":
        body, decay, bias2_sqrt, step = _ADAMW_TORCH_KERNEL, 1 - lr * wd, math.sqrt(1 - b2 ** t), lr / (1 - b1 ** t)
    else:
        body, decay, bias2_sqrt, step = _ADAMW_GOOGLE_KERNEL, wd, 1.0, lr
    kernel = elementwise_kernel(_ADAMW_IN, _ADAMW_OUT, body, f"adamw_{variant}", options=("--fmad=false",))
    kernel(g, b1, 1 - b1, b2, 1 - b2, decay, bias2_sqrt, eps, step, p, mn, vn)


# -- over the flat buffers ----------------------------------------------------------------------------

class Run(NamedTuple):
    """A stretch of a model's flat buffers updated in one go: neighbouring trainable parameters
    with the same weight decay. data[start:stop] / grad[start:stop]; moments[moment:moment + size]."""
    start: int
    stop: int
    moment: int
    decays: bool

    @property
    def size(self) -> int:
        return self.stop - self.start


def flat_runs(slots: dict, trainable) -> tuple[list[Run], dict]:
    """(runs, moment offset of each name): the trainable parameters in buffer order, neighbours that
    share a weight decay merged into one run. The moments hold the runs back to back (frozen
    parameters get none), so a parameter's moments start at its run's `moment` plus its place in it."""
    runs, offsets, total = [], {}, 0
    for name in sorted(trainable, key=lambda k: slots[k].start):
        slot, decay = slots[name], decays(name)
        last = runs[-1] if runs else None
        if last is not None and last.stop == slot.start and last.decays == decay:
            runs[-1] = last._replace(stop=slot.stop)
        else:
            runs.append(Run(slot.start, slot.stop, total, decay))
        offsets[name] = total
        total += slot.stop - slot.start
    return runs, offsets


def adamw_step_flat(data, grad, m, v, runs, t: int, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                    weight_decay: float = 0.01, variant: str = "torch") -> None:
    """adamw_step over flat buffers: `data` (every parameter), `grad` (every gradient, same layout), `m`
    and `v` (the moments of the runs, back to back), each run one call of the update with its decay.
    Per element the arithmetic is adamw_step's, so the numbers are the same bit for bit. NumPy: the
    readable _adamw_update in cache-sized blocks; CuPy (float32/float64): the fused kernel."""
    b1, b2 = betas
    fused = is_cupy(data) and data.dtype in (numpy.float32, numpy.float64)
    for run in runs:
        pieces = (data[run.start:run.stop], grad[run.start:run.stop],
                  m[run.moment:run.moment + run.size], v[run.moment:run.moment + run.size])
        wd = weight_decay if run.decays else 0.0
        if fused:
            _fused_adamw_update(*pieces, t, lr, b1, b2, eps, wd, variant)
        else:
            for_blocks(_update_with(t, lr, b1, b2, eps, wd, variant), pieces)


def _update_with(t, lr, b1, b2, eps, wd, variant):
    """_adamw_update with this step's numbers bound: fn(p, g, m, v), for for_blocks."""
    return lambda p, g, mn, vn: _adamw_update(p, g, mn, vn, t, lr, b1, b2, eps, wd, variant)


class AdamW:
    """AdamW over a flat dict of parameters (updated in place).

        opt = AdamW(model.params, lr=1e-4, weight_decay=0.01)
        opt.step(model.grads, lr=schedule(step))

    `frozen`: names that are never updated (layer freezing): they have no moments and are left out
    of every update (a zero gradient alone would not keep them still: the decay would shrink them).
    State (m, v, t) is exposed by `state_dict()` / `load_state_dict()` for checkpoints, one `m.NAME`
    and `v.NAME` per trainable parameter.

    A model's params (a ParameterDict of views into flat buffers, minibert/model/flat.py) get flat
    moments, `m[name]` / `v[name]` being views into them, and a step over the model's own grads is
    adamw_step_flat: a handful of operations, one kernel per run on CuPy. Any other dict of arrays
    (a toy model's) is updated name by name, with the same numbers.
    """

    def __init__(self, params: dict, lr=1e-3, betas=(0.9, 0.999), eps=None, weight_decay=0.01,
                 variant="torch", frozen=()):
        if variant not in ("torch", "google"):
            raise ValueError(f"unknown AdamW variant {variant!r}; use 'torch' or 'google'")
        if lr < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise InputError(f"invalid AdamW hyper-parameters lr={lr}, betas={betas}, weight_decay={weight_decay}")
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps if eps is not None else (1e-8 if variant == "torch" else 1e-6)
        self.weight_decay = weight_decay
        self.variant = variant
        self.frozen = set(frozen)
        unknown = self.frozen - set(params)
        if unknown:
            raise KeyError(f"frozen names not among the parameters: {sorted(unknown)[:5]}")
        self.t = 0
        trainable = [k for k in params if k not in self.frozen]
        self.runs = None                     # the flat runs, when params are a model's flat buffers
        if isinstance(params, ParameterDict):
            buffers = params.buffers
            self.runs, offsets = flat_runs(buffers.slots, trainable)
            size = sum(run.size for run in self.runs)
            xp = get_xp(buffers.data)
            self.m_flat = xp.zeros(size, dtype=buffers.data.dtype)
            self.v_flat = xp.zeros(size, dtype=buffers.data.dtype)
            view = lambda flat, k: flat[offsets[k]:offsets[k] + params[k].size].reshape(params[k].shape)
            self.m = {k: view(self.m_flat, k) for k in trainable}
            self.v = {k: view(self.v_flat, k) for k in trainable}
        else:
            self.m = {k: get_xp(params[k]).zeros_like(params[k]) for k in trainable}
            self.v = {k: get_xp(params[k]).zeros_like(params[k]) for k in trainable}

    def step(self, grads: dict, lr: float | None = None) -> None:
        """One update of every non-frozen parameter from `grads` (same keys as params)."""
        lr = self.lr if lr is None else lr
        self.t += 1
        betas = (self.beta1, self.beta2)
        if self.runs is not None and getattr(grads, "buffers", None) is self.params.buffers:
            buffers = self.params.buffers        # the model's own grads: the same layout as its params
            adamw_step_flat(buffers.data, buffers.grad, self.m_flat, self.v_flat, self.runs, self.t, lr, betas,
                            self.eps, self.weight_decay, self.variant)
        else:
            adamw_step(self.params, grads, self.m, self.v, self.t, lr, betas, self.eps, self.weight_decay,
                       self.variant)

    def state_dict(self) -> dict:
        """Arrays and numbers that restore this optimizer exactly (for checkpoints)."""
        state = {"t": self.t}
        state.update({f"m.{k}": v for k, v in self.m.items()})
        state.update({f"v.{k}": v for k, v in self.v.items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for k in self.m:
            for which, store in (("m", self.m), ("v", self.v)):
                key = f"{which}.{k}"
                if key not in state:
                    raise KeyError(f"optimizer state has no {key!r}")
                if tuple(state[key].shape) != tuple(store[k].shape):
                    raise ValueError(f"optimizer state {key!r} has shape {tuple(state[key].shape)}, "
                                     f"expected {tuple(store[k].shape)}")
                store[k][...] = get_xp(store[k]).asarray(state[key])


def linear_warmup_decay(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """BERT's schedule: 0 -> peak_lr linearly over warmup_steps, then linearly down to 0 at total_steps.

    `step` counts optimizer steps from 0, as transformers' get_linear_schedule_with_warmup
    (so the very first step uses lr 0 when there is warm-up).
    """
    if step < warmup_steps:
        return peak_lr * step / max(1, warmup_steps)
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def grad_norm_on_device(grads: dict, names=None):
    """sqrt(sum of squares of every entry of the named gradients), left on the gradients' device.

    The readable formula (and what the host computed before, one read per parameter):

        total = 0.0
        for k in names:
            total += float((grads[k] * grads[k]).sum())      # float32 sum, added in float64
        norm = math.sqrt(total)

    Here each gradient's sum of squares stays on the device (`backend.reductions.sum_of_squares`: one
    pass, no temporary, on a GPU), the sums are stacked into one (n_params,) array and added left to right
    in float64 by a cumulative sum, the order of the loop above: on NumPy the same number bit for bit.
    Returns a 0-d float64 array (0.0, a host float, when `names` is empty); nothing is read to the host.
    """
    names = list(grads.keys() if names is None else names)
    if not names:
        return 0.0
    xp = get_xp(grads[names[0]])
    flat = _whole_flat_gradient(grads, names, xp)
    if flat is not None:                      # a GPU: one pass over the flat buffer instead of one per tensor
        return xp.sqrt(sum_of_squares(flat).astype(xp.float64))
    parts = xp.stack([sum_of_squares(grads[k]) for k in names]).astype(xp.float64)   # (n,) sum(g*g) each
    return xp.sqrt(xp.cumsum(parts)[-1])                                              # in the loop's order


def _whole_flat_gradient(grads, names, xp):
    """The flat gradient array (minibert/model/flat.py) when `names` are exactly the tensors it holds and
    the arrays are not NumPy's; else None. On a device the norm and the clipping then run over it as one
    array: two kernels instead of one per tensor (BERT-base: 199). Not on NumPy: there the per-tensor
    order is kept, the numbers the runs have always had (a GPU's reductions have their own order anyway)."""
    buffers = getattr(grads, "buffers", None)
    if xp is numpy or buffers is None or len(set(names)) != len(names):
        return None
    if sum(grads[k].size for k in names) != buffers.grad.size:      # a subset (frozen, a section) or a tie
        return None
    return buffers.grad


def clip_factor(norm, max_norm: float, xp):
    """torch.nn.utils.clip_grad_norm_'s factor min(1, max_norm / (norm + 1e-6)), a 0-d float64 array on
    the norm's device. A NaN norm gives 1 (no scaling), as the host rule `if coef < 1.0: scale` did."""
    coef = max_norm / (norm + 1e-6)
    return xp.where(coef < 1.0, coef, 1.0)


def clip_grads_on_device(grads: dict, max_norm: float, names=None):
    """Scale the named gradients by `clip_factor` in place, without reading the norm; return the norm
    (the 0-d device array of `grad_norm_on_device`, before clipping).

    Every named gradient is multiplied, by 1 when the norm is within max_norm: x * 1 is x exactly, so
    the gradients, and the update, are those of the host rule `if coef < 1.0: g *= coef`, and the
    host never has to look at the norm to decide. The factor is cast to each gradient's dtype first,
    so a float32 gradient is multiplied in float32, as `g *= coef` with a Python float is.
    """
    names = list(grads.keys() if names is None else names)
    norm = grad_norm_on_device(grads, names)
    if not names:
        return norm
    xp = get_xp(grads[names[0]])
    coef = clip_factor(norm, max_norm, xp)
    flat = _whole_flat_gradient(grads, names, xp)
    if flat is not None:
        flat *= coef.astype(flat.dtype)                       # every gradient at once (one dtype per buffer)
        return norm
    cast = {}                                                 # the factor in each gradient dtype, cast once
    for k in names:
        g = grads[k]
        if g.dtype not in cast:
            cast[g.dtype] = coef.astype(g.dtype)
        g *= cast[g.dtype]                                    # g * float32(coef) for a float32 g
    return norm


def global_grad_norm(grads: dict, names=None) -> float:
    """sqrt(sum of squares of every gradient entry), as one number on the host (one read)."""
    return float(grad_norm_on_device(grads, names))


def clip_grad_norm(grads: dict, max_norm: float, names=None) -> float:
    """Scale all gradients by max_norm / (norm + 1e-6) when their global norm exceeds max_norm
    (torch.nn.utils.clip_grad_norm_'s rule). Returns the norm before clipping, a host float (one read;
    the training step uses `clip_grads_on_device` and reads the norm with the loss)."""
    return float(clip_grads_on_device(grads, max_norm, names))
