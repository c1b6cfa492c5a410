"""Learner mistakes in exercise 20 (schedule_clipping), and correct alternative forms."""
from textwrap import dedent

from mistakes import Mistake

E = "schedule_clipping"

GOOD_SCHEDULE = '''
def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    if step >= total_steps:
        return 0.0
    return peak_lr * (total_steps - step) / (total_steps - warmup_steps)
'''

GOOD_NORM = '''
def global_grad_norm(grads, names=None):
    names = list(grads) if names is None else names
    return math.sqrt(sum(float((grads[k] ** 2).sum()) for k in names))
'''

GOOD_CLIP = '''
def clip_grad_norm(grads, max_norm, names=None):
    names = list(grads) if names is None else list(names)
    norm = global_grad_norm(grads, names)
    scale = max_norm / (norm + 1e-6)
    if scale < 1:
        for k in names:
            grads[k] *= scale
    return norm
'''


def schedule(body):
    return dedent(body) + GOOD_NORM + GOOD_CLIP


def norm(body):
    return GOOD_SCHEDULE + dedent(body) + GOOD_CLIP


def clip(body):
    return GOOD_SCHEDULE + GOOD_NORM + dedent(body)


MISTAKES = [
    Mistake(E, "warm-up counts steps from 1", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if step < warmup_steps:
                return peak_lr * (step + 1) / warmup_steps
            return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        '''), diagnosis=r"one step ahead"),
    Mistake(E, "decay over the whole run", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if step < warmup_steps:
                return peak_lr * step / warmup_steps
            return peak_lr * max(0.0, 1 - step / total_steps)
        '''), diagnosis=r"decay is too slow"),
    Mistake(E, "negative past the end", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if step < warmup_steps:
                return peak_lr * step / warmup_steps
            return peak_lr * (total_steps - step) / max(1, total_steps - warmup_steps)
        '''), diagnosis=r"goes negative"),
    Mistake(E, "no decay", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            return peak_lr * min(1.0, step / max(1, warmup_steps))
        '''), diagnosis=r"stays at peak_lr"),
    Mistake(E, "warm-up segment at step == warmup_steps", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if step <= warmup_steps:
                return peak_lr * step / max(1, warmup_steps)
            return peak_lr * max(0.0, (total_steps - step) / (total_steps - warmup_steps))
        '''), diagnosis=r"no warm-up: step 0 already has peak_lr"),
    Mistake(E, "division by a zero-length warm-up", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            rise = peak_lr * step / warmup_steps
            if step < warmup_steps:
                return rise
            return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        '''), diagnosis=r"ZeroDivisionError.*length 0"),
    Mistake(E, "division by a zero-length decay", schedule('''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if step < warmup_steps:
                return peak_lr * step / warmup_steps
            return peak_lr * max(0.0, (total_steps - step) / (total_steps - warmup_steps))
        '''), diagnosis=r"warmup_steps = 6, total_steps = 6: one of your segments has length 0"),
    Mistake(E, "sum of the parameters' norms", norm('''
        def global_grad_norm(grads, names=None):
            names = list(grads) if names is None else names
            return sum(float(np.linalg.norm(grads[k])) for k in names)
        '''), diagnosis=r"added the parameters' norms"),
    Mistake(E, "squared norm", norm('''
        def global_grad_norm(grads, names=None):
            names = list(grads) if names is None else names
            return sum(float((grads[k] ** 2).sum()) for k in names)
        '''), diagnosis=r"square root is missing"),
    Mistake(E, "largest parameter norm", norm('''
        def global_grad_norm(grads, names=None):
            names = list(grads) if names is None else names
            return max(float(np.linalg.norm(grads[k])) for k in names)
        '''), diagnosis=r"largest of the parameters' norms"),
    Mistake(E, "norm ignores names", norm('''
        def global_grad_norm(grads, names=None):
            return math.sqrt(sum(float((g ** 2).sum()) for g in grads.values()))
        '''), diagnosis=r"not in `names`"),
    Mistake(E, "mean of squares per parameter", norm('''
        def global_grad_norm(grads, names=None):
            names = list(grads) if names is None else names
            return math.sqrt(sum(float((grads[k] ** 2).mean()) for k in names))
        '''), diagnosis=r"averaged the squares"),
    Mistake(E, "clipping each parameter on its own", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            for k in names:
                own = float(np.linalg.norm(grads[k]))
                if own > max_norm:
                    grads[k] *= max_norm / (own + 1e-6)
            return norm
        '''), diagnosis=r"each parameter's gradient to max_norm on its own"),
    Mistake(E, "scaling up small gradients", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            for k in names:
                grads[k] *= max_norm / (norm + 1e-6)
            return norm
        '''), diagnosis=r"clipping only ever shrinks"),
    Mistake(E, "new arrays instead of in place", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            scale = max_norm / (norm + 1e-6)
            if scale < 1:
                for k in names:
                    grads[k] = grads[k] * scale
            return norm
        '''), diagnosis=r"replaced by a new array.*in place"),
    Mistake(E, "returns the norm after clipping", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            scale = max_norm / (norm + 1e-6)
            if scale < 1:
                for k in names:
                    grads[k] *= scale
            return global_grad_norm(grads, names)
        '''), diagnosis=r"returned norm is the one after clipping"),
    Mistake(E, "factor upside down", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            if norm > max_norm:
                for k in names:
                    grads[k] *= (norm + 1e-6) / max_norm if max_norm else 0.0
            return norm
        '''), diagnosis=r"upside down"),
    Mistake(E, "no guard on the division", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            scale = max_norm / norm
            if scale < 1:
                for k in names:
                    grads[k] *= scale
            return norm
        '''), diagnosis=r"adds 1e-6|norm is 0|guards the division"),
    Mistake(E, "clips gradients not named", clip('''
        def clip_grad_norm(grads, max_norm, names=None):
            names = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, names)
            scale = max_norm / (norm + 1e-6)
            if scale < 1:
                for k in grads:
                    grads[k] *= scale
            return norm
        '''), diagnosis=r"not in `names` are never touched"),
]

CORRECT = [
    Mistake(E, "closed-form schedule with min/max", '''
        def linear_warmup_decay(step, peak_lr, warmup_steps, total_steps):
            if warmup_steps and step < warmup_steps:
                return peak_lr * step / warmup_steps
            remaining = max(0, total_steps - step)
            return peak_lr * remaining / max(1, total_steps - warmup_steps)

        def global_grad_norm(grads, names=None):
            keys = grads.keys() if names is None else names
            flat = np.concatenate([grads[k].ravel() for k in keys])
            return float(np.sqrt(flat @ flat))

        def clip_grad_norm(grads, max_norm, names=None):
            keys = list(grads.keys() if names is None else names)
            norm = global_grad_norm(grads, keys)
            if norm > max_norm:
                factor = max_norm / (norm + 1e-6)
                for k in keys:
                    np.multiply(grads[k], factor, out=grads[k])
            return norm
        ''', diagnosis=""),
    Mistake(E, "norm with np.linalg and an early return", GOOD_SCHEDULE + dedent('''
        def global_grad_norm(grads, names=None):
            keys = list(grads) if names is None else list(names)
            return float(np.linalg.norm([np.linalg.norm(grads[k]) for k in keys]))

        def clip_grad_norm(grads, max_norm, names=None):
            keys = list(grads) if names is None else list(names)
            norm = global_grad_norm(grads, keys)
            factor = max_norm / (norm + 1e-6)
            if factor >= 1:
                return norm
            for k in keys:
                grads[k] *= factor
            return norm
        '''), diagnosis=""),
]
