"""Learner mistakes in exercise 17 (gradient_check), and correct alternative forms."""
from textwrap import dedent

from mistakes import Mistake

E = "gradient_check"

GOOD_NUMERIC = '''
def numerical_gradient(loss_fn, x, indices, h=1e-05):
    flat = x.reshape(-1)
    out = np.empty(len(indices))
    for n, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + h
        up = loss_fn()
        flat[i] = old - h
        down = loss_fn()
        flat[i] = old
        out[n] = (up - down) / (2 * h)
    return out
'''

GOOD_REL = '''
def rel_error(a, b):
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-2)
    return float(np.abs(a - b).max() / scale)
'''


def numeric(body):
    return dedent(body) + GOOD_REL


def rel(body):
    return GOOD_NUMERIC + dedent(body)


MISTAKES = [
    Mistake(E, "one-sided difference", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.reshape(-1)
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                old = flat[i]
                base = loss_fn()
                flat[i] = old + h
                out[n] = (loss_fn() - base) / h
                flat[i] = old
            return out
        '''), diagnosis=r"error of order h, not h\^2"),
    Mistake(E, "divided by h", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.reshape(-1)
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                old = flat[i]
                flat[i] = old + h
                up = loss_fn()
                flat[i] = old - h
                down = loss_fn()
                flat[i] = old
                out[n] = (up - down) / h
            return out
        '''), diagnosis=r"twice the derivative"),
    Mistake(E, "entry not restored", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.reshape(-1)
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                flat[i] += h
                up = loss_fn()
                flat[i] -= 2 * h
                down = loss_fn()
                out[n] = (up - down) / (2 * h)
            return out
        '''), diagnosis=r"differ from the original.*not put back"),
    Mistake(E, "restored by arithmetic", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.reshape(-1)
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                flat[i] += h
                up = loss_fn()
                flat[i] -= 2 * h
                down = loss_fn()
                flat[i] += h
                out[n] = (up - down) / (2 * h)
            return out
        '''), diagnosis=r"differ from the original.*does not always round back"),
    Mistake(E, "perturbs a copy", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.flatten()
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                old = flat[i]
                flat[i] = old + h
                up = loss_fn()
                flat[i] = old - h
                down = loss_fn()
                flat[i] = old
                out[n] = (up - down) / (2 * h)
            return out
        '''), diagnosis=r"the loss never moved.*copy"),
    Mistake(E, "estimates in sorted order", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            flat = x.reshape(-1)
            out = []
            for i in sorted(indices):
                old = flat[i]
                flat[i] = old + h
                up = loss_fn()
                flat[i] = old - h
                down = loss_fn()
                flat[i] = old
                out.append((up - down) / (2 * h))
            return np.array(out)
        '''), diagnosis=r"sorted index order"),
    Mistake(E, "the default step, always", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            step = 1e-5
            flat = x.reshape(-1)
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                old = flat[i]
                flat[i] = old + step
                up = loss_fn()
                flat[i] = old - step
                down = loss_fn()
                flat[i] = old
                out[n] = (up - down) / (2 * step)
            return out
        '''), diagnosis=r"not the h given"),
    Mistake(E, "index on the first axis", numeric('''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            out = np.empty(len(indices))
            for n, i in enumerate(indices):
                old = x[i].copy()
                x[i] = old + h
                up = loss_fn()
                x[i] = old - h
                down = loss_fn()
                x[i] = old
                out[n] = (up - down) / (2 * h)
            return out
        '''), diagnosis=r"IndexError.*the indices are flat"),
    Mistake(E, "relative error without the floor", rel('''
        def rel_error(a, b):
            return float(np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max()))
        '''), diagnosis=r"floor 1e-2"),
    Mistake(E, "elementwise relative error", rel('''
        def rel_error(a, b):
            return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
        '''), diagnosis=r"elementwise relative error"),
    Mistake(E, "mean difference", rel('''
        def rel_error(a, b):
            return float(np.abs(a - b).mean() / max(np.abs(a).max(), np.abs(b).max(), 1e-2))
        '''), diagnosis=r"numerator is a mean"),
    Mistake(E, "scale from one array only", rel('''
        def rel_error(a, b):
            return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-2))
        '''), diagnosis=r"only one of the two arrays"),
    Mistake(E, "scales added", rel('''
        def rel_error(a, b):
            return float(np.abs(a - b).max() / max(np.abs(a).max() + np.abs(b).max(), 1e-2))
        '''), diagnosis=r"adds the two largest magnitudes"),
]

CORRECT = [
    Mistake(E, "a view through x.flat and a vectorised measure", '''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            grads = []
            for i in indices:
                saved = x.flat[i]
                x.flat[i] = saved + h
                plus = loss_fn()
                x.flat[i] = saved - h
                minus = loss_fn()
                x.flat[i] = saved
                grads.append((plus - minus) / (2.0 * h))
            return np.array(grads, dtype=np.float64)

        def rel_error(a, b):
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            return float(np.max(np.abs(a - b)) / np.max([np.abs(a).max(), np.abs(b).max(), 1e-2]))
        ''', diagnosis=""),
    Mistake(E, "unravel_index into the original shape", '''
        def numerical_gradient(loss_fn, x, indices, h=1e-05):
            out = np.zeros(len(indices))
            for n, i in enumerate(indices):
                where = np.unravel_index(i, x.shape)
                keep = x[where]
                x[where] = keep + h
                f_plus = loss_fn()
                x[where] = keep - h
                f_minus = loss_fn()
                x[where] = keep
                out[n] = (f_plus - f_minus) / h / 2
            return out

        def rel_error(a, b):
            a, b = np.ravel(a), np.ravel(b)                  # the vector inf-norm is the largest magnitude
            diff = np.linalg.norm(a - b, ord=np.inf)
            return float(diff / max(1e-2, np.linalg.norm(a, ord=np.inf), np.linalg.norm(b, ord=np.inf)))
        ''', diagnosis=""),
]
