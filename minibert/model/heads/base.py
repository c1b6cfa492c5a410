"""What every "BertModel under `bert.` + heads" model shares.

    BertWithHeads       modes (train/eval), the flat buffers, zero_grad, num_parameters, freezing:
                        the base of BertForPreTraining and of the fine-tuning heads
    BertWithTaskHead    a fine-tuning head's construction, loading (from_pretrained, with
                        transformers' loading_info) and saving (save_pretrained)
"""
from __future__ import annotations

import contextlib
import warnings

import numpy

from minibert import backend
from minibert.backend import get_xp
from minibert.backend.xp import host_ints
from minibert.model.bert import BertModel, bert_parameter_shapes, init_parameters
from minibert.model.config import BertConfig
from minibert.model.flat import FlatBuffers
from minibert.model.io import (WEIGHTS_NAME, CheckpointError, assign_params, check_weights, find_model_folder,
                               read_bert_checkpoint, save_bert_weights)
from minibert.model.ops_table import Ops
from minibert.ops.losses import IGNORE_INDEX


class BertWithHeads:
    """What every model "BertModel under `bert.` + heads" shares: modes, gradients, freezing.

    Subclasses (BertForPreTraining in pretraining.py; the fine-tuning heads, through BertWithTaskHead) call
    `_build(config, seed, dtype, head_shapes, head_seed, ...)`, which sets self.config, self.buffers,
    self.params / self.grads (the BertModel's parameters under "bert." plus the heads' own, every name
    as in transformers, each a view into the one flat buffer of minibert/model/flat.py), self.bert (a
    BertModel living in that buffer's "bert." section) and self.dtype.
    """

    def _build(self, config: BertConfig, seed: int, dtype, head_shapes: dict, head_seed, params: dict | None = None,
               add_pooling_layer: bool = True, ops: Ops | None = None) -> None:
        """Allocate one flat buffer for BertModel's parameters (under "bert.") and the heads', then fill it:
        from `params` (every name) if given, else BERT's init (BertModel's seeded by `seed`, the heads'
        by `head_seed`, as separate streams so the encoder's numbers do not depend on the heads)."""
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        dt = backend.resolve_dtype(dtype)
        shapes = {"bert." + k: s for k, s in bert_parameter_shapes(config, add_pooling_layer).items()}
        shapes.update(head_shapes)
        xp = get_xp(*params.values()) if params else None     # the device of the given values, or the selected one
        self.buffers = FlatBuffers(shapes, dt, xp=xp)
        self.params, self.grads = self.buffers.params, self.buffers.grads
        bert_params = None if params is None else {k[5:]: v for k, v in params.items() if k.startswith("bert.")}
        self.bert = BertModel(config, seed=seed, dtype=dt, params=bert_params, add_pooling_layer=add_pooling_layer,
                              ops=ops, buffers=self.buffers.section("bert."))
        self.dtype = self.bert.dtype
        if params is None:
            self.buffers.load(init_parameters(head_shapes, config, numpy.random.default_rng(head_seed), self.dtype))
        else:
            self.buffers.load({k: params[k] for k in head_shapes})
        self._cache = None

    @property
    def training(self) -> bool:
        return self.bert.training

    def train(self):
        """Dropout on (every dropout, the heads' included: they use BertModel's generator and mode)."""
        self.bert.train()
        return self

    def eval(self):
        """Dropout off."""
        self.bert.eval()
        return self

    @contextlib.contextmanager
    def inference(self):
        """`with model.inference(): model.forward(...)`: dropout off and no caches kept, in the heads and in
        BertModel (see BertModel.inference); the previous mode comes back on exit."""
        with self.bert.inference():
            self._cache = None
            yield self

    def _keep(self, cache):
        """Keep a forward's cache for the backward, unless inside `with model.inference()`."""
        self._cache = cache if self.bert.keep_cache else None

    def zero_grad(self):
        """Every gradient to zero: one fill of the flat gradient array."""
        self.buffers.zero_grad()

    def num_parameters(self) -> int:
        return sum(int(v.size) for v in self.params.values())

    def freeze(self, embeddings: bool = False, layers: int = 0):
        """Freeze the embeddings and the first `layers` encoder layers (BertModel.freeze); the heads
        always train. A frozen word-embedding table is also a frozen tied MLM decoder. Pass
        frozen_names() to AdamW(frozen=...)."""
        self.bert.freeze(embeddings, layers)
        return self

    def frozen_names(self) -> list[str]:
        """Names of the frozen parameters (for AdamW(..., frozen=...))."""
        return ["bert." + k for k in self.bert.frozen_names()]


