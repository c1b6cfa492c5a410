"""Fine-tuning heads on top of BertModel, with transformers' parameter names and losses.

Legend: B batch, T tokens, H hidden, C = config.num_labels, x = last hidden state (B, T, H),
pooled = tanh(x[:, 0] W_p^T + b_p) (B, H), drop = dropout with classifier_dropout
(or hidden_dropout_prob when that is None, Hugging Face's rule).

    BertForSequenceClassification   logits = drop(pooled) W_c^T + b_c            (B, C)
        loss: cross-entropy, labels (B,) in [0, C) or -100 (ignored);
              num_labels == 1 or problem_type "regression": MSE, labels (B,) / (B, C) floats
    BertForTokenClassification      logits = drop(x) W_c^T + b_c                  (B, T, C)
        loss: cross-entropy over every token, labels (B, T), -100 ignored; no pooler
    BertForQuestionAnswering        [s | e] = x W_q^T + b_q                        (B, T, 2)
        loss: (CE(s, start) + CE(e, end)) / 2; positions clamped to [0, T], T ignored; no pooler

Names: `bert.*` (BertModel's, prefixed), `classifier.weight` (C, H) / `classifier.bias` (C,),
`qa_outputs.weight` (2, H) / `qa_outputs.bias` (2,), so checkpoints of transformers'
BertForSequenceClassification / TokenClassification / QuestionAnswering load 1:1 and the
other way round. The token and span heads have no `bert.pooler.*` (transformers'
BertModel(add_pooling_layer=False)).

Backward, with g = dL/dlogits from the loss (see docs/heads.md):

    dW = g^T h,  db = sum of g's rows,  dh = g W      (h the classifier's input)
    then dropout's mask, then BertModel.backward (into pooled, or into every token).

Every class: forward(...) -> dict (logits, or start_logits and end_logits; with labels also loss,
and correct / count: host ints, except for regression), backward(weight)
adding weight * d(loss) into self.grads (weight lets gradient accumulation reproduce one big
batch exactly), train/eval/zero_grad/num_parameters, freeze (BertModel.freeze) with
frozen_names() for AdamW(frozen=...), from_pretrained(folder) and save_pretrained(folder).
"""
from __future__ import annotations

import warnings

import numpy

from minibert import backend
from minibert.backend import get_xp
from minibert.checkpoint import CheckpointError, assign_params
from minibert.config import BertConfig
from minibert.heads import BertWithHeads
from minibert.model import BertModel, bert_parameter_shapes, init_parameters
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.linear import linear_backward, linear_forward
from minibert.ops.losses import (IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward, mse_backward,
                                 mse_forward)

POOLER = ("pooler.dense.weight", "pooler.dense.bias")


