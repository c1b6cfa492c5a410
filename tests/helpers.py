"""Helpers shared by the tests (every test folder imports them from here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from minibert import BertModel

TESTS = Path(__file__).resolve().parent          # tests/
REPO = TESTS.parent                              # the repository root
DATA = REPO.parent / "shared" / "data"           # tests may read ../shared/data; the library never does
ORACLE = TESTS / "oracle"                        # stand-ins for google-research/bert's TensorFlow imports


def perturbed_model(cfg, dtype, seed=0):
    """BERT init plus noise, so biases and LayerNorm parameters are non-zero (zeros hide wrong gradients)."""
    model = BertModel(cfg, seed=seed, dtype=dtype).eval()
    rng = np.random.default_rng(seed + 100)
    for k, v in model.params.items():
        model.params[k] = v + rng.normal(0, 0.05, v.shape).astype(v.dtype)
    return model


def batch(cfg, B=3, T=7, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, cfg.vocab_size, (B, T))
    types = rng.integers(0, cfg.type_vocab_size, (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, T - 2:] = 0      # two sequences with padding
    mask[2, 3:] = 0
    ids[mask == 0] = cfg.pad_token_id
    return ids, types, mask


def random_batch(cfg, rng, B=3, T=7):
    ids = rng.integers(5, cfg.vocab_size, (B, T))
    types = np.zeros((B, T), dtype=np.int64)
    types[:, T // 2:] = 1
    mask = np.ones((B, T), dtype=np.int64)
    mask[-1, T - 2:] = 0
    ids[mask == 0] = 0
    labels = np.full((B, T), -100)
    for b in range(B):
        pos = rng.choice(np.arange(1, T - 2), size=max(1, T // 6), replace=False)
        labels[b, pos] = ids[b, pos]
        ids[b, pos] = 3                                     # a [MASK]-like id
    return dict(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels,
                next_sentence_label=rng.integers(0, 2, B))


def shared_memory_pairs(outputs) -> list:
    """The pairs (i, j) of outputs (a backward's gradients) that share memory; None and non-arrays skipped.
    A backward must return none: its caller adds into its outputs."""
    arrays = [(i, a) for i, a in enumerate(outputs) if isinstance(a, np.ndarray)]
    return [(i, j) for n, (i, a) in enumerate(arrays) for j, b in arrays[n + 1:] if np.shares_memory(a, b)]


def is_named_cache(cache) -> bool:
    """A NamedTuple whose fields all have real names (not typing's _0, _1, ... for unnamed ones)."""
    fields = getattr(type(cache), "_fields", None)
    return isinstance(cache, tuple) and bool(fields) and all(f and not f.startswith("_") for f in fields)
