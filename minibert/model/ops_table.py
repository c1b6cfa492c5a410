"""The op table: which forward/backward functions a model runs, one field per op.

BertModel and BertForPreTraining never call minibert/ops/ by name: every block (blocks.py, the MLM
head) calls the op it needs through a table it is given,

    out, cache = ops.layer_norm_forward(x, gamma, beta, eps)      # not layer_norm_forward(...)

and the model passes its table down: `BertModel(config, ops=my_ops)`, default REFERENCE_OPS
(minibert's own functions). A table is a frozen dataclass of plain functions with minibert's
signatures, so another implementation of an op (a learner's, a faster one, a broken one for a test)
goes into a model by building a table, not by patching a module:

    ops = REFERENCE_OPS.replace(layer_norm_forward=my_forward, layer_norm_backward=my_backward)
    model = BertForPreTraining(config, ops=ops)

`python -m minibert.exercises capstone WS` builds its table from a learner's exercise files this way.

What is in the table: the functions the model calls itself. Softmax is not: the model only runs it
inside scaled dot-product attention, so it is part of the attention op (a learner's attention calls
the learner's softmax). The optimizer, the learning-rate schedule and gradient clipping are not
either: they act on the parameters after the backward, outside the model (the capstone's training
step takes them as functions of their own).

Fused fields (FUSED_OPS): a few steps that the readable ops do one after the other are also in the
table as one fused function (minibert/ops/fused.py: linear's bias add + GELU, dropout + residual add
+ LayerNorm), which gives the same numbers with fewer passes over memory. A block runs the fused
field when the table has one (not None), else the readable composition. `replace` drops a fused
field when it replaces any op the fused one stands for (unless it is given too), so a learner's
GELU or a counting wrapper is what runs, never hidden behind a fused function.

A block keeps the table its forward used in its cache (`cache.ops`), so its backward runs the
backwards of the same ops: a forward with one table and a backward with another cannot happen.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from minibert.ops.activations import (gelu_backward, gelu_forward, gelu_tanh_backward, gelu_tanh_forward,
                                      tanh_backward, tanh_forward)
from minibert.ops.attention import (merge_heads, scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.embedding import embedding_backward, embedding_forward
from minibert.ops.fused import (bias_gelu_backward, bias_gelu_forward, residual_layer_norm_backward,
                                residual_layer_norm_forward)
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward
from minibert.ops.losses import cross_entropy_backward, cross_entropy_forward


@dataclasses.dataclass(frozen=True)
class Ops:
    """The forward/backward functions a BERT model runs. Each field has the signature of the
    minibert function of the same name (minibert/ops/), e.g. linear_backward(dy, cache) -> (dx, dW, db)."""
    linear_forward: Callable                  # y = x W^T + b                    (..., in) -> (..., out)
    linear_backward: Callable
    embedding_forward: Callable               # rows of a table                  (B, T) ids -> (B, T, H)
    embedding_backward: Callable              # scatter-add into dweight when given
    layer_norm_forward: Callable              # over the last axis               (..., H) -> (..., H)
    layer_norm_backward: Callable
    gelu_forward: Callable                    # hidden_act "gelu" (exact, erf)
    gelu_backward: Callable
    gelu_tanh_forward: Callable               # hidden_act "gelu_new" (tanh approximation)
    gelu_tanh_backward: Callable
    tanh_forward: Callable                    # the pooler's activation
    tanh_backward: Callable
    dropout_forward: Callable                 # inverted dropout, mask from the model's generator
    dropout_backward: Callable
    scaled_dot_product_attention_forward: Callable    # softmax(Q K^T / sqrt(d) + mask) V, softmax inside
    scaled_dot_product_attention_backward: Callable
    split_heads: Callable                     # (B, T, H) -> (B, A, T, d)
    merge_heads: Callable                     # (B, A, T, d) -> (B, T, H)
    cross_entropy_forward: Callable           # mean over the labelled rows (-100 ignored)
    cross_entropy_backward: Callable
    # fused fast paths (minibert/ops/fused.py); None: the block runs the readable ops above
    bias_gelu_forward: Callable | None = None             # linear's bias add + exact GELU, over the matmul
    bias_gelu_backward: Callable | None = None            # GELU backward in place, + the bias gradient
    residual_layer_norm_forward: Callable | None = None   # LayerNorm(x + sub * dropout mask)
    residual_layer_norm_backward: Callable | None = None

    def activation(self, hidden_act: str) -> tuple[Callable, Callable]:
        """(forward, backward) of the config's hidden_act: "gelu" (exact) or "gelu_new" (tanh form)."""
        if hidden_act == "gelu":
            return self.gelu_forward, self.gelu_backward
        if hidden_act == "gelu_new":
            return self.gelu_tanh_forward, self.gelu_tanh_backward
        raise ValueError(f"unknown hidden_act {hidden_act!r}; minibert has 'gelu' and 'gelu_new'")

    def replace(self, **functions) -> "Ops":
        """A copy of this table with some functions replaced (names as the fields)."""
        known = self.names() + list(FUSED_OPS)
        unknown = sorted(set(functions) - set(known))
        if unknown:
            raise TypeError(f"the op table has no field {', '.join(unknown)}; its fields: {', '.join(known)}")
        for fused, stands_for in FUSED_OPS.items():     # a replaced op must run: drop the fused field over it
            if fused not in functions and set(stands_for) & set(functions):
                functions[fused] = None
        return dataclasses.replace(self, **functions)

    def without_fused(self) -> "Ops":
        """This table with every fused field None: the model runs the readable ops only."""
        return dataclasses.replace(self, **{name: None for name in FUSED_OPS})

    @classmethod
    def names(cls) -> list[str]:
        """The names of the ops (the fields a learner's implementation can fill), in order; not the fused ones."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in FUSED_OPS]


FUSED_OPS = {   # fused field -> the ops whose work it does (replacing any of them drops the fused field)
    "bias_gelu_forward": ("linear_forward", "linear_backward", "gelu_forward", "gelu_backward"),
    "bias_gelu_backward": ("linear_forward", "linear_backward", "gelu_forward", "gelu_backward"),
    "residual_layer_norm_forward": ("dropout_forward", "dropout_backward", "layer_norm_forward",
                                    "layer_norm_backward"),
    "residual_layer_norm_backward": ("dropout_forward", "dropout_backward", "layer_norm_forward",
                                     "layer_norm_backward"),
}


REFERENCE_OPS = Ops(
    linear_forward=linear_forward, linear_backward=linear_backward,
    embedding_forward=embedding_forward, embedding_backward=embedding_backward,
    layer_norm_forward=layer_norm_forward, layer_norm_backward=layer_norm_backward,
    gelu_forward=gelu_forward, gelu_backward=gelu_backward,
    gelu_tanh_forward=gelu_tanh_forward, gelu_tanh_backward=gelu_tanh_backward,
    tanh_forward=tanh_forward, tanh_backward=tanh_backward,
    dropout_forward=dropout_forward, dropout_backward=dropout_backward,
    scaled_dot_product_attention_forward=scaled_dot_product_attention_forward,
    scaled_dot_product_attention_backward=scaled_dot_product_attention_backward,
    split_heads=split_heads, merge_heads=merge_heads,
    cross_entropy_forward=cross_entropy_forward, cross_entropy_backward=cross_entropy_backward,
    bias_gelu_forward=bias_gelu_forward, bias_gelu_backward=bias_gelu_backward,
    residual_layer_norm_forward=residual_layer_norm_forward, residual_layer_norm_backward=residual_layer_norm_backward,
)
"""minibert's own functions: the table a model uses unless given another."""
