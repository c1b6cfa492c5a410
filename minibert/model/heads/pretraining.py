"""Pretraining heads on top of BertModel: masked-LM and next-sentence prediction.

    MLM:  h = LayerNorm(GELU(x W_t^T + b_t))          transform, (M, H)
          logits = h E^T + b_out                      E = the word-embedding table (V, H), tied
    NSP:  logits = pooled W_s^T + b_s                 (B, 2): 0 = B follows A, 1 = B is random

Loss = MLM cross-entropy (mean over predicted positions) + NSP cross-entropy
(mean over the batch), as Hugging Face's BertForPreTraining.

Masked positions are gathered *before* the transform and the decoder, as
google-research/bert does: with 15% of the tokens predicted, the (M, H) @ (H, V)
decoder matmul is ~7x smaller than transformers' (B*T, H) @ (H, V). The loss and
every gradient are the same, because positions without a label contribute
nothing to either.

The decoder weight *is* the input embedding table (weight tying), so its
gradient is the sum of two contributions: the decoder's dense gradient here
and the embedding lookup's scatter-add in BertModel. Both add into the same
buffer, so nothing special is needed beyond "backward adds".
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy

from minibert.backend import get_xp
from minibert.model.config import BertConfig
from minibert.model.heads.base import BertWithHeads, host_count, labels_to_device
from minibert.model.ops_table import REFERENCE_OPS, Ops
from minibert.ops.embedding import EmbeddingCache, embedding_backward
from minibert.ops.layer_norm import LayerNormCache
from minibert.ops.linear import LinearCache
from minibert.ops.losses import IGNORE_INDEX

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


class MlmHeadCache(NamedTuple):
    transform: LinearCache          # x W_t^T + b_t
    activation: Any                 # the activation's cache (GELU's local derivative)
    layer_norm: LayerNormCache
    decoder: LinearCache            # h E^T + b_out, E the tied word embeddings
    hidden_act: str
    ops: Ops                        # the op table the forward ran


class PreTrainingCache(NamedTuple):
    """What BertForPreTraining.backward needs from the forward."""
    mlm_head: MlmHeadCache
    nsp: LinearCache                # the NSP classifier's
    mlm_loss: Any                   # CrossEntropyCache, or None without labels
    nsp_loss: Any                   # CrossEntropyCache, or None without next_sentence_label
    positions: Any                  # (M,) flat indices into B*T of the predicted positions
    shape: tuple                    # (B, T, H)


def mlm_head_forward(x, w_t, b_t, gamma, beta, eps, word_embeddings, out_bias, hidden_act="gelu", ops=None):
    """x: (M, H) vectors at the predicted positions -> logits (M, V), cache: MlmHeadCache.
    `ops`: the op table (None: REFERENCE_OPS, minibert/model/ops_table.py)."""
    ops = REFERENCE_OPS if ops is None else ops
    act_forward, _ = ops.activation(hidden_act)
    h, c_dense = ops.linear_forward(x, w_t, b_t)                    # (M,H) @ (H,H) -> (M,H)
    h, c_act = act_forward(h)
    h, c_ln = ops.layer_norm_forward(h, gamma, beta, eps)
    logits, c_dec = ops.linear_forward(h, word_embeddings, out_bias)   # (M,H) @ (H,V) -> (M,V), tied weight
    return logits, MlmHeadCache(c_dense, c_act, c_ln, c_dec, hidden_act, ops)


def mlm_head_backward(dlogits, cache):
    """Returns (dx (M,H), dw_t, db_t, dgamma, dbeta, dword_embeddings (V,H), dout_bias (V,)):
    the forward's four steps in reverse (decoder, LayerNorm, activation, transform)."""
    ops = cache.ops
    _, act_backward = ops.activation(cache.hidden_act)
    dh, dword, dbias = ops.linear_backward(dlogits, cache.decoder)      # (M,V) @ (V,H) -> (M,H)
    dh, dgamma, dbeta = ops.layer_norm_backward(dh, cache.layer_norm)
    dh = act_backward(dh, cache.activation)
    dx, dw_t, db_t = ops.linear_backward(dh, cache.transform)           # (M,H) @ (H,H) -> (M,H)
    return dx, dw_t, db_t, dgamma, dbeta, dword, dbias


def tied_word_embeddings_backward(ddecoder, dembedded, ids):
    """The gradient of the word-embedding table E, used twice: as the input lookup and as the decoder.

    ddecoder: (V, H), the decoder's gradient of E (mlm_head_backward's dword_embeddings)
    dembedded: (..., H), the gradient of the looked-up vectors E[ids]   ids: (...) integers in [0, V)
    ->  dE: (V, H), a new array = ddecoder + the lookup's scatter-add (a row looked up k times gets k rows).

    BertForPreTraining gets the same sum by letting both backwards add into one gradient buffer
    ("backward adds"); this function writes the rule out (exercise 16).
    """
    dword = ddecoder.copy()                                              # (V, H): the decoder's share
    return embedding_backward(dembedded, EmbeddingCache(ids, ddecoder.shape), dweight=dword)   # + the lookup's


