"""Learner mistakes in exercise 13 (dropout), and correct alternatives that must pass."""
from mistakes import Mistake

_BACKWARD = '''
def dropout_backward(dy, cache):
    if cache is None:
        return dy
    return dy * cache
'''


def _forward(body):
    """A learner's dropout_forward whose training branch is `body` (computing y and mask), with the right backward."""
    return '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
''' + body + '''
    return x * mask, mask
''' + _BACKWARD


def _backward(body):
    """The right forward with a learner's dropout_backward (`body`)."""
    return '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask

def dropout_backward(dy, cache):
''' + body


MISTAKES = [
    Mistake("dropout", "kept entries not scaled", _forward(
        "        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)"),
        diagnosis=r"not scaled.*expected value"),
    Mistake("dropout", "scaled by 1 - p", _forward(
        "        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) * (1 - p)"),
        diagnosis=r"multiplied by \(1 - p\)"),
    Mistake("dropout", "keeps the numbers below p", _forward(
        "        mask = (rng.random(x.shape, dtype=np.float32) < p).astype(x.dtype) / (1 - p)"),
        diagnosis=r"below p.*fraction p survives"),
    Mistake("dropout", "keeps a fraction p scaled by 1/p", _forward(
        "        mask = (rng.random(x.shape, dtype=np.float32) < p).astype(x.dtype) / p"),
        diagnosis=r"keep a fraction p.*wrong way round"),
    Mistake("dropout", "float64 draw", _forward(
        "        mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)"),
        diagnosis=r"dtype=np.float32"),
    Mistake("dropout", "one draw per feature", _forward(
        "        mask = (rng.random(x.shape[-1:], dtype=np.float32) >= p).astype(x.dtype) / (1 - p)"),
        diagnosis=r"one random number per feature"),
    Mistake("dropout", "given mask ignored", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask
''' + _BACKWARD, diagnosis=r"a mask was given"),
    Mistake("dropout", "given mask scaled again", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype)
    mask = mask / (1 - p)
    return x * mask, mask
''' + _BACKWARD, diagnosis=r"already holds the factor"),
    Mistake("dropout", "dropout applied in evaluation mode", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask
''' + _BACKWARD, diagnosis=r"evaluation mode.*must do nothing"),
    Mistake("dropout", "non-inverted scaling at evaluation", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training:
        return x * (1 - p), None
    if p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask
''' + _BACKWARD, diagnosis=r"identity: inverted dropout scales during training"),
    Mistake("dropout", "input modified in place", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    x *= mask
    return x, mask
''' + _BACKWARD, diagnosis=r"changed its input x"),
    Mistake("dropout", "backward: the mask without its factor", _backward('''
    if cache is None:
        return dy
    return dy * (cache != 0)
'''), diagnosis=r"surviving gradients are not scaled", forward_ok=True),
    Mistake("dropout", "backward: factor applied twice", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        mask = (rng.random(x.shape, dtype=np.float32) >= p).astype(x.dtype) / (1 - p)
    return x * mask, (mask, p)

def dropout_backward(dy, cache):
    if cache is None:
        return dy
    mask, p = cache if isinstance(cache, tuple) else (cache, 0.25)
    return dy * mask / (1 - p)
''', diagnosis=r"factor is applied twice", forward_ok=True),
    Mistake("dropout", "backward: gradient to the dropped entries", _backward('''
    if cache is None:
        return dy
    scale = cache.max()
    return dy * (cache == 0) * scale
'''), diagnosis=r"dropped entries and not to the kept", forward_ok=True),
    Mistake("dropout", "backward: mask ignored", _backward('''
    return dy
'''), diagnosis=r"ignores the mask", forward_ok=True),
    Mistake("dropout", "backward: crashes on the evaluation cache", _backward('''
    return dy * cache
'''), diagnosis=r"cache is None.*unchanged", forward_ok=True),
]

CORRECT = [
    Mistake("dropout", "keep mask cached as booleans with p", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        keep = rng.random(x.shape, dtype=np.float32) >= p
        mask = np.where(keep, x.dtype.type(1 / (1 - p)), x.dtype.type(0))
    return x * mask, mask

def dropout_backward(dy, cache):
    return dy if cache is None else np.multiply(dy, cache)
''', diagnosis=""),
    Mistake("dropout", "np.where backward", '''
def dropout_forward(x, p, rng=None, training=True, mask=None):
    if not training or p == 0.0:
        return x, None
    if mask is None:
        u = rng.random(x.shape, dtype=np.float32)
        mask = (u >= p) * (1.0 / (1.0 - p))
        mask = mask.astype(x.dtype)
    y = np.array(x, copy=True)
    y *= mask
    return y, mask

def dropout_backward(dy, cache):
    if cache is None:
        return dy.copy()
    return np.where(cache != 0, dy * cache, 0.0)
''', diagnosis=""),
]
