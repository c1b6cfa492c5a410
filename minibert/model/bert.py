"""BertModel: embeddings -> L encoder layers -> pooler, forward and backward by hand.

Legend: B batch, T tokens, H hidden, A heads, d = H/A head size, I intermediate
(4H), V vocabulary, P max positions.

    x0  = dropout(LayerNorm(word[ids] + position[0..T) + token_type[types]))
    for each layer (post-LN, as in BERT):
        h = LayerNorm(x + dropout(MultiHeadAttention(x) W_o^T + b_o))
        x = LayerNorm(h + dropout(GELU(h W_1^T + b_1) W_2^T + b_2))
    pooled = tanh(x[:, 0] W_p^T + b_p)        # the [CLS] vector (weights stored (out, in))

Parameters live in one flat dict whose keys are Hugging Face's BertModel
state-dict names, with the same shapes (Linear weights are (out, in)), so real
checkpoints load 1:1. Gradients live in a second dict with the same keys; every
backward *adds* into it, so residual branches and tied weights come out right,
and `zero_grad()` clears it. Each entry of both dicts is a view into one flat
array (minibert/model/flat.py: one AdamW kernel, one fill, one all-reduce buffer),
so loading writes into the views and never replaces an entry.

The ops (linear, LayerNorm, attention, ...) are called through an op table,
`BertModel(config, ops=...)`, default REFERENCE_OPS = minibert/ops/'s functions
(minibert/model/ops_table.py): another implementation of an op goes into the
model by building a table, not by patching a module.

Layer freezing (`freeze(embeddings=True, layers=K)`) fixes the embeddings and
the first K encoder layers, the bottom of the stack. Their gradients stay zero
and their backward is not run at all: nothing below encoder layer K is
backpropagated, because nothing there needs a gradient.
"""
from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy

from minibert import backend
from minibert.backend import get_xp
from minibert.backend.grad_mode import no_grad
from minibert.backend.xp import device_generator, host_ints
from minibert.model.blocks import (EmbeddingsCache, EncoderLayerCache, add_norm_backward, add_norm_forward,
                                   bert_embeddings_backward, bert_embeddings_forward, ffn_backward, ffn_forward,
                                   multi_head_attention_backward, multi_head_attention_forward, pooler_backward,
                                   pooler_forward)
from minibert.model.config import BertConfig
from minibert.model.flat import FlatBuffers
from minibert.model.io import find_model_folder, load_bert_weights, save_bert_weights
from minibert.model.ops_table import REFERENCE_OPS, Ops
from minibert.ops.attention import attention_mask_bias

_QKV = ("query", "key", "value")


class BertCache(NamedTuple):
    """What BertModel.backward needs from the forward."""
    embeddings: EmbeddingsCache
    layers: list                             # an EncoderLayerCache per layer
    pooler: Any                              # PoolerCache, or None without a pooler
    x_shape: tuple                           # (B, T, H), the last hidden state's shape


def bert_parameter_shapes(config: BertConfig, add_pooling_layer: bool = True) -> dict:
    """Hugging Face BertModel state-dict name -> shape, in the reference's order.
    Without the pooler (`add_pooling_layer=False`, as transformers' token and span heads) there are
    no `pooler.*` entries."""
    H, I, P = config.hidden_size, config.intermediate_size, config.max_position_embeddings
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, H),
        "embeddings.position_embeddings.weight": (P, H),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, H),
        "embeddings.LayerNorm.weight": (H,),
        "embeddings.LayerNorm.bias": (H,),
    }
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[p + f"attention.self.{name}.weight"] = (H, H)
            shapes[p + f"attention.self.{name}.bias"] = (H,)
        shapes[p + "attention.output.dense.weight"] = (H, H)
        shapes[p + "attention.output.dense.bias"] = (H,)
        shapes[p + "attention.output.LayerNorm.weight"] = (H,)
        shapes[p + "attention.output.LayerNorm.bias"] = (H,)
        shapes[p + "intermediate.dense.weight"] = (I, H)
        shapes[p + "intermediate.dense.bias"] = (I,)
        shapes[p + "output.dense.weight"] = (H, I)
        shapes[p + "output.dense.bias"] = (H,)
        shapes[p + "output.LayerNorm.weight"] = (H,)
        shapes[p + "output.LayerNorm.bias"] = (H,)
    if add_pooling_layer:
        shapes["pooler.dense.weight"] = (H, H)
        shapes["pooler.dense.bias"] = (H,)
    return shapes


