"""The PyTorch / transformers references (tests only; minibert never imports torch or transformers).

    hf_config(cfg)            transformers.BertConfig with minibert BertConfig `cfg`'s fields
    hf_model(model)           the transformers class of the same name, a copy of `model`'s weights by name
    hf_random(name, cfg, std) a transformers model of class `name`, seeded, optionally re-drawn normal(0, std)
    torch_batch(batch)        a batch of NumPy arrays as torch tensors
    rel_diff(a, b)            the comparison every parity test uses
    hf_fast(), hf_python()    Hugging Face's two BERT tokenizers (Rust, pure Python) on MiniLM's vocabulary
                              (hf_fast(split_special_tokens=True): "[SEP]" in text is text)
"""
from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from helpers import minilm_path


def hf_config(cfg):
    """transformers.BertConfig with the fields of minibert BertConfig `cfg`."""
    import transformers
    return transformers.BertConfig(**{k: v for k, v in cfg.to_dict().items()
                                      if k not in ("model_type", "architectures")})


def hf_model(model, torch_dtype=None):
    """transformers' class of the same name as minibert `model` (BertModel, BertForPreTraining,
    BertFor...Classification, BertForQuestionAnswering), eager attention, `model`'s config and a copy
    of its parameters by name; float64 for a float64 model unless torch_dtype says otherwise."""
    import torch
    import transformers

    cfg = hf_config(model.config)
    cfg._attn_implementation = "eager"
    ref = getattr(transformers, type(model).__name__)(cfg)
    ref = ref.to(torch_dtype or (torch.float64 if model.dtype == np.float64 else torch.float32))
    state = {k: torch.tensor(np.asarray(v)) for k, v in model.params.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    # position_ids is a buffer; the MLM decoder's weight is the word embeddings (tied), its bias cls.predictions.bias
    missing = [k for k in missing if not k.endswith("position_ids") and not k.startswith("cls.predictions.decoder")]
    assert not missing and not unexpected, (missing, unexpected)
    if isinstance(ref, transformers.BertForPreTraining):
        assert ref.cls.predictions.decoder.weight is ref.bert.embeddings.word_embeddings.weight   # tied
    return ref


def hf_random(name, cfg, std=None):
    """transformers.`name` (e.g. "BertModel") with minibert config `cfg`, float64, eval mode, torch seed 0;
    with std, every parameter re-drawn from normal(0, std) (non-zero biases and LayerNorm too)."""
    import torch
    import transformers

    torch.manual_seed(0)
    hf = getattr(transformers, name)(hf_config(cfg)).double().eval()
    if std is not None:
        with torch.no_grad():
            for p in hf.parameters():
                p.normal_(0, std)
    return hf


def torch_batch(batch, dtype=None):
    """{name: torch tensor} of a batch of NumPy arrays; floating ones cast to `dtype` if given."""
    import torch
    out = {}
    for k, v in batch.items():
        t = torch.tensor(v)
        out[k] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    return out


def rel_diff(a, b) -> float:
    """max|a - b| / max(1, max|b|): absolute on unit-scale values, relative on large ones."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


# -- tokenizers ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def hf_fast(do_lower_case: bool = True, split_special_tokens: bool = False):
    """Hugging Face's Rust-backed BertTokenizer (BertTokenizerFast) on the MiniLM vocabulary."""
    transformers = pytest.importorskip("transformers")
    tok = transformers.BertTokenizer.from_pretrained(str(minilm_path()), do_lower_case=do_lower_case,
                                                     split_special_tokens=split_special_tokens)
    # tokenizer.json ships with truncation/padding switched on; each call here
    # states what it wants, so switch them off.
    tok.backend_tokenizer.no_truncation()
    tok.backend_tokenizer.no_padding()
    return tok


@functools.lru_cache(maxsize=None)
def hf_python(do_lower_case: bool = True):
    """Hugging Face's pure-Python BertTokenizerLegacy on the MiniLM vocabulary."""
    pytest.importorskip("transformers")
    from transformers.models.bert import BertTokenizerLegacy
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()  # its pair truncation logs a warning on every call
    return BertTokenizerLegacy(str(minilm_path() / "vocab.txt"), do_lower_case=do_lower_case)
