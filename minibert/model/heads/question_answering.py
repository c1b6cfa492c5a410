"""BertForQuestionAnswering: extractive QA, a start and an end logit per token.

    [s | e] = x W_q^T + b_q           (B, T, 2); loss (CE(s, start) + CE(e, end)) / 2; no pooler

The shared conventions (names, backward, loading) are in classification.py's docstring.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.model.heads.base import BertWithTaskHead
from minibert.ops.linear import LinearCache, linear_backward, linear_forward
from minibert.ops.losses import CrossEntropyCache, cross_entropy_backward, cross_entropy_forward


def _fresh(x):
    """A C-contiguous copy (the start/end logits are strided views of one (B, T, 2) array)."""
    return get_xp(x).ascontiguousarray(x)


class SpanLossCache(NamedTuple):
    start: CrossEntropyCache        # CE(s, start positions)
    end: CrossEntropyCache          # CE(e, end positions)


class QuestionAnsweringCache(NamedTuple):
    qa_outputs: LinearCache         # z = x W_q^T + b_q
    loss: Any                       # SpanLossCache, or None without positions
    shape: tuple                    # (B, T)


class BertForQuestionAnswering(BertWithTaskHead):
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
            c_loss = SpanLossCache(c_s, c_e)
        self._keep(QuestionAnsweringCache(c_lin, c_loss, (B, T)))
        return out

    def backward(self, weight: float = 1.0):
        """Add the gradients of weight * loss into self.grads: each CE gets weight / 2."""
        cache = self._take_cache(loss_needs="start_positions and end_positions")
        g = self.grads
        xp = get_xp(g["qa_outputs.weight"])
        B, T = cache.shape
        dz = xp.empty((B, T, 2), dtype=self.dtype)
        dz[..., 0] = cross_entropy_backward(weight / 2, cache.loss.start)    # (B, T): ds
        dz[..., 1] = cross_entropy_backward(weight / 2, cache.loss.end)      # (B, T): de
        below = not self._encoder_fully_frozen()
        dx, dw, db = linear_backward(dz, cache.qa_outputs, need_dx=below)
        g["qa_outputs.weight"] += dw
        g["qa_outputs.bias"] += db
        self.bert.backward(dx, None)
