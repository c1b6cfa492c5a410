"""Helpers that build the PyTorch / transformers reference (tests only; minibert never imports torch)."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np


def hf_config(cfg):
    """transformers.BertConfig with the fields of minibert BertConfig `cfg`."""
    import transformers
    return transformers.BertConfig(**{k: v for k, v in cfg.to_dict().items()
                                      if k not in ("model_type", "architectures")})


def hf_bert_model(model, torch_dtype=None):
    """A transformers BertModel with minibert `model`'s config and a copy of its parameters (by name)."""
    import torch
    import transformers

    cfg = model.config
    hf_cfg = hf_config(cfg)
    hf_cfg._attn_implementation = "eager"
    ref = transformers.BertModel(hf_cfg, add_pooling_layer=True)
    dtype = torch_dtype or (torch.float64 if model.dtype == np.float64 else torch.float32)
    ref = ref.to(dtype)
    state = {k: torch.tensor(np.asarray(v)) for k, v in model.params.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    assert not missing and not unexpected, (missing, unexpected)
    return ref


def rel_diff(a, b) -> float:
    """max|a - b| / max(1, max|b|): absolute on unit-scale values, relative on large ones."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def hf_pretraining_model(model, torch_dtype=None):
    """transformers' BertForPreTraining with minibert BertForPreTraining `model`'s config and weights."""
    import torch
    import transformers

    cfg = model.config
    hf_cfg = hf_config(cfg)
    hf_cfg._attn_implementation = "eager"
    ref = transformers.BertForPreTraining(hf_cfg)
    dtype = torch_dtype or (torch.float64 if model.dtype == np.float64 else torch.float32)
    ref = ref.to(dtype)
    state = {k: torch.tensor(np.asarray(v)) for k, v in model.params.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids") and not k.startswith("cls.predictions.decoder")]
    assert not missing and not unexpected, (missing, unexpected)
    assert ref.cls.predictions.decoder.weight is ref.bert.embeddings.word_embeddings.weight   # tied
    return ref