class _BertWithHead(BertWithHeads):
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
        self.config = config
        dt = backend.resolve_dtype(dtype)
        bert_params = None if params is None else {k[5:]: v for k, v in params.items() if k.startswith("bert.")}
        self.bert = BertModel(config, seed=seed, dtype=dt, params=bert_params, add_pooling_layer=self.add_pooling_layer)
        self.dtype = self.bert.dtype
        self.params = {"bert." + k: v for k, v in self.bert.params.items()}   # the same arrays, prefixed
        self.grads = {"bert." + k: v for k, v in self.bert.grads.items()}
        if params is None:
            head = init_parameters(self.head_shapes(config), config, numpy.random.default_rng([seed, 3]), self.dtype)
        else:
            head = {k: params[k] for k in self.head_shapes(config)}
        self.params.update(head)
        self.grads.update({k: get_xp(v).zeros_like(v) for k, v in head.items()})
        self._cache = None

    @classmethod
    def check_config(cls, config: BertConfig) -> None:
        """Raise if the config cannot describe this head (QA needs exactly 2 outputs)."""

    @classmethod
    def head_shapes(cls, config: BertConfig) -> dict:
        raise NotImplementedError

    # -- modes, gradients, freezing: BertWithHeads (heads.py) ----------------
    def _encoder_fully_frozen(self) -> bool:
        """True when nothing below the head (pooler aside) needs a gradient."""
        return self.bert.frozen_embeddings and self.bert.frozen_layers == self.config.num_hidden_layers

    def _take_cache(self):
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() with labels first (one backward per forward)")
        cache, self._cache = self._cache, None
        return cache

    # -- files ---------------------------------------------------------------
    def save_pretrained(self, folder):
        """Write config.json + model.safetensors (each atomically) that transformers'
        `<this class>.from_pretrained(folder)` loads with nothing missing or unexpected."""
        from minibert.weights import save_bert_weights
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
        from minibert.weights import _check_dtypes, find_model_folder, read_bert_checkpoint

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
        _check_dtypes(head, folder)
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
        """Integer class indices of the given shape, each in [0, C) or -100; a device array."""
        xp = get_xp(self.params["bert.embeddings.word_embeddings.weight"])
        if isinstance(labels, (list, tuple, int)):
            labels = numpy.asarray(labels)
        if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
            raise TypeError(f"{what} must be an integer array of class indices, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if tuple(labels.shape) != tuple(shape):
            raise ValueError(f"{what} has shape {tuple(labels.shape)}, expected {tuple(shape)}")
        labels = xp.asarray(labels)
        C = self.config.num_labels
        bad = labels[(labels != IGNORE_INDEX) & ((labels < 0) | (labels >= C))]
        if bad.size:
            raise ValueError(f"{what} contains {int(bad[0])}, outside [0, num_labels={C}) "
                             f"(use {IGNORE_INDEX} for an example or token without a label)")
        return labels


def _fresh(x):
    """A C-contiguous copy (the start/end logits are strided views of one (B, T, 2) array)."""
    return get_xp(x).ascontiguousarray(x)


class BertForSequenceClassification(_BertWithHead):
    """Sentence (pair) classification or regression on the pooled [CLS] vector.

        model = BertForSequenceClassification(BertConfig.preset("tiny", num_labels=3), seed=0)
        out = model.forward(input_ids, token_type_ids, attention_mask, labels=labels)   # labels (B,)
        out["logits"] (B, C), out["loss"], out["correct"], out["count"]
        model.zero_grad(); model.backward()

    Forward, with p (B, H) the pooled output and m a dropout mask:
        h = p * m / (1 - q)                       (B, H)     q = classifier dropout
        z = h W^T + b                             (B, C)     W: (C, H), b: (C,)
    Classification (num_labels > 1, integer labels y):
        L = -(1/n) sum_{i: y_i != -100} log softmax(z_i)[y_i]          n = labelled rows
    Regression (num_labels == 1, or problem_type "regression"; float labels y, (B,) or (B, C)):
        L = (1/(B C)) sum (z - y)^2
    Float labels with num_labels > 1 would be transformers' multi-label BCE: not implemented, an error.
    """

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size),
                "classifier.bias": (config.num_labels,)}

    @property
    def is_regression(self) -> bool:
        """transformers' rule: problem_type if set, else regression exactly when num_labels == 1."""
        if self.config.problem_type is not None:
            return self.config.problem_type == "regression"
        return self.config.num_labels == 1

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        """Returns {"logits": (B, C)} and with labels "loss" (a device scalar); for classification
        also "correct" and "count" (host ints: argmax hits among the labelled rows, and those rows)."""
        p = self.params
        _, pooled = self.bert.forward(input_ids, token_type_ids, attention_mask)   # (B, H)
        B = pooled.shape[0]
        h, c_drop = dropout_forward(pooled, self.config.classifier_dropout_prob, self.bert.rng, self.training)
        logits, c_lin = linear_forward(h, p["classifier.weight"], p["classifier.bias"])   # (B,H) @ (H,C) -> (B,C)
        out = {"logits": logits}
        c_loss = loss_backward = None
        if labels is not None:
            if self.is_regression:
                target = self._regression_target(labels, B, logits.dtype)
                out["loss"], c_loss = mse_forward(logits.reshape(target.shape), target)
                loss_backward = mse_backward
            else:
                y = self._class_labels(labels, (B,))
                out["loss"], c_loss = cross_entropy_forward(logits, y)
                loss_backward = cross_entropy_backward
                labelled = y != IGNORE_INDEX
                out["correct"] = int(((logits.argmax(axis=1) == y) & labelled).sum())
                out["count"] = int(labelled.sum())
        self._cache = (c_drop, c_lin, c_loss, loss_backward)
        return out

    def _regression_target(self, labels, B, dtype):
        """Float targets shaped like the logits: (B,) when C == 1 ((B, 1) accepted), else (B, C)."""
        xp = get_xp(self.params["classifier.weight"])
        if isinstance(labels, (list, tuple)):
            labels = numpy.asarray(labels)
        if not hasattr(labels, "dtype") or labels.dtype.kind not in "iuf":
            raise TypeError(f"regression labels must be a numeric array, got {getattr(labels, 'dtype', type(labels))}")
        C = self.config.num_labels
        allowed = [(B,), (B, 1)] if C == 1 else [(B, C)]
        if tuple(labels.shape) not in allowed:
            raise ValueError(f"labels has shape {tuple(labels.shape)}, expected {' or '.join(map(str, allowed))} "
                             f"(regression with num_labels={C})")
        return xp.asarray(labels, dtype=dtype).reshape((B,) if C == 1 else (B, C))

    def backward(self, weight: float = 1.0):
        """Add the gradients of weight * loss into self.grads (see the class docstring)."""
        c_drop, c_lin, c_loss, loss_backward = self._take_cache()
        if c_loss is None:
            raise RuntimeError("backward() needs a forward() with labels")
        g = self.grads
        dz = loss_backward(weight, c_loss).reshape(c_lin[0].shape[0], -1)      # (B, C)
        dh, dw, db = linear_backward(dz, c_lin)        # dh = dz W, dW = dz^T h, db = sum of dz's rows
        g["classifier.weight"] += dw
        g["classifier.bias"] += db
        self.bert.backward(None, dropout_backward(dh, c_drop))                  # into the pooled output


