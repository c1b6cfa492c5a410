"""Exercise 01: WordPiece's greedy longest match on one word (minibert.tokenization.wordpiece.greedy_longest_match)."""
from __future__ import annotations

import random

from minibert.exercises.base import CheckFailed, Exercise, Question, describe
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

## Your function

`greedy_longest_match(word, vocab, max_input_chars_per_word, longest_piece)` returns a list
of `(piece, start, end)` with `word[start:end]` the characters the piece covers (without `##`), or
`None` for an unknown word. `longest_piece` is a speed-up you may use or ignore: no entry covers more
characters, so no longer candidate needs trying. The result must not depend on it.
"""

CONTRACT = r"""Split one word into WordPiece pieces: greedily, the longest vocabulary entry first.

Inputs
    word                      a str: one word, already lower-cased and split from punctuation
    vocab                     a set of pieces (anything supporting `in`): word beginnings such
                              as "play", continuations written with "##" such as "##ing"
    max_input_chars_per_word  a word longer than this is unknown at once
    longest_piece             None, or an int: no vocabulary entry covers more characters of
                              the word (a speed-up you may use or ignore; the result must not
                              depend on it)
Returns
    a list of (piece, start, end) tuples, in order: piece as it is in vocab (with its "##" when
    it continues a word), word[start:end] the characters it covers (without the "##"); the
    spans tile the word. Or None when the word is unknown ([UNK]).

To think through: at each position, which entry is taken? Which look-ups carry "##"? What
happens to the pieces already found when some position has no match at all?
"""

DERIVATION = r"""
There is nothing to differentiate here: the work is to pin the rule down exactly, then its edge cases.

**1. By hand.** With the vocabulary `{un, una, ##aff, ##able, ##a, ##ffable}`, split `unaffable`. Write
down every string you look up, in the order you look it up, until the word is done or declared
unknown. Then do it again without `una`.

**2. The loop invariant.** At any moment you have a position `start` and the pieces covering
`word[:start]`. What does one step do, and why does the loop end (which quantity grows)?

**3. Inside one step.** In what order are the candidate ends tried? When does a candidate get `##`?
What if no end works?

**4. Edge cases** (decide each before coding, then check it against the statement):
a word of exactly `max_input_chars_per_word` characters, and one more; the empty word; a word that is
itself a vocabulary entry; a first character that is only in the vocabulary as a continuation
(`##x` but no `x`); `longest_piece` smaller than the word.

**5. Cost.** For a word of $n$ characters, how many look-ups at worst, with and without
`longest_piece`?

