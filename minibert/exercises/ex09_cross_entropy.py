"""Exercise 09: softmax cross-entropy with an ignore index (minibert.ops.losses.cross_entropy_forward / _backward)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question, describe
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

## What you derive

The gradient $\bar z = \partial L / \partial z$ for an upstream $\bar L$ (a number). The notebook's
derivation guides you; the answer is on the solution page.

## Your functions

`cross_entropy_forward(logits, labels, ignore_index=-100)` returns `(loss, cache)`, the loss a
0-d array or a number; `cross_entropy_backward(dloss, cache)` returns `dlogits` $(N, C)$.
"""

HINTS = (
    "Which rows count? Decide that first, and make sure an ignored label (-100) is never used to pick a "
    "logit: as an index it silently picks a column from the end. The loss is a mean over the counted rows "
    "only.",
    "Large logits: exp of 1000 overflows. Rewrite -log p with the log of a sum of exponentials, and shift by "
    "a per-row constant that cancels (docs/softmax.md, 'Subtracting the maximum'). With every row ignored, "
    "the loss is 0, not 0/0.",
    "Backward: derive d(-log p_label)/dz_c for one row, for c equal to the label and for c different; then "
    "ask what the mean over counted rows and the upstream number do to it, and what an ignored row "
    "receives. docs/softmax.md, 'Cross-entropy with ignore_index', 'Gradient'.",
)

CONTRACTS = (
    ("cross_entropy_forward", """The mean cross-entropy of the rows that have a label.

    logits: float (N, C); labels: int (N,), each in [0, C) or equal to ignore_index (no label: the row
    does not count at all).

    Returns (loss, cache):
        loss: a number (0-d array or float): the mean over the counted rows of -log softmax(logits)[label];
            0 when no row counts.
        cache: exactly this 4-tuple, in this order (the grader also hands minibert's own forward's cache
            to your backward, and its backward may overwrite the probabilities):
            (probs, safe_labels, valid, n)
            probs (N, C): the softmax of each row;  safe_labels (N,): the labels with an in-range class
            (0) in place of ignore_index;  valid (N,) bool: True for counted rows;  n: the int number of
            counted rows.
    """),
    ("cross_entropy_backward", """The gradient of the loss with respect to the logits.

    dloss: a number, the upstream gradient of the loss.  cache: the 4-tuple of the forward above.

    Returns dlogits: (N, C), the dtype of the logits.

    To derive: for one counted row, the derivative of -log p_label with respect to each logit (the
    label's and the others'); then the effect of the mean over n rows, of dloss, and of an ignored row.
    """),
)

DERIVATION = r"""
## Deriving the gradient

**1. One row, scalar case.** With $p_c = e^{z_c} / \sum_k e^{z_k}$ and label $\ell$,
$-\log p_\ell = \log \sum_k e^{z_k} - z_\ell$. Differentiate the first term with respect to $z_c$:
what is $\partial \log \sum_k e^{z_k} / \partial z_c$ in terms of $p$? Then the second term: it
depends on $z_c$ only when $c = \ell$. Write the result for $c = \ell$ and for $c \neq \ell$.

**2. A check on one row.** Sum your row gradient over $c$: what do you get, and why must it be so
(adding a constant to every logit of a row changes nothing)? Which sign does the label's entry have,
and the others? (Gradient descent must raise $z_\ell$ and lower the rest.)

**3. The mean.** $L = \frac1n \sum_{r \text{ counted}} \ell_r$: what factor does each counted row's
gradient get? What does an ignored row's gradient have to be, given that $L$ does not contain its
logits at all? Now multiply by the upstream $\bar L$.

**4. Vectorise.** One (N, C) array: the same expression for every row, then a (N, 1) factor per row
(0 for ignored rows). Pick the label's entry of every row at once without a loop, with safe labels.

**5. The edge case** $n = 0$: what should the loss and the gradient be, and how do you avoid 0/0?

**Check on paper**
- $\bar z$ is $(N, C)$; each counted row sums to 0; each ignored row is 0.
- Doubling $\bar L$ doubles $\bar z$; doubling the number of counted rows halves each row's share.
- Why is the max trick not needed in the *backward* (what does the cache hold)?

When you are done, open the solution page on purpose: `docs/exercises/solutions/09_cross_entropy.md`.
"""

