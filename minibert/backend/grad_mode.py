"""Whether the ops should keep what a backward needs: on, except inside `model.inference()`.

    with no_grad():            # model.inference() enters this
        y, cache = op_forward(x)   # a fused fast path may leave out its backward-only outputs

Why: a forward in training mode also computes what only the backward uses (GELU's derivative,
LayerNorm's normalised input x-hat). At inference nothing reads them, and computing them costs
passes over the largest arrays of the model. Only ops that can leave such work out look at this
flag (ops/fused.py); every op stays correct either way, and the readable formulas ignore it.
The flag is per thread (as torch.no_grad): another thread's training step is not affected.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def grad_enabled() -> bool:
    """False inside `no_grad()` in this thread."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside: grad_enabled() is False in this thread; the previous value comes back on exit."""
    saved = grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = saved
