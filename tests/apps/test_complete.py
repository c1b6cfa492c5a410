"""Text prediction (minibert/apps/complete.py), its n-gram baselines (apps/ngrams.py) and `minibert complete`.

The whole-word ranking is checked against a brute force: every word of one or two pieces the tokenizer
can spell, scored by hand from the model's distributions at single [MASK]s, on a tiny pretraining run.
"""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import Counter

import numpy
import pytest

from helpers import REPO
from minibert.apps.complete import complete, infill, masked_log_probs, rank_words, word_piece_table
from minibert.apps.fill_mask import load_pretraining_model, mask_probabilities
from minibert.apps.ngrams import START, NgramCounts, is_word, split_words
from minibert.cli import main
from minibert.errors import InputError
from minibert.model.bert import BertModel


def ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


def brute_force(model, tok, left, right, end_probability=True):
    """Every canonical word of 1 or 2 pieces with its score, computed from [MASK]s one word at a time."""
    cls, sep, mask = tok.cls_token_id, tok.sep_token_id, tok.mask_token_id
    starts, conts = word_piece_table(tok)

    def logp_after(words):                        # log p at a [MASK] right after each word's pieces
        rows = numpy.array([[cls, *left, *w, mask, *right, sep] for w in words])
        return masked_log_probs(model, rows, [(r, 1 + len(left) + len(w)) for r, w in enumerate(words)])

    def canonical(pieces):
        return tok.convert_tokens_to_ids(tok.wordpiece_tokenizer.tokenize(tok.decode(list(pieces)))) == list(pieces)

    first = logp_after([()])[0]
    one = [(int(a),) for a in numpy.flatnonzero(starts)]
    second = logp_after(one)                                        # p(second piece | first)
    words = {w: first[w[0]] for w in one if canonical(w)}
    for r, (a,) in enumerate(one):
        words.update({(a, int(b)): first[a] + second[r, b] for b in numpy.flatnonzero(conts)
                      if canonical((a, int(b)))})
    scores = {}
    for n in (1, 2):                                                # a batch per length: rows of one width
        pieces = [w for w in words if len(w) == n]
        ends = 1.0 - numpy.exp(logp_after(pieces)[:, conts]).sum(axis=1) if end_probability else [1.0] * len(pieces)
        scores.update({tok.decode(list(w)): math.exp(words[w]) * e for w, e in zip(pieces, ends)})
    return sorted(scores.items(), key=lambda ws: -ws[1])


def test_masked_log_probs_is_the_log_of_fill_masks_distribution(mlm):
    model, tok, _ = mlm
    text = "the cat sat on the [MASK] ."
    row = numpy.array([tok.encode(text)])
    column = int(numpy.flatnonzero(row[0] == tok.mask_token_id)[0])
    logp = masked_log_probs(model, row, [(0, column)])
    numpy.testing.assert_allclose(numpy.exp(logp), mask_probabilities(model, tok, text), rtol=1e-10)


@pytest.mark.parametrize("end_probability", [True, False])
@pytest.mark.parametrize("right", ["", "."])
def test_the_beam_finds_the_brute_force_ranking(mlm, end_probability, right):
    """With a beam as wide as the vocabulary, rank_words's top 8 are the brute force's, same scores."""
    model, tok, _ = mlm
    left = ids(tok, "the old man walked over the")
    expected = brute_force(model, tok, left, ids(tok, right), end_probability)[:8]
    got = rank_words(model, tok, left, ids(tok, right), k=8, beam=len(tok), max_pieces=2,
                     end_probability=end_probability).completions
    assert [c.text for c in got] == [w for w, _ in expected]
    numpy.testing.assert_allclose([c.probability for c in got], [p for _, p in expected], rtol=1e-9)


def test_a_completion_is_its_pieces_product_times_its_end(mlm):
    model, tok, _ = mlm
    for c in complete(model, tok, "a small dog ran under the", k=10, beam=len(tok)).completions:
        assert c.probability == pytest.approx(math.prod(p for _, p in c.pieces) * c.end, rel=1e-9)
        assert 0 < c.end <= 1
        assert tok.wordpiece_tokenizer.tokenize(c.text) == [t for t, _ in c.pieces]       # canonical split
        assert c.text.isalpha()                                                          # a word, spelled


