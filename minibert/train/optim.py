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
"""
from __future__ import annotations

import math

from minibert.backend import get_xp
from minibert.backend.blocks import for_blocks
from minibert.backend.reductions import sum_of_squares
from minibert.errors import InputError


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


class AdamW:
    """AdamW over a flat dict of parameters (updated in place).

        opt = AdamW(model.params, lr=1e-4, weight_decay=0.01)
        opt.step(model.grads, lr=schedule(step))

    `frozen`: names that are never updated (layer freezing). State (m, v, t)
    is exposed by `state_dict()` / `load_state_dict()` for checkpoints.
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
        self.m = {k: get_xp(v).zeros_like(v) for k, v in params.items() if k not in self.frozen}
        self.v = {k: get_xp(v).zeros_like(v) for k, v in params.items() if k not in self.frozen}

    def step(self, grads: dict, lr: float | None = None) -> None:
        """One update of every non-frozen parameter from `grads` (same keys as params)."""
        lr = self.lr if lr is None else lr
        self.t += 1
        adamw_step(self.params, grads, self.m, self.v, self.t, lr, (self.beta1, self.beta2), self.eps,
                   self.weight_decay, self.variant)

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
    parts = xp.stack([sum_of_squares(grads[k]) for k in names]).astype(xp.float64)   # (n,) sum(g*g) each
    return xp.sqrt(xp.cumsum(parts)[-1])                                              # in the loop's order


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
    coef = clip_factor(norm, max_norm, get_xp(grads[names[0]]))
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
