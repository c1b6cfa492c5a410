"""BERT's blocks and models keep named caches (read by name: `cache.attention.sdpa.probs`), and no block's
backward returns two outputs that share memory, with dropout on or off."""
import numpy as np
import pytest

from helpers import is_named_cache, padded_batch, shared_memory_pairs
from minibert import BertConfig, BertModel
from minibert.model.blocks import (add_norm_backward, add_norm_forward, bert_embeddings_backward,
                                   bert_embeddings_forward, encoder_layer_backward, encoder_layer_forward, ffn_backward,
                                   ffn_forward, multi_head_attention_backward,
                                   multi_head_attention_forward, pooler_backward, pooler_forward)
from minibert.model.heads.pretraining import mlm_head_backward, mlm_head_forward
from minibert.ops.attention import attention_mask_bias

B, T, H, A, I, V = 3, 5, 8, 2, 12, 13


def _cases():
    """(name, forward() -> (out, cache), backward(dout, cache) -> outputs, {field: class name of a sub-cache})."""
    rng = np.random.default_rng(0)

    def n(*shape):
        return rng.normal(size=shape)

    ids, types = rng.integers(0, V, size=(B, T)), rng.integers(0, 2, size=(B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[2, 3:] = 0
    bias = attention_mask_bias(mask, np.dtype(np.float64))
    x, g, b = n(B, T, H), n(H), n(H)
    for p in (0.0, 0.3):
        drop = dict(dropout_p=p, rng=np.random.default_rng(1), training=p > 0)
        yield (f"embeddings, dropout {p}",
               lambda drop=drop: bert_embeddings_forward(ids, types, n(V, H), n(7, H), n(2, H), g, b, 1e-12, **drop),
               bert_embeddings_backward, {"word": "EmbeddingCache", "layer_norm": "LayerNormCache"})
        yield (f"multi-head attention, dropout {p}",
               lambda drop=drop: multi_head_attention_forward(x, n(3 * H, H), n(3 * H), n(H, H), n(H), A, bias, **drop),
               multi_head_attention_backward,
               {"qkv": "LinearCache", "sdpa": "AttentionCache", "output": "LinearCache"})
        yield (f"Add & Norm, dropout {p}", lambda drop=drop: add_norm_forward(x, n(B, T, H), g, b, 1e-12, **drop),
               add_norm_backward, {"layer_norm": "LayerNormCache"})
    for act in ("gelu", "gelu_new"):
        yield (f"feed-forward, {act}", lambda act=act: ffn_forward(x, n(I, H), n(I), n(H, I), n(H), act),
               ffn_backward, {"intermediate": "LinearCache", "output": "LinearCache"})
    yield "pooler", lambda: pooler_forward(x, n(H, H), n(H)), pooler_backward, {"dense": "LinearCache"}
    yield ("MLM head", lambda: mlm_head_forward(n(4, H), n(H, H), n(H), g, b, 1e-12, n(V, H), n(V)),
           mlm_head_backward, {"transform": "LinearCache", "layer_norm": "LayerNormCache", "decoder": "LinearCache"})


CASES = list(_cases())


@pytest.mark.parametrize("name, forward, backward, parts", CASES, ids=[c[0] for c in CASES])
def test_block_cache_is_named_and_holds_named_op_caches(name, forward, backward, parts):
    out, cache = forward()
    assert is_named_cache(cache), f"{name}: {type(cache)}"
    for field, cls in parts.items():
        sub = getattr(cache, field)
        assert type(sub).__name__ == cls and is_named_cache(sub), f"{name}: cache.{field} is {type(sub)}"
    grads = backward(np.random.default_rng(2).normal(size=out.shape), cache)
    assert all(g is None or np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("name, forward, backward, parts", CASES, ids=[c[0] for c in CASES])
def test_block_backward_outputs_share_no_memory(name, forward, backward, parts):
    out, cache = forward()
    grads = backward(np.random.default_rng(2).normal(size=out.shape), cache)
    assert not shared_memory_pairs(grads), f"{name}: outputs {shared_memory_pairs(grads)} are one buffer"


@pytest.mark.parametrize("training", [False, True])
def test_model_cache_is_read_by_name(training):
    cfg = BertConfig.preset("tiny", vocab_size=99)
    model = BertModel(cfg, seed=0).train() if training else BertModel(cfg, seed=0).eval()
    ids, types, mask = padded_batch(cfg)
    model.forward(ids, types, mask)
    cache = model._cache
    assert is_named_cache(cache) and len(cache.layers) == cfg.num_hidden_layers
    assert all(is_named_cache(layer) for layer in cache.layers) and is_named_cache(cache.embeddings)
    for probs, layer in zip(model.attention_probs(), cache.layers):
        assert probs is layer.attention.sdpa.probs                # the attention maps: by name
        assert probs.shape == (3, cfg.num_attention_heads, 7, 7)


@pytest.mark.parametrize("training", [False, True])
def test_encoder_layer_functions_equal_the_models_layer_bit_for_bit(training):
    """encoder_layer_forward / _backward (exercise 15's reference) compute BertModel's layer exactly."""
    cfg = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=1, num_attention_heads=A,
                     intermediate_size=I, max_position_embeddings=T, hidden_dropout_prob=0.2,
                     attention_probs_dropout_prob=0.3)
    model = BertModel(cfg, seed=3, dtype="float64")
    model.train() if training else model.eval()
    rng = np.random.default_rng(4)
    x, dout = rng.normal(size=(B, T, H)), rng.normal(size=(B, T, H))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 3:] = 0
    bias = attention_mask_bias(mask, np.dtype(np.float64))
    pre, p = "encoder.layer.0.", model.params
    w_qkv, b_qkv = model._qkv(pre + "attention.self.")
    params = {"w_qkv": w_qkv, "b_qkv": b_qkv, "w_o": p[pre + "attention.output.dense.weight"],
              "b_o": p[pre + "attention.output.dense.bias"], "gamma1": p[pre + "attention.output.LayerNorm.weight"],
              "beta1": p[pre + "attention.output.LayerNorm.bias"], "w1": p[pre + "intermediate.dense.weight"],
              "b1": p[pre + "intermediate.dense.bias"], "w2": p[pre + "output.dense.weight"],
              "b2": p[pre + "output.dense.bias"], "gamma2": p[pre + "output.LayerNorm.weight"],
              "beta2": p[pre + "output.LayerNorm.bias"]}
    model.rng = np.random.default_rng(5)
    out_model, cache_model = model._layer_forward(0, x.copy(), bias)
    out, cache = encoder_layer_forward(x.copy(), params, A, cfg.layer_norm_eps, bias, cfg.hidden_act,
                                       cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob,
                                       np.random.default_rng(5), training)
    assert np.array_equal(out, out_model)
    model.zero_grad()
    dx_model = model._layer_backward(0, dout.copy(), cache_model)
    dx, grads = encoder_layer_backward(dout.copy(), cache)
    assert np.array_equal(dx, dx_model)
    g = model.grads
    assert np.array_equal(grads["w_qkv"], np.concatenate([g[pre + f"attention.self.{n}.weight"]
                                                          for n in ("query", "key", "value")]))
    assert np.array_equal(grads["gamma1"], g[pre + "attention.output.LayerNorm.weight"])
    assert np.array_equal(grads["w1"], g[pre + "intermediate.dense.weight"])
    assert np.array_equal(grads["beta2"], g[pre + "output.LayerNorm.bias"])
