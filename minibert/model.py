"""BertModel: embeddings -> L encoder layers -> pooler, forward and backward by hand.

Legend: B batch, T tokens, H hidden, A heads, d = H/A head size, I intermediate
(4H), V vocabulary, P max positions.

    x0  = dropout(LayerNorm(word[ids] + position[0..T) + token_type[types]))
    for each layer (post-LN, as in BERT):
        h = LayerNorm(x + dropout(MultiHeadAttention(x) W_o + b_o))
        x = LayerNorm(h + dropout(GELU(h W_1 + b_1) W_2 + b_2))
    pooled = tanh(x[:, 0] W_p + b_p)          # the [CLS] vector

Parameters live in one flat dict whose keys are Hugging Face's BertModel
state-dict names, with the same shapes (Linear weights are (out, in)), so real
checkpoints load 1:1. Gradients live in a second dict with the same keys; every
backward *adds* into it, so residual branches and tied weights come out right,
and `zero_grad()` clears it.
"""
from __future__ import annotations

import numpy

from minibert import backend
from minibert.backend import get_xp
from minibert.config import BertConfig
from minibert.ops.activations import ACTIVATIONS, tanh_backward, tanh_forward
from minibert.ops.attention import (attention_mask_bias, merge_heads,
                                    scaled_dot_product_attention_backward,
                                    scaled_dot_product_attention_forward, split_heads)
from minibert.ops.dropout import dropout_backward, dropout_forward
from minibert.ops.embedding import embedding_backward, embedding_forward
from minibert.ops.layer_norm import layer_norm_backward, layer_norm_forward
from minibert.ops.linear import linear_backward, linear_forward


def bert_parameter_shapes(config: BertConfig) -> dict:
    """Hugging Face BertModel state-dict name -> shape, in the reference's order."""
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


