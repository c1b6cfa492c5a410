"""Exercise 03: the embedding backward with repeated ids (minibert.ops.embedding.embedding_backward)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.ops.embedding import embedding_backward, embedding_forward

STATEMENT = r"""
## The lookup

An embedding layer is a table $W$ of shape $(V, H)$, one row per token id. Its forward is a lookup:

$$
\text{out}_{bt} = W_{\text{ids}_{bt}}, \qquad \text{ids}: (B, T), \quad \text{out}: (B, T, H).
$$

## Your function

`embedding_backward(dout, cache, dweight=None, padding_idx=None)`: `cache` is what minibert's
`embedding_forward(ids, weight)` returned, `(ids, weight.shape)`. Return the $(V, H)$ gradient.

- `dweight`: if given, a $(V, H)$ gradient buffer that may already hold gradient from elsewhere: add
  into it and return that same array (BERT's word embeddings also receive the MLM decoder's gradient).
- `padding_idx`: positions holding this id send no gradient (PyTorch's `padding_idx`, which Hugging
  Face uses for `[PAD]`).
"""

CONTRACT = r"""Gradient of an embedding lookup with respect to its table.

Inputs
    dout         (..., H) the upstream gradient of out = weight[ids], the shape of out
    cache        (ids, weight_shape), exactly what embedding_forward returned:
                 ids (...) integers in [0, V), weight_shape the tuple (V, H)
    dweight      None, or a (V, H) gradient buffer that may already hold gradient from
                 elsewhere (BERT's tied decoder): add into it and return that same array
    padding_idx  None, or an id whose positions send no gradient at all
Returns dW, (V, H), dtype of dout: the buffer dweight when one is given

To derive: which entries of out does row v of the table reach? An id may occur many times in
ids, or not at all. What must row v of dW be in each case?
"""

DERIVATION = r"""
**1. The scalar case.** A table of $V$ numbers ($H = 1$) and one id $k$: $\text{out} = W_k$. What is
$\partial\,\text{out} / \partial W_v$ for $v = k$ and for $v \ne k$? Write $\bar W$.

**2. Several positions.** Now $N$ positions with ids $\text{ids}_1, \dots, \text{ids}_N$, and
$\text{out}_n = W_{\text{ids}_n}$. For one row $v$ of the table, which $\text{out}_n$ depend on it? Write
$\bar W_v$ as a sum over $n$ with a condition. What if $v$ occurs three times? Never?

**3. As a product.** Write the lookup as $\text{out} = E W$ with $E$ an $(N, V)$ matrix of one-hot rows and
apply the linear layer's rule (exercise 02). Check that it gives the same as step 2, and estimate
what it would cost for $N = 4096$, $V = 30522$.

**4. Shapes and leading axes.** ids $(B, T)$, dout $(B, T, H)$, $\bar W$ $(V, H)$: which positions pair
with which rows of dout after you flatten both?

**5. The contract's extras.** A buffer that already holds gradient: what must the result be? A
`padding_idx`: which terms of your sum in step 2 disappear, and which must not (the buffer's)?

**On paper, before coding:** the sum of all rows of $\bar W$ equals what? Does any NumPy operation you
know *add* into repeated indices (rather than assign)? Test it on a tiny example with a repeated index.
"""

HINTS = (
    "Think of the lookup as a matrix product with one-hot rows (a linear layer without bias): row v of the "
    "table reaches every position whose id is v, so its gradient collects something from each of them.",
    "Repeated ids: a fancy-indexed in-place update (an index array on the left of +=) does not accumulate "
    "when an index repeats; NumPy evaluates the right side once and assigns, so only one occurrence "
    "counts. Look for an unbuffered add in NumPy's ufunc methods.",
    "dweight may hold gradient from elsewhere: never start from zeros or overwrite a row when it is given. "
    "padding_idx: leave those positions out of the sum (0 is a valid id). docs/embeddings.md, \"Backward: "
    "scatter-add\" and \"The padding_idx rule\".",
)

V, H = 11, 6


def _inputs(t, shape, vocab=V):
    ids = t.rng.integers(0, vocab, size=shape)
    w = t.rng.normal(size=(vocab, H))
    dout = t.rng.normal(size=(*shape, H))
    return ids, w, dout


def _assigned(ids, dout, base=None):
    """What `dW[ids] = rows` (or `dW[ids] += rows`) gives: the last occurrence of each id wins."""
    out = numpy.zeros((V, H)) if base is None else base.copy()
    flat, rows = ids.reshape(-1), dout.reshape(-1, H)
    out[flat] = (0.0 if base is None else base[flat]) + rows
    return out


ASSIGN_HINT = ("right for the ids that occur once, wrong for the ids that occur several times: only one of "
               "their gradients counts. A fancy-indexed update (`+=` or `=` with an index array) assigns once per "
               "distinct index instead of adding every occurrence. docs/embeddings.md, \"Backward: scatter-add\".")


def _scatter(ids, dout, base=None, skip=None, mean=False):
    """The reference scatter-add written out (for candidates): optional base buffer, skipped id, mean per id."""
    out = numpy.zeros((V, H)) if base is None else base.copy()
    flat, rows = ids.reshape(-1), dout.reshape(-1, H)
    acc, count = numpy.zeros((V, H)), numpy.zeros(V)
    for n, v in enumerate(flat):
        if v != skip:
            acc[v] += rows[n]
            count[v] += 1
    if mean:
        acc /= numpy.maximum(count, 1)[:, None]
    return out + acc


def _candidates(ids, dout, base=None, padding_idx=None):
    zero_row = _scatter(ids, dout, base)
    if padding_idx is not None:
        zero_row[padding_idx] = 0.0
    found = [
        (_assigned(ids, dout, base), ASSIGN_HINT),
        (_scatter(ids, dout, base, padding_idx, mean=True), "each row is the mean of the gradients of its "
         "occurrences: an id seen k times is used k times in the forward, so all k gradients add (a sum)."),
    ]
    if ids.ndim == 2:
        order = ("the ids and the rows of dout are flattened in different orders (one of them transposed): "
                 "position n of ids must meet row n of dout.")
        found.append((lambda: _scatter(ids.T.reshape(-1), dout.reshape(-1, H), base, padding_idx), order))
        found.append((lambda: _scatter(ids.reshape(-1), dout.swapaxes(0, 1).reshape(-1, H), base, padding_idx),
                      order))
    if base is not None:
        found.append((_scatter(ids, dout, None, padding_idx), "the gradient is right but the buffer's old "
                      "content is lost: dweight may hold gradient from elsewhere; add into it."))
    if padding_idx is not None:
        found.append((_scatter(ids, dout, base), f"padding_idx = {padding_idx} is ignored: the positions whose "
                      f"id is {padding_idx} must send no gradient." + (
                          " (0 is a valid padding id: a test that treats it as false skips it.)"
                          if padding_idx == 0 else "")))
        found.append((zero_row, "row padding_idx was zeroed after the sum, which also wipes what the buffer held "
                      "there: leave the [PAD] positions out of the sum instead."))
        if padding_idx != 0:
            found.append((_scatter(ids, dout, base, 0), f"the positions of id 0 were left out, not those of "
                          f"padding_idx = {padding_idx}: use the argument, not a fixed [PAD] id."))
    return found


def _check_dw(t, label, got, expected, ids, dout, base=None, padding_idx=None, loss=None, w=None):
    candidates = _candidates(ids, dout, base, padding_idx)
    hint = "row v of dW collects dout from every position whose id is v (and nothing else)."
    if loss is None:
        t.compare(label, got, expected, candidates=candidates, hint=hint)
    else:
        t.gradient(label, got, expected, loss, w, candidates=candidates, hint=hint)


def check(t):
    with t.check("ids (3, 5) with repeated ids, V = 11, H = 6"):
        ids, w, dout = _inputs(t, (3, 5))
        ids[2, 4] = ids[0, 1]                  # at least one repeated id, whatever the seed
        expected = embedding_backward(dout, (ids, w.shape))
        got = t.call("embedding_backward", dout.copy(), embedding_forward(ids, w)[1])

        def loss():
            return float((embedding_forward(ids, w)[0] * dout).sum())

        _check_dw(t, "dW", got, expected, ids, dout, loss=loss, w=w)

    with t.check("one id everywhere: ids (2, 4) all equal to 3"):
        ids = numpy.full((2, 4), 3)
        w = t.rng.normal(size=(V, H))
        dout = t.rng.normal(size=(2, 4, H))
        got = t.call("embedding_backward", dout.copy(), embedding_forward(ids, w)[1])
        _check_dw(t, "dW", got, embedding_backward(dout, (ids, w.shape)), ids, dout)

    with t.check("ids (2, 7), and ids as a vector (4,)"):
        ids, w, dout = _inputs(t, (2, 7))
        got = t.call("embedding_backward", dout.copy(), (ids, w.shape))
        expected = embedding_backward(dout, (ids, w.shape))
        _check_dw(t, "dW", got, expected, ids, dout)
        ids1 = t.rng.integers(0, V, size=4)
        dout1 = t.rng.normal(size=(4, H))
        got = t.call("embedding_backward", dout1.copy(), (ids1, (V, H)))
        _check_dw(t, "dW for 1-D ids", got, embedding_backward(dout1, (ids1, (V, H))), ids1, dout1)

    with t.check("dweight given: add into the buffer and return it"):
        ids, w, dout = _inputs(t, (2, 5))
        ids[1, 3] = ids[0, 0]
        buffer = t.rng.normal(size=(V, H))
        before = buffer.copy()
        expected = embedding_backward(dout, (ids, w.shape), dweight=before.copy())
        got = t.call("embedding_backward", dout.copy(), (ids, w.shape), buffer)
        _check_dw(t, "the returned gradient", got, expected, ids, dout, base=before)
        if got is not buffer:
            raise CheckFailed("the values are right, but the function returned a new array instead of the "
                              "dweight buffer it was given.",
                              "add straight into dweight and return dweight itself: the model passes its own "
                              "gradient buffer and keeps using it (no V x H temporary).")

    for pad in (5, 0):
        with t.check(f"padding_idx = {pad}: [PAD] positions send no gradient"):
            ids, w, dout = _inputs(t, (3, 6))
            ids[1, 4:] = pad
            ids[2, 2:] = pad
            ids[0, 0] = 0 if pad else 5         # the other id occurs too, and is not padding
            buffer = t.rng.normal(size=(V, H))
            expected = embedding_backward(dout, (ids, w.shape), dweight=buffer.copy(), padding_idx=pad)
            got = t.call("embedding_backward", dout.copy(), (ids, w.shape), buffer.copy(), pad)
            _check_dw(t, "dW", got, expected, ids, dout, base=buffer, padding_idx=pad)


QUESTIONS = (
    Question(
        "Write the lookup as a product with one-hot vectors and derive the gradient of the table from the "
        "linear layer's rule. Why does nobody compute it that way (estimate the cost for a batch of 32 x 128 "
        "tokens and $V = 30522$)?",
        "$\\text{out} = E W$ with $E$ the $(N, V)$ one-hot matrix, so $\\bar W = E^\\top \\overline{\\text{out}}$: "
        "row $v$ is the sum of the upstream rows of the positions whose id is $v$. $E$ has $N V = 4096 \\cdot "
        "30522 \\approx 1.25 \\cdot 10^8$ entries and the product costs $N V H$ multiply-adds, almost all with "
        "zeros; the scatter-add touches only the $N H$ numbers that matter."),
    Question(
        "Why is `dW[ids] += rows` wrong, and why does it survive so long in real code? Which test finds it?",
        "With repeated indices NumPy computes `dW[ids] + rows` once (a gathered copy) and assigns it back: "
        "for an id seen $k$ times the last write wins, so only one of its $k$ gradients counts. Nothing "
        "crashes, shapes are right, and with distinct ids it is exact, so tests with random small batches "
        "may pass. A test with deliberately repeated ids, or a finite-difference check, finds it; in language "
        "repeated tokens (the, [PAD], [MASK]) are the normal case, so training is silently wrong."),
    Question(
        "The word-embedding table is also the MLM decoder's weight (tied). Why does the backward add into a "
        "buffer instead of returning a fresh array, and why must `padding_idx` leave positions out rather "
        "than zero the row afterwards?",
        "The table's gradient is the sum of two contributions (the lookup's and the decoder's); adding into "
        "one buffer gives that sum by construction and avoids a $V \\times H$ temporary. Zeroing row "
        "`padding_idx` afterwards would also erase the decoder's gradient for that row (already in the "
        "buffer); leaving the [PAD] positions out removes exactly the lookup's contribution."),
)

SANITY = (
    ("**Gradient mass is conserved**: the sum of all rows of dW equals the sum of all rows of dout (each "
     "position sends its gradient to exactly one row), and ids that do not occur get zero rows.",
     """
from minibert.ops.embedding import embedding_forward
rng = np.random.default_rng(0)
ids = np.array([[1, 4, 4, 2], [4, 1, 0, 0]])
dout = rng.normal(size=(2, 4, 3))
dW = mine.embedding_backward(dout, embedding_forward(ids, np.zeros((6, 3)))[1])
print("sums equal:", np.allclose(dW.sum(axis=0), dout.reshape(-1, 3).sum(axis=0)),
      "| rows of unused ids 3, 5 are zero:", not dW[[3, 5]].any())
"""),
)

EXERCISE = Exercise(
    number=3, name="embedding_backward", title="the embedding backward: scatter-add over repeated ids",
    functions=(embedding_backward,),
    imports="import numpy as np\n\nfrom minibert.ops.embedding import embedding_forward   # given: it makes the cache",
    minutes=35,
    assesses="a lookup as a product with one-hot rows; accumulating gradients (scatter-add) when an id repeats; "
             "gradient buffers that are added into; [PAD] and padding_idx",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/embeddings.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=(("embedding_backward", CONTRACT),), questions=QUESTIONS, sanity=SANITY,
    derivation=DERIVATION,
)
