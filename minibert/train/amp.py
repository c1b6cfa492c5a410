"""Mixed-precision training: float16 matmuls, float32 master weights, dynamic loss scaling.

What changes with `--fp16` (the whole story, with numbers: docs/mixed_precision.md):

- The matmuls run with float16 operands and float32 accumulation
  (`minibert.backend.precision`, switched on by `mixed_precision()` / `autocast(scaler)`).
- Everything else stays float32: the parameters (the *master weights*: the
  optimizer updates them in float32, so updates far smaller than a weight are
  not lost), the gradient buffers, LayerNorm, softmax, GELU, the loss, AdamW's
  moments.
- The backward starts from `loss * scale` instead of `loss`: the upstream
  gradient of every head is multiplied by `scale` (their `backward(weight)`),
  so every gradient that reaches a float16 matmul is `scale` times larger and
  stays above float16's underflow threshold (6e-8). Before the optimizer sees
  them the gradients are divided by `scale` again (`unscale`): AdamW and the
  clipping get the true float32 gradients.
- If a scaled gradient overflowed (inf or NaN anywhere), the step is skipped
  (no update; AdamW's step count does not advance) and the scale is halved.
  After `growth_interval` good steps in a row the scale is doubled. So the
  scale settles just below where gradients overflow.

`LossScaler` follows torch.amp.GradScaler's rule (init 2**16, x2 after 2000
good steps, x0.5 and skip on inf/NaN), and adds a count of skipped steps.
The scale is a host float (a power of two by default, so scaling and
unscaling are exact). "Did anything overflow" is a boolean on the device
(`overflow_on_device`); the training step reads it together with the loss,
in the one device-to-host transfer of an optimizer step (train/step.py).

    scaler = LossScaler()
    with autocast(scaler) as loss_scale:             # fp16 matmuls; loss_scale = scaler.scale
        out = model.forward(...)
        model.backward(mlm_weight=w * loss_scale, nsp_weight=w * loss_scale)
    metrics = apply_gradients(model, optimizer, lr, max_grad_norm, scaler)   # minibert.train.step
"""
from __future__ import annotations

import contextlib
import math

import numpy

from minibert.backend import get_xp
# has_overflow and unscale, the device work of loss scaling, live in the backend (re-exported here)
from minibert.backend.precision import fp16_enabled, has_overflow, mixed_precision, unscale
from minibert.backend.reductions import all_finite

__all__ = ["LossScaler", "has_overflow", "overflow_on_device", "unscale", "autocast", "mixed_precision",
           "fp16_enabled"]

_FLOAT32_MAX = float(numpy.finfo(numpy.float32).max)


