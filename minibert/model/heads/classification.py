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
and correct / count, except for regression: count a host int, correct base.host_count's (a host int
under NumPy, an unread device 0-d array on a GPU)), backward(weight)
adding weight * d(loss) into self.grads (weight lets gradient accumulation reproduce one big
batch exactly), train/eval/zero_grad/num_parameters, freeze (BertModel.freeze) with
frozen_names() for AdamW(frozen=...), from_pretrained(folder) and save_pretrained(folder).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.model.heads.base import BertWithTaskHead, host_count
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.linear import LinearCache, linear_backward, linear_forward
from minibert.ops.losses import (IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward, mse_backward,
                                 mse_forward)


class SequenceClassificationCache(NamedTuple):
    dropout: Any                    # the classifier dropout's mask, or None
    classifier: LinearCache
    loss: Any                       # CrossEntropyCache or MSE's difference; None without labels
    loss_backward: Callable | None  # cross_entropy_backward or mse_backward


class BertForSequenceClassification(BertWithTaskHead):
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
        also "correct" (argmax hits among the labelled rows: base.host_count, a host int on NumPy, a
        device 0-d array on a GPU) and "count" (those rows, a host int)."""
        p = self.params
        _, pooled = self.bert.forward(input_ids, token_type_ids, attention_mask)   # (B, H)
        B = pooled.shape[0]
        h, c_drop = dropout_forward(pooled, self.config.classifier_dropout_prob, self.bert.dropout_generator(),
                                    self.training)
        logits, c_lin = linear_forward(h, p["classifier.weight"], p["classifier.bias"])   # (B,H) @ (H,C) -> (B,C)
        out = {"logits": logits}
        c_loss = loss_backward = None
        if labels is not None:
            if self.is_regression:
                target = self._regression_target(labels, B, logits.dtype)
                out["loss"], c_loss = mse_forward(logits.reshape(target.shape), target)
                loss_backward = mse_backward
            else:
                y, count = self._class_labels(labels, (B,))                 # checked on the host, then copied
                out["loss"], c_loss = cross_entropy_forward(logits, y)
                loss_backward = cross_entropy_backward
                labelled = y != IGNORE_INDEX
                out["correct"] = host_count(((logits.argmax(axis=1) == y) & labelled).sum())
                out["count"] = count
        self._keep(SequenceClassificationCache(c_drop, c_lin, c_loss, loss_backward))
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

    def backward(self, weight: float = 1.0, dlogits=None):
        """Add the gradients of weight * loss into self.grads (see the class docstring).

        dlogits: (B, C), the gradient of a further loss term with respect to the logits, added to the
        loss's (distillation's soft term: minibert/train/distill.py); None: none."""
        cache = self._take_cache(loss_needs="labels")
        g = self.grads
        B = cache.classifier.x.shape[0]
        dz = cache.loss_backward(weight, cache.loss).reshape(B, -1)             # (B, C)
        if dlogits is not None:
            dz = dz + dlogits                                                   # d(loss + other term)/dz
        dh, dw, db = linear_backward(dz, cache.classifier)  # dh = dz W, dW = dz^T h, db = sum of dz's rows
        g["classifier.weight"] += dw
        g["classifier.bias"] += db
        self.bert.backward(None, dropout_backward(dh, cache.dropout))           # into the pooled output


