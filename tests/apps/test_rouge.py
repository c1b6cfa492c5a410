"""minibert.apps.rouge against Google's rouge-score 0.1.2 (requirements-dev.txt), on real summaries: equal to 1e-12."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import DATA
from minibert.apps.rouge import ROUGE_TYPES, Score, lcs_length, rouge, rouge_l, rouge_n, tokenize

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer",
                                   reason="rouge-score (test dependency, requirements-dev.txt) is not installed")

# Real summaries written by people, and real candidates (the first sentences, and other sentences, of the text)
PAIRS = [
    ("Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the "
     "television series The Bill in 2000.",
     "Robert Boulter is an English actor who appeared in The Bill (2000) and in the play Herons in 2001."),
    ("The cat sat on the mat.", "The cat was sitting on the mat, wasn't it?"),
    ("It's 3.5% cheaper -- café prices fell in 2019!", "Prices at the café fell 3.5 % in 2019."),
    ("", "An empty candidate scores nothing."),
    ("Nothing in common here.", "Totally different words."),
    ("the the the the", "the cat the dog"),
]


def _wikitext_pairs(n=40):
    """(first sentences of an article's body, its lead) for the first n WikiText-2 test articles, when present."""
    path = DATA / "wikitext2" / "test.raw.txt"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    articles = re.split(r"\n \n = (?!=)[^\n]* = \n \n", "\n \n" + text)
    pairs = []
    for article in articles[1:n + 1]:
        parts = re.split(r"\n \n = = [^\n]* = = \n \n", article)
        if len(parts) >= 2:
            pairs.append((" ".join(parts[1].split()[:80]), " ".join(parts[0].split())))
    return pairs


def _expected(candidate, reference):
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    return scorer.score(reference, candidate)                 # rouge-score takes (target, prediction)


@pytest.mark.parametrize("candidate,reference", PAIRS + _wikitext_pairs())
def test_equal_to_rouge_score_on_real_summaries(candidate, reference):
    mine, theirs = rouge(candidate, reference), _expected(candidate, reference)
    for name in ROUGE_TYPES:
        assert mine[name].precision == pytest.approx(theirs[name].precision, abs=1e-12)
        assert mine[name].recall == pytest.approx(theirs[name].recall, abs=1e-12)
        assert mine[name].f1 == pytest.approx(theirs[name].fmeasure, abs=1e-12)


def test_the_wikitext_comparison_ran_when_the_data_is_there():
    if not (DATA / "wikitext2" / "test.raw.txt").is_file():
        pytest.skip("../shared/data/wikitext2 not found")
    assert len(_wikitext_pairs()) >= 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("a b c d e The, cat! 3.5 x-y".split()), max_size=15),
       st.lists(st.sampled_from("a b c d e The, cat! 3.5 x-y".split()), max_size=15))
def test_equal_to_rouge_score_on_random_word_lists(cand, ref):
    mine, theirs = rouge(" ".join(cand), " ".join(ref)), _expected(" ".join(cand), " ".join(ref))
    for name in ROUGE_TYPES:
        assert mine[name].f1 == pytest.approx(theirs[name].fmeasure, abs=1e-12)


def test_tokenize_as_rouge_score():
    from rouge_score.tokenize import tokenize as theirs
    for text in ["It's 3.5% cheaper -- CAFÉ!", "  a\tb\nc  ", "", "@-@ , @.@"]:
        assert tokenize(text) == theirs(text, None)


def test_worked_example_by_hand():
    # candidate "the cat was on the mat", reference "the cat sat on the mat": 5 of 6 unigrams, 3 of 5 bigrams
    scores = rouge("the cat was on the mat", "the cat sat on the mat")
    assert scores["rouge1"] == Score(5 / 6, 5 / 6, pytest.approx(5 / 6))
    assert scores["rouge2"].precision == 3 / 5 and scores["rouge2"].recall == 3 / 5
    assert scores["rougeL"].precision == 5 / 6                # the cat on the mat


def test_lcs_is_order_sensitive_and_n_grams_clip():
    assert lcs_length("a b c d".split(), "d c b a".split()) == 1
    assert lcs_length("a b c d".split(), "a x c y d".split()) == 3
    assert rouge_n(["the"] * 4, ["the", "cat"], 1).precision == 1 / 4    # "the" counted once: clipped
    assert rouge_l([], ["a"]) == Score(0, 0, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown ROUGE type"):
        rouge("a", "b", types=("rougeX",))
    with pytest.raises(TypeError):
        rouge(None, "b")
    with pytest.raises(ValueError):
        rouge_n(["a"], ["a"], 0)