class LossScaler:
    """Dynamic loss scaling (the rule of torch.amp.GradScaler), plus a count of skipped steps.

        scaler = LossScaler()                         # scale 2**16
        # backward of loss * scaler.scale ...
        found_inf = scaler.unscale_(grads, names)     # True: skip the optimizer step
        scaler.update(found_inf)                      # halve on overflow; double after growth_interval good steps

    Attributes for logging: `scale` (the current scale), `skipped_steps`
    (steps skipped so far), `growth_tracker` (good steps since the scale last changed).
    `state_dict()` / `load_state_dict()` hold numbers only (JSON) for checkpoints.
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not (math.isfinite(init_scale) and 0 < init_scale <= _FLOAT32_MAX):
            raise ValueError(f"LossScaler init_scale must be a positive finite float32 number, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"LossScaler growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"LossScaler backoff_factor must be in (0, 1), got {backoff_factor}")
        if int(growth_interval) != growth_interval or growth_interval < 1:
            raise ValueError(f"LossScaler growth_interval must be a positive integer, got {growth_interval}")
        self.scale = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.growth_tracker = 0
        self.skipped_steps = 0

    def unscale_(self, grads: dict, names=None) -> bool:
        """Check the scaled gradients for inf/NaN; if there is none, divide them by the scale in place.

        Returns found_inf: True means this step must be skipped (the gradients
        are then left as they are: the next step zeroes them anyway). One read
        (the flag); the training step uses `unscale_on_device` instead.
        """
        if has_overflow(grads, names):
            return True
        unscale(grads, self.scale, names)
        return False

    def unscale_on_device(self, grads: dict, names=None):
        """`unscale_` without a read: the overflow flag of the scaled gradients, a 0-d bool array left on
        the device, then the gradients divided by the scale in place whatever the flag (when it is True
        the step is skipped and the next one zeroes them). The caller reads the flag, with the loss."""
        found_inf = overflow_on_device(grads, names)          # looked at before unscaling, as unscale_ does
        unscale(grads, self.scale, names)
        return found_inf

    def update(self, found_inf: bool) -> None:
        """After a step: on overflow halve the scale (the step was skipped), else count a good step
        and multiply the scale by growth_factor after growth_interval good steps in a row."""
        if found_inf:
            self.scale *= self.backoff_factor
            self.growth_tracker = 0
            self.skipped_steps += 1
            return
        self.growth_tracker += 1
        if self.growth_tracker == self.growth_interval:
            grown = self.scale * self.growth_factor
            if grown <= _FLOAT32_MAX:            # as torch: never grow to a scale float32 cannot hold
                self.scale = grown
            self.growth_tracker = 0

    def state_dict(self) -> dict:
        """Plain numbers that restore this scaler exactly (JSON-serialisable)."""
        return {"scale": self.scale, "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "growth_tracker": self.growth_tracker,
                "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in self.state_dict() if k not in state]
        if missing:
            raise KeyError(f"loss-scaler state has no {', '.join(repr(k) for k in missing)}")
        check = LossScaler(state["scale"], state["growth_factor"], state["backoff_factor"], state["growth_interval"])
        tracker, skipped = int(state["growth_tracker"]), int(state["skipped_steps"])
        if not 0 <= tracker < check.growth_interval or skipped < 0:
            raise ValueError(f"loss-scaler state has growth_tracker={state['growth_tracker']} "
                             f"(growth_interval {check.growth_interval}) and skipped_steps={state['skipped_steps']}")
        self.__dict__.update(check.__dict__)
        self.growth_tracker, self.skipped_steps = tracker, skipped

    def __repr__(self):
        return (f"LossScaler(scale={self.scale:g}, growth_tracker={self.growth_tracker}/{self.growth_interval}, "
                f"skipped_steps={self.skipped_steps})")


def overflow_on_device(grads: dict, names=None):
    """Whether any entry of the named gradients (default: all) is inf or NaN, as a 0-d bool array on
    their device: one pass per gradient (`backend.reductions.all_finite`), the flags combined there.
    `has_overflow` is the same test read to the host; this one is read with the loss (train/step.py)."""
    names = list(grads if names is None else names)
    if not names:
        return False
    xp = get_xp(grads[names[0]])
    return ~xp.stack([all_finite(grads[k]) for k in names]).all()      # (n_arrays,) -> one flag


@contextlib.contextmanager
def autocast(scaler: LossScaler | None):
    """`with autocast(scaler) as loss_scale:` around a step's forwards and backwards.

    With a LossScaler: matmuls in mixed precision, and `loss_scale` is
    `scaler.scale`, the factor to multiply every backward weight by. With None:
    float32 as always and `loss_scale` is 1.0 (so `w * loss_scale` is `w`, bit for bit).
    NumPy's overflow warnings are silenced inside: an overflowing scaled gradient is
    what the scaler looks for, not an error (a GPU does not warn either).
    """
    if scaler is None:
        yield 1.0
        return
    with mixed_precision(), numpy.errstate(over="ignore", invalid="ignore"):   # inf/NaN gradients are expected
        yield scaler.scale                                                    # events here: the scaler skips them
