"""Extractive question answering, SQuAD v1.1 format (XQuAD English): windows, targets, answers.

    from minibert.data.tasks import squad
    train = squad.read_xquad("../shared/data/xquad/xquad.en.json", "train")   # first 38 articles
    encoded = squad.encode_squad(train, tokenizer, training=True)            # + start/end_positions
    ...
    evaluation = squad.read_xquad(path, "eval")                              # last 10 articles
    features = squad.encode_squad(evaluation, tokenizer, training=False)
    start_logits, end_logits = ...                                           # (N, T) each, from the model
    answers, n_best = squad.postprocess_qa_predictions(evaluation, features, start_logits, end_logits)
    metrics.squad_scores(answers, squad.references(evaluation))             # {"exact_match", "f1"}

Windows (Hugging Face's run_qa, through its tokenizer's overflowing tokens):
each feature is `[CLS] question [SEP] context window [SEP]`, at most
max_seq_length (384) positions, so a window holds
    budget = max_seq_length - len(question pieces) - 3
context pieces. Consecutive windows *overlap* by doc_stride (128) pieces: a
window starts budget - doc_stride pieces after the previous one, and the last
window is the first that reaches the end of the context. This is Hugging Face's
meaning of `stride` (run_qa passes --doc_stride 128 as stride=128).
google-research/bert's run_squad uses doc_stride as the *step* between window
starts instead, which gives other windows; we match run_qa. The question is
cut to max_query_length (64) pieces first, as Google does (run_qa does not cut
it; XQuAD's questions are all shorter, so the windows are the same).

Training targets: the first gold answer's characters [answer_start,
answer_start + len(text)) are mapped to pieces through the tokenizer's
character offsets: start = the last context piece that starts at or before
answer_start, end = the first context piece that ends at or after the answer's
end. A window that does not hold the whole answer points both at [CLS]
(position 0), as both references do. An answer whose text is not found at its
answer_start in the context cannot be placed: its question is skipped and
counted, with one warning line.

Answers: for each question, over all its windows, the n_best_size (20) highest
start logits and the 20 highest end logits of each window are paired; a pair
is kept if both are context pieces, end >= start and end - start + 1 <=
max_answer_length (30); the best start_logit + end_logit wins, and its
characters are cut from the original context through the offsets.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minibert.backend import to_host
from minibert.data.tasks.batching import Encoded
from minibert.data.tasks.files import DataFormatError, EmptyFileError
from minibert.data.tasks.spec import TaskSpec
from minibert.errors import InputError

__all__ = [
    "XQUAD", "XQUAD_TRAIN_ARTICLES", "QAExample", "SkippedAnswersWarning", "encode_squad",
    "postprocess_qa_predictions", "read_squad", "read_xquad", "references", "window_starts",
]

XQUAD = TaskSpec(name="xquad", kind="span", columns=("question", "context", "answers"),
                 text_columns=("question", "context"), label_column=None, label_names=(),
                 files={"train": "xquad/xquad.en.json", "eval": "xquad/xquad.en.json"},
                 metric="squad")
XQUAD_TRAIN_ARTICLES = 38   # articles 1-38 (970 questions) train, 39-48 (220 questions) evaluate


class SkippedAnswersWarning(UserWarning):
    """Some training questions were skipped: their answer text is not at answer_start."""


@dataclass(frozen=True)
class QAExample:
    """One question on one context.

    answers: ({"text": str, "answer_start": int}, ...) as in the file (XQuAD: one).
    article: the article's position in the file (0-based); title: its title.
    """

    id: str
    question: str
    context: str
    answers: tuple[dict, ...]
    title: str
    article: int

    def answer_found(self, k: int = 0) -> bool:
        """Whether answer k's text is in the context at its answer_start."""
        answer = self.answers[k]
        start = answer["answer_start"]
        return self.context[start:start + len(answer["text"])] == answer["text"]


# -- reading -----------------------------------------------------------------------


