"""Exercise 02: the backward pass of a linear layer (minibert.ops.linear.linear_backward)."""
from __future__ import annotations

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.ops.linear import linear_backward, linear_forward

STATEMENT = r"""
## The layer

A dense layer computes $y = x W^\top + b$ for every row of $x$:

$$
y_{no} = \sum_i x_{ni} W_{oi} + b_o, \qquad x: (N, \text{in}), \quad W: (\text{out}, \text{in}), \quad
b: (\text{out}), \quad y: (N, \text{out}).
$$

$W$ is stored $(\text{out}, \text{in})$, PyTorch's and Hugging Face's layout. In BERT $x$ has a batch
and a token axis, $(B, T, \text{in})$: the layer treats the $N = BT$ rows alike. The pooler and the
classifier heads feed it a matrix $(B, H)$ with a bias; the attention projections a $(B, T, H)$ array.

## Your function

`linear_backward(dy, cache, need_dx=True)` receives the `cache` that minibert's own
`linear_forward(x, weight, bias)` returned, `(x, weight, has_bias)` (the forward is given), and the
upstream gradient $\bar y = \partial L / \partial y$. It returns `(dx, dW, db)`: `dx` is `None` when
`need_dx` is False (the first layer needs no gradient for its input), `db` is `None` when the layer had
no bias. `x` and `dy` may have any number of leading axes.
"""

CONTRACT = r"""Gradients of the dense layer y = x @ W^T + b (the forward, linear_forward, is given).

Inputs
    dy       (..., out)  the upstream gradient dL/dy, the shape of y
    cache    (x, weight, has_bias), exactly what linear_forward returned:
             x (..., in) the input, weight (out, in), has_bias a bool
    need_dx  when False, return None in place of dx
Returns (dx, dW, db)
    dx  the shape of x, (..., in), or None when need_dx is False
    dW  the shape of W, (out, in)
    db  the shape of b, (out,), or None when has_bias is False
The leading axes (...) may be none (x a matrix), one or several: all of them are rows.

To derive: which entries y[n, o] does x[n, i] change, and with which coefficient? Which does
W[o, i] change? And b[o]? Each gradient sums dy over exactly those entries.
"""

DERIVATION = r"""
**1. The scalar case.** One row, one input, one output: $y = x w + b$. Write $\bar x$, $\bar w$,
$\bar b$ in terms of $\bar y$. (Three one-line answers.)

**2. One entry, indices kept.** Now $y_{no} = \sum_i x_{ni} W_{oi} + b_o$.

- Fix one input entry $x_{ni}$. In which entries $y_{n'o}$ does it appear (which $n'$, which $o$)?
  With which coefficient? The chain rule sums $\bar y_{n'o}$ times that coefficient over all of them:
  write $\bar x_{ni}$ as a sum over one index.
- Fix one weight $W_{oi}$. Which rows $n$ use it? Write $\bar W_{oi}$ as a sum over one index.
- Fix $b_o$. Write $\bar b_o$.

**3. Vectorise.** Each of your sums is over one shared index: recognise it as a matrix product (or
a sum along an axis) of $\bar y$ with $W$ or $x$, possibly transposed.

**4. Check by shapes.** A gradient has the shape of the variable it is the gradient of. Write the
shape of each operand beside your three results: $\bar x$ must come out $(N, \text{in})$, $\bar W$
$(\text{out}, \text{in})$, $\bar b$ $(\text{out})$. Which products of $\bar y$ $(N, \text{out})$ with
$W$ $(\text{out}, \text{in})$ or $x$ $(N, \text{in})$ give those shapes?

**5. Leading axes.** With $x$ of shape $(B, T, \text{in})$, which axes are "rows"? Over which axes must
$\bar W$ and $\bar b$ sum, and what shape must $\bar x$ have at the end? What about a matrix input
$(B, \text{in})$, as in the pooler?

**On paper, before coding:** with in $=$ out (a square $W$), would the shape check still tell you that
a transpose is wrong? Does $\bar b$ depend on $x$ or $W$?
"""

HINTS = (
    "Write the shape next to every operand of your three results. Each gradient has the shape of its "
    "variable, and with the grader's odd sizes (in, out and N all different) only one product of two of "
    "the arrays has it.",
    "Leading axes: every axis but the last is a row axis. Treat them as one axis of N rows before the "
    "products, and give dx the shape of x at the end. A weight or a bias is used by every row of every "
    "sequence, so its gradient sums over all of them.",
    "db: b is copied to every row in the forward, so its gradient is a sum over the rows, of shape (out,), "
    "whether x is a matrix or has a batch and a token axis. See docs/linear.md, \"Backward\" (the rule "
    "on broadcasting) and \"Checking by shapes\".",
)