def test_the_default_beam_keeps_the_top_word(mlm):
    model, tok, _ = mlm
    for text in ["the cat sat on the", "a bird flew over", "she"]:
        wide = complete(model, tok, text, k=3, beam=len(tok), max_pieces=2).completions
        assert complete(model, tok, text, k=3, max_pieces=2).completions[0].text == wide[0].text


def test_two_words_are_scored_as_the_product_of_the_two_steps(mlm):
    model, tok, _ = mlm
    two = complete(model, tok, "the cat sat on", k=3, words=2).completions
    assert len(two) == 3 and all(len(c.text.split()) == 2 for c in two)
    assert [c.probability for c in two] == sorted((c.probability for c in two), reverse=True)
    best = two[0]
    first, second = best.text.split()
    p1 = next(c.probability for c in complete(model, tok, "the cat sat on", k=3).completions if c.text == first)
    p2 = next(c.probability for c in complete(model, tok, "the cat sat on " + first, k=3).completions
              if c.text == second)
    assert best.probability == pytest.approx(p1 * p2, rel=1e-9)


def test_a_long_text_keeps_its_last_pieces(mlm):
    model, tok, _ = mlm
    text = " ".join(["the big dog ran over a green tree"] * 20)
    ranking = complete(model, tok, text, k=5, suffix="")
    room = model.config.max_position_embeddings - 2 - 4                 # [CLS] [SEP] and 4 pieces of word
    assert ranking.dropped == len(ids(tok, text)) - room
    tail = rank_words(model, tok, ids(tok, text)[-room:], [], k=5)
    dotted = complete(model, tok, text, k=5)                            # the default suffix "." takes a position
    assert dotted.dropped == ranking.dropped + 1
    assert [c.text for c in ranking.completions] == [c.text for c in tail.completions]
    assert tail.dropped == 0


def test_infill_underscores_are_mask_and_each_blank_sees_the_other_masked(mlm):
    model, tok, _ = mlm
    a = infill(model, tok, "the cat ___ on the [MASK] tree", k=4)
    b = infill(model, tok, "the cat [MASK] on the ____ tree", k=4)
    assert len(a) == 2
    assert [[c.text for c in r.completions] for r in a] == [[c.text for c in r.completions] for r in b]
    second = rank_words(model, tok, ids(tok, "the cat [MASK] on the"), ids(tok, "tree"), k=4)
    assert [c.probability for c in a[1].completions] == pytest.approx([c.probability for c in second.completions])


@pytest.mark.parametrize("call, message", [
    (lambda m, t: complete(m, t, "   "), "the text is empty"),
    (lambda m, t: complete(m, t, "the [MASK] sat"), "use infill"),
    (lambda m, t: complete(m, t, "the cat", k=0), "k must be a positive integer"),
    (lambda m, t: complete(m, t, "the cat", words=0), "words must be a positive integer"),
    (lambda m, t: infill(m, t, "no blank"), "no blank in 'no blank'"),
    (lambda m, t: infill(m, t, ""), "the text is empty"),
])
def test_bad_input_is_an_input_error(mlm, call, message):
    model, tok, _ = mlm
    with pytest.raises(InputError, match=message):
        call(model, tok)


def test_a_model_without_the_masked_lm_head_is_refused(mlm):
    model, tok, _ = mlm
    with pytest.raises(InputError, match="no masked-LM head"):
        complete(BertModel(model.config), tok, "the cat")


# -- the n-gram baselines -------------------------------------------------------------------------------

TEXT = ["The cat sat on the mat.", "The cat ran.", "A dog sat on the rug, and the cat sat."]


def test_counts_split_like_the_tokenizer_and_start_sentences():
    counts = NgramCounts.from_sentences(TEXT)
    assert split_words("Don't, Zoë!") == ["don", "'", "t", ",", "zoe", "!"]
    assert counts.unigrams["the"] == 5 and counts.unigrams["cat"] == 3 and counts.unigrams["."] == 3
    assert counts.bigrams[START] == Counter({"the": 2, "a": 1})
    assert counts.bigrams["the"] == Counter({"cat": 3, "mat": 1, "rug": 1})
    assert counts.total == sum(len(split_words(s)) for s in TEXT)
    assert is_word("cat") and not is_word(",") and not is_word("1887")


