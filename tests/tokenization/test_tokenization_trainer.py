"""The WordPiece vocabulary trainer: the algorithm, its fast form, determinism, and real books.

The fast trainer (incremental counts and a heap) must learn exactly what the
readable one (recount everything before each merge) learns. On Gutenberg
books the learned vocabulary must tokenize the two held-out books with fewer
than 0.5% [UNK], and training twice, in two processes with different string
hash seeds, must write byte-identical files.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.tokenization import BertTokenizer
from minibert.tokenization.vocab_trainer import (SPECIAL_TOKENS, count_words, learn_vocab,
                                                 learn_vocab_naive, read_lines, train_vocab)
from helpers import REPO
from tokenization_data import gutenberg_books

# The course's example corpus (Hugging Face NLP course, chapter 6).
TOY = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}


def test_toy_corpus_by_hand():
    result = learn_vocab(TOY, vocab_size=22)
    assert result.vocab[:5] == list(SPECIAL_TOKENS)
    assert result.vocab[5:19] == ["b", "g", "h", "n", "p", "s", "u",
                                  "##b", "##g", "##h", "##n", "##p", "##s", "##u"]
    # count(##g ##s) = 5 (in "hugs"), count(##g) = 20, count(##s) = 5: score 5 / (20 * 5) = 0.05,
    # the best of all pairs; "hugs" is rarer than the pair's parts are frequent.
    first = result.merges[0]
    assert (first.left, first.right, first.token, first.score, first.count) == ("##g", "##s", "##gs", 0.05, 5)
    # Then p ##u and h ##u tie at 1/36: the more frequent pair (p ##u, 17 times) goes first.
    assert [m.token for m in result.merges[1:3]] == ["pu", "hu"]
    assert result.vocab[19:] == ["##gs", "pu", "hu"]


def test_toy_corpus_by_hand_frequency_score():
    result = learn_vocab(TOY, vocab_size=22, score="frequency")
    # The most frequent pair first, as BPE: ##u ##g occurs in hug (10), pug (5), hugs (5) = 20 times;
    # ##u ##n in pun (12), bun (4) = 16; h ##u 15.
    first = result.merges[0]
    assert (first.left, first.right, first.token, first.score, first.count) == ("##u", "##g", "##ug", 20.0, 20)
    # then ##u ##n (16), then h ##ug (15: hug and hugs)
    assert [m.token for m in result.merges[1:3]] == ["##un", "hug"]


def test_unknown_score_is_a_clear_error():
    with pytest.raises(ValueError, match="score must be one of"):
        learn_vocab(TOY, 22, score="bpe")


def test_fast_trainer_equals_readable_trainer_on_a_book():
    alice = [b for b in gutenberg_books() if b.name == "carroll-alice_in_wonderland.txt"]
    lines = list(read_lines(alice))[:600]
    counts = count_words(lines)
    size = 5 + 2 * len({c for w in counts for c in w}) + 200
    assert learn_vocab(counts, size) == learn_vocab_naive(counts, size)


WORDS = st.dictionaries(st.text(st.sampled_from("abcde"), min_size=1, max_size=7),
                        st.integers(min_value=1, max_value=30), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(WORDS, st.integers(min_value=0, max_value=40))
def test_fast_trainer_equals_readable_trainer_on_random_counts(counts, extra):
    size = 5 + 2 * len({c for w in counts for c in w}) + extra
    fast, naive = learn_vocab(counts, size), learn_vocab_naive(counts, size)
    assert fast == naive
    fast, naive = learn_vocab(counts, size, score="frequency"), learn_vocab_naive(counts, size, score="frequency")
    assert fast == naive
    assert len(fast.vocab) == len(set(fast.vocab)) <= size


def test_vocabulary_layout():
    counts = count_words(["The naïve café’s owner said: “hello”, 中文!"] * 3)
    result = learn_vocab(counts, vocab_size=80)
    vocab = result.vocab
    assert vocab[:5] == list(SPECIAL_TOKENS)                        # specials first
    for char in {c for word in counts for c in word}:                # every character, both forms
        assert char in vocab and "##" + char in vocab
    assert "ï" not in vocab and "i" in vocab                          # counted after basic tokenization
    assert len(vocab) == len(set(vocab))


def test_stops_when_nothing_is_left_to_merge():
    result = learn_vocab({"ab": 2}, vocab_size=100)
    assert result.vocab == list(SPECIAL_TOKENS) + ["a", "b", "##a", "##b", "ab"]


def _train_with_cli(books, size, out, hash_seed):
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    command = [sys.executable, "-m", "minibert", "train-vocab", "--corpus", *map(str, books),
               "--vocab-size", str(size), "--out", str(out), "--quiet"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return (out / "vocab.txt").read_bytes()


def _held_out_figures(tokenizer):
    """([UNK] rate, average pieces per word) on the two held-out books."""
    lines = list(read_lines(gutenberg_books(held_out=True)))
    ids = [i for line in lines for i in tokenizer.encode(line, add_special_tokens=False)]
    words = sum(len(tokenizer.basic_tokenizer.tokenize(line)) for line in lines)
    return ids.count(tokenizer.unk_token_id) / len(ids), len(ids) / words, len(ids)


def _check_trained(books, size, tmp_path):
    first = _train_with_cli(books, size, tmp_path / "a", hash_seed=1)
    second = _train_with_cli(books, size, tmp_path / "b", hash_seed=2)
    assert first == second, "training twice must write the identical vocab.txt"
    tok = BertTokenizer.from_pretrained(tmp_path / "a")
    assert len(tok) == size and tok.do_lower_case
    unk_rate, pieces_per_word, n_tokens = _held_out_figures(tok)
    print(f"{len(books)} books, vocab {size}: held-out [UNK] {unk_rate:.4%} of {n_tokens} tokens, "
          f"{pieces_per_word:.3f} pieces per word")
    assert unk_rate < 0.005
    import transformers   # Hugging Face reads the folder and tokenizes the same
    theirs = transformers.BertTokenizer.from_pretrained(str(tmp_path / "a"))
    sample = "It was a dark and stormy night; the rain fell in torrents."
    assert theirs(sample)["input_ids"] == tok(sample)["input_ids"]
    return tok


def test_three_books_deterministic_and_few_unknowns(tmp_path):
    books = [b for b in gutenberg_books(held_out=False)
             if b.name in ("carroll-alice_in_wonderland.txt", "conrad-heart_of_darkness.txt",
                           "doyle-hound_of_the_baskervilles.txt")]
    _check_trained(books, 4000, tmp_path)


@pytest.mark.slow
def test_all_training_books_16000(tmp_path):
    """The issue's check: 20 books (all but the two held out), 16,000 tokens (about 15 s each)."""
    _check_trained(gutenberg_books(held_out=False), 16_000, tmp_path)


