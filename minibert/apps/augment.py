"""Data augmentation by contextual word replacement: new training sentences from a masked-LM.

    from minibert.apps.augment import Augmenter
    aug = Augmenter.load("runs/pretrain")                        # any folder with BertForPreTraining weights
    aug.variants("a charming and often affecting journey .", n=3, seed=0)
    # ['a charming and often affecting film .', 'a quiet and often affecting journey .', ...]

    python -m minibert augment --model runs/pretrain --in train.tsv --out aug.tsv --per-example 4

Each new sentence is the old one with a fraction p of its words replaced by what the
masked-LM guesses in their place (Kobayashi, 2018, "contextual augmentation"; Wu et
al., 2019, "conditional BERT contextual augmentation" without the label conditioning).
The label is kept: a replacement that reads well in context usually keeps the meaning,
but not always ("good" -> "bad" reads well too), hence the optional filter below.

One new sentence (legend: W words, m = max(1, round(p * W')) words to replace, W' the
replaceable ones):

    1. words        sentence.split()  (GLUE's SST-2 is already space-tokenized)
    2. choose       m of the words that hold a letter or digit (never punctuation), at random
    3. mask         [CLS] pieces(w1) .. [MASK] .. pieces(wW) [SEP]: each chosen word, however many
                    word pieces it has, becomes ONE [MASK]
    4. predict      logits = MLM head at the masks (one forward pass for all the masks)   (m, V)
    5. sample       keep only whole-word tokens (no "##" piece, no special token, no punctuation,
                    not the word being replaced); the top_k best of them; softmax(logits / T); draw
    6. detokenise   the words joined by single spaces, the chosen ones replaced

Decisions, and why: a word is replaced by one whole-word token, so a replacement is
always a word of the vocabulary (a 16,000-piece vocabulary holds most common words
whole); multi-piece replacements are not generated. The masks of one sentence are
filled at once, each independently (m is small: 15% of a sentence), which costs one
forward pass per new sentence. The original word is excluded so that every new
sentence differs from its source.

Filter (optional): a classifier fine-tuned on the task (`minibert finetune`'s folder)
labels each new sentence; only those it labels as the source are kept (more are
drawn, up to `tries` times n, until n pass; an example may end with fewer than n).

Randomness: each example has its own generator, numpy.random.default_rng([seed,
index]), so the rows of one example do not depend on the others (or on batching).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy

from minibert import backend
from minibert.apps.fill_mask import load_pretraining_model
from minibert.data.tasks.glue import SequenceExample, encode_glue, read_glue
from minibert.errors import InputError
from minibert.files import atomic_open
from minibert.ops.losses import IGNORE_INDEX
from minibert.train.finetune import load_finetuned

__all__ = ["Augmenter", "augment_examples", "augment_tsv", "replaceable", "LabelFilter"]


def replaceable(word: str) -> bool:
    """A word that may be replaced: it holds a letter or a digit (so not `,` `--` `'s`... punctuation only)."""
    return any(ch.isalnum() for ch in word)


@dataclasses.dataclass
class Augmenter:
    """A masked-LM (BertForPreTraining) and its tokenizer, and how to sample from it."""
    model: object
    tokenizer: object
    fraction: float = 0.15           # p: the share of the replaceable words masked in each new sentence
    temperature: float = 1.0         # T: logits / T before the softmax (< 1: surer, > 1: more varied)
    top_k: int = 50                  # sample among the k most likely whole words (0: all of them)

    def __post_init__(self):
        if isinstance(self.fraction, bool) or not 0 < self.fraction <= 1:
            raise InputError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be > 0, got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise InputError(f"top_k must be an integer >= 0, got {self.top_k!r}")
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        special = set(self.tokenizer.all_special_tokens)
        # the tokens a word may become: whole words, not pieces, specials, [unused..] or punctuation
        self._whole = numpy.array([not t.startswith("##") and t not in special and replaceable(t)
                                   and not (t.startswith("[") and t.endswith("]")) for t in vocab])
        if not self._whole.any():
            raise InputError("the model's vocabulary has no whole-word token to sample")
        self._vocab = vocab

    @classmethod
    def load(cls, folder, **settings) -> "Augmenter":
        """From a `minibert pretrain` run folder (or any folder with config.json, vocab.txt, BertForPreTraining
        weights in model.safetensors)."""
        model, tokenizer = load_pretraining_model(folder)
        return cls(model.eval(), tokenizer, **settings)

    # -- one example ---------------------------------------------------------------------------------

    def _masked_ids(self, words, chosen) -> list[int]:
        """[CLS] pieces .. [MASK] .. [SEP] with each chosen word one [MASK]; cut to the model's positions."""
        tok = self.tokenizer
        ids = [tok.cls_token_id]
        for i, w in enumerate(words):
            ids += [tok.mask_token_id] if i in chosen else tok.convert_tokens_to_ids(tok.tokenize(w))
        return ids[:self.model.config.max_position_embeddings - 1] + [tok.sep_token_id]

    def _fitting_words(self, words) -> list[int]:
        """Indices of the replaceable words whose pieces lie within the model's positions (a long
        sentence is cut for the model; its tail words are never masked)."""
        room, used, out = self.model.config.max_position_embeddings - 2, 0, []
        for i, w in enumerate(words):
            used += max(1, len(self.tokenizer.tokenize(w)))
            if used > room:
                break
            if replaceable(w):
                out.append(i)
        return out

    def _sample(self, logits: numpy.ndarray, originals, rng) -> list[str]:
        """One whole word per row of logits (m, V): top_k of the allowed tokens, softmax(logits / T), a draw."""
        words = []
        for row, original in zip(logits, originals):
            allowed = self._whole.copy()
            own = self.tokenizer.vocab.get(original.lower() if self.tokenizer_lowercases else original)
            if own is not None:
                allowed[own] = False                                   # always a new word
            z = numpy.where(allowed, row.astype(numpy.float64) / self.temperature, -numpy.inf)
            if self.top_k and self.top_k < allowed.sum():
                cut = numpy.partition(z, -self.top_k)[-self.top_k]     # the k-th largest
                z = numpy.where(z >= cut, z, -numpy.inf)
            p = numpy.exp(z - z.max())
            p /= p.sum()
            words.append(self._vocab[int(rng.choice(len(p), p=p))])
        return words

    @property
    def tokenizer_lowercases(self) -> bool:
        return bool(getattr(self.tokenizer, "do_lower_case", True))

    def variants(self, sentence: str, n: int, seed=0, rng=None) -> list[str]:
        """n new sentences from one, each with about `fraction` of its words replaced."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"the number of new sentences must be an integer >= 1, got {n!r}")
        rng = numpy.random.default_rng(seed) if rng is None else rng
        words = sentence.split()
        candidates = self._fitting_words(words)
        if not candidates:
            return [sentence] * n                          # nothing to replace (only punctuation): unchanged
        m = max(1, int(round(self.fraction * len(candidates))))
        plans = [sorted(rng.choice(candidates, size=m, replace=False).tolist()) for _ in range(n)]
        rows = [self._masked_ids(words, set(chosen)) for chosen in plans]
        logits = self._mask_logits(rows)
        out = []
        for chosen, row_logits in zip(plans, logits):
            new = list(words)
            for i, w in zip(chosen, self._sample(row_logits, [words[i] for i in chosen], rng)):
                new[i] = w
            out.append(" ".join(new))
        return out

    def _mask_logits(self, rows: list[list[int]]) -> list[numpy.ndarray]:
        """The MLM logits at the [MASK] positions of each row of ids: a list of (m_r, V) host arrays."""
        T = max(len(r) for r in rows)
        ids = numpy.full((len(rows), T), self.tokenizer.pad_token_id, dtype=numpy.int64)   # (B, T)
        mask = numpy.zeros((len(rows), T), dtype=numpy.int64)
        for b, r in enumerate(rows):
            ids[b, :len(r)], mask[b, :len(r)] = r, 1
        labels = numpy.where(ids == self.tokenizer.mask_token_id, 0, IGNORE_INDEX)          # marks the masks
        with self.model.inference():
            out = self.model.forward(ids, numpy.zeros_like(ids), mask, labels=labels)
        logits = backend.to_host(out["mlm_logits"])                     # (masks in all rows, V), row-major order
        counts = (labels != IGNORE_INDEX).sum(axis=1)
        return numpy.split(logits, numpy.cumsum(counts)[:-1])


class LabelFilter:
    """A fine-tuned single-sentence classifier (`minibert finetune --task sst2` folder) that keeps a new
    sentence only if it predicts the source's label for it."""

    def __init__(self, folder):
        self.task, self.model, self.tokenizer = load_finetuned(folder)
        if self.task.kind != "sequence" or self.task.spec.is_pair:
            raise InputError(f"--filter-model {folder} is a {self.task.name} model: the filter needs a "
                             f"single-sentence classifier (sst2)")

    def predict(self, sentences: list[str], batch_size: int = 64) -> numpy.ndarray:
        """The label id the classifier gives each sentence (host int array)."""
        examples = [SequenceExample(i, s, None, 0, 0) for i, s in enumerate(sentences)]
        encoded = encode_glue(examples, self.tokenizer, self.task.max_seq_len)
        out = []
        for start in range(0, len(sentences), batch_size):
            b = encoded.batch(range(start, min(start + batch_size, len(sentences))))
            out.append(backend.to_host(self.task.infer(self.model, b)["logits"]).argmax(axis=1))
        return numpy.concatenate(out)


