"""Exercise 19: the question-answering span head and its loss (minibert.model.heads.question_answering)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.model.heads.question_answering import span_head_backward, span_head_forward

STATEMENT = r"""
## The forward

Extractive question answering (SQuAD) marks the answer as a span of the passage: a start token and
an end token. BERT's head is one linear layer on the last hidden states $x$ (B, T, H) with a weight
$W$ (2, H) and a bias $b$ (2,): row 0 of $W$ scores every token as the start, row 1 as the end.

$$
z = x W^\top + b \quad (B, T, 2), \qquad s = z_{\cdot,\cdot,0}, \quad e = z_{\cdot,\cdot,1} \quad (B, T),
$$

$$
L = \tfrac12 \big( \mathrm{CE}(s, \text{start}) + \mathrm{CE}(e, \text{end}) \big),
\qquad \mathrm{CE}(s, y) = -\frac{1}{n} \sum_{r:\ y_r \text{ counted}} \log \operatorname{softmax}(s_r)_{y_r},
$$

each softmax over the T tokens of a row, each cross-entropy a mean over its own counted rows ($n$
of them; 0 when none is counted). The positions follow transformers' rule: each is first clamped
to $[0, T]$, so a negative position becomes 0 (the [CLS] token, "no answer") and one past the
sequence becomes $T$, which means **ignored** (the answer was cut off with the passage).

## Your functions