def test_train_vocab_in_process_matches_cli_input(tmp_path):
    lines = ["Hello hello world", "", "world of words"]
    result = train_vocab(lines, vocab_size=40, show_progress=False)
    assert Counter(count_words(lines)) == Counter({"hello": 2, "world": 2, "of": 1, "words": 1})
    tok = BertTokenizer(result.vocab)
    assert tok.tokenize("Hello words") == ["hello", "words"]


def test_special_token_strings_in_the_corpus_are_counted_as_text():
    """A corpus that writes "[CLS]" (any text about BERT) counts "[", "cls", "]", as the pretraining
    pipeline will read it (split_special_tokens); the special tokens enter the vocabulary once, on top."""
    lines = ["BERT reads [CLS] A [SEP] B [SEP].", "x[MASK]y [unk] [PAD]"]
    assert count_words(lines) == Counter({"[": 6, "]": 6, "sep": 2, "bert": 1, "reads": 1, "cls": 1, "a": 1,
                                          "b": 1, ".": 1, "x": 1, "mask": 1, "y": 1, "unk": 1, "pad": 1})
    result = train_vocab(lines * 5, vocab_size=80, show_progress=False)
    assert result.vocab[:5] == list(SPECIAL_TOKENS) and len(result.vocab) == len(set(result.vocab))
    tok = BertTokenizer(result.vocab)
    assert tok.tokenize("[SEP] [cls]", split_special_tokens=True) == ["[", "sep", "]", "[", "cls", "]"]