QUESTIONS = (
    Question(
        "With odd sizes (in, out and N all different), the shapes of $\\bar y$, $W$ and $x$ leave only one "
        "way to combine them into each gradient. Why is that shape argument not enough when $W$ is square "
        "(in = out), as in BERT's attention projections, and what check would you add?",
        "When in = out, $\\bar y W$ and $\\bar y W^\\top$ have the same shape, so a wrong transpose runs and "
        "returns a plausible array. The shape argument only rules out products that do not fit. The check: "
        "a finite-difference test of the backward against the forward (which a transpose fails), or a test "
        "with a non-square $W$."),
    Question(
        "$\\bar W$ and $\\bar b$ sum over every row of every sequence of the batch, not only over one "
        "sequence, and not as a mean. Explain why from the forward, and say what would happen in training "
        "if the backward averaged instead of summing.",
        "The same $W$ and $b$ are used by every row (they are broadcast along the row axes in the forward), "
        "so the loss depends on them through every row and the chain rule adds one term per row. A mean "
        "would divide the true gradient by $N$: the training would still go downhill but with a learning "
        "rate effectively $N$ times smaller, different for each layer depending on its number of rows, and "
        "the gradient check would fail by the constant factor $1/N$."),
    Question(
        "Count the multiply-adds of the forward and of the backward of a linear layer. Why does "
        "`need_dx=False` exist, and where in BERT is it used?",
        "The forward is one product, $N \\cdot \\text{in} \\cdot \\text{out}$ multiply-adds; the backward is two "
        "of the same size ($\\bar x$ and $\\bar W$), so twice the forward. The layer that reads the model's "
        "input (the first one, or the lowest layer that trains when those below are frozen) needs no "
        "$\\bar x$: skipping it saves a third of that layer's training cost."),
)

SANITY = (
    ("**The bias gradient does not depend on $x$ or $W$.** Two different inputs with the same upstream "
     "gradient must give the same `db` (and the sum of `dy` over its rows).",
     """
from minibert.ops.linear import linear_forward
rng = np.random.default_rng(0)
dy = rng.normal(size=(5, 3))
w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
db1 = mine.linear_backward(dy, linear_forward(rng.normal(size=(5, 4)), w, b)[1])[2]
db2 = mine.linear_backward(dy, linear_forward(rng.normal(size=(5, 4)) * 10, w, b)[1])[2]
print("db the same for two inputs:", np.allclose(db1, db2), "| shape", np.shape(db1), "(expected (3,))")
"""),
    ("**Shapes first.** For a 3-D input every gradient must have the shape of its variable.",
     """
from minibert.ops.linear import linear_forward
rng = np.random.default_rng(1)
x, w, b = rng.normal(size=(2, 5, 4)), rng.normal(size=(3, 4)), rng.normal(size=3)
y, cache = linear_forward(x, w, b)
dx, dw, db = mine.linear_backward(np.ones_like(y), cache)
print("dx", np.shape(dx), "vs x", x.shape, "| dW", np.shape(dw), "vs W", w.shape, "| db", np.shape(db), "vs b", b.shape)
"""),
)


def _case(t, lead, n_in, n_out, bias):
    x = t.rng.normal(size=(*lead, n_in))
    w = t.rng.normal(size=(n_out, n_in))
    b = t.rng.normal(size=n_out) if bias else None
    dy = t.rng.normal(size=(*lead, n_out))
    return x, w, b, dy


def _db_shape_hint(db, lead, n_out) -> str:
    """What the shape of a wrong db says about the axes it summed over."""
    shape = getattr(db, "shape", None)
    if shape == ():
        return ("db is a single number: the sum also ran over the output axis. b has one entry per output, "
                "so db sums over the rows only and keeps the last axis.")
    if shape is not None and len(shape) >= 2 and shape[-1] == n_out:
        return (f"db has shape {shape}: it summed over some of the row axes but not all. Every axis but the "
                f"last is a row axis (here {len(lead)} of them): b is added to every row of every sequence.")
    return "db has the shape of b, (out,): one entry per output."