def init_parameters(shapes: dict, config: BertConfig, rng: numpy.random.Generator, dtype) -> dict:
    """BERT's initialisation, on the host then moved to the device:
    weights ~ normal(0, initializer_range) (Hugging Face; Google truncates at 2 std),
    biases 0, LayerNorm gamma 1 and beta 0, the [PAD] row of the word embeddings 0
    (Hugging Face's padding_idx)."""
    params = {}
    for name, shape in shapes.items():
        if "LayerNorm" in name:
            value = numpy.ones(shape) if name.endswith("weight") else numpy.zeros(shape)
        elif name.endswith("bias"):
            value = numpy.zeros(shape)
        else:
            value = rng.normal(0.0, config.initializer_range, size=shape)
        if name == "embeddings.word_embeddings.weight":
            value[config.pad_token_id] = 0.0
        params[name] = backend.to_device(value, dtype=dtype)
    return params


def _int_array(a, what):
    """An integer array as given (host NumPy, or already on a device), a list made a NumPy array;
    None stays None. Nothing is copied yet: the values are checked first, on the host."""
    if a is None:
        return None
    if isinstance(a, (list, tuple)):
        a = numpy.asarray(a)
    if not hasattr(a, "dtype") or a.dtype.kind not in "iub":
        raise TypeError(f"{what} must be an integer array, got {getattr(a, 'dtype', type(a).__name__)}")
    return a


def _check_shape(a, what, ids):
    """token_type_ids or attention_mask (or None): must have input_ids' shape."""
    if a is not None and tuple(a.shape) != tuple(ids.shape):
        raise ValueError(f"{what} has shape {tuple(a.shape)} but input_ids has shape {tuple(ids.shape)}")


def _outside(lo, hi, size):
    """An entry outside [0, size), given the array's min `lo` and max `hi` (host ints), or None."""
    if lo < 0:
        return lo
    return hi if hi >= size else None