class BertForTokenClassification(_BertWithHead):
    """A class for every token (named entities, parts of speech), on the last hidden state.

        out = model.forward(input_ids, token_type_ids, attention_mask, labels=labels)   # labels (B, T)

    Forward, with x (B, T, H) the last hidden state:
        h = x * m / (1 - q)                       (B, T, H)  q = classifier dropout
        z = h W^T + b                             (B, T, C)  W: (C, H), b: (C,)
        L = -(1/n) sum_{(b,t): y_bt != -100} log softmax(z_bt)[y_bt]     n = labelled tokens
    As in transformers the attention mask does not enter the loss: label padding (and
    word-piece continuations, if wanted) with -100. No pooler (add_pooling_layer=False).
    """

    add_pooling_layer = False

    @classmethod
    def head_shapes(cls, config):
        return {"classifier.weight": (config.num_labels, config.hidden_size),
                "classifier.bias": (config.num_labels,)}

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        """Returns {"logits": (B, T, C)} and with labels "loss", "correct", "count" (labelled tokens)."""
        p = self.params
        x, _ = self.bert.forward(input_ids, token_type_ids, attention_mask)         # (B, T, H)
        B, T, _ = x.shape
        C = self.config.num_labels
        h, c_drop = dropout_forward(x, self.config.classifier_dropout_prob, self.bert.rng, self.training)
        logits, c_lin = linear_forward(h, p["classifier.weight"], p["classifier.bias"])   # (B,T,H) @ (H,C) -> (B,T,C)
        out = {"logits": logits}
        c_loss = None
        if labels is not None:
            y = self._class_labels(labels, (B, T)).reshape(B * T)
            flat = logits.reshape(B * T, C)
            out["loss"], c_loss = cross_entropy_forward(flat, y)
            labelled = y != IGNORE_INDEX
            out["correct"] = int(((flat.argmax(axis=1) == y) & labelled).sum())
            out["count"] = int(labelled.sum())
        self._cache = (c_drop, c_lin, c_loss, (B, T, C))
        return out

    def backward(self, weight: float = 1.0):
        """Add the gradients of weight * loss into self.grads."""
        c_drop, c_lin, c_loss, shape = self._take_cache()
        if c_loss is None:
            raise RuntimeError("backward() needs a forward() with labels")
        g = self.grads
        dz = cross_entropy_backward(weight, c_loss).reshape(shape)            # (B, T, C)
        below = not self._encoder_fully_frozen()
        dh, dw, db = linear_backward(dz, c_lin, need_dx=below)  # dh = dz W, dW = sum_(b,t) dz^T h, db = sum dz
        g["classifier.weight"] += dw
        g["classifier.bias"] += db
        self.bert.backward(dropout_backward(dh, c_drop) if below else None, None)