QUESTIONS = (
    Question(
        "What breaks without the max trick in the forward, and why is subtracting the row maximum exact "
        "(not an approximation)?",
        "exp overflows to inf for logits above about 709 (float64; about 88 in float32): the loss becomes "
        "inf or nan (inf/inf). Subtracting any constant m from a row multiplies numerator and denominator "
        "of the softmax by e^{-m}, so p is unchanged, and log-sum-exp(z) = m + log-sum-exp(z - m) exactly; "
        "with m the row's max the largest exponent is e^0 = 1 and the sum is at least 1 (no log of 0)."),
    Question(
        "Why average over the counted rows (n) and not over all N rows? What would change during MLM "
        "training if you divided by N?",
        "The ignored rows are not in the loss. Dividing by N multiplies the loss and its gradient by n/N, "
        "the share of labelled positions, which varies from batch to batch (padding, short sequences): the "
        "effective learning rate would depend on the batch, and the loss would look smaller the more "
        "padding a batch has."),
    Question(
        "At initialisation a model's logits are almost equal. What loss do you expect with a vocabulary "
        "of C classes, and what does a much larger initial loss tell you?",
        "With equal logits p = 1/C for every class, so the loss is ln C (ln 30522 = 10.3 for BERT's "
        "vocabulary). A loss far above ln C at step 0 means the logits are far from uniform already: a "
        "too-large initialisation or scale, or a bug in the loss."),
)

