"""Learner mistakes in exercise 02 (linear_backward), and correct forms written differently."""
from mistakes import Mistake

E = "linear_backward"


def _backward(dx="(dy2 @ weight).reshape(x.shape)", dw="dy2.T @ x2", db="dy2.sum(axis=0)", need="need_dx",
              has="has_bias", prelude=""):
    """A learner's linear_backward: the reference with one expression replaced."""
    return f'''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            x2 = x.reshape(-1, x.shape[-1])
            dy2 = dy.reshape(-1, dy.shape[-1]){prelude}
            dW = {dw}
            db = {db} if {has} else None
            dx = {dx} if {need} else None
            return dx, dW, db
        '''


MISTAKES = [
    Mistake(E, "dx with W transposed", _backward(dx="(dy2 @ weight.T).reshape(x.shape)"),
            diagnosis=r"inner sizes of a matrix product disagree|W transposed", forward_ok=True),
    Mistake(E, "dW as x^T dy", _backward(dw="x2.T @ dy2"), diagnosis=r"dW .*transpose", forward_ok=True),
    Mistake(E, "dx not reshaped to x's shape", _backward(dx="dy2 @ weight"), diagnosis=r"flattened to \(N, in\)",
            forward_ok=True),
    Mistake(E, "db as a mean", _backward(db="dy2.mean(axis=0)"), diagnosis=r"db is the mean .* times 1/15",
            forward_ok=True),
    Mistake(E, "dW over the first sequence only", '''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            if x.ndim == 3:
                dW = dy[0].T @ x[0]
                db = dy.sum(axis=(0, 1)) if has_bias else None
            else:
                dW = dy.T @ x
                db = dy.sum(axis=0) if has_bias else None
            dx = dy @ weight if need_dx else None
            return dx, dW, db
        ''', diagnosis=r"only sums over the first sequence", forward_ok=True),
    Mistake(E, "db returned without a bias", _backward(has="True"), diagnosis=r"db is ndarray, expected None",
            forward_ok=True),
    Mistake(E, "dx returned when need_dx is False", _backward(need="True"),
            diagnosis=r"dx is ndarray, expected None when need_dx=False", forward_ok=True),
    # the miss: right for (B, T, in), wrong for a matrix input with a bias (the pooler, the heads)
    Mistake(E, "db summed over axes (0, 1)", '''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            x2 = x.reshape(-1, x.shape[-1])
            dy2 = dy.reshape(-1, dy.shape[-1])
            dW = dy2.T @ x2
            db = dy.sum(axis=(0, 1)) if has_bias else None
            dx = (dy2 @ weight).reshape(x.shape) if need_dx else None
            return dx, dW, db
        ''', diagnosis=r"pooler.*db is a single number: the sum also ran over the output axis", forward_ok=True),
    Mistake(E, "db summed over the first axis only", _backward(db="dy.sum(axis=0)"),
            diagnosis=r"db has shape \(5, 4\): it summed over some of the row axes but not all", forward_ok=True),
    Mistake(E, "dW as a mean over the rows", _backward(dw="dy2.T @ x2 / len(x2)"),
            diagnosis=r"dW is the mean over the 15 rows", forward_ok=True),
    Mistake(E, "dx twice too large", _backward(dx="(2 * dy2 @ weight).reshape(x.shape)"),
            diagnosis=r"times 2: a constant factor", forward_ok=True),
    Mistake(E, "dW transposed on a square W only", _backward(dw="(dy2.T @ x2).T if weight.shape[0] == weight.shape[1] else dy2.T @ x2"),
            diagnosis=r"square W.*dW is the transpose of the right answer", forward_ok=True),
]

CORRECT = [
    Mistake(E, "einsum over the leading axes", '''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            x2 = x.reshape(-1, x.shape[-1])
            dy2 = dy.reshape(-1, dy.shape[-1])
            dW = np.einsum("no,ni->oi", dy2, x2)                   # sum over the rows n
            db = np.einsum("no->o", dy2) if has_bias else None
            dx = np.einsum("...o,oi->...i", dy, weight) if need_dx else None
            return dx, dW, db
        ''', diagnosis=""),
    Mistake(E, "tensordot over the row axes", '''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            rows = tuple(range(x.ndim - 1))
            dW = np.tensordot(dy, x, axes=(rows, rows))            # (out, in)
            db = dy.sum(axis=rows) if has_bias else None
            dx = np.tensordot(dy, weight, axes=1) if need_dx else None
            return dx, dW, db
        ''', diagnosis=""),
    Mistake(E, "a loop over the rows, one outer product each", '''
        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            x2 = x.reshape(-1, x.shape[-1])
            dy2 = dy.reshape(-1, dy.shape[-1])
            dW = np.zeros_like(weight)
            for n in range(len(x2)):
                dW += np.outer(dy2[n], x2[n])
            db = dy2.sum(axis=0) if has_bias else None
            dx = (dy2 @ weight).reshape(x.shape) if need_dx else None
            return dx, dW, db
        ''', diagnosis=""),
]