def read_squad(path) -> list[QAExample]:
    """All questions of a SQuAD v1.1 JSON file, in file order.

    Layout: {"version", "data": [{"title", "paragraphs": [{"context", "qas":
    [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}.
    Raises DataFormatError naming the JSON path of a missing or mistyped field
    (e.g. data[3].paragraphs[0].qas[2]: no "id") and for duplicate ids;
    EmptyFileError when there is no question.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        dataset = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFormatError(f"{path} is not SQuAD JSON: {error}") from None
    articles = _field(dataset, "data", list, path, "the top level")
    examples, seen = [], set()
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        title = _field(article, "title", str, path, where)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, where)):
            where_p = f"{where}.paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, where_p)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where_p)):
                where_q = f"{where_p}.qas[{q}]"
                qid = _field(qa, "id", str, path, where_q)
                if qid in seen:
                    raise DataFormatError(f"{path}, {where_q}: the id {qid!r} is used twice")
                seen.add(qid)
                answers = tuple(
                    {"text": _field(ans, "text", str, path, f"{where_q}.answers[{k}]"),
                     "answer_start": _field(ans, "answer_start", int, path, f"{where_q}.answers[{k}]")}
                    for k, ans in enumerate(_field(qa, "answers", list, path, where_q)))
                examples.append(QAExample(qid, _field(qa, "question", str, path, where_q), context,
                                          answers, title, a))
    if not examples:
        raise EmptyFileError(f"{path} has no question")
    return examples


def _field(obj, key: str, kind: type, path, where: str):
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}, {where}: expected a JSON object, found {type(obj).__name__}")
    if key not in obj:
        raise DataFormatError(f"{path}, {where}: no {key!r} field (SQuAD v1.1 layout expected)")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataFormatError(f"{path}, {where}.{key}: expected {kind.__name__}, "
                              f"found {type(value).__name__}")
    return value


def read_xquad(path, split: str, train_articles: int = XQUAD_TRAIN_ARTICLES) -> list[QAExample]:
    """XQuAD English split by article: "train" = the first 38, "eval" = the others (10)."""
    examples = read_squad(path)
    if split == "train":
        return [e for e in examples if e.article < train_articles]
    if split == "eval":
        return [e for e in examples if e.article >= train_articles]
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")


def references(examples: list[QAExample]) -> dict[str, list[str]]:
    """question id -> gold answer texts, for metrics.squad_scores."""
    return {e.id: [a["text"] for a in e.answers] for e in examples}


# -- windows and targets ----------------------------------------------------------


def window_starts(n_tokens: int, budget: int, doc_stride: int) -> list[int]:
    """Where each window of `budget` context pieces starts; windows overlap by doc_stride.

    The step is budget - doc_stride (Hugging Face's overflowing tokens); the
    last window is the first that reaches the end. An empty context gets one
    (empty) window.

        >>> window_starts(10, budget=4, doc_stride=1)     # [0:4], [3:7], [6:10]
        [0, 3, 6]
    """
    if n_tokens <= budget:
        return [0]
    if doc_stride >= budget:
        raise InputError(
            f"doc_stride={doc_stride} must be smaller than the {budget} context pieces a window "
            f"holds (max_seq_length minus the question and 3 special tokens): shorten the "
            f"question (max_query_length), raise max_seq_length or lower doc_stride")
    step = budget - doc_stride
    starts = [0]
    while starts[-1] + budget < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def _answer_positions(offsets: list, lo: int, hi: int, start_char: int, end_char: int):
    """(first, last) context piece k in [lo, hi) of the characters [start_char, end_char), or None.

    None when the window's pieces do not cover the answer. Offsets increase
    along the context, so: first = the last piece starting at or before
    start_char, last = the first piece ending at or after end_char.
    """
    if hi <= lo or not (offsets[lo][0] <= start_char and offsets[hi - 1][1] >= end_char):
        return None
    first = lo
    while first + 1 < hi and offsets[first + 1][0] <= start_char:
        first += 1
    last = hi - 1
    while last - 1 >= lo and offsets[last - 1][1] >= end_char:
        last -= 1
    return first, last


def encode_squad(examples: list[QAExample], tokenizer, *, training: bool, max_seq_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64) -> Encoded:
    """Questions -> one feature per context window.

    Each feature: input_ids, token_type_ids (0 for [CLS] question [SEP], 1 for
    the window and its [SEP]), attention_mask, offset_mapping ((start, end)
    characters in the context for window pieces, None elsewhere),
    example_index, example_id; with training=True also start_positions and
    end_positions (0 and 0 = [CLS] when the window lacks the answer).

    counts: examples, features, skipped_answers (training: questions whose
    answer text is not at answer_start, or that have no answer; they get no
    feature), questions_cut
    (questions longer than max_query_length pieces).
    """
    if max_query_length < 1 or max_seq_length < 4:
        raise InputError(f"max_seq_length={max_seq_length} and max_query_length={max_query_length} "
                         f"leave no room for a question and a context")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if not examples:
        return Encoded([], {"examples": 0, "features": 0, "skipped_answers": 0, "questions_cut": 0},
                       pad_token_id=tokenizer.pad_token_id)
    contexts = list(dict.fromkeys(e.context for e in examples))      # each context once
    encoded = tokenizer(contexts, add_special_tokens=False, return_offsets_mapping=True)
    pieces = dict(zip(contexts, zip(encoded["input_ids"], encoded["offset_mapping"])))
    questions = tokenizer([e.question for e in examples], add_special_tokens=False)["input_ids"]
    counts = {"examples": len(examples), "features": 0, "skipped_answers": 0, "questions_cut": 0}
    features, skipped = [], []
    for index, (example, question) in enumerate(zip(examples, questions)):
        if training and (not example.answers or not example.answer_found(0)):
            skipped.append(example.id)
            continue
        counts["questions_cut"] += len(question) > max_query_length
        question = question[:max_query_length]
        context_ids, context_offsets = pieces[example.context]
        budget = max_seq_length - len(question) - 3
        if budget < 1:
            raise InputError(f"question {example.id} leaves no room for context in {max_seq_length} positions")
        first_context = len(question) + 2               # position of the window's first piece
        for lo in window_starts(len(context_ids), budget, doc_stride):
            hi = min(lo + budget, len(context_ids))
            window = context_ids[lo:hi]
            input_ids = [cls] + question + [sep] + window + [sep]
            feature = {
                "input_ids": input_ids,
                "token_type_ids": [0] * first_context + [1] * (len(window) + 1),
                "attention_mask": [1] * len(input_ids),
                "offset_mapping": [None] * first_context + [tuple(o) for o in context_offsets[lo:hi]] + [None],
                "example_index": index, "example_id": example.id,
            }
            if training:
                answer = example.answers[0]
                start_char = answer["answer_start"]
                span = _answer_positions(context_offsets, lo, hi, start_char, start_char + len(answer["text"]))
                start, end = (0, 0) if span is None else (first_context + span[0] - lo, first_context + span[1] - lo)
                feature["start_positions"], feature["end_positions"] = start, end
            features.append(feature)
    counts["skipped_answers"] = len(skipped)
    counts["features"] = len(features)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} of {len(examples)} training questions whose answer text "
                      f"is not at its answer_start in the context, or missing (first: {skipped[:3]})",
                      SkippedAnswersWarning, stacklevel=2)
    return Encoded(features, counts, pad_token_id=tokenizer.pad_token_id)


# -- answers -----------------------------------------------------------------------


def postprocess_qa_predictions(examples: list[QAExample], encoded: Encoded, start_logits, end_logits,
                               n_best_size: int = 20, max_answer_length: int = 30):
    """Logits of every window -> the answer text of every question.

    start_logits, end_logits: (N, T), one row per feature of `encoded` (from
        encode_squad(examples, ...)), in order; T >= every feature's length.
    Returns (answers, n_best): answers maps question id -> text ("" if no
    valid span, where Hugging Face writes "empty"); n_best maps question id ->
    up to n_best_size candidates, best first, each {"text", "score",
    "start_logit", "end_logit", "probability"} (softmax over the candidates'
    scores), the lists Hugging Face's postprocess_qa_predictions writes.
    Ties between equal logits go to the later position.
    """
    start_logits = to_host(start_logits).astype(np.float64)            # (N, T)
    end_logits = to_host(end_logits).astype(np.float64)                # (N, T)
    n = len(encoded.features)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or len(start_logits) != n:
        raise ValueError(f"start_logits and end_logits should both be (N, T) with N = {n} features, "
                         f"got {start_logits.shape} and {end_logits.shape}")
    by_example: dict[int, list[int]] = {}
    for f, feature in enumerate(encoded.features):
        by_example.setdefault(feature["example_index"], []).append(f)
    answers, n_best = {}, {}
    for index, example in enumerate(examples):
        candidates = []
        for f in by_example.get(index, ()):
            offsets = encoded.features[f]["offset_mapping"]
            candidates += _candidates(start_logits[f], end_logits[f], offsets, n_best_size, max_answer_length)
        candidates.sort(key=lambda c: c["score"], reverse=True)       # stable: ties keep window order
        best = candidates[:n_best_size]
        for c in best:
            a, b = c.pop("offsets")
            c["text"] = example.context[a:b]
        if best:
            scores = np.array([c["score"] for c in best])              # (n,)
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            for c, p in zip(best, probabilities):
                c["probability"] = float(p)
        answers[example.id] = best[0]["text"] if best else ""
        n_best[example.id] = best
    return answers, n_best


def _candidates(start_logits, end_logits, offsets, n_best_size: int, max_answer_length: int) -> list[dict]:
    """The valid (start, end) pairs among one window's n_best_size best starts and ends."""
    starts = np.argsort(start_logits, kind="stable")[::-1][:n_best_size]   # best first
    ends = np.argsort(end_logits, kind="stable")[::-1][:n_best_size]
    found = []
    for s in starts.tolist():
        if s >= len(offsets) or offsets[s] is None:
            continue
        for e in ends.tolist():
            if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            found.append({"offsets": (offsets[s][0], offsets[e][1]),
                          "score": float(start_logits[s] + end_logits[e]),
                          "start_logit": float(start_logits[s]), "end_logit": float(end_logits[e])})
    return found
