"""Task metrics: accuracy and confusion matrix, entity-level NER scores, SQuAD EM and F1.

Classification (GLUE):
    accuracy(predictions, labels)                 fraction of equal entries
    confusion_matrix(labels, predictions, K)      counts[true, predicted], (K, K)

Named entities (WNUT-17), as the `seqeval` package computes them:
    get_entities(tags, mode)                      [(type, start, end)], end exclusive
    ner_scores(true_tags, pred_tags, mode)        micro precision / recall / F1, per type, accuracy

    mode="conlleval" (seqeval's default, what Hugging Face's run_ner reports):
        conlleval's chunk rules: a chunk starts at B-X, and also at an I-X that
        follows O or another type; it ends where the type changes, at O, or at
        the next B. So "O I-X I-X" is one X entity.
    mode="strict" (seqeval's mode="strict", scheme=IOB2): an entity is B-X
        followed by I-X's; an I-X that does not continue a B-X/I-X of its own
        type belongs to no entity. "O I-X I-X" has no entity at all.
    An entity counts as correct only if type, start and end all match.

Extractive QA (SQuAD v1.1, the official evaluate-v1.1.py):
    normalize_answer(text)                        lower, drop ASCII punctuation and a/an/the, squeeze spaces
    exact_match_score(prediction, truth)          normalized strings equal
    f1_score(prediction, truth)                   F1 of the bags of normalized words
    squad_scores(predictions, references)         100 x mean over questions of the max over gold answers
"""
from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np

from minibert.backend import to_host

__all__ = [
    "NER_MODES", "accuracy", "confusion_matrix", "exact_match_score", "f1_score", "get_entities",
    "ner_scores", "normalize_answer", "squad_scores",
]

# -- classification -------------------------------------------------------------


