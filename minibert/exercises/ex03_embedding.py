"""Exercise 03: the embedding backward with repeated ids (minibert.ops.embedding.embedding_backward)."""
from __future__ import annotations

import numpy

from minibert.exercises.base import CheckFailed, Exercise
from minibert.ops.embedding import embedding_backward, embedding_forward

STATEMENT = r"""
## The lookup

An embedding layer is a table $W$ of shape $(V, H)$, one row per token id. Its forward is a lookup:

$$
\text{out}_{bt} = W_{\text{ids}_{bt}}, \qquad \text{ids}: (B, T), \quad \text{out}: (B, T, H).
$$

## What to derive

Write the lookup as a product with one-hot vectors, $\text{out}_{bt} = e_{\text{ids}_{bt}}^\top W$, and
derive

$$
\bar W_v = \sum_{(b, t):\ \text{ids}_{bt} = v} \overline{\text{out}}_{bt} .
$$

Row $v$ of the gradient collects the upstream gradient of *every* position that looked $v$ up: a
token that occurs $k$ times in the batch receives the sum of $k$ gradients, and a token that does not
occur receives zero. This is a **scatter-add**.

## Your function

`embedding_backward(dout, cache, dweight=None, padding_idx=None)`: `cache` is what minibert's
`embedding_forward(ids, weight)` returned, `(ids, weight.shape)`. Return the $(V, H)$ gradient.

- `dweight`: if given, a $(V, H)$ gradient buffer that may already hold gradient from elsewhere: add
  into it and return that same array (BERT's word embeddings also receive the MLM decoder's gradient).
- `padding_idx`: positions holding this id send no gradient (PyTorch's `padding_idx`, which Hugging
  Face uses for `[PAD]`).
"""

HINTS = (
    "Flatten: `ids` to (N,) and `dout` to (N, H). Row n of dout belongs to row ids[n] of the table.",
    "`dW[ids] += rows` looks right but is wrong when an id repeats: NumPy evaluates `dW[ids] + rows` "
    "first and then *assigns*, so only the last occurrence of each id counts.",
    "`np.add.at(dW, ids, rows)` adds every occurrence. For padding_idx, drop the positions whose id is "
    "padding_idx before adding (do not zero the row afterwards: the buffer may hold gradient from elsewhere).",
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


ASSIGN_HINT = ("the rows of ids that occur more than once are wrong: only one of their gradients counts. "
               "`dW[ids] += rows` (or `= rows`) assigns once per distinct id instead of accumulating; "
               "add every occurrence with np.add.at(dW, ids, rows).")


def check(t):
    with t.check("ids (3, 5) with repeated ids, V = 11, H = 6"):
        ids, w, dout = _inputs(t, (3, 5))
        assert len(numpy.unique(ids)) < ids.size
        expected = embedding_backward(dout, (ids, w.shape))
        got = t.call("embedding_backward", dout.copy(), embedding_forward(ids, w)[1])

        def loss():
            return float((embedding_forward(ids, w)[0] * dout).sum())

        t.gradient("dW", got, expected, loss, w, candidates=[(_assigned(ids, dout), ASSIGN_HINT)],
                   hint="row v of dW is the sum of dout over every position whose id is v.")

    with t.check("one id everywhere: ids (2, 4) all equal to 3"):
        ids = numpy.full((2, 4), 3)
        w = t.rng.normal(size=(V, H))
        dout = t.rng.normal(size=(2, 4, H))
        got = t.call("embedding_backward", dout.copy(), embedding_forward(ids, w)[1])
        t.compare("dW", got, embedding_backward(dout, (ids, w.shape)),
                  candidates=[(_assigned(ids, dout), ASSIGN_HINT)],
                  hint="all 8 positions looked up row 3: row 3 of dW is the sum of all 8 rows of dout.")

    with t.check("dweight given: add into the buffer and return it"):
        ids, w, dout = _inputs(t, (2, 5))
        buffer = t.rng.normal(size=(V, H))
        before = buffer.copy()
        expected = embedding_backward(dout, (ids, w.shape), dweight=before.copy())
        got = t.call("embedding_backward", dout.copy(), (ids, w.shape), buffer)
        t.compare("the returned gradient", got, expected,
                  candidates=[(expected - before, "the gradient is right but the buffer's old content is lost: "
                               "add into dweight (it may hold gradient from elsewhere), do not start from zeros."),
                              (_assigned(ids, dout, before), ASSIGN_HINT)])
        if got is not buffer:
            raise CheckFailed("the values are right, but the function returned a new array instead of the "
                              "dweight buffer it was given.",
                              "add straight into dweight (np.add.at(dweight, ...)) and return dweight: the model "
                              "passes its own gradient buffer and keeps using it.")

    with t.check("padding_idx = 0: [PAD] positions send no gradient"):
        ids, w, dout = _inputs(t, (3, 6))
        ids[1, 4:] = 0
        ids[2, 2:] = 0
        buffer = t.rng.normal(size=(V, H))
        expected = embedding_backward(dout, (ids, w.shape), dweight=buffer.copy(), padding_idx=0)
        without = embedding_backward(dout, (ids, w.shape), dweight=buffer.copy())
        zeroed = without.copy()
        zeroed[0] = 0.0
        got = t.call("embedding_backward", dout.copy(), (ids, w.shape), buffer.copy(), 0)
        t.compare("dW", got, expected,
                  candidates=[(without, "padding_idx is ignored: leave out every position whose id equals "
                               "padding_idx before adding."),
                              (zeroed, "zeroing row padding_idx afterwards also wipes what the buffer held "
                               "there: leave the [PAD] positions out of the sum instead.")])


EXERCISE = Exercise(
    number=3, name="embedding_backward", title="the embedding backward: scatter-add over repeated ids",
    functions=(embedding_backward,),
    imports="import numpy as np\n\nfrom minibert.ops.embedding import embedding_forward   # given: it makes the cache",
    minutes=30,
    assesses="a lookup as a product with one-hot rows; accumulating gradients (scatter-add) when an id repeats; "
             "gradient buffers that are added into; [PAD] and padding_idx",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/embeddings.md",), notebooks=("01_layers_and_gradcheck.ipynb",),
)
