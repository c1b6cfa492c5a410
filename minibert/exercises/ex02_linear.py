"""Exercise 02: the backward pass of a linear layer (minibert.ops.linear.linear_backward)."""
from __future__ import annotations

from minibert.exercises.base import CheckFailed, Exercise
from minibert.ops.linear import linear_backward, linear_forward

STATEMENT = r"""
## The layer

A dense layer computes $y = x W^\top + b$ for every row of $x$:

$$
y_{no} = \sum_i x_{ni} W_{oi} + b_o, \qquad x: (N, \text{in}), \quad W: (\text{out}, \text{in}), \quad
b: (\text{out}), \quad y: (N, \text{out}).
$$

$W$ is stored $(\text{out}, \text{in})$, PyTorch's and Hugging Face's layout. In BERT $x$ has a batch
and a token axis, $(B, T, \text{in})$: the layer treats the $N = BT$ rows alike.

## What to derive

Given the upstream gradient $\bar y = \partial L / \partial y$ (same shape as $y$), derive

$$
\bar x = \bar y\, W, \qquad \bar W = \bar y^\top x, \qquad \bar b = \sum_n \bar y_{n} .
$$

Start from one entry: $\partial y_{no} / \partial W_{oi} = x_{ni}$, and $W_{oi}$ touches every row $n$,
so $\bar W_{oi} = \sum_n \bar y_{no}\, x_{ni}$. Do the same for $x_{ni}$ (it touches every output $o$)
and $b_o$. Then write each sum as a matrix product and check it by its shape: a gradient always has
the shape of the array it is the gradient of.

## Your function

`linear_backward(dy, cache, need_dx=True)` receives the `cache` that minibert's own
`linear_forward(x, weight, bias)` returned, `(x, weight, has_bias)`, and returns `(dx, dW, db)`.
`dx` is `None` when `need_dx` is False (the first layer needs no gradient for its input), `db` is
`None` when the layer had no bias. `x` and `dy` may have any number of leading axes.
"""

HINTS = (
    "Write the shape next to each operand: `dy` is (N, out), `W` is (out, in), so `dx` (N, in) is "
    "`dy @ W`: (N, out) @ (out, in).",
    "With leading axes (B, T, ...), reshape `x` to (N, in) and `dy` to (N, out) first "
    "(`a.reshape(-1, a.shape[-1])`), and give `dx` the shape of `x` at the end.",
    "`dW` must have the shape of `W`, (out, in): that is `dy2.T @ x2`, the sum over all N rows at once. "
    "`db` sums `dy` over all rows (not the mean).",
)


def _case(t, lead, n_in, n_out, bias):
    x = t.rng.normal(size=(*lead, n_in))
    w = t.rng.normal(size=(n_out, n_in))
    b = t.rng.normal(size=n_out) if bias else None
    dy = t.rng.normal(size=(*lead, n_out))
    return x, w, b, dy


def _check_case(t, lead, n_in, n_out, bias, need_dx=True):
    x, w, b, dy = _case(t, lead, n_in, n_out, bias)
    _, cache = linear_forward(x, w, b)
    (dx_ref, dw_ref, db_ref) = linear_backward(dy, linear_forward(x.copy(), w.copy(), b)[1], need_dx)
    got = t.unpack(t.call("linear_backward", dy.copy(), cache, need_dx), "linear_backward", "dx, dW, db")
    dx, dw, db = got
    x2, dy2 = x.reshape(-1, n_in), dy.reshape(-1, n_out)

    def loss():
        return float((linear_forward(x, w, b)[0] * dy).sum())

    if need_dx:
        t.gradient("dx", dx, dx_ref, loss, x,
                   candidates=[((dy2 @ w), "dx = dy @ W is right, but reshape it back to the shape of x.")],
                   hint="dx[n, i] = sum over o of dy[n, o] W[o, i]: one matrix product, dy @ W.")
    elif dx is not None:
        raise CheckFailed(f"dx is {type(dx).__name__}, expected None when need_dx=False.",
                          "need_dx=False means the caller does not want dx: return None in its place.")
    t.gradient("dW", dw, dw_ref, loss, w,
               candidates=[(lambda: dy[0].T @ x[0] if len(lead) > 1 else None,
                            "dW only sums over the first sequence: flatten every leading axis into N rows "
                            "first, so that the product sums over all of them.")],
               shape_hint="dW must have the shape of W, (out, in): dy^T @ x, not x^T @ dy.",
               hint="dW[o, i] = sum over every row n of dy[n, o] x[n, i].")
    if bias:
        t.gradient("db", db, db_ref, loss, b,
                   candidates=[(dy2.mean(axis=0), "db is the sum of dy over the rows, not the mean: each row "
                                "adds b once, so each row's gradient counts once.")],
                   shape_hint="db has the shape of b, (out,): sum dy over every axis but the last.",
                   hint="b is added to every row, so db = the sum of dy over all rows.")
    elif db is not None:
        raise CheckFailed(f"db is {type(db).__name__}, expected None: this layer has no bias "
                          f"(cache[2], has_bias, is False).", "return None for db when has_bias is False.")


def check(t):
    with t.check("dx, dW, db for x (3, 5, 7), W (4, 7), with a bias"):
        _check_case(t, (3, 5), 7, 4, bias=True)
    with t.check("x as a matrix (6, 7), W (9, 7), no bias (db must be None)"):
        _check_case(t, (6,), 7, 9, bias=False)
    with t.check("need_dx=False (dx must be None), x (2, 3, 5)"):
        _check_case(t, (2, 3), 5, 4, bias=True, need_dx=False)


EXERCISE = Exercise(
    number=2, name="linear_backward", title="the backward pass of a linear layer",
    functions=(linear_backward,),
    imports="import numpy as np\n\nfrom minibert.ops.linear import linear_forward   # given: it makes the cache",
    minutes=30,
    assesses="the three matrix-calculus rules every other backward reuses; shapes as a check on a derivation; "
             "flattening leading axes",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/backprop.md", "docs/linear.md"), notebooks=("01_layers_and_gradcheck.ipynb",),
)
