"""Exercise 09: softmax cross-entropy with an ignore index (minibert.ops.losses.cross_entropy_forward / _backward)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import Exercise
from minibert.ops.losses import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward

STATEMENT = r"""
## The loss

The masked-LM head scores every vocabulary entry at every position: logits $z$ of shape $(N, C)$.
Only the masked positions have a label; every other row is labelled `ignore_index` ($-100$,
PyTorch's and Hugging Face's convention) and must not count at all:

$$
L = \frac1n \sum_{r:\ \ell_r \neq -100} -\log p_{r, \ell_r}, \qquad
p_r = \operatorname{softmax}(z_r), \qquad n = \#\{r : \ell_r \neq -100\}.
$$

Compute $-\log p_{r,\ell}$ as $\log \sum_c e^{z_{rc}} - z_{r\ell}$ with the max trick
(log-sum-exp): $\log \sum_c e^{z_c} = m + \log \sum_c e^{z_c - m}$, so large logits do not overflow.
If every row is ignored ($n = 0$), minibert returns a loss of 0 with a zero gradient (PyTorch returns
nan there), so that a NaN loss always means a real numerical problem.

## What to derive

For a counted row, $\partial(-\log p_{\ell}) / \partial z_c = p_c - [c = \ell]$, so with the upstream
$\bar L$ (a number):

$$
\bar z_r = \frac{\bar L}{n} \left( p_r - \operatorname{onehot}(\ell_r) \right) \ \text{for counted rows}, \qquad
\bar z_r = 0 \ \text{for ignored rows}.
$$

Why averaging over all $N$ rows is a bug: the loss would shrink as the share of ignored rows grows,
and its gradient with it.

## Your functions

`cross_entropy_forward(logits, labels, ignore_index=-100)` returns `(loss, cache)`, the loss a
0-d array or a number; `cross_entropy_backward(dloss, cache)` returns `dlogits` $(N, C)$.
"""

HINTS = (
    "Find the counted rows first: `valid = labels != ignore_index`, `n = valid.sum()`. Ignored labels "
    "(-100) must never be used as an index: replace them (e.g. by 0) before picking the label's logit.",
    "Per row: `m = logits.max(axis=1, keepdims=True)`, `lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))`, "
    "`nll = lse - logits[np.arange(N), safe_labels]`; then sum nll over the valid rows and divide by n "
    "(by max(n, 1), for the all-ignored case).",
    "Backward: `p - onehot`, scaled by dloss / n, and zero on the ignored rows. Keep p, the labels and "
    "the valid mask in the cache.",
)

N, C = 9, 7


def _inputs(t, scale=2.0, ignore=IGNORE_INDEX, n_ignored=3):
    logits = t.rng.normal(size=(N, C)) * scale
    labels = t.rng.integers(0, C, size=N)
    labels[t.rng.choice(N, n_ignored, replace=False)] = ignore
    return logits, labels


def _nll(logits, labels, ignore):
    valid = labels != ignore
    safe = numpy.where(valid, labels, 0)
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + numpy.log(numpy.exp(logits - m).sum(axis=1))
    return (lse - logits[numpy.arange(len(labels)), safe]) * valid, valid


def _loss_candidates(logits, labels, ignore):
    nll, valid = _nll(logits, labels, ignore)
    return [
        (nll.sum() / len(labels), "the loss divides by all N rows, the ignored ones included: average over the "
         "rows whose label is not ignore_index only (n of them), so the ignored positions do not dilute it."),
        (nll.sum(), "the loss is the *mean* over the counted rows: divide the sum by n."),
    ]


def _forward_check(t, logits, labels, ignore=None):
    args = (logits.copy(), labels.copy()) + (() if ignore is None else (ignore,))
    expected = cross_entropy_forward(*args)[0]
    got = t.unpack(t.call("cross_entropy_forward", *args), "cross_entropy_forward", "loss, cache")[0]
    t.compare("loss", got, expected, candidates=_loss_candidates(logits, labels, IGNORE_INDEX if ignore is None else ignore),
              shape_hint="the loss is one number: a 0-d array or a float (e.g. nll.sum() / n), not an array "
                         "of one value per row.",
              nonfinite_hint="overflow, or a log of 0: compute -log p = logsumexp(z) - z[label] with the max "
                             "trick, never log(softmax) of large logits. With every row ignored, n = 0: return 0.",
              hint="loss = mean over the counted rows of (logsumexp(z_r) - z_r[label_r]).")


def _backward_check(t, logits, labels, dloss, forward_ok):
    expected = cross_entropy_backward(dloss, cross_entropy_forward(logits.copy(), labels.copy())[1])
    _, cache, forward, own = t.forward_for_backward("cross_entropy_forward", logits.copy(), labels.copy())
    got = t.call("cross_entropy_backward", dloss, cache)
    valid = labels != IGNORE_INDEX
    n = max(int(valid.sum()), 1)
    p = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = numpy.zeros_like(p)
    onehot[numpy.arange(N)[valid], labels[valid]] = 1.0
    t.gradient("dlogits", got, expected, lambda: dloss * float(forward(logits.copy(), labels.copy())), logits,
               forward_failed=own and not forward_ok, candidates=[
                   ((p - onehot) * valid[:, None] * dloss / N, "dlogits is divided by all N rows: divide by n, "
                    "the number of counted rows, as the forward does."),
                   ((p - onehot) * dloss / n, "the ignored rows must get a zero gradient: they are not in the loss."),
                   ((p - onehot) * valid[:, None] / n, "multiply by the upstream gradient dloss (here it is not 1)."),
                   ((p - onehot) * valid[:, None] * dloss, "divide by n: the loss is a mean over the counted rows."),
                   (p * valid[:, None] * dloss / n, "subtract the one-hot of the label: d(-log p_l)/dz_c = p_c - [c = l]."),
               ], hint="dlogits = (softmax(z) - onehot(label)) * dloss / n on counted rows, 0 on ignored rows.")


def check(t):
    with t.check("forward: logits (9, 7), 3 rows labelled -100"):
        _forward_check(t, *_inputs(t))
    with t.check("forward: large logits (around 1000)"):
        logits, labels = _inputs(t)
        _forward_check(t, logits * 300.0 + 1000.0, labels)
    with t.check("forward: ignore_index=-1"):
        _forward_check(t, *_inputs(t, ignore=-1, n_ignored=4), ignore=-1)
    with t.check("forward: every row ignored (the loss is 0, not nan)"):
        logits, labels = _inputs(t, n_ignored=N)
        _forward_check(t, logits, labels)
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward: dlogits with dloss = 0.7, 3 rows ignored"):
        _backward_check(t, *_inputs(t), 0.7, forward_ok)
    with t.check("backward: every row ignored (zero gradient)"):
        _backward_check(t, *_inputs(t, n_ignored=N), 1.0, forward_ok)


EXERCISE = Exercise(
    number=9, name="cross_entropy", title="softmax cross-entropy with an ignore index",
    functions=(cross_entropy_forward, cross_entropy_backward),
    imports="import numpy as np",
    minutes=35,
    assesses="log-sum-exp stability; the p - onehot gradient; averaging over counted positions only (ignore "
             "index), the empty case, the upstream scalar",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/softmax.md", "docs/pretraining.md"), notebooks=("03_mlm_nsp.ipynb",),
)