SANITY = (
    ("**Sanity: the loss at initialisation is ln C.** With all logits equal, every class has "
     "probability 1/C.",
     "C = 1000\n"
     "logits = np.zeros((8, C)) + 0.001 * np.random.default_rng(0).normal(size=(8, C))\n"
     "labels = np.arange(8) * 7\n"
     "loss, cache = mine.cross_entropy_forward(logits, labels)\n"
     "print(f\"loss {float(loss):.4f}  vs  ln C = {np.log(C):.4f}\")"),
    ("**Sanity: each counted row of the gradient sums to 0.**",
     "C = 1000\n"
     "logits = np.random.default_rng(0).normal(size=(8, C))\n"
     "labels = np.arange(8) * 7\n"
     "labels[3] = -100                                   # an ignored row: its gradient is all zeros\n"
     "loss, cache = mine.cross_entropy_forward(logits, labels)\n"
     "dlogits = mine.cross_entropy_backward(1.0, cache)\n"
     "print(\"largest row sum:\", abs(dlogits.sum(axis=1)).max())"),
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


def _all_rows_nll(logits, labels, ignore):
    """-log p of every row, an ignored row read at class 0 (as a learner's safe label would)."""
    safe = numpy.where(labels != ignore, labels, 0)
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + numpy.log(numpy.exp(logits - m).sum(axis=1))
    return lse - logits[numpy.arange(len(labels)), safe]


def _loss_candidates(logits, labels, ignore):
    nll, valid = _nll(logits, labels, ignore)
    return [
        (nll.sum() / len(labels), "the loss divides by all N rows, the ignored ones included: average over the "
         "rows whose label is not ignore_index only (n of them), so the ignored positions do not dilute it."),
        (nll.sum(), "the loss is the *mean* over the counted rows, not their sum: off by a constant factor n."),
        (_all_rows_nll(logits, labels, ignore).sum() / max(int(valid.sum()), 1), "the ignored rows are in the "
         "sum (with some stand-in label): they must not count at all, neither in the sum nor in n."),
    ]


def _forward_check(t, logits, labels, ignore=None):
    args = (logits.copy(), labels.copy()) + (() if ignore is None else (ignore,))
    expected, ref_cache = cross_entropy_forward(*args)
    got = t.unpack(t.call("cross_entropy_forward", *args), "cross_entropy_forward", "loss, cache")
    ignore = IGNORE_INDEX if ignore is None else ignore
    t.compare("loss", got[0], expected, candidates=_loss_candidates(logits, labels, ignore),
              shape_hint="the loss is one number (a 0-d array or a float), not one value per row.",
              nonfinite_hint="an overflow, or a log of 0: exp of a large logit is inf. The loss can be written "
                             "without ever taking exp of a large number (docs/softmax.md, 'Subtracting the "
                             "maximum'). With every row ignored there is nothing to average: the loss is 0.",
              hint="compare with the statement's definition term by term: which rows count, the log of which "
                   "probability, and what the sum is divided by.")
    _cache_check(t, got[1], ref_cache)


CACHE_FIELDS = ("probs", "safe_labels", "valid", "n")


def _cache_check(t, cache, ref_cache):
    """The cache must have the documented format: the grader feeds minibert's own cache to the backward."""
    if not isinstance(cache, (tuple, list)) or len(cache) != len(CACHE_FIELDS):
        raise CheckFailed(f"the cache is {describe(cache)}; the contract is the 4-tuple ({', '.join(CACHE_FIELDS)}).",
                          "the grader also runs your backward on minibert's own cache, so its format is fixed: "
                          "see the forward's docstring.")
    for name, mine, ref in zip(CACHE_FIELDS, cache, ref_cache):
        t.compare(f"cache item {name}", mine, ref,
                  hint=f"the cache's {name} is not what the contract says it holds (the forward's docstring).")


def _backward_candidates(logits, labels, dloss):
    valid = labels != IGNORE_INDEX
    n = max(int(valid.sum()), 1)
    p = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = numpy.zeros_like(p)
    onehot[numpy.arange(len(labels))[valid], labels[valid]] = 1.0
    keep = valid[:, None]
    safe_onehot = numpy.zeros_like(p)
    safe_onehot[numpy.arange(len(labels)), numpy.where(valid, labels, 0)] = 1.0
    return [
        ((p - safe_onehot) * dloss / n, "the ignored rows must get a zero gradient: their logits are not in the "
         "loss."),
        ((p - onehot) * keep * dloss / len(labels), "dlogits is divided by all N rows: the loss divides by the "
         "number of counted rows only, and so must its gradient."),
        ((p - onehot) * dloss / n, "the ignored rows must get a zero gradient: their logits are not in the loss."),
        ((p - onehot) * keep / n, "the upstream gradient dloss (here not 1) is missing: off by a constant "
         "factor."),
        ((p - onehot) * keep * dloss, "off by a constant factor 1/n: the loss is a mean over the counted rows."),
        (p * keep * dloss / n, "the label's own term is missing: right off the label, wrong at the label (each "
         "counted row of the gradient must sum to 0)."),
        ((onehot - p) * keep * dloss / n, "the sign is flipped: the label's logit must get a negative gradient "
         "(descent raises it)."),
        (-onehot * keep * dloss / n, "only the label's term is there: the log-sum-exp term also depends on "
         "every logit of the row."),
    ]


def _copy_cache(cache):
    return tuple(c.copy() if isinstance(c, numpy.ndarray) else c for c in cache)


def _reference_cache_check(t, logits, labels, dloss):
    """The learner's backward on minibert's own forward cache, against minibert's backward."""
    cache = cross_entropy_forward(logits.copy(), labels.copy())[1]
    mine_cache = type(cache)(*_copy_cache(cache))
    expected = cross_entropy_backward(dloss, _copy_cache(cache))
    got = t.call("cross_entropy_backward", dloss, mine_cache)
    t.compare("dlogits", got, expected, candidates=_backward_candidates(logits, labels, dloss),
              hint="dlogits is wrong although the cache is minibert's own: the mistake is in the backward. Redo "
                   "the derivation's step 1 for one row, then the factors of step 3.")


def _own_cache_check(t, logits, labels, dloss, forward_ok):
    """The learner's backward on the learner's own cache, against finite differences of the learner's forward."""
    expected = cross_entropy_backward(dloss, cross_entropy_forward(logits.copy(), labels.copy())[1])
    _, cache, forward, own = t.forward_for_backward("cross_entropy_forward", logits.copy(), labels.copy())
    got = t.call("cross_entropy_backward", dloss, cache)
    loss = lambda: dloss * float(forward(logits, labels.copy()))        # noqa: E731 - reads the perturbed logits
    if forward_ok or not own:
        t.gradient("dlogits", got, expected, loss, logits, candidates=_backward_candidates(logits, labels, dloss),
                   hint="redo the derivation's step 1 for one row (the label's entry and the others), then the "
                        "factors of step 3; docs/softmax.md, 'Gradient'.")
        return
    t.consistent_with_own_forward("dlogits", got, loss, logits, of="loss")


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
    with t.check("forward: one row, 200 classes, no row ignored"):
        logits = t.rng.normal(size=(1, 200)) * 3.0
        _forward_check(t, logits, t.rng.integers(0, 200, size=1))
    forward_ok = all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    with t.check("backward on minibert's cache: dlogits with dloss = 0.7, 3 rows ignored"):
        _reference_cache_check(t, *_inputs(t), 0.7)
    with t.check("backward on minibert's cache: every row ignored (zero gradient)"):
        _reference_cache_check(t, *_inputs(t, n_ignored=N), 1.3)
    with t.check("backward on your own cache: finite differences, dloss = 0.7, 3 rows ignored"):
        _own_cache_check(t, *_inputs(t), 0.7, forward_ok)
    with t.check("backward on your own cache: large logits, 1 row ignored"):
        logits, labels = _inputs(t, n_ignored=1)
        _own_cache_check(t, logits * 30.0, labels, 1.0, forward_ok)


EXERCISE = Exercise(
    number=9, name="cross_entropy", title="softmax cross-entropy with an ignore index",
    functions=(cross_entropy_forward, cross_entropy_backward),
    imports="import numpy as np",
    minutes=40,
    assesses="log-sum-exp stability; deriving the p - onehot gradient; averaging over counted positions only "
             "(ignore index), the empty case, the upstream scalar; the loss at initialisation",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/softmax.md", "docs/pretraining.md"), notebooks=("03_mlm_nsp.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
