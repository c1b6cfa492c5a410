"""Named-entity recognition on CoNLL files (WNUT-17): words, word labels, word pieces.

    from minibert.data.tasks import ner
    examples = ner.read_conll("../shared/data/wnut17/dev.conll")        # 1,009 sentences
    encoded = ner.encode_ner(examples, tokenizer, ner.WNUT17.label2id, max_seq_length=128)
    batch = encoded.batch(range(32))        # input_ids, ..., labels (B, T) with -100 off first pieces
    ...                                     # the model predicts a label id at every position
    tags = ner.word_predictions(pred_ids, encoded, ner.WNUT17.id2label)   # one tag per word
    metrics.ner_scores([e.tags for e in examples], tags)                  # entity-level P/R/F1

The file: one word per line, `word<TAB>tag`, BIO tags (B-person, I-person, O);
a line with nothing but whitespace ends a sentence. The traps in WNUT-17
(docs/tasks.md): train.conll separates its sentences with lines holding a single
tab (2,394 of them) as well as with empty lines, and some words are made of
characters the tokenizer deletes (U+FE0F, the emoji variation selector, is a
nonspacing mark that accent stripping removes), so they have no word piece.

Label alignment, as Hugging Face's run_ner (label_all_tokens=False): the first
piece of each word gets the word's label id, the other pieces and [CLS]/[SEP]
get -100 (no loss). A word with no pieces gets no position: the alignment goes
by word, so nothing shifts, and at evaluation time its prediction is "O".
A sentence longer than max_seq_length - 2 pieces is cut; its cut words also
predict "O". Both are counted. (Hugging Face's run_ner instead drops such
words from the gold *and* the predicted sequence, which can drop gold
entities; predicting "O" keeps every gold entity in the denominator.)
"""
from __future__ import annotations

from dataclasses import dataclass

from minibert.backend import to_host
from minibert.data.tasks.batching import IGNORE_INDEX, Encoded
from minibert.data.tasks.files import DataFormatError, EmptyFileError, read_lines
from minibert.data.tasks.spec import TaskSpec
from minibert.errors import InputError

__all__ = ["WNUT17", "TokenExample", "encode_ner", "label_list", "read_conll", "word_predictions"]

_WNUT_TYPES = ("corporation", "creative-work", "group", "location", "person", "product")

WNUT17 = TaskSpec(
    name="wnut17", kind="token", columns=("token", "tag"), text_columns=("token",),
    label_column="tag",
    label_names=tuple(sorted([f"{p}-{t}" for p in "BI" for t in _WNUT_TYPES] + ["O"])),
    files={"train": "wnut17/train.conll", "dev": "wnut17/dev.conll", "test": "wnut17/test.conll"},
    metric="seqeval")

DOCSTART = "-DOCSTART-"   # CoNLL-2003's document marker line: skipped, ends a sentence


@dataclass(frozen=True)
class TokenExample:
    """One sentence: its words and their tags; `line` is the file line of its first word."""

    idx: int
    words: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


def read_conll(path, task: TaskSpec | None = WNUT17) -> list[TokenExample]:
    """Read a two-column CoNLL file: `word<TAB>tag` lines, sentences between blank lines.

    A line that is empty or only whitespace (WNUT-17 train uses a single tab)
    ends a sentence; `-DOCSTART-` lines are skipped. Words are kept exactly as
    written (an empty word is allowed: it simply has no word piece).
    task: the tags must be among task.label_names; None accepts any BIO tag
    (O, B-X, I-X), e.g. for another NER data set (then see label_list).

    Raises DataFormatError naming the file and line for a line that is not two
    tab-separated fields, or an unknown tag; EmptyFileError for no sentence.
    """
    known = set(task.label_names) if task is not None else None
    lines = read_lines(path, "CoNLL file")
    examples, words, tags, first = [], [], [], 0
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if not line.strip() or line.split(None, 1)[0] == DOCSTART:
            if words:
                examples.append(TokenExample(len(examples), tuple(words), tuple(tags), first))
                words, tags = [], []
            continue
        if len(fields) != 2:
            raise DataFormatError(
                f"{path}, line {number}: expected 2 tab-separated fields (token, tag), found "
                f"{len(fields)}: {line[:80]!r}")
        word, tag = fields[0], fields[1].strip()
        if known is not None and tag not in known:
            raise DataFormatError(f"{path}, line {number}: unknown tag {tag!r}; {task.name} tags are "
                                  f"{list(task.label_names)}")
        if known is None and not (tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2)):
            raise DataFormatError(f"{path}, line {number}: tag {tag!r} is not a BIO tag (O, B-X, I-X)")
        if not words:
            first = number
        words.append(word)
        tags.append(tag)
    if words:
        examples.append(TokenExample(len(examples), tuple(words), tuple(tags), first))
    if not examples:
        raise EmptyFileError(f"{path} has no sentence (only blank lines)")
    return examples


