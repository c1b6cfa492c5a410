"""BertForTokenClassification: a label per token (NER), from every position's last hidden state.

    logits = drop(x) W_c^T + b_c      (B, T, C); cross-entropy over every token, -100 ignored; no pooler

The shared conventions (names, backward, loading) are in classification.py's docstring.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from minibert.model.heads.base import BertWithTaskHead, host_count
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.linear import LinearCache, linear_backward, linear_forward
from minibert.ops.losses import IGNORE_INDEX, cross_entropy_backward, cross_entropy_forward


class TokenClassificationCache(NamedTuple):
    dropout: Any                    # the classifier dropout's mask, or None
    classifier: LinearCache
    loss: Any                       # CrossEntropyCache, or None without labels
    shape: tuple                    # (B, T, C), the logits' shape


class BertForTokenClassification(BertWithTaskHead):
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
        """Returns {"logits": (B, T, C)} and with labels "loss", "correct" (base.host_count), "count"
        (labelled tokens, a host int)."""
        p = self.params
        x, _ = self.bert.forward(input_ids, token_type_ids, attention_mask)         # (B, T, H)
        B, T, _ = x.shape
        C = self.config.num_labels
        h, c_drop = dropout_forward(x, self.config.classifier_dropout_prob, self.bert.dropout_generator(),
                                    self.training)
        logits, c_lin = linear_forward(h, p["classifier.weight"], p["classifier.bias"])   # (B,T,H) @ (H,C) -> (B,T,C)
        out = {"logits": logits}
        c_loss = None
        if labels is not None:
            y, count = self._class_labels(labels, (B, T))                   # checked on the host, then copied
            y = y.reshape(B * T)
            flat = logits.reshape(B * T, C)
            out["loss"], c_loss = cross_entropy_forward(flat, y)
            labelled = y != IGNORE_INDEX
            out["correct"] = host_count(((flat.argmax(axis=1) == y) & labelled).sum())
            out["count"] = count
        self._keep(TokenClassificationCache(c_drop, c_lin, c_loss, (B, T, C)))
        return out

    def backward(self, weight: float = 1.0):
        """Add the gradients of weight * loss into self.grads."""
        cache = self._take_cache(loss_needs="labels")
        g = self.grads
        dz = cross_entropy_backward(weight, cache.loss).reshape(cache.shape)  # (B, T, C)
        below = not self._encoder_fully_frozen()
        dh, dw, db = linear_backward(dz, cache.classifier, need_dx=below)  # dh = dz W, dW = dz^T h, db = sum dz
        g["classifier.weight"] += dw
        g["classifier.bias"] += db
        self.bert.backward(dropout_backward(dh, cache.dropout) if below else None, None)
