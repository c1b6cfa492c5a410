"""Exercise 01: WordPiece's greedy longest match on one word (minibert.tokenization.wordpiece.greedy_longest_match)."""
from __future__ import annotations

import random

from minibert.exercises.base import CheckFailed, Exercise, describe
from minibert.tokenization.wordpiece import greedy_longest_match

STATEMENT = r"""
## The rule

A WordPiece vocabulary holds whole words (`playing`), word beginnings (`play`) and continuations
written with `##` (`##ing`). BERT cuts one word (after lower-casing and punctuation splitting) like
this:

1. at the start of the word, take the **longest** vocabulary entry the word begins with;
2. from there on, take the longest `##` entry the rest of the word begins with; repeat to the end;
3. if at some point *no* entry matches, the **whole word** is unknown (`[UNK]`), even the pieces
   already found;
4. a word longer than `max_input_chars_per_word` (100 in Hugging Face) is unknown at once.

Greedy means no going back: with `{"una", "un", "##aff", "##able"}`, `unaffable` starts with `una`,
and then nothing matches `ffable`: the word is unknown although `un ##aff ##able` exists.

## What to think through

- Why `##`? (So `able` alone and `##able` inside a word are different tokens, and the pieces can be
  glued back into words.)
- Why longest first and not shortest first? What is the cost of the search per word?

## Your function

`greedy_longest_match(word, vocab, max_input_chars_per_word=100, longest_piece=None)` returns a list
of `(piece, start, end)` with `word[start:end]` the characters the piece covers (without `##`), or
`None` for an unknown word. `longest_piece` is a speed-up you may use or ignore: no entry covers more
characters, so no longer candidate needs trying.
"""

HINTS = (
    "Two loops: the outer one walks `start` through the word; the inner one tries `end` from the end of "
    "the word (or start + longest_piece) down to start + 1 and stops at the first candidate in vocab.",
    "The candidate is `word[start:end]`, with \"##\" in front when start > 0. If the inner loop finds "
    "nothing, return None at once (the whole word is unknown).",
    "Append `(piece, start, end)` and continue from `start = end`. Check the length limit first: "
    "`if len(word) > max_input_chars_per_word: return None`.",
)


def _variant(word, vocab, max_chars, mistake):
    """greedy_longest_match as a known mistake computes it."""
    if len(word) > max_chars and mistake != "no limit":
        return None
    pieces, start = [], 0
    while start < len(word):
        ends = range(start + 1, len(word) + 1) if mistake == "shortest" else range(len(word), start, -1)
        piece = None
        for end in ends:
            candidate = word[start:end]
            if (start > 0 and mistake != "no ##") or mistake == "## first":
                candidate = "##" + candidate
            if candidate in vocab:
                piece = candidate
                break
        if piece is None:
            if mistake == "partial":
                return pieces + [("[UNK]", start, len(word))]
            if mistake == "skip":
                start += 1
                continue
            return None
        pieces.append((piece, start, end))
        start = end
    return pieces


MISTAKES = {
    "shortest": "you take the shortest match; WordPiece takes the longest: try the longest candidate first and "
                "shorten it one character at a time.",
    "no ##": "continuation pieces (everything after the first piece) are looked up with the \"##\" prefix.",
    "## first": "only continuations get \"##\": the first piece of a word is looked up as it is.",
    "partial": "when no entry matches, the *whole* word is unknown: return None, not the pieces found so far.",
    "skip": "when no entry matches, the whole word is unknown: return None, do not skip the character.",
    "no limit": "a word longer than max_input_chars_per_word is unknown at once: return None.",
}


def _compare(t, word, vocab, max_chars=100, longest=None):
    args = (word, vocab, max_chars) + (() if longest is None else (longest,))
    got = t.call("greedy_longest_match", *args)
    want = greedy_longest_match(word, vocab, max_chars, longest)
    if got is not None and not isinstance(got, list):
        raise CheckFailed(f"greedy_longest_match({word!r}, ...) returned {describe(got)}; expected a list of "
                          f"(piece, start, end) tuples or None.")
    if got is not None:
        got = [tuple(p) if isinstance(p, (tuple, list)) else p for p in got]
    if got == want:
        return
    hint = next((h for m, h in MISTAKES.items() if _variant(word, vocab, max_chars, m) == got), "")
    if not hint and got is not None and want is not None and [p[0] for p in got] == [p[0] for p in want]:
        hint = "the pieces are right but the (start, end) spans are not: word[start:end] is the text a piece " \
               "covers, without the \"##\"."
    shown = sorted(vocab, key=lambda s: (len(s), s))
    vocab_text = "{" + ", ".join(repr(v) for v in shown[:14]) + (", ..." if len(shown) > 14 else "") + "}"
    raise CheckFailed(f"greedy_longest_match({word!r}) with vocab {vocab_text} returned {got!r}; the pieces "
                      f"should be {'None (the word is unknown)' if want is None else [p[0] for p in want]}.",
                      hint or "longest match first, \"##\" on continuations, None as soon as a position has no match.")


def check(t):
    with t.check("the docstring's examples: unaffable"):
        _compare(t, "unaffable", {"un", "##aff", "##able"})
        _compare(t, "unaffable", {"un", "##aff", "##able", "una"})
        _compare(t, "unaffable", {"un", "##aff", "##able", "unaffable"})
    with t.check("300 random words against random vocabularies over {a, b, c}"):
        rng = random.Random(7)
        for _ in range(30):
            vocab = set()
            for _ in range(rng.randint(3, 12)):
                piece = "".join(rng.choice("abc") for _ in range(rng.randint(1, 4)))
                vocab.add(("##" if rng.random() < 0.6 else "") + piece)
            for _ in range(10):
                _compare(t, "".join(rng.choice("abc") for _ in range(rng.randint(1, 10))), vocab)
    with t.check("max_input_chars_per_word: 100 characters pass, 101 are unknown"):
        vocab = {"a", "##a", "##aaaa"}
        _compare(t, "a" * 100, vocab)
        _compare(t, "a" * 101, vocab)
        _compare(t, "aaaaaaa", vocab, max_chars=6)
    with t.check("longest_piece given: same pieces"):
        vocab = {"ab", "abc", "##c", "##ca", "##cab", "a", "##b"}
        for word in ("abcab", "abccab", "ab", "abcabcab", "abd"):
            _compare(t, word, vocab, longest=3)


EXERCISE = Exercise(
    number=1, name="wordpiece", title="WordPiece: greedy longest match on one word",
    functions=(greedy_longest_match,),
    imports="",
    minutes=25,
    assesses="the greedy longest-match-first algorithm, the ## continuation convention, the whole-word [UNK] "
             "rule, character spans",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/tokenization.md",), notebooks=("02_wordpiece.ipynb",),
)