def accuracy(predictions, labels) -> float:
    """Fraction of positions where prediction == label (lists, NumPy or CuPy arrays)."""
    predictions, labels = to_host(predictions), to_host(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions have shape {predictions.shape}, labels {labels.shape}")
    if labels.size == 0:
        raise ValueError("accuracy of no examples is undefined")
    return float(np.mean(predictions == labels))


def confusion_matrix(labels, predictions, num_labels: int) -> np.ndarray:
    """counts[i, j] = how many examples of true label i were predicted as j; (K, K) int64.

    Rows are true labels and columns predictions, as scikit-learn's
    confusion_matrix; the diagonal holds the correct ones, so
    trace / total = accuracy.
    """
    labels = to_host(labels).astype(np.int64).ravel()                       # (N,)
    predictions = to_host(predictions).astype(np.int64).ravel()             # (N,)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    for name, ids in (("label", labels), ("prediction", predictions)):
        bad = ids[(ids < 0) | (ids >= num_labels)]
        if bad.size:
            raise ValueError(f"{name} id {int(bad[0])} is outside 0..{num_labels - 1}")
    counts = np.zeros((num_labels, num_labels), dtype=np.int64)             # (K, K)
    np.add.at(counts, (labels, predictions), 1)
    return counts


# -- named entities ---------------------------------------------------------------

NER_MODES = ("conlleval", "strict")


def _split_tag(tag: str, mode: str) -> tuple[str, str]:
    """'B-creative-work' -> ('B', 'creative-work'); 'O' -> ('O', '_'); bare 'B' -> ('B', '_')."""
    if not isinstance(tag, str):
        raise TypeError(f"tags must be strings, got {type(tag).__name__} {tag!r}")
    if tag == "O":
        return "O", "_"
    prefixes = "BIES" if mode == "conlleval" else "BI"
    if tag in prefixes or (tag[:1] in prefixes and tag[1:2] == "-" and len(tag) > 2):
        return tag[0], tag[2:] or "_"
    allowed = "O, B-X, I-X, E-X, S-X" if mode == "conlleval" else "O, B-X, I-X (IOB2)"
    raise ValueError(f"tag {tag!r} is not a BIO tag; {mode} mode allows {allowed}")


def get_entities(tags: list[str], mode: str = "conlleval") -> list[tuple[str, int, int]]:
    """The entities of one sentence's tags: (type, start, end), end exclusive, in order.

        >>> get_entities(["B-person", "I-person", "O", "I-location", "B-location"])
        [('person', 0, 2), ('location', 3, 4), ('location', 4, 5)]
        >>> get_entities(["B-person", "I-person", "O", "I-location", "B-location"], "strict")
        [('person', 0, 2), ('location', 4, 5)]
    """
    if mode not in NER_MODES:
        raise ValueError(f"mode must be one of {NER_MODES}, got {mode!r}")
    parsed = [_split_tag(tag, mode) for tag in tags] + [("O", "_")]   # a final O closes the last one
    return _conlleval_chunks(parsed) if mode == "conlleval" else _iob2_entities(parsed)


def _conlleval_chunks(parsed: list[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """conlleval's (and seqeval's default) chunk boundaries, B/I/E/S/O prefixes."""
    chunks, begin = [], 0
    prev_tag, prev_type = "O", ""
    for i, (tag, type_) in enumerate(parsed):
        ends = (prev_tag in "ES"
                or (prev_tag in "BI" and tag in "BSO")
                or (prev_tag != "O" and prev_type != type_))
        starts = (tag in "BS"
                  or (prev_tag in "ESO" and tag in "EI")
                  or (tag != "O" and prev_type != type_))
        if ends:
            chunks.append((prev_type, begin, i))
        if starts:
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _iob2_entities(parsed: list[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """Strict IOB2: B-X then I-X's of the same type; stray I-X's belong to nothing."""
    entities, i = [], 0
    while i < len(parsed):
        tag, type_ = parsed[i]
        if tag != "B":
            i += 1
            continue
        end = i + 1
        while parsed[end] == ("I", type_):
            end += 1
        entities.append((type_, i, end))
        i = end
    return entities


def ner_scores(true_tags: list[list[str]], pred_tags: list[list[str]],
               mode: str = "conlleval") -> dict:
    """Entity-level micro precision, recall and F1 over sentences, as seqeval computes them.

    true_tags, pred_tags: one list of tag strings per sentence, same lengths.
    Returns {"precision", "recall", "f1", "accuracy", "n_true", "n_pred",
    "n_correct", "per_type": {type: {"precision", "recall", "f1", "support"}}}.
    accuracy is per word (seqeval's accuracy_score). A ratio with a zero
    denominator is 0.0 (seqeval's default, which also warns).
    """
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sentences but {len(pred_tags)} predicted ones")
    true_set, pred_set = set(), set()
    words = correct_words = 0
    for k, (truth, pred) in enumerate(zip(true_tags, pred_tags)):
        if len(truth) != len(pred):
            raise ValueError(f"sentence {k} has {len(truth)} true tags but {len(pred)} predicted ones")
        true_set.update((k,) + entity for entity in get_entities(truth, mode))
        pred_set.update((k,) + entity for entity in get_entities(pred, mode))
        words += len(truth)
        correct_words += sum(t == p for t, p in zip(truth, pred))
    scores = _prf(len(true_set & pred_set), len(pred_set), len(true_set))
    per_type = {}
    for type_ in sorted({e[1] for e in true_set | pred_set}):
        t = {e for e in true_set if e[1] == type_}
        p = {e for e in pred_set if e[1] == type_}
        p_, r_, f_ = _prf(len(t & p), len(p), len(t))
        per_type[type_] = {"precision": p_, "recall": r_, "f1": f_, "support": len(t)}
    return {"precision": scores[0], "recall": scores[1], "f1": scores[2],
            "accuracy": correct_words / words if words else 0.0,
            "n_true": len(true_set), "n_pred": len(pred_set),
            "n_correct": len(true_set & pred_set), "per_type": per_type}


def _prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# -- SQuAD -------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalization: lower-case, drop punctuation, articles, extra spaces.

    In the official script's order: lower, remove ASCII punctuation
    (string.punctuation; "–" or "’" stay), replace the words a/an/the with a
    space, then join the words with single spaces.

        >>> normalize_answer("The  Broncos' defense!")
        'broncos defense'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match_score(prediction: str, truth: str) -> bool:
    """1 if the normalized strings are equal (so "the" matches "a": both normalize to "")."""
    return normalize_answer(prediction) == normalize_answer(truth)


def f1_score(prediction: str, truth: str) -> float:
    """F1 of the multisets of normalized words; 0 when they share no word (even both empty).

        >>> round(f1_score("Denver Broncos", "the Broncos"), 4)   # p = 1/2, r = 1
        0.6667
    """
    pred_words, true_words = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(pred_words) & Counter(true_words)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_words), same / len(true_words)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: dict[str, str], references: dict[str, list[str]]) -> dict:
    """{"exact_match", "f1"} in percent, as SQuAD v1.1's evaluate-v1.1.py.

    predictions: question id -> predicted text.
    references: question id -> the gold answer texts (SQuAD dev has up to 3,
        XQuAD 1); each question scores the max over its gold answers.
    A question with no prediction scores 0 (the official script prints a line
    for it; here it is counted in "missing"). Predictions for ids that are not
    in references are ignored, as the official script does.
    """
    if not references:
        raise ValueError("squad_scores needs at least one reference question")
    exact = f1 = 0.0
    missing = 0
    for qid, truths in references.items():
        if not truths:
            raise ValueError(f"question {qid} has no gold answer")
        if qid not in predictions:
            missing += 1
            continue
        exact += max(exact_match_score(predictions[qid], t) for t in truths)
        f1 += max(f1_score(predictions[qid], t) for t in truths)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total,
            "total": total, "missing": missing}
