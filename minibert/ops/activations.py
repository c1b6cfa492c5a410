"""Activations as forward/backward pairs: GELU (exact and tanh form) and tanh.

BERT's `hidden_act`:
  "gelu"     exact:  GELU(x) = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
             (Hugging Face's "gelu", Google's 2018 checkpoints)
  "gelu_new" tanh approximation:
             GELU(x) ~ x/2 * (1 + tanh(u)),  u = sqrt(2/pi) * (x + 0.044715 x^3)
             (Google's current modeling.py; differs from the exact form by <= ~5e-4)
"""
from __future__ import annotations

import math

from minibert.backend import get_xp
from minibert.backend.blocks import rows_in_blocks
from minibert.ops.erf import erf_and_gaussian

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


@rows_in_blocks()
def gelu_forward(x):
    """Exact GELU. x: any shape -> same shape. cache: the local derivative GELU'(x).

        GELU(x)  = x Phi(x),            Phi(x) = (1 + erf(x / sqrt 2)) / 2
        GELU'(x) = Phi(x) + x phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

    The derivative is computed here, next to the value (erf(x/sqrt 2) comes
    with exp(-x^2/2), see erf_and_gaussian), so the backward is one multiply
    and the cache holds one array instead of x, Phi(x) and phi(x).
    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py).
    """
    cdf, pdf = erf_and_gaussian(x * _INV_SQRT2)
    cdf += 1.0
    cdf *= 0.5                              # Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF
    pdf *= _INV_SQRT_2PI                    # phi(x), its density (exp(-x^2/2) came with the erf)
    y = x * cdf                             # GELU(x) = x Phi(x)
    pdf *= x
    pdf += cdf                              # GELU'(x) = Phi(x) + x phi(x), in phi's buffer
    return y, pdf


def gelu_backward(dy, cache):
    """Chain rule through an elementwise function: dx = dy * GELU'(x)."""
    return dy * cache


@rows_in_blocks()
def gelu_tanh_forward(x):
    """tanh-approximated GELU ("gelu_new"). cache: the local derivative dy/dx.

        y     = x/2 (1 + t),   t = tanh(u),   u = sqrt(2/pi) (x + 0.044715 x^3)
        dy/dx = (1 + t)/2 + x/2 (1 - t^2) du/dx,   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

    The backend runs this formula on cache-sized blocks of rows of a large NumPy array (backend/blocks.py).
    """
    xp = get_xp(x)
    x2 = x * x
    u = x2 * _GELU_C
    u += 1.0
    u *= x
    u *= _SQRT_2_OVER_PI                    # u = sqrt(2/pi) x (1 + 0.044715 x^2)
    t = xp.tanh(u)
    half_1pt = t + 1.0
    half_1pt *= 0.5                         # (1 + t) / 2
    y = x * half_1pt
    du = x2                                 # reuse x^2's buffer for du/dx
    du *= 3.0 * _GELU_C
    du += 1.0
    du *= _SQRT_2_OVER_PI
    t *= t
    xp.subtract(1.0, t, out=t)              # 1 - t^2 = sech^2(u)
    t *= du
    t *= x
    t *= 0.5
    t += half_1pt                           # dy/dx, in t's buffer
    return y, t


def gelu_tanh_backward(dy, cache):
    """dx = dy * dy/dx (computed in the forward)."""
    return dy * cache


def tanh_forward(x):
    """y = tanh(x); the pooler's activation. cache: y."""
    y = get_xp(x).tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """dy/dx = 1 - tanh(x)^2 = 1 - y^2."""
    y = cache
    return dy * (1.0 - y * y)


ACTIVATIONS = {
    "gelu": (gelu_forward, gelu_backward),
    "gelu_new": (gelu_tanh_forward, gelu_tanh_backward),
}