class BertModel:
    """The BERT encoder with a hand-written backward pass.

        model = BertModel(BertConfig.preset("tiny"), seed=0, dtype="float64")
        seq, pooled = model.forward(input_ids, token_type_ids, attention_mask)  # (B,T,H), (B,H)
        model.zero_grad()
        model.backward(d_seq, d_pooled)       # fills model.grads (same keys as model.params)

    Like a PyTorch module it starts in training mode (dropout on); call
    `model.eval()` for deterministic outputs.
    """

    def __init__(self, config: BertConfig, seed: int = 0, dtype="float32", params: dict | None = None):
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = backend.resolve_dtype(dtype)
        self.shapes = bert_parameter_shapes(config)
        init_rng = numpy.random.default_rng(seed)
        self.params = params if params is not None else init_parameters(self.shapes, config, init_rng, self.dtype)
        self.grads = {k: get_xp(v).zeros_like(v) for k, v in self.params.items()}
        self.rng = numpy.random.default_rng([seed, 1])   # dropout masks: a stream of its own
        self.training = True
        self._cache = None

    # -- modes -------------------------------------------------------------
    def train(self):
        """Dropout on (as torch.nn.Module.train)."""
        self.training = True
        return self

    def eval(self):
        """Dropout off (as torch.nn.Module.eval)."""
        self.training = False
        return self

    def zero_grad(self):
        """Set every gradient buffer to zero (backward adds into them)."""
        for g in self.grads.values():
            g.fill(0)

    def num_parameters(self) -> int:
        return sum(int(numpy.prod(s)) for s in self.shapes.values())

    # -- inputs ------------------------------------------------------------
    def _check_inputs(self, input_ids, token_type_ids, attention_mask):
        """Validate shapes and ranges on whatever device the arrays live on; return device arrays."""
        cfg = self.config
        xp = get_xp(self.params["embeddings.word_embeddings.weight"])

        def as_int_array(a, what):
            if a is None:
                return None
            if isinstance(a, (list, tuple)):
                a = numpy.asarray(a)
            if not hasattr(a, "dtype") or a.dtype.kind not in "iub":
                raise TypeError(f"{what} must be an integer array, got {getattr(a, 'dtype', type(a).__name__)}")
            return xp.asarray(a)

        ids = as_int_array(input_ids, "input_ids")
        if ids is None or ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {None if ids is None else ids.shape}")
        B, T = ids.shape
        if T == 0 or B == 0:
            raise ValueError(f"input_ids is empty: shape {ids.shape}")
        if T > cfg.max_position_embeddings:
            raise ValueError(f"sequence length {T} is longer than max_position_embeddings="
                             f"{cfg.max_position_embeddings}; truncate the input")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= cfg.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"input_ids contains id {bad}, outside the vocabulary [0, {cfg.vocab_size})")
        types = as_int_array(token_type_ids, "token_type_ids")
        if types is None:
            types = xp.zeros((B, T), dtype=ids.dtype)
        elif types.shape != ids.shape:
            raise ValueError(f"token_type_ids has shape {types.shape} but input_ids has shape {ids.shape}")
        else:
            lo, hi = int(types.min()), int(types.max())
            if lo < 0 or hi >= cfg.type_vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(f"token_type_ids contains {bad}, outside [0, type_vocab_size={cfg.type_vocab_size})")
        mask = as_int_array(attention_mask, "attention_mask")
        if mask is None:
            mask = xp.ones((B, T), dtype=ids.dtype)
        elif mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {mask.shape} but input_ids has shape {ids.shape}")
        elif int(mask.min()) < 0 or int(mask.max()) > 1:
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        return ids, types, mask

    # -- embeddings --------------------------------------------------------
    def _embeddings_forward(self, ids, types):
        p, cfg = self.params, self.config
        T = ids.shape[1]
        x, c_word = embedding_forward(ids, p["embeddings.word_embeddings.weight"])         # (B,T,H)
        t, c_type = embedding_forward(types, p["embeddings.token_type_embeddings.weight"])  # (B,T,H)
        x += t
        x += p["embeddings.position_embeddings.weight"][:T]        # positions 0..T-1, broadcast over B
        x, c_ln = layer_norm_forward(x, p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"],
                                     cfg.layer_norm_eps)
        x, c_drop = dropout_forward(x, cfg.hidden_dropout_prob, self.rng, self.training)
        return x, (c_word, c_type, c_ln, c_drop, T)

    def _embeddings_backward(self, dx, cache):
        g = self.grads
        c_word, c_type, c_ln, c_drop, T = cache
        dx = dropout_backward(dx, c_drop)
        dx, dgamma, dbeta = layer_norm_backward(dx, c_ln)
        g["embeddings.LayerNorm.weight"] += dgamma
        g["embeddings.LayerNorm.bias"] += dbeta
        # the sum word + type + position sends the same gradient to all three
        g["embeddings.position_embeddings.weight"][:T] += dx.sum(axis=0)                       # (T, H)
        embedding_backward(dx, c_type, dweight=g["embeddings.token_type_embeddings.weight"])  # scatter-add
        embedding_backward(dx, c_word, dweight=g["embeddings.word_embeddings.weight"],       # scatter-add,
                           padding_idx=self.config.pad_token_id)                       # [PAD] rows skipped (as HF)

    # -- one encoder layer -------------------------------------------------
    def _qkv_weights(self, prefix):
        """Q, K and V are three Linear(H, H) layers (their HF names); run them as one
        (H -> 3H) matmul, because one big matmul is faster than three small ones."""
        p = self.params
        xp = get_xp(p[prefix + "query.weight"])
        names = ("query", "key", "value")
        w = xp.concatenate([p[prefix + n + ".weight"] for n in names], axis=0)   # (3H, H)
        b = xp.concatenate([p[prefix + n + ".bias"] for n in names], axis=0)     # (3H,)
        return w, b

    def _layer_forward(self, i, x, mask_bias):
        p, cfg = self.params, self.config
        pre = f"encoder.layer.{i}."
        H, A = cfg.hidden_size, cfg.num_attention_heads
        act_forward, _ = ACTIVATIONS[cfg.hidden_act]
        # --- multi-head self-attention ---
        w_qkv, b_qkv = self._qkv_weights(pre + "attention.self.")
        qkv, c_qkv = linear_forward(x, w_qkv, b_qkv)                          # (B,T,H) @ (H,3H) -> (B,T,3H)
        q = split_heads(qkv[..., :H], A)                                      # (B,A,T,d) views
        k = split_heads(qkv[..., H:2 * H], A)
        v = split_heads(qkv[..., 2 * H:], A)
        ctx, c_att = scaled_dot_product_attention_forward(
            q, k, v, mask_bias, cfg.attention_probs_dropout_prob, self.rng, self.training)
        ctx = merge_heads(ctx)                                                # (B,A,T,d) -> (B,T,H)
        a, c_o = linear_forward(ctx, p[pre + "attention.output.dense.weight"],
                                p[pre + "attention.output.dense.bias"])       # (B,T,H) @ (H,H)
        a, c_d1 = dropout_forward(a, cfg.hidden_dropout_prob, self.rng, self.training)
        a += x                                                                # residual
        h, c_ln1 = layer_norm_forward(a, p[pre + "attention.output.LayerNorm.weight"],
                                      p[pre + "attention.output.LayerNorm.bias"], cfg.layer_norm_eps)
        # --- feed-forward network ---
        f, c_i = linear_forward(h, p[pre + "intermediate.dense.weight"],
                                p[pre + "intermediate.dense.bias"])           # (B,T,H) @ (H,I) -> (B,T,I)
        f, c_act = act_forward(f)                                             # GELU
        o, c_o2 = linear_forward(f, p[pre + "output.dense.weight"],
                                 p[pre + "output.dense.bias"])                # (B,T,I) @ (I,H) -> (B,T,H)
        o, c_d2 = dropout_forward(o, cfg.hidden_dropout_prob, self.rng, self.training)
        o += h                                                                # residual
        out, c_ln2 = layer_norm_forward(o, p[pre + "output.LayerNorm.weight"],
                                        p[pre + "output.LayerNorm.bias"], cfg.layer_norm_eps)
        return out, (c_qkv, c_att, c_o, c_d1, c_ln1, c_i, c_act, c_o2, c_d2, c_ln2)

    def _layer_backward(self, i, dout, cache):
        g, cfg = self.grads, self.config
        pre = f"encoder.layer.{i}."
        xp = get_xp(dout)
        _, act_backward = ACTIVATIONS[cfg.hidden_act]
        c_qkv, c_att, c_o, c_d1, c_ln1, c_i, c_act, c_o2, c_d2, c_ln2 = cache
        # --- feed-forward network, last line first ---
        do, dgamma, dbeta = layer_norm_backward(dout, c_ln2)     # out = LN(o)
        g[pre + "output.LayerNorm.weight"] += dgamma
        g[pre + "output.LayerNorm.bias"] += dbeta
        dh = do.copy()                                           # o = f' + h: the residual sends `do` to h ...
        do = dropout_backward(do, c_d2)                          # ... and through the FFN branch
        df, dw, db = linear_backward(do, c_o2)
        g[pre + "output.dense.weight"] += dw
        g[pre + "output.dense.bias"] += db
        df = act_backward(df, c_act)
        dh_ffn, dw, db = linear_backward(df, c_i)
        g[pre + "intermediate.dense.weight"] += dw
        g[pre + "intermediate.dense.bias"] += db
        dh += dh_ffn
        # --- attention block ---
        da, dgamma, dbeta = layer_norm_backward(dh, c_ln1)       # h = LN(a)
        g[pre + "attention.output.LayerNorm.weight"] += dgamma
        g[pre + "attention.output.LayerNorm.bias"] += dbeta
        dx = da.copy()                                           # a = attn' + x: residual to x
        da = dropout_backward(da, c_d1)
        dctx, dw, db = linear_backward(da, c_o)
        g[pre + "attention.output.dense.weight"] += dw
        g[pre + "attention.output.dense.bias"] += db
        A = cfg.num_attention_heads
        dq, dk, dv = scaled_dot_product_attention_backward(split_heads(dctx, A), c_att)
        B, _, T, d = dq.shape
        dqkv = xp.empty((B, T, 3, A, d), dtype=dq.dtype)         # merge heads straight into the fused layout
        dqkv[:, :, 0] = dq.transpose(0, 2, 1, 3)
        dqkv[:, :, 1] = dk.transpose(0, 2, 1, 3)
        dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
        dx_attn, dw, db = linear_backward(dqkv.reshape(B, T, 3 * A * d), c_qkv)
        H = A * d
        for j, name in enumerate(("query", "key", "value")):     # split the fused (3H, H) gradient
            g[pre + f"attention.self.{name}.weight"] += dw[j * H:(j + 1) * H]
            g[pre + f"attention.self.{name}.bias"] += db[j * H:(j + 1) * H]
        dx += dx_attn
        return dx

    # -- the whole model ---------------------------------------------------
    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        """input_ids, token_type_ids, attention_mask: (B, T) integers (host or device arrays).

        Returns (last_hidden_state (B, T, H), pooler_output (B, H)) on the backend's device.
        """
        ids, types, mask = self._check_inputs(input_ids, token_type_ids, attention_mask)
        p = self.params
        mask_bias = attention_mask_bias(mask, self.dtype)                     # (B,1,1,T)
        x, c_emb = self._embeddings_forward(ids, types)
        c_layers = []
        for i in range(self.config.num_hidden_layers):
            x, c = self._layer_forward(i, x, mask_bias)
            c_layers.append(c)
        first = x[:, 0]                                                       # [CLS]: (B, H)
        z, c_pool = linear_forward(first, p["pooler.dense.weight"], p["pooler.dense.bias"])
        pooled, c_tanh = tanh_forward(z)
        self._cache = (c_emb, c_layers, c_pool, c_tanh, x.shape)
        return x, pooled

    def backward(self, d_last_hidden_state=None, d_pooler_output=None):
        """Add the gradients of every parameter into self.grads, given the upstream
        gradients of forward's two outputs (either may be None = zero)."""
        if self._cache is None:
            raise RuntimeError("backward() called before forward() (or twice for one forward)")
        c_emb, c_layers, c_pool, c_tanh, x_shape = self._cache
        self._cache = None
        xp = get_xp(self.params["pooler.dense.weight"])
        if d_last_hidden_state is not None and tuple(d_last_hidden_state.shape) != tuple(x_shape):
            raise ValueError(f"d_last_hidden_state has shape {d_last_hidden_state.shape}, expected {x_shape}")
        if d_pooler_output is not None and tuple(d_pooler_output.shape) != (x_shape[0], x_shape[2]):
            raise ValueError(f"d_pooler_output has shape {d_pooler_output.shape}, expected {(x_shape[0], x_shape[2])}")
        dx = (xp.zeros(x_shape, dtype=self.dtype) if d_last_hidden_state is None
              else xp.array(d_last_hidden_state, dtype=self.dtype))          # a copy: we add into it
        if d_pooler_output is not None:
            dz = tanh_backward(xp.asarray(d_pooler_output, dtype=self.dtype), c_tanh)
            dfirst, dw, db = linear_backward(dz, c_pool)
            self.grads["pooler.dense.weight"] += dw
            self.grads["pooler.dense.bias"] += db
            dx[:, 0] += dfirst
        for i in reversed(range(self.config.num_hidden_layers)):
            dx = self._layer_backward(i, dx, c_layers[i])
        self._embeddings_backward(dx, c_emb)

    def attention_probs(self):
        """The attention probabilities of the last forward, one (B, A, T, T) array per layer."""
        if self._cache is None:
            raise RuntimeError("run forward() first")
        return [c[1][3] for c in self._cache[1]]

    __call__ = forward
