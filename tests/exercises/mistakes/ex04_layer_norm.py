"""Learner mistakes in exercise 04 (layer_norm)."""
from mistakes import Mistake

MISTAKES = [
    Mistake("layer_norm", "dgamma without the normalised input", '''
        def layer_norm_backward(dy, cache):
            xhat, rstd, gamma = cache
            axes = tuple(range(dy.ndim - 1))
            dbeta = dy.sum(axis=axes)
            dgamma = dy.sum(axis=axes)
            g = dy * gamma
            dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
            return dx, dgamma, dbeta
        ''', diagnosis=r"dgamma", forward_ok=True),
]
