"""Learner mistakes in exercise 09 (cross_entropy): the mean over counted rows, stability, the gradient."""
from mistakes import Mistake

FORWARD = '''
def cross_entropy_forward(logits, labels, ignore_index=-100):
    N = logits.shape[0]
    valid = labels != ignore_index
    n = int(valid.sum())
    safe = {safe}
    shifted = {shifted}
    z = np.exp(shifted).sum(axis=1)
    nll = np.log(z) - shifted[np.arange(N), safe]
    loss = {loss}
    probs = np.exp(shifted) / z[:, None]
    return loss, (probs, safe, valid, n)
'''
OK = dict(safe="np.where(valid, labels, 0)", shifted="logits - logits.max(axis=1, keepdims=True)",
          loss="(nll * valid).sum() / max(n, 1)")


def forward(**change):
    return FORWARD.format(**{**OK, **change})


BACKWARD = '''
def cross_entropy_backward(dloss, cache):
    probs, safe, valid, n = cache
    d = probs.copy()
    {body}
'''
GOOD = '''d[np.arange(len(safe)), safe] -= 1.0
    return d * (valid * dloss / max(n, 1))[:, None]'''


def backward(body):
    return BACKWARD.format(body=body)


MISTAKES = [
    Mistake("cross_entropy", "mean over all N rows", forward(loss="(nll * valid).sum() / N"),
            diagnosis=r"divides by all N rows, the ignored ones included"),
    Mistake("cross_entropy", "sum instead of mean", forward(loss="(nll * valid).sum()"),
            diagnosis=r"mean.*not their sum"),
    Mistake("cross_entropy", "ignored rows in the sum", forward(loss="nll.sum() / max(n, 1)"),
            diagnosis=r"ignored rows are in the sum"),
    Mistake("cross_entropy", "no max trick", forward(shifted="logits"), diagnosis=r"overflow"),
    Mistake("cross_entropy", "n = 0 gives nan", forward(loss="(nll * valid).sum() / n"),
            diagnosis=r"every row ignored.*(NaN|nothing to average)"),
    Mistake("cross_entropy", "the ignored label used as an index", forward(safe="labels"),
            diagnosis=r"IndexError|out of bounds"),
    Mistake("cross_entropy", "log of the softmax", forward().replace(
        "nll = np.log(z) - shifted[np.arange(N), safe]",
        "nll = -np.log((np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))[np.arange(N), safe])"),
        diagnosis=r"overflow|log of 0"),
    Mistake("cross_entropy", "cache without the counted rows' number", forward().replace(
        "return loss, (probs, safe, valid, n)", "return loss, (probs, safe, valid)"),
        diagnosis=r"contract is the 4-tuple"),
    Mistake("cross_entropy", "gradient divided by N", backward('''d[np.arange(len(safe)), safe] -= 1.0
    return d * (valid * dloss / len(safe))[:, None]'''), diagnosis=r"divided by all N rows", forward_ok=True),
    Mistake("cross_entropy", "ignored rows not zeroed", backward('''d[np.arange(len(safe)), safe] -= 1.0
    return d * dloss / max(n, 1)'''), diagnosis=r"ignored rows must get a zero gradient", forward_ok=True),
    Mistake("cross_entropy", "upstream dloss dropped", backward('''d[np.arange(len(safe)), safe] -= 1.0
    return d * (valid / max(n, 1))[:, None]'''), diagnosis=r"upstream gradient dloss", forward_ok=True),
    Mistake("cross_entropy", "gradient not divided by n", backward('''d[np.arange(len(safe)), safe] -= 1.0
    return d * (valid * dloss)[:, None]'''), diagnosis=r"constant factor 1/n", forward_ok=True),
    Mistake("cross_entropy", "no one-hot subtracted", backward('''return d * (valid * dloss / max(n, 1))[:, None]'''),
            diagnosis=r"label's own term is missing", forward_ok=True),
    Mistake("cross_entropy", "one-hot minus p", backward('''d[np.arange(len(safe)), safe] -= 1.0
    return -d * (valid * dloss / max(n, 1))[:, None]'''), diagnosis=r"sign is flipped", forward_ok=True),
    Mistake("cross_entropy", "only the label's term", backward('''d[:] = 0.0
    d[np.arange(len(safe)), safe] -= 1.0
    return d * (valid * dloss / max(n, 1))[:, None]'''), diagnosis=r"only the label's term", forward_ok=True),
]

CORRECT = [
    Mistake("cross_entropy", "one-hot matrix by comparison", forward() + '''
def cross_entropy_backward(dloss, cache):
    probs, safe, valid, n = cache
    onehot = (np.arange(probs.shape[1])[None, :] == safe[:, None]).astype(probs.dtype)   # (N, C)
    weight = np.where(valid, dloss / max(n, 1), 0.0)                                     # (N,)
    return (probs - onehot) * weight[:, None]
''', diagnosis=""),
    Mistake("cross_entropy", "loop over counted rows, in place on the cache", forward() + '''
def cross_entropy_backward(dloss, cache):
    probs, safe, valid, n = cache
    d = np.zeros_like(probs)
    for r in np.flatnonzero(valid):
        d[r] = probs[r] * dloss / n
        d[r, safe[r]] -= dloss / n
    return d
''', diagnosis=""),
]