def test_next_words_bigram_first_then_backed_off_unigrams():
    counts = NgramCounts.from_sentences(TEXT)
    got = counts.next_words("I saw THE", k=5)
    assert [w for w, _ in got[:3]] == ["cat", "mat", "rug"]
    assert got[0][1] == pytest.approx(3 / 5)
    assert got[3] == ("the", pytest.approx(0.4 * 5 / counts.total))        # backed off: 0.4 P(w)
    assert all(is_word(w) for w, _ in counts.next_words("the cat sat", k=20))  # never punctuation
    assert [w for w, _ in counts.top_unigram_words(2)] == ["the", "cat"]


def test_infill_uses_the_right_neighbour():
    """After "the", "cat" is likeliest; before ".", only "fish" and "mat" were seen: S(w | l) S(r | w) says fish."""
    counts = NgramCounts.from_sentences(TEXT + ["The cat ate the fish."] * 3)
    assert counts.next_words("the", k=1)[0][0] == "cat"
    got = counts.infill_words("ate the", ".", k=2)
    assert [w for w, _ in got] == ["fish", "mat"]
    assert got[0][1] == pytest.approx(3 / 11 * 1.0)                          # S(fish | the) * S(. | fish)
    assert counts.infill_words("the", "", k=1)[0][0] == "cat"                 # no right word: the bigram alone


def test_the_sampler_is_seeded_and_walks_seen_bigrams():
    counts = NgramCounts.from_sentences(TEXT)
    a = counts.sample(numpy.random.default_rng(3), 30)
    assert a == counts.sample(numpy.random.default_rng(3), 30) and len(a) == 30
    pairs = list(zip([START] + a[:-1], a))
    assert all(counts.bigrams.get(p, {}).get(w) or p not in counts.bigrams for p, w in pairs)
    assert counts.sample(numpy.random.default_rng(0), 1, prompt="a")[0] == "dog"   # "a" is always followed by dog
    with pytest.raises(InputError):
        NgramCounts.from_sentences([])


# -- the command ------------------------------------------------------------------------------------------

def test_the_complete_command_prints_ranked_vocabulary_words(mlm, capsys):
    _, tok, run = mlm
    model = load_pretraining_model(run)[0]                   # float32, as the command loads it
    assert main(["complete", "--model", str(run), "--top-k", "4", "the cat sat on the"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "the cat sat on the ..." and len(lines) == 5
    words = [line.split()[0] for line in lines[1:]]
    probs = [float(line.split()[1]) for line in lines[1:]]
    assert probs == sorted(probs, reverse=True)
    assert words == [c.text for c in complete(model, tok, "the cat sat on the", k=4).completions]
    assert main(["complete", "--model", str(run), "the ___ sat"]) == 0
    assert capsys.readouterr().out.startswith("blank #1:\n")


def test_the_benchmark_script_runs_on_a_tiny_run(mlm, tmp_path):
    """benchmarks/eval_complete.py end to end at tiny sizes (its figures are checked in docs, not here)."""
    _, _, run = mlm
    corpus = str(run.parent / "in" / "corpus.txt")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_complete.py"), "--model", str(run),
                        "--train", corpus, "--heldout", corpus, "--positions", "6", "--choose-positions", "4",
                        "--out", str(tmp_path / "c.json")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["chosen"] in result["choice_on_training_text"]
    assert {"unigram", "bigram (left word)", "bigram (both neighbours)", "model"} == set(result["infilling"])
    assert all(0 <= r["top1"] <= r["top5"] <= 1 and r["n"] == 6 for r in result["next_word"].values())


def test_the_command_says_when_it_cut_the_text_and_completes_several_words(mlm, capsys):
    _, _, run = mlm
    assert main(["complete", "--model", str(run), " ".join(["the big dog ran over a green tree"] * 20)]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"note: the text is longer than the model's positions: its first \d+ pieces were left out\n",
                        err)
    assert main(["complete", "--model", str(run), "--words", "3", "--top-k", "2", "the cat"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 2 and all(len(line.split("   (")[0].split()) == 4 for line in lines)   # 3 words + p