def label_list(examples: list[TokenExample]) -> list[str]:
    """The sorted distinct tags of some examples (run_ner's label list for a new data set)."""
    return sorted({tag for example in examples for tag in example.tags})


def encode_ner(examples: list[TokenExample], tokenizer, label2id: dict[str, int],
               max_seq_length: int = 128) -> Encoded:
    """Sentences -> features with word-piece labels.

    Each feature: input_ids, token_type_ids (all 0), attention_mask, labels
    (the word's label id on its first piece, -100 elsewhere), word_starts (for
    each word, the position of its first piece, or -1 if it has none: no
    pieces, or cut by truncation) and example_index.

    counts: examples, words, words_without_pieces, truncated_sentences,
    truncated_words (words cut off entirely).
    """
    if max_seq_length < 3:
        raise InputError(f"max_seq_length={max_seq_length} leaves no room for a word after [CLS] and [SEP]")
    words = [word for example in examples for word in example.words]
    pieces = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    budget = max_seq_length - 2
    counts = {"examples": len(examples), "words": len(words), "words_without_pieces": 0,
              "truncated_sentences": 0, "truncated_words": 0}
    features, k = [], 0
    for index, example in enumerate(examples):
        input_ids, labels, word_starts = [tokenizer.cls_token_id], [IGNORE_INDEX], []
        truncated = False
        for tag in example.tags:
            if tag not in label2id:
                raise InputError(f"sentence {example.idx} (line {example.line}) has the tag {tag!r}, "
                                 f"which label2id lacks; labels: {sorted(label2id)}")
            word_pieces = pieces[k]
            k += 1
            room = budget - (len(input_ids) - 1)
            if not word_pieces:
                counts["words_without_pieces"] += 1
                word_starts.append(-1)
                continue
            if room <= 0:
                counts["truncated_words"] += 1
                word_starts.append(-1)
                truncated = True
                continue
            kept = word_pieces[:room]
            truncated |= len(kept) < len(word_pieces)
            word_starts.append(len(input_ids))
            input_ids += kept
            labels += [label2id[tag]] + [IGNORE_INDEX] * (len(kept) - 1)
        input_ids.append(tokenizer.sep_token_id)
        labels.append(IGNORE_INDEX)
        counts["truncated_sentences"] += truncated
        features.append({"input_ids": input_ids, "token_type_ids": [0] * len(input_ids),
                         "attention_mask": [1] * len(input_ids), "labels": labels,
                         "word_starts": word_starts, "example_index": index})
    return Encoded(features, counts, pad_token_id=tokenizer.pad_token_id)


def word_predictions(predictions, encoded: Encoded, id2label: dict[int, str]) -> list[list[str]]:
    """Per-position predictions -> one tag per word of each sentence.

    predictions: (N, T) predicted label ids, or (N, T, K) logits (argmax is
        taken), one row per feature of `encoded`, in order; T at least as long
        as every feature.
    A word's tag is the prediction at its first piece; a word without a
    position (no pieces, or cut by truncation) gets "O".
    """
    predictions = to_host(predictions)
    if predictions.ndim == 3:
        predictions = predictions.argmax(axis=-1)                     # (N, T, K) -> (N, T)
    if predictions.ndim != 2 or len(predictions) != len(encoded.features):
        raise ValueError(f"predictions should be (N, T) or (N, T, K) with N = {len(encoded.features)} "
                         f"features, got shape {predictions.shape}")
    tags = []
    for row, feature in zip(predictions, encoded.features):
        if len(feature["input_ids"]) > len(row):
            raise ValueError(f"a prediction row has {len(row)} positions but feature "
                             f"{feature['example_index']} has {len(feature['input_ids'])}")
        tags.append([id2label[int(row[s])] if s >= 0 else "O" for s in feature["word_starts"]])
    return tags
