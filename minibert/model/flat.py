"""Flat parameter and gradient buffers: every parameter is a view into one contiguous array.

A model's `params` is still a dict keyed by Hugging Face's state-dict names, with the same
shapes and dtype as ever; what changed is where the numbers live:

    data = [ word_embeddings | position | ... | dense weights ... | biases, LayerNorm ... ]   one array
    params["embeddings.word_embeddings.weight"] = data[0 : V*H].reshape(V, H)                a view
    grad = [ the same layout ]                                                                one array
    grads[name] = the same slice of grad, reshaped                                            a view

Why one array and views:
- an update of every parameter is one operation over `data` instead of one per parameter: on a
  GPU each operation is a kernel launch (~5-10 us), and BERT-base has ~200 parameter tensors, so
  AdamW's ~14 operations per tensor cost thousands of launches per step; over the flat buffers it
  is one fused kernel per run of parameters (minibert/train/optim.py), and zero_grad is one fill;
- data-parallel training (issue 18) sums every gradient over the workers: one all-reduce of
  `grad`, not one per tensor;
- the dict keeps its names, shapes and numbers, so checkpoints, the forward and the backward do
  not change. Writes must go *into* the views (`params[name][...] = value`, `+=`): a dict entry
  rebound to a new array would leave the flat buffer, and the optimizer would update numbers the
  model no longer reads. So the dicts refuse assignment (ParameterDict) with a message saying so.

Layout: the matrices (2-D: embedding tables, Linear weights) first, then the vectors (biases,
LayerNorm gamma and beta), each group in the dict's order. AdamW decays exactly the matrices, so
the trainable parameters fall into two runs with one weight decay each, whatever the number of
layers (and a bottom-up freeze, embeddings + the first K layers, removes a leading part of each
run). Every parameter of a model has the model's dtype, so there is one `data` and one `grad`
array; a model mixing dtypes would hold one FlatBuffers per dtype.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from minibert.backend import get_xp


class Slot(NamedTuple):
    """Where one parameter lives in the flat arrays: data[start:stop].reshape(shape)."""
    start: int
    stop: int
    shape: tuple


class ParameterDict(dict):
    """name -> view into a FlatBuffers' array: a plain dict to read, iterate and copy, that refuses
    to have its entries replaced (the new array would not be in the flat buffer). `buffers` is the
    FlatBuffers the views belong to (the optimizer runs over its flat arrays)."""

    def __init__(self, views: dict, buffers: "FlatBuffers"):
        super().__init__(views)
        self.buffers = buffers

    def _refuse(self, *args, **kwargs):
        raise TypeError("a model's params and grads are views into one flat buffer (minibert/model/flat.py): "
                        "write into them (params[name][...] = value, params[name] += delta), do not replace "
                        "or remove entries")

    def __setitem__(self, name, value):
        """Only `d[name] += x` (which stores back the very array it updated in place) passes."""
        if value is not self.get(name):
            self._refuse()

    __delitem__ = update = pop = popitem = setdefault = clear = __ior__ = _refuse

    def __reduce__(self):                     # copy.copy / deepcopy: a plain dict of the arrays
        return dict, (dict(self),)


class FlatBuffers:
    """Every parameter of a model and its gradient, each a view into one contiguous array.

        buffers = FlatBuffers({"dense.weight": (4, 3), "dense.bias": (4,)}, numpy.float32)
        buffers.params["dense.weight"]     # (4, 3) view into buffers.data, zeros until written
        buffers.grads["dense.bias"]        # (4,) view into buffers.grad
        buffers.zero_grad()                # one fill of buffers.grad

    The arrays are made with the selected backend (zeros). `section(prefix)` gives the
    parameters under a prefix ("bert.") without it, sharing the same arrays: the BertModel
    inside a model with heads lives in its parent's buffers.
    """

    def __init__(self, shapes: dict, dtype, xp=None):
        xp = get_xp() if xp is None else xp
        self.dtype = dtype
        self.slots = {}
        offset = 0
        for name in sorted(shapes, key=lambda k: len(shapes[k]) < 2):    # stable: matrices, then vectors
            shape = tuple(shapes[name])
            size = math.prod(shape)
            self.slots[name] = Slot(offset, offset + size, shape)
            offset += size
        self.size = offset
        self.data = xp.zeros(offset, dtype=dtype)     # every parameter
        self.grad = xp.zeros(offset, dtype=dtype)     # every gradient, in the same layout
        self.slots = {name: self.slots[name] for name in shapes}     # the caller's order (Hugging Face's)
        self.params = ParameterDict({k: self._view(self.data, s) for k, s in self.slots.items()}, self)
        self.grads = ParameterDict({k: self._view(self.grad, s) for k, s in self.slots.items()}, self)

    @staticmethod
    def _view(flat, slot: Slot):
        return flat[slot.start:slot.stop].reshape(slot.shape)

    def section(self, prefix: str) -> "FlatBuffers":
        """The parameters named `prefix` + name, under `name`, in the same arrays (nothing copied)."""
        sub = object.__new__(FlatBuffers)
        sub.dtype, sub.data, sub.grad, sub.size = self.dtype, self.data, self.grad, self.size
        sub.slots = {k[len(prefix):]: s for k, s in self.slots.items() if k.startswith(prefix)}
        sub.params = ParameterDict({k: self._view(sub.data, s) for k, s in sub.slots.items()}, sub)
        sub.grads = ParameterDict({k: self._view(sub.grad, s) for k, s in sub.slots.items()}, sub)
        return sub

    def covers_all(self) -> bool:
        """Whether these names own the whole flat arrays (False for a section)."""
        return sum(s.stop - s.start for s in self.slots.values()) == self.size

    def zero_grad(self) -> None:
        """Every gradient to zero: one fill of the flat array (a section fills its own views only)."""
        if self.covers_all():
            self.grad.fill(0)
        else:
            for g in self.grads.values():
                g.fill(0)

    def load(self, values: dict) -> None:
        """Copy {name: array} (host or device) into the parameters' views, on their device and dtype."""
        for name, value in values.items():
            target = self.params[name]
            target[...] = get_xp(target).asarray(value, dtype=target.dtype)
