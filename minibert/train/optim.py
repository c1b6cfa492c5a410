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


def global_grad_norm(grads: dict, names=None) -> float:
    """sqrt(sum of squares of every gradient entry), as one number on the host."""
    names = grads.keys() if names is None else names
    total = 0.0
    for k in names:
        g = grads[k]
        total += float((g * g).sum())
    return math.sqrt(total)


def clip_grad_norm(grads: dict, max_norm: float, names=None) -> float:
    """Scale all gradients by max_norm / (norm + 1e-6) when their global norm exceeds max_norm
    (torch.nn.utils.clip_grad_norm_'s rule). Returns the norm before clipping."""
    names = list(grads.keys() if names is None else names)
    norm = global_grad_norm(grads, names)
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for k in names:
            grads[k] *= coef
    return norm