def augment_examples(augmenter: Augmenter, examples: list[SequenceExample], n: int, seed: int = 0,
                     label_filter: LabelFilter | None = None, tries: int = 4) -> list[list[str]]:
    """n new sentences per example (fewer where the filter rejects more than `tries` * n drawn ones)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"--per-example must be an integer >= 1, got {n!r}")
    result = []
    for index, ex in enumerate(examples):
        rng = numpy.random.default_rng([seed, index])
        if label_filter is None:
            result.append(augmenter.variants(ex.text_a, n, rng=rng))
            continue
        kept: list[str] = []
        for _ in range(tries):
            drawn = augmenter.variants(ex.text_a, n, rng=rng)
            labels = label_filter.predict(drawn)
            kept += [s for s, y in zip(drawn, labels) if int(y) == ex.label][:n - len(kept)]
            if len(kept) == n:
                break
        result.append(kept)
    return result


def augment_tsv(augmenter: Augmenter, in_path, out_path, n: int, seed: int = 0,
                filter_folder=None, limit: int | None = None) -> dict:
    """Read an SST-2 TSV (header `sentence<TAB>label`), write it back with each row followed by its new rows.

    The output has the same header and labels as written in the input; it can be given to
    `minibert finetune --task sst2 --train`. Returns counts: {"examples", "written", "new", "filtered_out"}.
    """
    examples = read_glue(in_path, "sst2")
    if limit is not None:
        examples = examples[:limit]
    label_filter = LabelFilter(filter_folder) if filter_folder is not None else None
    new_rows = augment_examples(augmenter, examples, n, seed, label_filter)
    lines = Path(in_path).read_text(encoding="utf-8").splitlines()
    header = lines[0]
    raw_label = {ex.line: lines[ex.line - 1].split("\t")[1].strip() for ex in examples}   # the label as written
    out = [header]
    for ex, rows in zip(examples, new_rows):
        out.append(f"{ex.text_a}\t{raw_label[ex.line]}")
        out += [f"{s}\t{raw_label[ex.line]}" for s in rows]
    with atomic_open(out_path) as f:                        # written whole or not at all
        f.write("\n".join(out) + "\n")
    written_new = sum(len(r) for r in new_rows)
    return {"examples": len(examples), "new": written_new, "written": len(examples) + written_new,
            "filtered_out": len(examples) * n - written_new}