`span_head_forward(x, weight, bias, start_positions, end_positions)` returns `(loss, cache)`, the
loss a float (or 0-d array); `span_head_backward(dloss, cache)` returns `(dx, dweight, dbias)`.
The cache is a tuple of six fields in this order: `x`, `weight`, the start and end softmax
probabilities (B, T) each, and the clamped start and end positions (B,) (the grader also calls
your backward on minibert's cache, which has exactly these fields).
"""

HINTS = (
    "Forward: check the loss on a batch of one by hand, with T = 3 and easy logits. Then a position of -2 "
    "and one of T + 3: what does clamping make of each, and which rows does each cross-entropy count?",
    "Backward: start from one side's cross-entropy for one row, derive the gradient of its T logits, then "
    "ask which factor the mean over counted rows adds, and which the average of the two losses adds. "
    "Ignored rows contribute nothing. The two sides' gradients then go to the two columns of z.",
    "From dz (B, T, 2) on, it is exercise 02's linear backward with two leading axes: dweight has "
    "weight's shape (2, H), dbias sums over both B and T. See docs/heads.md (question answering) and "
    "docs/softmax.md (the cross-entropy's gradient).",
)

CONTRACTS = (
    ("span_head_forward", '''The QA span head's loss.

    x: (B, T, H) float64; weight: (2, H) (row 0 scores starts, row 1 ends); bias: (2,);
    start_positions, end_positions: (B,) integers, possibly negative or >= T.
    Positions are clamped to [0, T]; T means "ignored".
    Returns (loss, cache): loss = the mean of the start and end cross-entropies, each a mean over its
    own counted rows (0 when none is counted); cache = (x, weight, start_probs, end_probs, start,
    end): the softmaxes over T (B, T) and the clamped positions (B,), in that order.
    '''),
    ("span_head_backward", '''Gradients of the span loss.

    dloss: a float, the gradient of the final objective with respect to the loss.
    cache: the 6-tuple span_head_forward returns (the grader also passes minibert's).
    Returns (dx, dweight, dbias), shapes (B, T, H), (2, H), (2,).

    To derive: the gradient of one cross-entropy with respect to its logits, with the mean over counted
    rows and the 1/2; then through z = x W^T + b.
    '''),
)

DERIVATION = r"""
## Deriving it

1. **One row, one side.** For logits $s \in \mathbb{R}^T$ and a target $y$, write
   $\ell = -\log \operatorname{softmax}(s)_y = \log \sum_j e^{s_j} - s_y$. Differentiate with respect
   to $s_j$: first for $j \ne y$, then $j = y$. Write the result as one vector expression.
2. **The means.** $\mathrm{CE}$ averages $\ell$ over its $n$ counted rows and $L$ averages the two
   sides. What factor multiplies row $r$'s gradient? What is the gradient of an ignored row? Note
   that $n$ can differ between the two sides (a start past the sequence is ignored, its end not).
3. **Into z.** $s$ and $e$ are the two columns of $z$ (B, T, 2): where does each side's gradient go?
4. **Through the linear layer.** With $\bar z$ (B, T, 2) known: $\bar x$, $\bar W$ and $\bar b$ as in
   exercise 02, with two leading axes. Check the shapes: $\bar W$ must be (2, H), $\bar b$ (2,).
5. **Checks on paper.** For every counted row, the gradient of its T logits sums to 0 (why?). If
   every start is ignored, what is $\bar z_{\cdot,\cdot,0}$?
"""

QUESTIONS = (
    Question("Why is a position past the sequence ignored, but a negative one clamped to 0 ([CLS])?",
             "A long passage is cut into windows; when the answer lies outside the window the position "
             "points past it: there is nothing to learn in this window about where the answer is, so the "
             "row is ignored (transformers clamps it to T and uses ignore_index = T). Position 0, the "
             "[CLS] token, is the convention for 'no answer in this passage' (SQuAD 2.0): a negative or "
             "unanswerable position is mapped there and trained as a real target."),
    Question("The loss averages the two cross-entropies. How does the gradient of the start logits of a "
             "counted row depend on the number of counted *end* rows?",
             "Not at all: each cross-entropy is a mean over its own counted rows, so a start row's gradient "
             "is (p - onehot) * dloss / (2 n_start); n_end only scales the end logits' gradient. The two "
             "sides share only the factor 1/2 and the weight matrix they flow into (row 0 and row 1)."),
)

SANITY = (
    ("**The loss at initialisation.** With a weight near 0 every token is equally likely as start and "
     "end, so the loss is about ln T. Check it on random hidden states.",
     "rng = np.random.default_rng(0)\n"
     "B, T, H = 8, 50, 16\n"
     "x = rng.normal(size=(B, T, H))\n"
     "loss, _ = mine.span_head_forward(x, rng.normal(size=(2, H)) * 1e-4, np.zeros(2),\n"
     "                            rng.integers(0, T, size=B), rng.integers(0, T, size=B))\n"
     "print(f\"loss {float(loss):.4f}, ln T {np.log(T):.4f}\")"),
    ("**Overfit one batch.** A few hundred steps of gradient descent on the head alone should drive the "
     "loss of one small batch towards 0 (the hidden states are random, so only memorisation can).",
     "rng = np.random.default_rng(1)\n"
     "B, T, H = 4, 10, 16\n"
     "x = rng.normal(size=(B, T, H))\n"
     "w, b = rng.normal(size=(2, H)) * 0.01, np.zeros(2)\n"
     "start, end = rng.integers(0, T, size=B), rng.integers(0, T, size=B)\n"
     "for step in range(300):\n"
     "    loss, cache = mine.span_head_forward(x, w, b, start, end)\n"
     "    _, dw, db = mine.span_head_backward(1.0, cache)\n"
     "    w -= 1.0 * dw\n"
     "    b -= 1.0 * db\n"
     "print(f\"loss after 300 steps: {float(loss):.4f} (from ln T = {np.log(T):.2f})\")"),
)


# -- cases -----------------------------------------------------------------------------------------

def _case(t, B, T, H, starts=None, ends=None, scale=1.5):
    x = t.rng.normal(size=(B, T, H))
    weight = t.rng.normal(size=(2, H)) * scale
    bias = t.rng.normal(size=2)
    start = t.rng.integers(0, T, size=B) if starts is None else numpy.array(starts)
    end = t.rng.integers(0, T, size=B) if ends is None else numpy.array(ends)
    return x, weight, bias, start, end


def _ce(logits, target, T, mean_over="counted"):
    """One side's cross-entropy as a mistake might average it (targets already as the variant chose)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - numpy.log(numpy.exp(shifted).sum(axis=1, keepdims=True))
    valid = (target >= 0) & (target < T) if mean_over != "all targets" else numpy.ones(len(target), bool)
    rows = numpy.arange(len(target))
    nll = -log_p[rows, numpy.where(valid, target, 0) % T]
    if mean_over == "sum":
        return float((nll * valid).sum())
    if mean_over in ("batch", "all targets"):
        return float((nll * valid).sum() / len(target))
    return float((nll * valid).sum() / max(int(valid.sum()), 1))


def _loss_variant(x, w, b, start, end, mistake):
    T = x.shape[1]
    z = x @ w.T + b
    s, e = z[..., 0], z[..., 1]
    clamp = (lambda p: numpy.clip(p, 0, T))
    if mistake == "swapped":
        s, e = e, s
    if mistake == "sum of both":
        return _ce(s, clamp(start), T) + _ce(e, clamp(end), T)
    if mistake == "negative not clamped":
        return (_ce(s, numpy.where(start < 0, start % T, clamp(start)), T)
                + _ce(e, numpy.where(end < 0, end % T, clamp(end)), T)) / 2
    if mistake == "negative ignored":
        return (_ce(s, numpy.where(start < 0, T, clamp(start)), T) + _ce(e, numpy.where(end < 0, T, clamp(end)), T)) / 2
    if mistake == "mean over batch":
        return (_ce(s, clamp(start), T, "batch") + _ce(e, clamp(end), T, "batch")) / 2
    if mistake == "summed rows":
        return (_ce(s, clamp(start), T, "sum") + _ce(e, clamp(end), T, "sum")) / 2
    return (_ce(s, clamp(start), T) + _ce(e, clamp(end), T)) / 2


LOSS_MISTAKES = {
    "swapped": "your start and end logits are swapped: row 0 of the weight (column 0 of z) scores the starts.",
    "sum of both": "your loss is twice the expected one: L is the mean of the two cross-entropies, not their sum.",
    "negative not clamped": "a negative position indexes from the end of the row (Python's negative indices): "
                            "clamp positions to [0, T] first, so a negative one becomes 0 ([CLS]).",
    "negative ignored": "a negative position is not ignored: it is clamped to 0 ([CLS], 'no answer') and counted.",
    "mean over batch": "your cross-entropies divide by the batch size: each is a mean over its own counted "
                       "rows (an ignored position counts neither in the sum nor in the count).",
    "summed rows": "your cross-entropies are sums over the rows: each is a mean over its counted rows.",
}


def _forward_check(t, B, T, H, starts=None, ends=None):
    x, w, b, start, end = _case(t, B, T, H, starts, ends)
    expected, _ = span_head_forward(x, w, b, start, end)
    try:
        got = t.unpack(t.call("span_head_forward", x.copy(), w.copy(), b.copy(), start.copy(), end.copy()),
                       "span_head_forward", "loss, cache")[0]
    except CheckFailed as failure:
        if "IndexError" in failure.message:
            failure.hint = (f"a position past the sequence (here up to {int(max(start.max(), end.max()))}, T = {T}) "
                            f"is out of range until it is clamped to [0, T]; T then means 'ignored'.")
        raise
    got = numpy.asarray(got, dtype=numpy.float64) if isinstance(got, (float, int, numpy.generic)) else got
    t.compare("the loss", got, numpy.asarray(expected),
              candidates=[(lambda k=k: _loss_variant(x, w, b, start, end, k), hint)
                          for k, hint in LOSS_MISTAKES.items()],
              nonfinite_hint="a side whose every position is ignored has cross-entropy 0, not 0/0; and the "
                             "softmax needs the max trick for large logits.",
              hint="z = x W^T + b, column 0 the start logits, column 1 the end logits; a softmax over the T "
                   "tokens of each row; clamp the positions; the mean of the two cross-entropies.")
    t.note(f"loss {float(expected):.4f}")


def _dz_variants(cache, dloss, mistake):
    """dz (B, T, 2) as a backward mistake computes it, then through the linear layer: (dx, dW, db)."""
    x, w, ps, pe, start, end = cache
    B, T, _ = x.shape
    dz = numpy.zeros((B, T, 2))
    for side, (p, y) in enumerate(((ps, start), (pe, end))):
        valid = y != T
        g = p.copy()
        g[numpy.arange(B), numpy.where(valid, y, 0)] -= 1.0
        n = max(int(valid.sum()), 1)
        factor = {"no half": dloss / n, "over batch": dloss / 2 / B, "no dloss": 0.5 / n,
                  "ignored rows kept": dloss / 2 / n}.get(mistake, dloss / 2 / n)
        keep = numpy.ones(B) if mistake == "ignored rows kept" else valid
        dz[..., side] = g * (keep * factor)[:, None]
    if mistake == "swapped":
        dz = dz[..., ::-1]
    return dz @ w, numpy.einsum("btk,bth->kh", dz, x), dz.sum(axis=(0, 1))


BACKWARD_MISTAKES = {
    "no half": "your gradients are twice the expected ones: the loss averages the two cross-entropies (a 1/2).",
    "over batch": "your gradients divide by the batch size: each side's cross-entropy is a mean over its own "
                  "counted rows, so divide by that side's count.",
    "no dloss": "your gradients ignore dloss: every gradient is proportional to the upstream dloss.",
    "ignored rows kept": "an ignored row (position clamped to T) has a zero gradient: it is not in the loss.",
    "swapped": "your start and end gradients are swapped: the start logits are column 0 of z.",
}


def _backward_check(t, B, T, H, starts=None, ends=None, dloss=0.7, on_reference=False):
    x, w, b, start, end = _case(t, B, T, H, starts, ends)
    _, ref_cache = span_head_forward(x.copy(), w, b, start, end)
    dx_ref, dw_ref, db_ref = span_head_backward(dloss, ref_cache)
    if on_reference:                   # a copy: a backward may work in place on its cache
        cache, own = tuple(numpy.array(f, copy=True) for f in ref_cache), False
        forward = (lambda *a: span_head_forward(*a)[0])
    else:
        _, cache, forward, own = t.forward_for_backward("span_head_forward", x.copy(), w.copy(), b.copy(),
                                                        start.copy(), end.copy())
    dx, dw, db = t.unpack(t.call("span_head_backward", dloss, cache), "span_head_backward", "dx, dweight, dbias")

    def loss():
        return float(forward(x, w, b, start.copy(), end.copy())) * dloss

    variants = {k: _dz_variants(ref_cache, dloss, k) for k in BACKWARD_MISTAKES}
    failed = own and not all(r.status == "pass" for r in t.results if r.title.startswith("forward"))
    for i, (label, got, ref, wrt, shape_hint) in enumerate((
            ("dx", dx, dx_ref, x, "dx has x's shape (B, T, H)."),
            ("dweight", dw, dw_ref, w, "dweight has weight's shape (2, H): sum over both leading axes B and T."),
            ("dbias", db, db_ref, b, "dbias has bias's shape (2,): sum dz over both B and T."))):
        t.gradient(label, got, ref, loss, wrt, forward_failed=failed, shape_hint=shape_hint,
                   candidates=[(variants[k][i], hint) for k, hint in BACKWARD_MISTAKES.items()],
                   hint="per counted row: softmax minus the one-hot target, times dloss / 2 / (that side's count); "
                        "0 on ignored rows; then through z = x W^T + b.")


def check(t):
    with t.check("forward: B 3, T 7, H 5, every position inside the sequence"):
        _forward_check(t, 3, 7, 5)
    with t.check("forward: a start past the sequence (ignored), a negative end (clamped to 0), one at T"):
        _forward_check(t, 4, 6, 5, starts=[9, 2, 6, 0], ends=[3, -2, 5, 6])
    with t.check("forward: every start ignored (that cross-entropy is 0)"):
        _forward_check(t, 2, 5, 3, starts=[5, 11], ends=[0, 4])
    with t.check("backward: dx, dweight, dbias for B 3, T 7, H 5, dloss 0.7"):
        _backward_check(t, 3, 7, 5)
    with t.check("backward: ignored and clamped positions, different counts per side"):
        _backward_check(t, 4, 6, 5, starts=[9, 2, 6, 0], ends=[3, -2, 5, 6], dloss=1.3)
    with t.check("backward: on minibert's own cache (a bug in your cache cannot hide here)"):
        _backward_check(t, 5, 4, 3, starts=[1, 7, -1, 3, 0], ends=[2, 2, 4, 3, 1], on_reference=True)


EXERCISE = Exercise(
    number=19, name="qa_head", title="the question-answering span head: start/end logits, loss, backward",
    functions=(span_head_forward, span_head_backward),
    imports="import numpy as np",
    minutes=50,
    assesses="a (B, T, 2) projection read as two sets of logits; a softmax over tokens; two cross-entropies, "
             "each averaged over its own counted rows, averaged; transformers' clamping and ignore rule; the "
             "backward of both into one weight",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/heads.md",), notebooks=("05_finetuning.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
