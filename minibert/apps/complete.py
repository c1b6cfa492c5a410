"""Text prediction with a masked LM: the next word(s) while typing, and whole-word fills of a blank.

    model, tokenizer = load_pretraining_model("runs/pretrain")
    complete(model, tokenizer, "the cat sat on the", k=5)       # [Completion("floor", 0.08, ...), ...]
    complete(model, tokenizer, "once upon a", k=3, words=2)     # two words at a time, beam search
    infill(model, tokenizer, "she opened the ___ and went out") # [[Completion("door", 0.41, ...), ...]]

    python -m minibert complete --model DIR "the cat sat on the" --top-k 5

BERT is not a left-to-right language model: it was trained to fill [MASK]s with text on both sides.
To ask it for the next word we append a [MASK] (and optionally a suffix such as "."; see SUFFIX) and
read its prediction there. A word of the vocabulary may be several WordPiece pieces ("wonder ##ful"):
one [MASK] holds one piece, so a word is built piece by piece:

    [CLS] the cat sat on the [MASK] [SEP]                 p(first piece = "wonder")
    [CLS] the cat sat on the wonder [MASK] [SEP]          p(next piece = "##ful"), and
                                                          p(the word ends) = 1 - sum over "##" pieces p(piece)
    score("wonderful") = p(wonder) * p(##ful | wonder) * p(ends | wonder ##ful)

p(ends) is read at a [MASK] after the word's last piece: the probability that the next position is
*not* a continuation ("##") piece. Without it a one-piece prefix ("wonder") always outscores its own
longer words; with it "wonder" must pay for the chance that the word goes on. (`end_probability`
switches it off; benchmarks/eval_complete.py measures both.) Only a word's canonical split counts:
"play ##ing" is not scored when the tokenizer writes "playing" as one piece, since the model never saw
it split (this makes each word's score the probability of the one piece sequence that spells it).

The search is a beam over partial words, each step one batched forward of every partial word. Scores
only fall as pieces are added (a product of probabilities), so a partial word already below the k-th
finished word is dropped: the k best words found are the k best there are among the beam's paths.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy

from minibert import backend
from minibert.errors import InputError
from minibert.model.heads import BertForPreTraining
from minibert.ops.losses import IGNORE_INDEX

__all__ = ["BLANK", "SUFFIX", "Completion", "Ranking", "complete", "infill", "masked_log_probs",
           "rank_words", "word_piece_table"]

# What marks a blank in `infill`'s text: [MASK] or three or more underscores
BLANK = re.compile(r"\[MASK\]|_{3,}")
# What follows the [MASK] of a next-word query: "." (a sentence end, as most training segments end) was
# measured against nothing on 150 positions of the training books: one more top-1 hit, the same top-5,
# so within noise (docs/text_prediction.md, section 3); "." is kept as the one measured best
SUFFIX = "."


@dataclass
class Completion:
    """One ranked word (or words): its text, its score (a probability) and how it was built."""
    text: str
    probability: float
    pieces: list = field(default_factory=list)       # [(piece, p(piece | the pieces before)), ...]
    end: float = 1.0                                  # p(the word ends after its last piece)


@dataclass
class Ranking:
    """The k best completions, and how many pieces of context were dropped to fit the model."""
    completions: list
    dropped: int = 0


# -- the model's distribution at [MASK] positions ------------------------------------------------------

def check_mlm_model(model) -> None:
    """The model must have a masked-LM head (a BertForPreTraining, as `minibert pretrain` writes)."""
    if not isinstance(model, BertForPreTraining):
        raise InputError(f"the model has no masked-LM head (a {type(model).__name__}): text prediction needs "
                         f"a BertForPreTraining, e.g. a `minibert pretrain` run folder")


def masked_log_probs(model, ids, positions) -> numpy.ndarray:
    """log p(token | the rest) at the given positions of a batch: (M, V) float64 on the host.

    ids: (B, T) host int array ([CLS] ... [SEP], no padding); positions: M pairs (row, column), at most one
    per row and in row order (the head returns its rows in row-major order of the labelled positions).
    """
    ids = numpy.asarray(ids)
    labels = numpy.full_like(ids, IGNORE_INDEX)
    for row, column in positions:
        labels[row, column] = 0                        # any id: only marks the positions to predict
    with model.inference():
        out = model.forward(ids, numpy.zeros_like(ids), numpy.ones_like(ids), labels=labels)
    logits = backend.to_host(out["mlm_logits"]).astype(numpy.float64)          # (M, V)
    logits -= logits.max(axis=1, keepdims=True)
    return logits - numpy.log(numpy.exp(logits).sum(axis=1, keepdims=True))  # log-softmax, stable


def word_piece_table(tokenizer, words_only: bool = True) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(starts, continuations): boolean masks over the vocabulary.

    starts: the pieces a word may begin with (not "##", not special; words_only: letters only).
    continuations: the "##" pieces (words_only: "##" + letters).
    """
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_tokens)
    is_cont = numpy.array([t.startswith("##") and len(t) > 2 and (t[2:].isalpha() or not words_only)
                           for t in tokens])
    is_start = numpy.array([not t.startswith("##") and t not in special and not (t.startswith("[") and
                            t.endswith("]")) and (t.isalpha() or not words_only) for t in tokens])
    return is_start, is_cont


