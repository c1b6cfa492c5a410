"""The tokenizer tests' data sets (tests/tokenization/): real text from ../shared/data, line by line.

The data sets are the real ones in ../shared/data (see its README.md); a test whose file is absent
is skipped with the reason (helpers.data_path). The references, all-MiniLM-L6-v2's uncased
vocabulary under minibert's tokenizer (helpers.minilm_tokenizer) and Hugging Face's two BERT
tokenizers (reference.hf_fast, reference.hf_python), are in the shared helper modules.
Everything here is loaded lazily and cached per process.
"""
from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from helpers import DATA, data_path

GUTENBERG = DATA / "gutenberg"
# The two held-out books named in ../shared/data/gutenberg/README.md.
HELD_OUT_BOOKS = ("stevenson-jekyll_and_hyde.txt", "wells-time_machine.txt")
GUTENBERG_SAMPLE = 20_000
MAX_LENGTH = 128


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


@functools.lru_cache(maxsize=None)
def wikitext_lines() -> tuple[str, ...]:
    """Every line of WikiText-2's raw test split (blank lines are " ")."""
    lines = _read_lines(data_path("wikitext2", "test.raw.txt"))
    return tuple(lines[:-1] if lines[-1] == "" else lines)


def gutenberg_books(held_out: bool | None = None) -> list[Path]:
    """The book files, sorted; held_out=False: training books, True: the two held out."""
    data_path("gutenberg")
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
    rows = _read_lines(data_path("sst2", f"{split}.tsv"))[1:]
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
        for line in _read_lines(data_path("wnut17", split)) + [""]:
            if line.strip():
                tokens.append(line.split("\t")[0])
            elif tokens:
                sentences.append(" ".join(tokens))
                tokens = []
    return tuple(sentences)


@functools.lru_cache(maxsize=None)
def xquad() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(every XQuAD context, every (question, context) pair)."""
    data = json.loads(data_path("xquad", "xquad.en.json").read_text(encoding="utf-8"))
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


# The special tokens' strings, as text that mentions them (any text about BERT) has them.
SPECIAL_STRINGS = ("[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]")


def with_special_string(text: str, rng: random.Random) -> str:
    """`text` with one of SPECIAL_STRINGS written into it at a random place: between two words, at
    the start or the end, or glued to a word (`x[SEP]`, `[MASK]y`); upper case, or lower case (30%).
    Whitespace is collapsed to single spaces."""
    words = text.split()
    token = rng.choice(SPECIAL_STRINGS)
    token = token if rng.random() < 0.7 else token.lower()
    if words and rng.random() < 0.3:
        j = rng.randrange(len(words))
        words[j] = words[j] + token if rng.random() < 0.5 else token + words[j]
    else:
        words.insert(rng.randint(0, len(words)), token)
    return " ".join(words)


@functools.lru_cache(maxsize=None)
def special_string_lines() -> tuple[str, ...]:
    """Every WikiText-2 test line and 5,000 Gutenberg lines, each with two special-token strings
    written into it (with_special_string, seed 0): real text that mentions [CLS], [SEP], ..."""
    rng = random.Random(0)
    lines = wikitext_lines() + gutenberg_lines()[::4]
    return tuple(with_special_string(with_special_string(line, rng), rng) for line in lines)


def consecutive_pairs(lines) -> list[tuple[str, str]]:
    """(line i, line i+1): pairs of real text, of all lengths, for the pair tests."""
    return list(zip(lines[:-1], lines[1:]))