POOLER = ("pooler.dense.weight", "pooler.dense.bias")


class BertWithTaskHead(BertWithHeads):
    """What the three heads share: BertModel under `bert.`, a small head, loading and saving.

    Subclasses set `add_pooling_layer`, `head_shapes(config)`, forward and backward.
    """

    add_pooling_layer = True

    def __init__(self, config: BertConfig, seed: int = 0, dtype="float32", params: dict | None = None):
        """A fresh model: BERT's init everywhere (normal(0, initializer_range) weights, zero biases).
        `params` (every name, device arrays) replaces the init, as from_pretrained does."""
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.check_config(config)
        self._build(config, seed, dtype, self.head_shapes(config), head_seed=[seed, 3], params=params,
                    add_pooling_layer=self.add_pooling_layer)

    @classmethod
    def check_config(cls, config: BertConfig) -> None:
        """Raise if the config cannot describe this head (QA needs exactly 2 outputs)."""

    @classmethod
    def head_shapes(cls, config: BertConfig) -> dict:
        raise NotImplementedError

    # -- freezing (modes and gradients: BertWithHeads above) -----------------
    def _encoder_fully_frozen(self) -> bool:
        """True when nothing below the head (pooler aside) needs a gradient."""
        return self.bert.frozen_embeddings and self.bert.frozen_layers == self.config.num_hidden_layers

    def _take_cache(self, loss_needs: str):
        """The last forward's cache, taken (one backward per forward); that forward must have computed a loss,
        for which it needed `loss_needs` ("labels", ...)."""
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() with labels first (one backward per forward; a forward "
                               "inside `with model.inference()` keeps no cache)")
        cache, self._cache = self._cache, None
        if cache.loss is None:
            raise RuntimeError(f"backward() needs a forward() with {loss_needs}")
        return cache

    # -- files ---------------------------------------------------------------
    def save_pretrained(self, folder):
        """Write config.json + model.safetensors (each atomically) that transformers'
        `<this class>.from_pretrained(folder)` loads with nothing missing or unexpected."""
        return save_bert_weights(self, folder, architectures=(type(self).__name__,))

    @classmethod
    def from_pretrained(cls, folder, dtype="float32", seed: int = 0, require_head: bool = False,
                        ignore_mismatched_sizes: bool = False, **config_overrides):
        """Load a folder with config.json + model.safetensors (transformers' layout, `bert.*` or bare names).

        - A plain BertModel or a pretraining checkpoint has no head: the head is new, initialised
          with BERT's rule (seeded by `seed`), and a warning names the new weights. With
          `require_head=True` that is an error naming the missing weights instead.
        - The sequence head needs the pooler: a checkpoint without one (e.g. a token-classification
          checkpoint) gets a new pooler, named in the same warning. The token and span heads have no
          pooler: a checkpoint's `bert.pooler.*` is not used (warned, as other unused weights such
          as a pretraining checkpoint's `cls.*`). Both as transformers does.
        - `config_overrides` change the loaded config first (`num_labels=5`, `id2label={...}`,
          `classifier_dropout=0.2`, ...). A checkpoint head whose shape does not fit (another number
          of labels) is an error, unless `ignore_mismatched_sizes=True`: then it is re-initialised.

        Returns the model in eval mode (as transformers); `model.loading_info` lists
        missing_keys (new weights), unexpected_keys (unused) and mismatched_keys.
        """

        folder = find_model_folder(folder)
        config = BertConfig.load(folder)
        for field, value in config_overrides.items():
            if field.startswith("_") or not hasattr(config, field):
                raise TypeError(f"from_pretrained got {field!r}, which is not a BertConfig field")
            setattr(config, field, value)
        config.validate()
        cls.check_config(config)
        folder, encoder, rest = read_bert_checkpoint(folder, config)
        unused = sorted(rest)
        if not cls.add_pooling_layer:                     # transformers' add_pooling_layer=False
            unused += ["bert." + k for k in POOLER if encoder.pop(k, None) is not None]
        shapes = cls.head_shapes(config)
        head = {k: rest[k] for k in shapes if k in rest}
        unused = [k for k in unused if k not in head]
        mismatched = [(k, tuple(v.shape), shapes[k]) for k, v in head.items() if tuple(v.shape) != shapes[k]]
        if mismatched and not ignore_mismatched_sizes:
            what = "; ".join(f"{k} has shape {s} in the checkpoint but {e} in the model" for k, s, e in mismatched)
            raise CheckpointError(
                f"{folder}: the head does not fit {cls.__name__} with num_labels={config.num_labels}: {what}. "
                f"Load with the checkpoint's number of labels, or pass ignore_mismatched_sizes=True to "
                f"re-initialise the head")
        for k, _, _ in mismatched:
            del head[k]
        check_weights(head, folder / WEIGHTS_NAME)
        missing_head = [k for k in shapes if k not in head]
        if require_head and missing_head:
            raise CheckpointError(f"{folder} has no trained {cls.__name__} head: missing "
                                  f"{', '.join(missing_head)} (a plain BertModel or pretraining checkpoint?)")
        missing_pooler = ["bert." + k for k in POOLER if cls.add_pooling_layer and k not in encoder]
        missing = missing_pooler + missing_head

        # Every encoder weight comes from the file (zeros until assigned); the head, and a missing
        # pooler, start from BERT's init (the head first: the same numbers as a fresh model's head).
        dt = backend.resolve_dtype(dtype)
        encoder_shapes = bert_parameter_shapes(config, cls.add_pooling_layer)
        params = {"bert." + k: backend.to_device(numpy.zeros(s), dtype=dt) for k, s in encoder_shapes.items()}
        fresh = {**shapes, **{k: encoder_shapes[k[5:]] for k in missing_pooler}}
        params.update(init_parameters(fresh, config, numpy.random.default_rng([seed, 3]), dt))
        arrays = {"bert." + k: v for k, v in encoder.items()}
        arrays.update(head)
        assign_params(params, arrays, where=str(folder / "model.safetensors"), allow_missing=missing)
        model = cls(config, dtype=dt, params=params)
        model.loading_info = {"missing_keys": missing, "unexpected_keys": unused,
                              "mismatched_keys": [k for k, _, _ in mismatched]}
        if missing:
            warnings.warn(f"{cls.__name__} from {folder}: {len(missing)} weights are new, initialised with BERT's "
                          f"rule (normal(0, {config.initializer_range}), zero biases): {', '.join(missing)}; "
                          f"train them before using the model", stacklevel=2)
        if unused:
            warnings.warn(f"{cls.__name__} from {folder}: {len(unused)} weights of the checkpoint are not used: "
                          f"{', '.join(unused[:6])}{' ...' if len(unused) > 6 else ''}", stacklevel=2)
        return model.eval()

    # -- label checks -----------------------------------------------------------
    def _class_labels(self, labels, shape, what="labels"):
        """Integer class indices of the given shape, each in [0, C) or -100 -> (labels on the device,
        the number of labelled entries as a host int). Checked on the host before the copy."""
        xp = get_xp(self.params["bert.embeddings.word_embeddings.weight"])
        if isinstance(labels, (list, tuple, int)):
            labels = numpy.asarray(labels)
        if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
            raise TypeError(f"{what} must be an integer array of class indices, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if tuple(labels.shape) != tuple(shape):
            raise ValueError(f"{what} has shape {tuple(labels.shape)}, expected {tuple(shape)}")
        C = self.config.num_labels
        return labels_to_device(labels, C, xp, lambda bad: (
            f"{what} contains {bad}, outside [0, num_labels={C}) "
            f"(use {IGNORE_INDEX} for an example or token without a label)"))


def labels_to_device(labels, num_classes, xp, message, ignore_index=IGNORE_INDEX):
    """Check integer labels (each in [0, num_classes) or ignore_index), then move them to xp's device.

    Returns (device labels, the number of labelled entries as a host int). Host (NumPy) labels are
    checked with NumPy *before* the copy: nothing is read back from the device. Labels already on
    a device are checked with one device -> host copy of three numbers (labelled entries, bad
    entries, the first bad one: backend.xp.host_ints), not a read per number.
    `message(bad)`: the ValueError's text for an out-of-range label `bad`.
    """
    lx = get_xp(labels)
    flat = labels.reshape(-1)
    labelled = flat != ignore_index
    bad = labelled & ((flat < 0) | (flat >= num_classes))             # (N,) bool
    if lx is numpy:
        count, n_bad = int(labelled.sum()), int(bad.sum())              # host: free
        first_bad = int(flat[bad.argmax()])
    else:
        count, n_bad, first_bad = host_ints(labelled.sum(), bad.sum(), flat[bad.argmax()])   # one read
    if n_bad:
        raise ValueError(message(first_bad))
    return xp.asarray(labels), count


def host_count(x):
    """A count (0-d integer array) for a model's output dict: a host int when `x` is a NumPy array
    (free), else the device 0-d array itself, unread: int() would make the GPU wait, so a trainer
    adds the micro-batches' counts up on the device and reads them with the loss, once per step."""
    return int(x) if isinstance(x, (numpy.ndarray, numpy.generic)) else x