def _check_case(t, lead, n_in, n_out, bias, need_dx=True):
    x, w, b, dy = _case(t, lead, n_in, n_out, bias)
    _, cache = linear_forward(x, w, b)
    (dx_ref, dw_ref, db_ref) = linear_backward(dy, linear_forward(x.copy(), w.copy(), b)[1], need_dx)
    got = t.unpack(t.call("linear_backward", dy.copy(), cache, need_dx), "linear_backward", "dx, dW, db")
    dx, dw, db = got
    x2, dy2 = x.reshape(-1, n_in), dy.reshape(-1, n_out)
    rows = x2.shape[0]

    def loss():
        return float((linear_forward(x, w, b)[0] * dy).sum())

    if need_dx:
        t.gradient("dx", dx, dx_ref, loss, x, candidates=[
            (dy2 @ w, "dx has the right values but is flattened to (N, in): give it the shape of x."),
            (lambda: (dy2 @ w.T).reshape(x.shape) if n_in == n_out else None,
             "dx uses W transposed (possible only because W is square here): x[n, i] meets W[o, i] in y[n, o], "
             "so dx[n, i] pairs row n of dy with column i of W."),
        ], hint="dx[n, i] collects dy[n, o] times its coefficient in y[n, o], summed over every output o.")
    elif dx is not None:
        raise CheckFailed(f"dx is {type(dx).__name__}, expected None when need_dx=False.",
                          "need_dx=False means the caller does not want dx: return None in its place.")
    t.gradient("dW", dw, dw_ref, loss, w, candidates=[
        (lambda: dy[0].T @ x[0] if len(lead) > 1 else None,
         "dW only sums over the first sequence: every leading axis is a row axis, and W is used by every row "
         "of every sequence."),
        (lambda: x2.T @ dy2 if n_in == n_out else None,
         "dW is the transpose of the right answer (possible only because W is square here): entry [o, i] "
         "pairs output column o of dy with input column i of x."),
        (dw_ref / rows, f"dW is the mean over the {rows} rows, the expected one times 1/{rows}: W is used by "
                        f"every row, so each row's gradient adds in (a sum, not a mean)."),
    ], shape_hint=f"dW has shape {getattr(dw, 'shape', None)}; it must have the shape of W, (out, in) = "
                  f"{w.shape}: your product pairs the operands in the other order (it is the transpose).",
        hint="dW[o, i] collects, over every row n, dy[n, o] times x[n, i].")
    if bias:
        t.gradient("db", db, db_ref, loss, b,
                   candidates=[(dy2.mean(axis=0), f"db is the mean of dy over the rows, the expected one times "
                                f"1/{rows}: each row adds b once, so each row's gradient counts once (a sum).")],
                   shape_hint=_db_shape_hint(db, lead, n_out),
                   hint="b is added to every row, so db collects dy from every row.")
    elif db is not None:
        raise CheckFailed(f"db is {type(db).__name__}, expected None: this layer has no bias "
                          f"(cache[2], has_bias, is False).", "return None for db when has_bias is False.")


def check(t):
    with t.check("dx, dW, db for x (3, 5, 7), W (4, 7), with a bias"):
        _check_case(t, (3, 5), 7, 4, bias=True)
    with t.check("x as a matrix (6, 5), W (3, 5), with a bias (the pooler's and classifier's case)"):
        _check_case(t, (6,), 5, 3, bias=True)
    with t.check("x as a matrix (6, 7), W (9, 7), no bias (db must be None)"):
        _check_case(t, (6,), 7, 9, bias=False)
    with t.check("need_dx=False (dx must be None), x (2, 3, 5)"):
        _check_case(t, (2, 3), 5, 4, bias=True, need_dx=False)
    with t.check("a square W (6, 6), x (2, 3, 6), with a bias (a transpose has the right shape here)"):
        _check_case(t, (2, 3), 6, 6, bias=True)


EXERCISE = Exercise(
    number=2, name="linear_backward", title="the backward pass of a linear layer",
    functions=(linear_backward,),
    imports="import numpy as np\n\nfrom minibert.ops.linear import linear_forward   # given: it makes the cache",
    minutes=35,
    assesses="the three matrix-calculus rules every other backward reuses; shapes as a check on a derivation "
             "(and where it stops working: square W); a broadcast value's gradient sums over the broadcast axes",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/backprop.md", "docs/linear.md"), notebooks=("01_layers_and_gradcheck.ipynb",),
    contracts=(("linear_backward", CONTRACT),), derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
