"""ROUGE-1, ROUGE-2 and ROUGE-L: how much of a reference summary a candidate summary recovers.

    from minibert.apps.rouge import rouge
    rouge("the cat sat on the mat", "the cat was on the mat")
    # {"rouge1": Score(precision=0.833.., recall=0.833.., f1=0.833..), "rouge2": ..., "rougeL": ...}

ROUGE (Lin, 2004) compares word sequences, not meanings. With the candidate's
tokens c and the reference's tokens r:

    ROUGE-N   overlap = sum over n-grams g of min(count_c(g), count_r(g))     (clipped counts)
              precision = overlap / (n-grams of c),  recall = overlap / (n-grams of r)
    ROUGE-L   lcs = length of the longest common subsequence of c and r        (in order, gaps allowed)
              precision = lcs / len(c),  recall = lcs / len(r)
    F1        2 P R / (P + R)   (0 when P + R = 0)

Tokenisation is that of Google's `rouge-score` package (the maintained
reimplementation of Lin's Perl script): lower-case, every run of characters
other than a-z and 0-9 becomes a space, split on spaces. So "Don't" is
["don", "t"] and "café" is ["caf"]. rouge-score can also Porter-stem words of
more than 3 letters; minibert does not implement a stemmer (the option is
left out, not faked): compare with rouge-score's use_stemmer=False.

tests/apps/test_rouge.py checks every number here against rouge-score 0.1.2
(requirements-dev.txt) on real summaries, to 1e-12. ROUGE-L here is the
sentence-level one (rouge-score's "rougeL"), not the summary-level "rougeLsum".
"""
from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

__all__ = ["Score", "tokenize", "ngrams", "rouge_n", "rouge_l", "lcs_length", "rouge", "ROUGE_TYPES"]

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


class Score(NamedTuple):
    """Precision (of the candidate), recall (of the reference) and their harmonic mean."""
    precision: float
    recall: float
    f1: float


def tokenize(text: str) -> list[str]:
    """Lower-case; runs of anything but a-z, 0-9 -> one space; split. ("It's 3.5%!" -> it s 3 5)"""
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def ngrams(tokens: list[str], n: int) -> Counter:
    """How often each run of n consecutive tokens occurs: Counter({("the", "cat"): 1, ...})."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean, 0 when both are 0 (written as rouge-score writes it, so the floats agree exactly)."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(candidate: list[str], reference: list[str], n: int) -> Score:
    """ROUGE-N of two token lists: clipped n-gram overlap over each side's n-gram count."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cand, ref = ngrams(candidate, n), ngrams(reference, n)
    overlap = sum(min(count, cand[g]) for g, count in ref.items())       # each n-gram counted at most as often as both have it
    precision = overlap / max(sum(cand.values()), 1)                      # an empty side: 0, not a division by zero
    recall = overlap / max(sum(ref.values()), 1)
    return Score(precision, recall, _f1(precision, recall))


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming over one row at a time.

    row[j] = LCS of a[:i] and b[:j]; moving to a[:i+1]:
        new[j+1] = row[j] + 1                   if a[i] == b[j]   (extend the match)
                 = max(row[j+1], new[j])        otherwise         (drop a[i] or b[j])
    O(len(a) * len(b)) time, O(len(b)) memory.
    """
    row = [0] * (len(b) + 1)
    for x in a:
        new = [0]
        for j, y in enumerate(b):
            new.append(row[j] + 1 if x == y else max(row[j + 1], new[j]))
        row = new
    return row[-1]


def rouge_l(candidate: list[str], reference: list[str]) -> Score:
    """ROUGE-L of two token lists: LCS length over each side's length (0 if either is empty)."""
    if not candidate or not reference:
        return Score(0, 0, 0)
    lcs = lcs_length(reference, candidate)
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return Score(precision, recall, _f1(precision, recall))


def rouge(candidate: str, reference: str, types=ROUGE_TYPES) -> dict[str, Score]:
    """{"rouge1": Score, "rouge2": Score, "rougeL": Score} of a candidate summary against a reference."""
    if not isinstance(candidate, str) or not isinstance(reference, str):
        raise TypeError("candidate and reference must be strings")
    cand, ref = tokenize(candidate), tokenize(reference)
    scores = {}
    for name in types:
        if name == "rougeL":
            scores[name] = rouge_l(cand, ref)
        elif re.fullmatch(r"rouge[1-9]", name):
            scores[name] = rouge_n(cand, ref, int(name[5:]))
        else:
            raise ValueError(f"unknown ROUGE type {name!r}; minibert has rouge1 .. rouge9 and rougeL")
    return scores