# -- ranking whole words for one blank -------------------------------------------------------------------

def fit_context(left: list, right: list, room: int) -> tuple[list, list, int]:
    """Cut the context to `room` pieces: keep the pieces nearest the blank, the right side at least half
    of the room when it is that long. Returns (left, right, pieces dropped)."""
    if len(left) + len(right) <= room:
        return left, right, 0
    keep_right = min(len(right), max(room - len(left), room // 2))
    keep_left = room - keep_right
    dropped = len(left) + len(right) - room
    return (left[len(left) - keep_left:] if keep_left else []), right[:keep_right], dropped


def rank_words(model, tokenizer, left: list, right: list, k: int = 5, beam: int | None = None,
               max_pieces: int = 4, end_probability: bool = True, words_only: bool = True,
               table=None) -> Ranking:
    """The k best whole words w for the blank in [CLS] left w right [SEP] (left, right: piece ids).

    score(w) = prod_i p(piece_i | left, piece_<i, right) * p(ends)  (see the module docstring).
    beam: partial words kept per step (default max(k, 10)); max_pieces: the longest word tried.
    """
    check_mlm_model(model)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    beam = max(k, 10) if beam is None else beam
    is_start, is_cont = table if table is not None else word_piece_table(tokenizer, words_only)
    room = model.config.max_position_embeddings - 2 - max_pieces
    left, right, dropped = fit_context(list(left), list(right), room)
    cls, sep, mask = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id

    def forward(partials):
        """log p at the [MASK] after each partial word: (len(partials), V)."""
        rows = numpy.array([[cls, *left, *pieces, mask, *right, sep] for pieces, _, _ in partials])
        return masked_log_probs(model, rows, [(r, 1 + len(left) + len(partials[r][0])) for r in range(len(rows))])

    first = forward([((), 0.0, ())])[0]
    allowed = numpy.flatnonzero(is_start)
    conts = numpy.flatnonzero(is_cont)
    best = allowed[numpy.argsort(-first[allowed], kind="stable")[:beam]]
    partials = [((int(i),), float(first[i]), (float(first[i]),)) for i in best]   # (pieces, log p, each log p)
    finished: dict[str, tuple] = {}                                   # word -> (log score, pieces, each, end)
    for step in range(1, max_pieces + 1):
        if not partials:
            break
        logp = forward(partials)                                      # (n, V): what follows each partial
        p_cont = numpy.exp(logp[:, is_cont]).sum(axis=1)              # p(next piece is "##...")
        extensions = []
        for r, (pieces, score, each) in enumerate(partials):
            word = tokenizer.decode(list(pieces))
            end = max(1.0 - float(p_cont[r]), 1e-300)                 # p(the word ends here)
            total = score + (math.log(end) if end_probability else 0.0)
            if _canonical(tokenizer, word, pieces) and (word not in finished or finished[word][0] < total):
                finished[word] = (total, pieces, each, end)
            if step < max_pieces:
                top = conts[numpy.argsort(-logp[r, conts], kind="stable")[:beam]]
                extensions += [((*pieces, int(i)), score + float(logp[r, i]), (*each, float(logp[r, i])))
                               for i in top]
        kth = sorted((f[0] for f in finished.values()), reverse=True)[k - 1] if len(finished) >= k else -math.inf
        extensions.sort(key=lambda e: -e[1])
        partials = [e for e in extensions[:beam] if e[1] > kth]        # scores only fall: prune below the k-th
    ranked = sorted(finished.items(), key=lambda item: -item[1][0])[:k]
    return Ranking([Completion(word, math.exp(total),
                               list(zip(tokenizer.convert_ids_to_tokens(list(pieces)), numpy.exp(each).tolist())),
                               end)
                    for word, (total, pieces, each, end) in ranked], dropped)


def _canonical(tokenizer, word: str, pieces: tuple) -> bool:
    """The tokenizer splits `word` into exactly these pieces (the only split the model was trained on)."""
    return tokenizer.convert_tokens_to_ids(tokenizer.wordpiece_tokenizer.tokenize(word)) == list(pieces)


# -- the public calls --------------------------------------------------------------------------------------

def _ids(tokenizer, text: str) -> list[int]:
    """The piece ids of `text` (no [CLS]/[SEP]); a [MASK] written in it stays a [MASK]."""
    return tokenizer.encode(text, add_special_tokens=False)


def complete(model, tokenizer, text: str, k: int = 5, words: int = 1, suffix: str | None = None,
             **options) -> Ranking:
    """The k best next `words` words after `text`, each a Completion (text: the words, space-separated).

    One word: rank_words with the blank at the end (then `suffix`, default SUFFIX). Several: a beam of
    k word sequences, each extended by its k best next words, scored by the product of the words' scores.
    Context longer than the model's positions keeps its last pieces (Ranking.dropped says how many went).
    options: rank_words's beam, max_pieces, end_probability, words_only.
    """
    check_mlm_model(model)
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty: nothing to complete")
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise InputError(f"words must be a positive integer, got {words!r}")
    context = _ids(tokenizer, text)
    if tokenizer.mask_token_id in context:
        raise InputError(f"the text has a {tokenizer.mask_token}: use infill for a blank in the middle")
    right = _ids(tokenizer, SUFFIX if suffix is None else suffix)
    table = word_piece_table(tokenizer, options.pop("words_only", True))
    beams = [((), 0.0, ())]                                     # (words, log score, completions)
    dropped = 0
    for _ in range(words):
        candidates = []
        for chosen, score, parts in beams:
            left = context + [i for c in parts for i in _ids(tokenizer, c.text)]
            ranking = rank_words(model, tokenizer, left, right, k, table=table, **options)
            dropped = max(dropped, ranking.dropped)
            candidates += [((*chosen, c.text), score + math.log(max(c.probability, 1e-300)), (*parts, c))
                           for c in ranking.completions]
        beams = sorted(candidates, key=lambda b: -b[1])[:k]
    if words == 1:
        return Ranking([parts[0] for _, _, parts in beams], dropped)
    return Ranking([Completion(" ".join(chosen), math.exp(score), [p for c in parts for p in c.pieces])
                    for chosen, score, parts in beams], dropped)


def infill(model, tokenizer, text: str, k: int = 5, **options) -> list[Ranking]:
    """For each blank ([MASK] or ___) of `text`, its k best whole-word fills (the other blanks stay [MASK])."""
    check_mlm_model(model)
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty: nothing to fill in")
    parts = BLANK.split(text)
    if len(parts) == 1:
        raise InputError(f"no blank in {text!r}: write [MASK] or ___ where a word is missing")
    table = word_piece_table(tokenizer, options.pop("words_only", True))
    segments = [_ids(tokenizer, p) for p in parts]
    mask = [tokenizer.mask_token_id]
    rankings = []
    for b in range(len(parts) - 1):
        left = [i for s in segments[:b + 1] for i in (*s, *mask)][:-1]            # blanks before: [MASK]
        right = [i for s in segments[b + 1:] for i in (*mask, *s)][1:]            # blanks after: [MASK]
        rankings.append(rank_words(model, tokenizer, left, right, k, table=table, **options))
    return rankings
