"""BertForQuestionAnswering: extractive QA, a start and an end logit per token.

    [s | e] = x W_q^T + b_q           (B, T, 2); loss (CE(s, start) + CE(e, end)) / 2; no pooler

The shared conventions (names, backward, loading) are in classification.py's docstring.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.model.heads.base import BertWithTaskHead, host_count
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


class SpanHeadCache(NamedTuple):
    """What span_head_backward needs (exercise 19 reads and writes this cache by its field order)."""
    x: Any                          # (B, T, H) the hidden states
    weight: Any                     # (2, H): row 0 scores starts, row 1 ends
    start_probs: Any                # (B, T) softmax over the T tokens of the start logits
    end_probs: Any                  # (B, T) softmax of the end logits
    start: Any                      # (B,) start positions clamped to [0, T]; T = ignored
    end: Any                        # (B,) end positions, likewise


def span_head_forward(x, weight, bias, start_positions, end_positions):
    """The span head and its loss in one readable function (BertForQuestionAnswering's math).

    x: (B, T, H), weight: (2, H), bias: (2,), start_positions / end_positions: (B,) integers.
        z = x W^T + b                  (B, T, 2);  s = z[..., 0], e = z[..., 1]   (B, T) each
        positions clamped to [0, T]; T means "ignored" (past the sequence); negative -> 0
        L = (CE(s, start) + CE(e, end)) / 2, each CE a mean over its own non-ignored rows (0 if none)
    Returns (loss, SpanHeadCache). The model class computes the same loss with the library's
    linear and cross-entropy ops (tests/model check that both agree).
    """
    xp = get_xp(x)
    T = x.shape[1]
    z = x @ weight.T + bias                                          # (B,T,H) @ (H,2) -> (B,T,2)
    probs, loss = [], 0.0
    clamped = [xp.clip(start_positions, 0, T), xp.clip(end_positions, 0, T)]
    for side in (0, 1):
        logits = z[..., side]                                        # (B, T)
        shifted = logits - logits.max(axis=1, keepdims=True)         # the max trick
        log_z = xp.log(xp.exp(shifted).sum(axis=1))                  # (B,) log-sum-exp
        valid = clamped[side] != T                                   # (B,) rows with a target
        picked = shifted[xp.arange(len(valid)), xp.where(valid, clamped[side], 0)]  # (B,)
        n = xp.maximum(valid.sum(), 1).astype(x.dtype)              # valid rows (at least 1), on the device
        loss = loss + ((log_z - picked) * valid).sum() / n           # mean CE over valid rows
        probs.append(xp.exp(shifted - log_z[:, None]))               # (B, T) softmax
    return loss / 2, SpanHeadCache(x, weight, probs[0], probs[1], clamped[0], clamped[1])


def span_head_backward(dloss, cache):
    """Returns (dx, dweight, dbias) of the span loss.

    In the forward L = (CE_s + CE_e) / 2 and CE = mean over the n valid rows of -log softmax, so
    ds[r] = dloss / 2 * (p_s[r] - onehot(start[r])) / n_s on valid rows, 0 on ignored ones (de likewise);
    then z = x W^T + b gives dx = dz W, dW = sum over (B, T) of dz^T x, db = sum of dz.
    """
    x, weight, start_probs, end_probs, start, end = cache
    xp = get_xp(x)
    B, T, _ = x.shape
    dz = xp.zeros((B, T, 2), dtype=x.dtype)                          # (B, T, 2)
    for side, (probs, target) in enumerate(((start_probs, start), (end_probs, end))):
        valid = target != T                                          # (B,)
        g = probs.copy()                                             # (B, T): softmax ...
        g[xp.arange(B), xp.where(valid, target, 0)] -= 1.0           # ... minus onehot(target)
        dz[..., side] = g * (valid * (dloss / 2 / xp.maximum(valid.sum(), 1)))[:, None]   # / n, n >= 1
    dx = dz @ weight                                                 # (B,T,2) @ (2,H) -> (B,T,H)
    dweight = xp.einsum("btk,bth->kh", dz, x)                        # (2, H)
    dbias = dz.sum(axis=(0, 1))                                      # (2,)
    return dx, dweight, dbias


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
        """(B,) or (B, 1) integers -> clamp(positions, 0, T) (B,) (T = ignored), where they are: on the
        host for host arrays (moved to the device by forward, after the counts are taken)."""
        if isinstance(positions, (list, tuple)):
            positions = numpy.asarray(positions)
        if not hasattr(positions, "dtype") or positions.dtype.kind not in "iu":
            raise TypeError(f"{what} must be an integer array of token indices, got "
                            f"{getattr(positions, 'dtype', type(positions).__name__)}")
        if tuple(positions.shape) not in ((B,), (B, 1)):
            raise ValueError(f"{what} has shape {tuple(positions.shape)}, expected ({B},): one token index per example")
        return get_xp(positions).clip(positions.reshape(B), 0, T)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None, end_positions=None):
        """Returns start_logits, end_logits (B, T); with both position arrays also "loss" (device
        scalar), "correct" (examples whose argmax start and end are both right; base.host_count: a
        host int under NumPy, an unread device 0-d array on a GPU), "count" (examples whose two
        positions both lie inside the sequence), start_count and end_count (host ints for host
        positions)."""
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
            sp = self._positions(start_positions, B, T, "start_positions")   # (B,) host (or device) arrays
            ep = self._positions(end_positions, B, T, "end_positions")
            counts = dict(count=host_count(((sp != T) & (ep != T)).sum()),   # host ints for host positions
                          start_count=host_count((sp != T).sum()), end_count=host_count((ep != T).sum()))
            xp = get_xp(logits)
            sp, ep = xp.asarray(sp), xp.asarray(ep)                            # host -> device
            loss_s, c_s = cross_entropy_forward(start_logits, sp, ignore_index=T)
            loss_e, c_e = cross_entropy_forward(end_logits, ep, ignore_index=T)
            out["loss"] = (loss_s + loss_e) / 2
            both = (sp != T) & (ep != T)
            hit = (start_logits.argmax(axis=1) == sp) & (end_logits.argmax(axis=1) == ep) & both
            out.update(correct=host_count(hit.sum()), **counts)                # correct: unread on a GPU
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