class BertForQuestionAnswering(_BertWithHead):
    """Extractive question answering (SQuAD): a start and an end score for every token.

        out = model.forward(input_ids, token_type_ids, attention_mask,
                            start_positions=s, end_positions=e)                 # (B,) token indices
        out["start_logits"], out["end_logits"]  (B, T); out["loss"], out["correct"], out["count"]

    Forward, with x (B, T, H) the last hidden state (no dropout in this head, as transformers):
        z = x W^T + b                             (B, T, 2)  W: (2, H), b: (2,)
        s = z[:, :, 0],  e = z[:, :, 1]           (B, T) each
        start_i = clamp(start_i, 0, T), end_i likewise; T means "ignore"   (transformers' rule:
                  a position past the sequence is ignored, a negative one becomes 0, [CLS])
        L = (CE(s, start) + CE(e, end)) / 2       each CE a mean over its rows that are not ignored
    If every row of one side is ignored its CE is 0 here (PyTorch gives nan).
    Gradient accumulation with weight = b_i / B is exact when no position is ignored.
    num_labels must be 2. No pooler (add_pooling_layer=False).
    """

    add_pooling_layer = False

    @classmethod
    def check_config(cls, config):
        if config.num_labels != 2:
            raise ValueError(f"BertForQuestionAnswering needs num_labels=2 (a start and an end logit per token), "
                             f"the config has num_labels={config.num_labels}")

    @classmethod
    def head_shapes(cls, config):
        return {"qa_outputs.weight": (2, config.hidden_size), "qa_outputs.bias": (2,)}

    def _positions(self, positions, B, T, what):
        """(B,) or (B, 1) integers -> clamp(positions, 0, T) on the device (T = ignored)."""
        xp = get_xp(self.params["qa_outputs.weight"])
        if isinstance(positions, (list, tuple)):
            positions = numpy.asarray(positions)
        if not hasattr(positions, "dtype") or positions.dtype.kind not in "iu":
            raise TypeError(f"{what} must be an integer array of token indices, got "
                            f"{getattr(positions, 'dtype', type(positions).__name__)}")
        if tuple(positions.shape) not in ((B,), (B, 1)):
            raise ValueError(f"{what} has shape {tuple(positions.shape)}, expected ({B},): one token index per example")
        return xp.clip(xp.asarray(positions).reshape(B), 0, T)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None, end_positions=None):
        """Returns start_logits, end_logits (B, T); with both position arrays also "loss" (device
        scalar), "correct" (examples whose argmax start and end are both right), "count" (examples
        whose two positions both lie inside the sequence), start_count and end_count."""
        if (start_positions is None) != (end_positions is None):
            raise ValueError("start_positions and end_positions go together: pass both or neither")
        p = self.params
        x, _ = self.bert.forward(input_ids, token_type_ids, attention_mask)         # (B, T, H)
        B, T, _ = x.shape
        logits, c_lin = linear_forward(x, p["qa_outputs.weight"], p["qa_outputs.bias"])   # (B,T,H) @ (H,2) -> (B,T,2)
        start_logits, end_logits = _fresh(logits[..., 0]), _fresh(logits[..., 1])          # (B, T) each
        out = {"start_logits": start_logits, "end_logits": end_logits}
        c_loss = None
        if start_positions is not None:
            sp = self._positions(start_positions, B, T, "start_positions")
            ep = self._positions(end_positions, B, T, "end_positions")
            loss_s, c_s = cross_entropy_forward(start_logits, sp, ignore_index=T)
            loss_e, c_e = cross_entropy_forward(end_logits, ep, ignore_index=T)
            out["loss"] = (loss_s + loss_e) / 2
            both = (sp != T) & (ep != T)
            hit = (start_logits.argmax(axis=1) == sp) & (end_logits.argmax(axis=1) == ep) & both
            out.update(correct=int(hit.sum()), count=int(both.sum()),
                       start_count=int((sp != T).sum()), end_count=int((ep != T).sum()))
            c_loss = (c_s, c_e)
        self._cache = (c_lin, c_loss, (B, T))
        return out

    def backward(self, weight: float = 1.0):
        """Add the gradients of weight * loss into self.grads: each CE gets weight / 2."""
        c_lin, c_loss, (B, T) = self._take_cache()
        if c_loss is None:
            raise RuntimeError("backward() needs a forward() with start_positions and end_positions")
        g = self.grads
        xp = get_xp(g["qa_outputs.weight"])
        dz = xp.empty((B, T, 2), dtype=self.dtype)
        dz[..., 0] = cross_entropy_backward(weight / 2, c_loss[0])           # (B, T): ds
        dz[..., 1] = cross_entropy_backward(weight / 2, c_loss[1])           # (B, T): de
        below = not self._encoder_fully_frozen()
        dx, dw, db = linear_backward(dz, c_lin, need_dx=below)
        g["qa_outputs.weight"] += dw
        g["qa_outputs.bias"] += db
        self.bert.backward(dx, None)


TASK_HEADS = {cls.__name__: cls for cls in
              (BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering)}