**On paper, before coding:** for each case of step 4, write the expected return value.
"""

HINTS = (
    "Work through unaffable with {un, una, ##aff, ##able} by hand, writing down every string you look "
    "up, in order: your function should look up the same strings in the same order and stop at the same "
    "point.",
    "Three rules decide most failures: which look-ups carry \"##\" (only those after the first piece), "
    "what an unmatched position does to the pieces already found (all of them are dropped), and whether a "
    "word of exactly max_input_chars_per_word characters is still split (it is).",
    "longest_piece only bounds a candidate's length from the current position, never from the start of "
    "the word. docs/tokenization.md, \"8. WordPiece: greedy longest match first, with ##\".",
)


def _variant(word, vocab, max_chars, mistake):
    """greedy_longest_match as a known mistake computes it."""
    if mistake == "limit >=" and len(word) >= max_chars:
        return None
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
            return {"empty": [], "unk": [("[UNK]", 0, len(word))]}.get(mistake)
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
    "limit >=": "a word of exactly max_input_chars_per_word characters is still split: only a longer one is "
                "unknown at once.",
    "empty": "an unknown word is None, not an empty list (an empty list is the split of the empty word).",
    "unk": "an unknown word is None: the caller (the tokenizer) writes [UNK], not this function.",
}


def _from_zero(word, vocab, max_chars, longest):
    """The mistake of bounding every candidate by longest_piece counted from position 0."""
    if len(word) > max_chars:
        return None
    pieces, start = [], 0
    while start < len(word):
        found = None
        for end in range(min(len(word), longest), start, -1):
            candidate = ("##" if start else "") + word[start:end]
            if candidate in vocab:
                found = (candidate, start, end)
                break
        if found is None:
            return None
        pieces.append(found)
        start = found[2]
    return pieces


def _compare(t, word, vocab, max_chars=100, longest=None):
    args = (word, vocab, max_chars) + (() if longest is None else (longest,))
    got = t.call("greedy_longest_match", *args)
    want = greedy_longest_match(word, vocab, max_chars, longest)
    if got is not None and not isinstance(got, list):
        raise CheckFailed(f"greedy_longest_match({word!r}, ...) returned {describe(got)}; expected a list of "
                          f"(piece, start, end) tuples or None.")
    if got is not None:
        if any(not isinstance(p, (tuple, list)) or len(p) != 3 for p in got):
            raise CheckFailed(f"greedy_longest_match({word!r}, ...) returned {got[:4]!r}{'...' if len(got) > 4 else ''}: "
                              f"each item must be a (piece, start, end) tuple.",
                              "keep where each piece starts and ends in the word: word[start:end] is the text it "
                              "covers (the tokenizer's offsets come from it).")
        got = [tuple(p) for p in got]
    if got == want:
        return
    hint = next((h for m, h in MISTAKES.items() if _variant(word, vocab, max_chars, m) == got), "")
    if not hint and longest is not None and got == _from_zero(word, vocab, max_chars, longest):
        hint = ("with longest_piece given, the candidates are bounded from the start of the word, not from the "
                "current position: later pieces are cut short.")
    if not hint and got is not None and want is not None and [p[0] for p in got] == [p[0] for p in want]:
        hint = "the pieces are right but the (start, end) spans are not: word[start:end] is the text a piece " \
               "covers, without the \"##\"."
    shown = sorted(vocab, key=lambda s: (len(s), s))
    vocab_text = "{" + ", ".join(repr(v) for v in shown[:14]) + (", ..." if len(shown) > 14 else "") + "}"
    raise CheckFailed(f"greedy_longest_match({word!r}) with vocab {vocab_text} returned {got!r}; the pieces "
                      f"should be {'None (the word is unknown)' if want is None else [p[0] for p in want]}.",
                      hint or "compare your look-ups, in order, with the rule of the statement on this word by hand.")


def check(t):
    with t.check("the docstring's examples: unaffable"):
        _compare(t, "unaffable", {"un", "##aff", "##able"})
        _compare(t, "unaffable", {"un", "##aff", "##able", "una"})
        _compare(t, "unaffable", {"un", "##aff", "##able", "unaffable"})
    with t.check("300 random words against random vocabularies over {a, b, c}"):
        rng = random.Random(int(t.rng.integers(2 ** 31)))          # the grader's seed changes the words
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
        vocab = {"ab", "abc", "##c", "##ca", "##cab", "a", "##b", "##ab", "##a"}
        for word in ("abcab", "abccab", "ab", "abcabcab", "abd", "abcabcabcab"):
            _compare(t, word, vocab, longest=3)
    with t.check("edge cases: the empty word, a word that is an entry, a first character only as ##"):
        vocab = {"ab", "##ab", "##x", "b"}
        for word in ("", "ab", "xab", "b", "bab"):
            _compare(t, word, vocab)


QUESTIONS = (
    Question(
        "Why do continuation pieces carry `##`? Give two things that would break if `able` and `##able` "
        "were the same token.",
        "`##` separates a word's first piece from a continuation, so `able` (a word, or a word's start) and "
        "`##able` (an ending) are different tokens with different embeddings: the model can tell "
        "\"able to\" from \"unaffable\". And decoding can glue the pieces back (`un ##aff ##able` -> "
        "`unaffable`): without the mark, word boundaries would be lost."),
    Question(
        "Greedy longest-match is not optimal: give a vocabulary and a word where it returns [UNK] although "
        "a split exists. Why is it used anyway, and what is its cost per word?",
        "`{una, un, ##aff, ##able}` and `unaffable`: greedy takes `una`, then nothing matches `ffable`, so the "
        "word is unknown although `un ##aff ##able` exists. It is used because it is simple, fast, "
        "deterministic and matches how the vocabulary was built (the trainer learns the pieces the greedy "
        "split will use, so this is rare). Cost: at most $n$ candidates per position, each a hash of up to "
        "$n$ characters: $O(n^2)$ look-ups for a word of $n$ characters, $O(n \\ell)$ with the bound "
        "$\\ell$ = longest_piece."),
    Question(
        "When a position has no match, why does BERT make the *whole* word [UNK] instead of keeping the "
        "pieces found so far?",
        "Keeping a prefix would give the model a confident but misleading piece (`una` of `unaffable`) and "
        "drop the rest silently; one [UNK] says honestly that the word is out of vocabulary. It is also "
        "what Google's and Hugging Face's tokenizers do, so a checkpoint's inputs match."),
)

SANITY = (
    ("**The pieces give the word back**: without their `##`, glued together, the pieces are the word, and "
     "the spans tile it.",
     """
vocab = {"un", "##aff", "##able", "play", "##ing", "##s", "a", "##b"}
for word in ["unaffable", "playing", "plays", "ab", "xyz"]:
    pieces = mine.greedy_longest_match(word, vocab)
    if pieces is None:
        print(f"{word:10} -> [UNK]")
        continue
    glued = "".join(p[2:] if p.startswith("##") else p for p, _, _ in pieces)
    tiles = [s for _, s, _ in pieces] == [0] + [e for _, _, e in pieces][:-1] and pieces[-1][2] == len(word)
    print(f"{word:10} -> {[p for p, _, _ in pieces]}  glued back: {glued == word}  spans tile: {tiles}")
"""),
)

EXERCISE = Exercise(
    number=1, name="wordpiece", title="WordPiece: greedy longest match on one word",
    functions=(greedy_longest_match,),
    imports="",
    minutes=30,
    assesses="the greedy longest-match-first algorithm, the ## continuation convention, the whole-word [UNK] "
             "rule, character spans",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/tokenization.md",), notebooks=("02_wordpiece.ipynb",),
    contracts=(("greedy_longest_match", CONTRACT),), derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