def pretraining_head_shapes(config: BertConfig) -> dict:
    H, V = config.hidden_size, config.vocab_size
    return {
        "cls.predictions.bias": (V,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
    }


class BertForPreTraining(BertWithHeads):
    """BERT with the MLM and NSP heads; parameter names as transformers' BertForPreTraining.

        model = BertForPreTraining(BertConfig.preset("tiny"), seed=0)
        out = model.forward(input_ids, token_type_ids, attention_mask,
                            labels=mlm_labels, next_sentence_label=nsp_labels)
        out["loss"], out["mlm_loss"], out["nsp_loss"]
        model.zero_grad(); model.backward()          # d(loss) = 1

    `labels`: (B, T) with the original token id at predicted positions and -100
    elsewhere; `next_sentence_label`: (B,) with 0 = continuation, 1 = random.
    The decoder reuses `bert.embeddings.word_embeddings.weight` (there is no
    separate `cls.predictions.decoder.weight` array; save/load map that name).
    `ops`: the op table of the heads and of the BertModel (None: REFERENCE_OPS, minibert's own).
    """

    def __init__(self, config: BertConfig, seed: int = 0, dtype="float32", ops: Ops | None = None):
        self._build(config, seed, dtype, pretraining_head_shapes(config), head_seed=[seed, 2], ops=ops)  # BERT's init
        self.ops = self.bert.ops

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None, next_sentence_label=None):
        """Returns a dict: sequence_output (B, T, H) the last hidden states, mlm_logits (M, V) at the M
        labelled positions (every position when no labels, or labels already on the device, are given:
        _mlm_targets), positions (M,) their flat indices into B*T (row-major), nsp_logits (B, 2); with labels: mlm_loss (device scalar),
        mlm_correct (base.host_count: a host int under NumPy, an unread device 0-d array on a GPU),
        mlm_count (host int); with next_sentence_label: nsp_loss, nsp_correct, nsp_count; and
        loss = mlm_loss + nsp_loss. Labels are checked on the host before they are copied."""
        p, cfg = self.params, self.config
        seq, pooled = self.bert.forward(input_ids, token_type_ids, attention_mask)
        xp = get_xp(seq)
        B, T, H = seq.shape
        out = {}
        # --- MLM at the labelled positions only ---
        if labels is not None:
            positions, target, mlm_count = self._mlm_targets(labels, B, T, xp)
        else:
            positions = xp.arange(B * T)                                   # no labels: every position
        gathered = seq.reshape(B * T, H)[positions]                        # (M, H)
        mlm_logits, c_mlm = mlm_head_forward(
            gathered, p["cls.predictions.transform.dense.weight"], p["cls.predictions.transform.dense.bias"],
            p["cls.predictions.transform.LayerNorm.weight"], p["cls.predictions.transform.LayerNorm.bias"],
            cfg.layer_norm_eps, p[WORD_EMBEDDINGS], p["cls.predictions.bias"], cfg.hidden_act, ops=self.ops)
        nsp_logits, c_nsp = self.ops.linear_forward(pooled, p["cls.seq_relationship.weight"],
                                                    p["cls.seq_relationship.bias"])
        out.update(mlm_logits=mlm_logits, nsp_logits=nsp_logits, positions=positions, sequence_output=seq)
        c_mlm_loss = c_nsp_loss = None
        if labels is not None:
            mlm_loss, c_mlm_loss = self.ops.cross_entropy_forward(mlm_logits, target)
            out["mlm_loss"] = mlm_loss
            out["mlm_correct"] = host_count((mlm_logits.argmax(axis=1) == target).sum())   # -100 never hits
            out["mlm_count"] = mlm_count
        if next_sentence_label is not None:
            nsl = next_sentence_label
            nsl = (numpy.asarray(nsl) if isinstance(nsl, (list, tuple)) else nsl).reshape(-1)
            if nsl.shape[0] != B:
                raise ValueError(f"next_sentence_label has {nsl.shape[0]} entries for a batch of {B}")
            nsl, _ = labels_to_device(nsl, 2, xp, lambda bad: (
                f"cross_entropy: label {bad} out of range [0, 2) (next_sentence_label: 0 = continuation, "
                f"1 = random)"))
            nsp_loss, c_nsp_loss = self.ops.cross_entropy_forward(nsp_logits, nsl)
            out["nsp_loss"] = nsp_loss
            out["nsp_correct"] = host_count((nsp_logits.argmax(axis=1) == nsl).sum())
            out["nsp_count"] = B
        if "mlm_loss" in out or "nsp_loss" in out:
            out["loss"] = out.get("mlm_loss", 0.0) + out.get("nsp_loss", 0.0)
        self._keep(PreTrainingCache(c_mlm, c_nsp, c_mlm_loss, c_nsp_loss, positions, (B, T, H)))
        return out

    def _mlm_targets(self, labels, B, T, xp):
        """(B, T) masked-LM labels -> (positions (M,), their labels (M,), M), on the device.

        The labels are checked (each a token id or -100) and the predicted positions found on the
        host, before anything is copied: M, a shape that depends on the data, is then known without
        asking the device, and the (M, V) decoder runs on the predicted rows only.
        Labels already on a device are checked with one read (labels_to_device) and every position
        goes through the decoder with the unlabelled ones ignored by the loss: the same loss and
        gradients, no data-dependent shape on the device, ~1/0.15 times the decoder's work.
        """
        if isinstance(labels, (list, tuple)):
            labels = numpy.asarray(labels)
        if tuple(labels.shape) != (B, T):
            raise ValueError(f"labels has shape {tuple(labels.shape)}, expected {(B, T)} like input_ids")
        V = self.config.vocab_size
        message = lambda bad: (f"cross_entropy: label {bad} out of range [0, {V}) "    # noqa: E731
                               f"(use {IGNORE_INDEX} for positions without a label)")
        flat = labels.reshape(-1)                                          # (B*T,)
        if isinstance(flat, numpy.ndarray):                                # host labels: the usual case
            labels_to_device(flat, V, numpy, message)                      # (checked on the host)
            positions = numpy.flatnonzero(flat != IGNORE_INDEX)            # (M,) indices into B*T
            return xp.asarray(positions), xp.asarray(flat[positions]), len(positions)
        flat, count = labels_to_device(flat, V, xp, message)               # device labels: one read
        return xp.arange(B * T), flat, count

    def backward(self, mlm_weight: float = 1.0, nsp_weight: float = 1.0, dmlm_logits=None, dsequence=None):
        """Backward of loss = mlm_weight * mlm_loss + nsp_weight * nsp_loss (weights 1: HF's loss).

        The weights let gradient accumulation over micro-batches reproduce one big
        batch exactly: a micro-batch with n_i of the N predictions gets mlm_weight n_i / N.
        dmlm_logits (M, V) and dsequence (B, T, H): gradients of further loss terms with respect to the
        forward's mlm_logits and sequence_output, added in (distillation's soft-target and cosine
        terms: minibert/train/distill.py); None: none. dmlm_logits needs the forward's labels.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a forward() with labels first")
        cache = self._cache
        if cache.mlm_loss is None and cache.nsp_loss is None:
            raise RuntimeError("backward() needs a forward() with labels and/or next_sentence_label")
        self._cache = None
        B, T, H = cache.shape
        g = self.grads
        xp = get_xp(g[WORD_EMBEDDINGS])
        d_seq = xp.zeros((B * T, H), dtype=self.dtype)
        if cache.mlm_loss is not None:
            dlogits = self.ops.cross_entropy_backward(mlm_weight, cache.mlm_loss)
            if dmlm_logits is not None:
                dlogits = dlogits + dmlm_logits                  # d(mlm_loss + other term)/dlogits
            dx, dw_t, db_t, dgamma, dbeta, dword, dbias = mlm_head_backward(dlogits, cache.mlm_head)
            g["cls.predictions.transform.dense.weight"] += dw_t
            g["cls.predictions.transform.dense.bias"] += db_t
            g["cls.predictions.transform.LayerNorm.weight"] += dgamma
            g["cls.predictions.transform.LayerNorm.bias"] += dbeta
            if not self.bert.frozen_embeddings:
                g[WORD_EMBEDDINGS] += dword                      # tied: the lookup's gradient is added later
            g["cls.predictions.bias"] += dbias
            d_seq[cache.positions] = dx                          # scatter back (positions are distinct)
        d_pooled = None
        if cache.nsp_loss is not None:
            dlogits = self.ops.cross_entropy_backward(nsp_weight, cache.nsp_loss)
            d_pooled, dw, db = self.ops.linear_backward(dlogits, cache.nsp)
            g["cls.seq_relationship.weight"] += dw
            g["cls.seq_relationship.bias"] += db
        if dsequence is not None:
            d_seq += dsequence.reshape(B * T, H)                 # a term on the last hidden states
        self.bert.backward(d_seq.reshape(B, T, H), d_pooled)