class BertModel:
    """The BERT encoder with a hand-written backward pass.

        model = BertModel(BertConfig.preset("tiny"), seed=0, dtype="float64")
        seq, pooled = model.forward(input_ids, token_type_ids, attention_mask)  # (B,T,H), (B,H)
        model.zero_grad()
        model.backward(d_seq, d_pooled)       # fills model.grads (same keys as model.params)

    Like a PyTorch module it starts in training mode (dropout on); call
    `model.eval()` for deterministic outputs. `add_pooling_layer=False` builds it
    without the pooler (forward then returns None for the pooled output), as
    transformers' BertModel(config, add_pooling_layer=False). `ops`: the op table every
    block calls (minibert/model/ops_table.py); None is REFERENCE_OPS, minibert's own.
    """

    def __init__(self, config: BertConfig, seed: int = 0, dtype="float32", params: dict | None = None,
                 add_pooling_layer: bool = True, ops: Ops | None = None, buffers: FlatBuffers | None = None,
                 init: bool = True):
        """`params`: values (name -> host or device array) copied in instead of BERT's random init.
        `buffers`: where the parameters and gradients live (minibert/model/flat.py); None makes
        them, a model with heads passes its own buffers' `section("bert.")`. `init=False` leaves
        every parameter zero (from_pretrained, which then loads every weight)."""
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        self.ops = REFERENCE_OPS if ops is None else ops
        self.dtype = backend.resolve_dtype(dtype)
        self.add_pooling_layer = bool(add_pooling_layer)
        self.shapes = bert_parameter_shapes(config, self.add_pooling_layer)
        if buffers is None:                  # on the device of the given values (as they were used before), or the selected one
            buffers = FlatBuffers(self.shapes, self.dtype, xp=get_xp(*params.values()) if params else None)
        self.buffers = buffers
        if {k: s.shape for k, s in self.buffers.slots.items()} != {k: tuple(s) for k, s in self.shapes.items()}:
            raise ValueError("buffers do not hold BertModel's parameters for this config")
        self.params, self.grads = self.buffers.params, self.buffers.grads   # dicts of views, never rebound
        if params is not None:
            self.buffers.load({k: params[k] for k in self.shapes})
        elif init:
            init_rng = numpy.random.default_rng(seed)
            self.buffers.load(init_parameters(self.shapes, config, init_rng, self.dtype))
        self.rng = numpy.random.default_rng([seed, 1])   # dropout masks: a stream of its own
        self._device_rng = None          # on a GPU: the device generator seeded from self.rng (dropout_generator)
        self.training = True
        self.keep_cache = True           # False inside `with model.inference()`: nothing kept for a backward
        self.frozen_embeddings = False   # see freeze()
        self.frozen_layers = 0
        self._cache = None
        self._attention_probs = None

    # -- real checkpoints ----------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder, dtype="float32") -> "BertModel":
        """Load a Hugging Face / sentence-transformers folder (config.json + model.safetensors).

        Returns the model in eval mode (as transformers does). Head weights in the
        file (cls.*, classifier.*) are ignored with a warning that names them.
        """
        import warnings


        folder = find_model_folder(folder)
        config = BertConfig.load(folder)
        model = cls(config, dtype=dtype, init=False)         # zeros, no random init: every weight is written
        rest = load_bert_weights(model, folder)              # into the views, in place
        if rest:
            warnings.warn(f"{folder}: ignored {len(rest)} weights that BertModel has no place for "
                          f"(heads): {', '.join(sorted(rest)[:4])}{' ...' if len(rest) > 4 else ''}", stacklevel=2)
        return model.eval()

    def save_pretrained(self, folder):
        """Write config.json + model.safetensors that transformers' BertModel.from_pretrained loads."""
        return save_bert_weights(self, folder)

    # -- modes -------------------------------------------------------------
    def train(self):
        """Dropout on (as torch.nn.Module.train)."""
        self.training = True
        return self

    def eval(self):
        """Dropout off (as torch.nn.Module.eval)."""
        self.training = False
        return self

    @contextlib.contextmanager
    def inference(self):
        """`with model.inference(): model.forward(...)`: dropout off, and no caches kept.

        A forward in training keeps every op's cache (the activations its backward
        needs: several times the size of the outputs). Inside this block a forward
        keeps none, so they are freed as soon as the outputs are made, and a backward
        raises. The previous mode comes back on exit (as torch.inference_mode + eval).
        """
        saved = self.training, self.keep_cache
        self.training, self.keep_cache, self._cache = False, False, None
        try:
            with no_grad():              # fused ops leave out their backward-only work (backend/grad_mode.py)
                yield self
        finally:
            self.training, self.keep_cache = saved

    def dropout_generator(self):
        """The generator dropout masks are drawn from: `self.rng` (a NumPy Generator) when the
        parameters are NumPy arrays; on a device, a device generator seeded once from `self.rng`
        (backend.xp.device_generator) at the first mask, kept for the model's life, so the masks are
        drawn where the activations are and never copied over.

        `self.rng` is what checkpoints save. The device stream is not saved (CuPy cannot serialise
        it): a run resumed on a GPU draws other masks than an uninterrupted one (the same data, the
        same expectation)."""
        xp = get_xp(self.params["embeddings.word_embeddings.weight"])
        if xp is numpy:
            return self.rng
        if self._device_rng is None:
            self._device_rng = device_generator(self.rng, xp)
        return self._device_rng

    def zero_grad(self):
        """Set every gradient to zero (backward adds into them): one fill of the flat gradient array."""
        self.buffers.zero_grad()

    def num_parameters(self) -> int:
        return sum(int(numpy.prod(s)) for s in self.shapes.values())

    # -- layer freezing ----------------------------------------------------
    def freeze(self, embeddings: bool = False, layers: int = 0) -> "BertModel":
        """Freeze the embeddings and the first `layers` encoder layers (0 .. layers-1); the rest
        trains. Replaces any earlier freeze: `freeze()` unfreezes everything.

        Frozen parameters keep a zero gradient (their buffers are cleared here) and
        their backward work is skipped: no parameter-gradient matmuls for a frozen
        layer, and the backward stops at the input of the lowest trainable layer.
        Freezing is bottom-up only: frozen layers under trainable embeddings would
        still have to pass the gradient down, so `layers > 0` needs `embeddings=True`.
        The optimizer must be told too: `AdamW(params, frozen=model.frozen_names())`.
        """
        L = self.config.num_hidden_layers
        if not isinstance(embeddings, bool):
            raise TypeError(f"embeddings must be True or False, got {embeddings!r}")
        if isinstance(layers, bool) or not isinstance(layers, int) or not 0 <= layers <= L:
            raise ValueError(f"layers must be an integer in [0, {L}] (the model has {L} encoder layers), "
                             f"got {layers!r}")
        if layers and not embeddings:
            raise ValueError(f"freezing encoder layers 0..{layers - 1} while the embeddings train would still "
                             f"backpropagate through the frozen layers; minibert freezes from the bottom up: "
                             f"pass embeddings=True as well")
        self.frozen_embeddings, self.frozen_layers = embeddings, layers
        for name in self.frozen_names():
            self.grads[name].fill(0)
        return self

    def frozen_names(self) -> list[str]:
        """The names (keys of params) of the frozen parameters, in params order."""
        prefixes = ("embeddings.",) if self.frozen_embeddings else ()
        prefixes += tuple(f"encoder.layer.{i}." for i in range(self.frozen_layers))
        return [k for k in self.params if k.startswith(prefixes)] if prefixes else []

    # -- inputs ------------------------------------------------------------
    def _check_inputs(self, input_ids, token_type_ids, attention_mask):
        """Validate shapes and ranges, then return the three arrays on the model's device.

        The ranges are checked *before* the copy: host arrays (the usual case: batches are made with
        NumPy) with NumPy on the host, where reading a min or max costs nothing. Arrays already on
        the device are checked with one device -> host copy of their six extremes together
        (backend.xp.host_ints), not one synchronisation per number.
        """
        cfg = self.config
        xp = get_xp(self.params["embeddings.word_embeddings.weight"])
        ids = _int_array(input_ids, "input_ids")
        if ids is None or ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {None if ids is None else ids.shape}")
        B, T = ids.shape
        if T == 0 or B == 0:
            raise ValueError(f"input_ids is empty: shape {ids.shape}")
        if T > cfg.max_position_embeddings:
            raise ValueError(f"sequence length {T} is longer than max_position_embeddings="
                             f"{cfg.max_position_embeddings}; truncate the input")
        types = _int_array(token_type_ids, "token_type_ids")
        mask = _int_array(attention_mask, "attention_mask")
        _check_shape(types, "token_type_ids", ids)
        _check_shape(mask, "attention_mask", ids)
        given = [a for a in (ids, types, mask) if a is not None]
        extremes = iter(host_ints(*[m for a in given for m in (a.min(), a.max())]))   # (min, max) of each
        bad = _outside(next(extremes), next(extremes), cfg.vocab_size)
        if bad is not None:
            raise ValueError(f"input_ids contains id {bad}, outside the vocabulary [0, {cfg.vocab_size})")
        bad = None if types is None else _outside(next(extremes), next(extremes), cfg.type_vocab_size)
        if bad is not None:
            raise ValueError(f"token_type_ids contains {bad}, outside [0, type_vocab_size={cfg.type_vocab_size})")
        if mask is not None and _outside(next(extremes), next(extremes), 2) is not None:
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        ids = xp.asarray(ids)                                  # host -> device (nothing under NumPy)
        types = xp.zeros(ids.shape, dtype=ids.dtype) if types is None else xp.asarray(types)
        mask = xp.ones(ids.shape, dtype=ids.dtype) if mask is None else xp.asarray(mask)
        return ids, types, mask

    # -- one encoder layer -------------------------------------------------
    def _qkv(self, prefix):
        """BERT's separate query/key/value Linear(H, H) layers, stacked into one (3H, H)
        weight for a single fused matmul (see multi_head_attention_forward)."""
        p = self.params
        xp = get_xp(p[prefix + "query.weight"])
        w = xp.concatenate([p[prefix + n + ".weight"] for n in _QKV], axis=0)   # (3H, H)
        b = xp.concatenate([p[prefix + n + ".bias"] for n in _QKV], axis=0)     # (3H,)
        return w, b

    def _layer_forward(self, i, x, mask_bias):
        """x: (B, T, H) -> (B, T, H): attention block, then feed-forward block, each Add & Norm."""
        p, cfg, pre = self.params, self.config, f"encoder.layer.{i}."
        drop = dict(rng=self.dropout_generator(), training=self.training, ops=self.ops)
        w_qkv, b_qkv = self._qkv(pre + "attention.self.")
        a, c_att = multi_head_attention_forward(
            x, w_qkv, b_qkv, p[pre + "attention.output.dense.weight"], p[pre + "attention.output.dense.bias"],
            cfg.num_attention_heads, mask_bias, cfg.attention_probs_dropout_prob, **drop)
        h, c_an1 = add_norm_forward(x, a, p[pre + "attention.output.LayerNorm.weight"],
                                    p[pre + "attention.output.LayerNorm.bias"], cfg.layer_norm_eps,
                                    cfg.hidden_dropout_prob, **drop)                  # LN(x + drop(attn))
        f, c_ffn = ffn_forward(h, p[pre + "intermediate.dense.weight"], p[pre + "intermediate.dense.bias"],
                               p[pre + "output.dense.weight"], p[pre + "output.dense.bias"], cfg.hidden_act,
                               ops=self.ops)
        out, c_an2 = add_norm_forward(h, f, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"],
                                      cfg.layer_norm_eps, cfg.hidden_dropout_prob, **drop)  # LN(h + drop(ffn))
        return out, EncoderLayerCache(c_att, c_an1, c_ffn, c_an2)

    def _layer_backward(self, i, dout, cache):
        """The forward's lines in reverse; every parameter gradient is added into self.grads."""
        g, pre = self.grads, f"encoder.layer.{i}."
        # out = LN(h + drop(f)): the gradient reaches h twice, directly and through the FFN
        dh, df, dgamma, dbeta = add_norm_backward(dout, cache.ffn_add_norm)
        g[pre + "output.LayerNorm.weight"] += dgamma
        g[pre + "output.LayerNorm.bias"] += dbeta
        dh_ffn, dw1, db1, dw2, db2 = ffn_backward(df, cache.ffn)
        g[pre + "intermediate.dense.weight"] += dw1
        g[pre + "intermediate.dense.bias"] += db1
        g[pre + "output.dense.weight"] += dw2
        g[pre + "output.dense.bias"] += db2
        dh += dh_ffn                                  # h was used twice: the two gradients add
        # h = LN(x + drop(a)): the same pattern around the attention block
        dx, da, dgamma, dbeta = add_norm_backward(dh, cache.attention_add_norm)
        g[pre + "attention.output.LayerNorm.weight"] += dgamma
        g[pre + "attention.output.LayerNorm.bias"] += dbeta
        dx_att, dw_qkv, db_qkv, dw_o, db_o = multi_head_attention_backward(da, cache.attention)
        g[pre + "attention.output.dense.weight"] += dw_o
        g[pre + "attention.output.dense.bias"] += db_o
        H = self.config.hidden_size
        for j, name in enumerate(_QKV):               # split the fused (3H, H) gradient back into Q, K, V
            g[pre + f"attention.self.{name}.weight"] += dw_qkv[j * H:(j + 1) * H]
            g[pre + f"attention.self.{name}.bias"] += db_qkv[j * H:(j + 1) * H]
        dx += dx_att                                  # x was used twice too
        return dx

    # -- the whole model ---------------------------------------------------
    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        """input_ids, token_type_ids, attention_mask: (B, T) integers (host or device arrays).

        Returns (last_hidden_state (B, T, H), pooler_output (B, H)) on the backend's device;
        pooler_output is None for a model built with add_pooling_layer=False.
        """
        ids, types, mask = self._check_inputs(input_ids, token_type_ids, attention_mask)
        p = self.params
        mask_bias = attention_mask_bias(mask, self.dtype)                     # (B,1,1,T)
        x, c_emb = bert_embeddings_forward(
            ids, types, p["embeddings.word_embeddings.weight"], p["embeddings.position_embeddings.weight"],
            p["embeddings.token_type_embeddings.weight"], p["embeddings.LayerNorm.weight"],
            p["embeddings.LayerNorm.bias"], self.config.layer_norm_eps, self.config.hidden_dropout_prob,
            self.dropout_generator(), self.training, ops=self.ops)
        c_layers, probs = [], []
        for i in range(self.config.num_hidden_layers):
            x, c = self._layer_forward(i, x, mask_bias)
            # (B,A,T,T); None from an attention op whose cache has no `probs` (another op table's)
            probs.append(getattr(c.attention.sdpa, "probs", None))
            if self.keep_cache:
                c_layers.append(c)
            # else (inference) the layer's caches go now, not at the end of the forward: the memory
            # they held is handed to the next layer's arrays (fewer fresh pages to fault in)
        pooled = c_pool = None
        if self.add_pooling_layer:
            pooled, c_pool = pooler_forward(x, p["pooler.dense.weight"], p["pooler.dense.bias"],  # tanh on [CLS]
                                            ops=self.ops)
        self._cache = BertCache(c_emb, c_layers, c_pool, x.shape) if self.keep_cache else None
        self._attention_probs = probs
        return x, pooled

    def backward(self, d_last_hidden_state=None, d_pooler_output=None):
        """Add the gradients of every trainable parameter into self.grads, given the upstream
        gradients of forward's two outputs (either may be None = zero).

        With frozen parameters (freeze()) the loop over layers stops at the lowest
        trainable layer and the embeddings' backward is skipped when they are frozen."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward() (or twice for one forward, or after a forward "
                               "inside `with model.inference()`, which keeps no cache)")
        cache, self._cache = self._cache, None
        x_shape = cache.x_shape
        g = self.grads
        xp = get_xp(self.params["embeddings.word_embeddings.weight"])
        if d_last_hidden_state is not None and tuple(d_last_hidden_state.shape) != tuple(x_shape):
            raise ValueError(f"d_last_hidden_state has shape {d_last_hidden_state.shape}, expected {x_shape}")
        if d_pooler_output is not None and not self.add_pooling_layer:
            raise ValueError("d_pooler_output given, but this model has no pooler (add_pooling_layer=False)")
        if d_pooler_output is not None and tuple(d_pooler_output.shape) != (x_shape[0], x_shape[2]):
            raise ValueError(f"d_pooler_output has shape {d_pooler_output.shape}, expected {(x_shape[0], x_shape[2])}")
        lowest = self.frozen_layers                  # layers below it are frozen (and then so are the embeddings)
        below_pooler = lowest < self.config.num_hidden_layers or not self.frozen_embeddings
        dx = None
        if below_pooler:
            dx = (xp.zeros(x_shape, dtype=self.dtype) if d_last_hidden_state is None
                  else xp.array(d_last_hidden_state, dtype=self.dtype))      # a copy: we add into it
        if d_pooler_output is not None:
            dx_pool, dw, db = pooler_backward(xp.asarray(d_pooler_output, dtype=self.dtype), cache.pooler)
            g["pooler.dense.weight"] += dw
            g["pooler.dense.bias"] += db
            if below_pooler:
                dx += dx_pool
        for i in reversed(range(lowest, self.config.num_hidden_layers)):
            dx = self._layer_backward(i, dx, cache.layers[i])
        if self.frozen_embeddings:
            return                                   # frozen: the gradient goes no further down
        _, dpos, dtype_, dgamma, dbeta = bert_embeddings_backward(
            dx, cache.embeddings, dword=g["embeddings.word_embeddings.weight"],     # scatter-added in place
            padding_idx=self.config.pad_token_id)                        # [PAD] positions skipped, as HF
        g["embeddings.position_embeddings.weight"] += dpos
        g["embeddings.token_type_embeddings.weight"] += dtype_
        g["embeddings.LayerNorm.weight"] += dgamma
        g["embeddings.LayerNorm.bias"] += dbeta

    def attention_probs(self):
        """The attention probabilities of the last forward, one (B, A, T, T) array per layer."""
        if self._attention_probs is None:
            raise RuntimeError("run forward() first")
        return self._attention_probs

    __call__ = forward
