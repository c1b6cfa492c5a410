"""Exercise 18: WordPiece vocabulary training, the merge step (minibert.tokenization.vocab_trainer)."""
from __future__ import annotations

from collections import Counter

import numpy

from minibert.exercises.base import CheckFailed, Exercise, Question
from minibert.tokenization.vocab_trainer import (Merge, best_merge, count_pairs, initial_alphabet, learn_vocab,
                                                 merge_pair)

STATEMENT = r"""
## Training a WordPiece vocabulary

A vocabulary is learned from word counts. Every word starts split into characters, the first as
it is and the others with the continuation prefix: `hugs` is `h ##u ##g ##s`. Then, step after step,
one adjacent pair of pieces $(a, b)$ is chosen and merged everywhere into one new piece; the merged
piece is $a$ followed by $b$ without $b$'s `##` (`##g` + `##s` is `##gs`, `h` + `##u` is `hu`).

Counts are weighted by word frequency: a word seen 10 times contributes 10 to the count of each of
its pieces and of each of its adjacent pairs. The pair chosen is the one with the best score:

- `"likelihood"` (WordPiece): $\dfrac{\text{count}(a\,b)}{\text{count}(a)\,\text{count}(b)}$;
- `"frequency"` (BPE's rule): $\text{count}(a\,b)$.

Ties go to the pair with the larger count(a b), then to the alphabetically first pair (compare
$a$ first, then $b$, as Python compares strings).

## Your functions

`count_pairs(splits, word_counts)` returns `(piece_counts, pair_counts)`, two `Counter`s;
`best_merge(piece_counts, pair_counts, score)` returns `Merge(left, right, token, score, count)`;
`merge_pair(split, left, right)` returns a **new** list with every adjacent `(left, right)`,
scanning from the left, replaced by the merged token. The grader then trains a whole vocabulary
with your three functions and compares it with minibert's.
"""

HINTS = (
    "Work the Hugging Face course's example by hand: hug 10, pug 5, pun 12, bun 4, hugs 5. Count the pair "
    "(##g, ##s) and the pieces ##g and ##s: which pair wins on likelihood, which on frequency?",
    "Ties: after the score comes the count, then the alphabet, and the direction matters for each (the "
    "best score and count are the largest, the first string is the smallest). One sort key can hold all three.",
    "Merging: after a merge the scan continues *after* the merged pair, so in a run of three equal "
    "pieces only the first two merge. Only the right part loses its prefix. See docs/tokenization.md "
    "(training a vocabulary) and minibert/tokenization/vocab_trainer.py's docstring.",
)

CONTRACTS = (
    ("count_pairs", '''Count pieces and adjacent pairs of pieces over the corpus.

    splits: dict word -> list of its current pieces ("hugs" -> ["h", "##u", "##g", "##s"]);
    word_counts: dict word -> how often the word occurs.
    Returns (piece_counts, pair_counts): two collections.Counter, piece -> count and
    (left, right) -> count, each occurrence weighted by its word's count.
    '''),
    ("best_merge", '''The pair to merge next.

    piece_counts, pair_counts: as count_pairs returns them (pair_counts not empty);
    score: "likelihood" (count(a b) / (count(a) count(b))) or "frequency" (count(a b)).
    Returns Merge(left, right, token, score, count): the winning pair, its merged token (right's
    "##" dropped), its score (a float) and its count. Ties: the larger count wins, then the
    alphabetically first pair (left, then right).
    '''),
    ("merge_pair", '''A new list: `split` with every adjacent (left, right) replaced by the merged token.

    Scans from the left; a merged pair is not looked at again. `split` itself is not changed.
    '''),
)

DERIVATION = r"""
## Working it out

1. **Why that score.** Under a unigram model each piece $t$ has probability $c(t)/N$. Merging $a$
   and $b$ replaces $c(ab)$ pairs by one token each. Write the change in the corpus log-likelihood
   to first order, and compare it with $\log \frac{c(ab)}{c(a)\,c(b)}$ (up to terms shared by all pairs).
   Which pairs does it favour: frequent pairs, or pairs whose parts are rarely seen apart?
2. **A hand run.** hug 10, pug 5, pun 12, bun 4, hugs 5: list the pieces and pairs with their
   counts, score every pair both ways, and find the first two merges of each rule.
3. **Ties.** Find a tie in the likelihood scores of your hand run. Which pair wins, and why does
   an order fixed in advance matter (think of two machines training the same vocabulary)?
4. **Merging.** Merge (`##a`, `##a`) in `b ##a ##a ##a`: what is the result scanning from the left,
   and from the right? Which one does the contract ask for?
"""

QUESTIONS = (
    Question("Why does WordPiece's likelihood score merge rare strings first on a small corpus, and why does "
             "minibert's pretraining command use the frequency score?",
             "The score count(ab) / (count(a) count(b)) is largest when the parts are seen almost only "
             "together: a pair seen once whose parts are seen once scores 1, the maximum, while a frequent "
             "pair like (t, ##h) scores low because t and ##h occur in many other places. So rare names "
             "and typos are merged before frequent words become whole tokens. With a large corpus and "
             "vocabulary that matters little; with a small one, frequency (BPE's rule) gives whole frequent "
             "words first, which is what a tiny model benefits from."),
    Question("What goes wrong if ties are broken by the order pairs happen to be stored (dict order)?",
             "The vocabulary then depends on insertion order, i.e. on the order of words in the corpus or on "
             "the implementation (the naive and the incremental trainers store pairs differently), so two "
             "runs on the same counts can learn different vocabularies and token ids: checkpoints would "
             "not be interchangeable. A fixed order (score, then count, then the strings) makes training "
             "a function of the counts alone."),
)

SANITY = (
    ("**The course's example.** Train on the Hugging Face course's five words with your functions, in the "
     "naive loop, and compare with minibert's trainer.",
     "from minibert.tokenization.vocab_trainer import learn_vocab\n"
     "counts = {\"hug\": 10, \"pug\": 5, \"pun\": 12, \"bun\": 4, \"hugs\": 5}\n"
     "splits = {w: [w[0]] + [\"##\" + c for c in w[1:]] for w in counts}\n"
     "merges = []\n"
     "for _ in range(6):\n"
     "    pieces, pairs = mine.count_pairs(splits, counts)\n"
     "    merge = mine.best_merge(pieces, pairs, \"likelihood\")\n"
     "    merges.append(merge.token)\n"
     "    splits = {w: mine.merge_pair(s, merge.left, merge.right) for w, s in splits.items()}\n"
     "print(\"yours:   \", merges)\n"
     "print(\"minibert:\", [m.token for m in learn_vocab(counts, 100).merges[:6]])"),
)


# -- cases -----------------------------------------------------------------------------------------

COURSE = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}


def _split(word):
    return [word[0]] + ["##" + c for c in word[1:]]


def _random_counts(rng, n=14):
    letters = "abcdeu"
    words = {}
    while len(words) < n:
        length = int(rng.integers(1, 6))
        word = "".join(rng.choice(list(letters), size=length))
        words[word] = int(rng.integers(1, 9))
    return words


def _counter_check(t, label, got, expected, wrong):
    if not isinstance(got, dict):
        raise CheckFailed(f"{label} is {type(got).__name__}; expected a Counter (a dict of counts).",
                          "collections.Counter is imported in the starter.")
    got = {k: v for k, v in got.items() if v}
    if got == dict(expected):
        return
    missing = sorted(set(expected) - set(got))[:3]
    extra = sorted(set(got) - set(expected))[:3]
    off = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])[:3]
    parts = ([f"missing {missing}"] if missing else []) + ([f"not expected {extra}"] if extra else []) + \
            [f"{k!r}: yours {got[k]}, expected {expected[k]}" for k in off]
    hint = next((text for candidate, text in wrong if {k: v for k, v in candidate.items() if v} == got), "")
    raise CheckFailed(f"{label} differ: " + "; ".join(parts) + ".", hint or
                      "each piece and each adjacent pair of a word counts once per occurrence of the word.")


def _count_variants(splits, counts):
    pieces_1, pairs_1, pairs_set, pairs_tail = Counter(), Counter(), Counter(), Counter()
    for w, s in splits.items():
        for p in s:
            pieces_1[p] += 1
        for pair in zip(s, s[1:]):
            pairs_1[pair] += 1
        for pair in set(zip(s, s[1:])):
            pairs_set[pair] += counts[w]
        for pair in zip(s[1:], s[2:]):
            pairs_tail[pair] += counts[w]
    return pieces_1, pairs_1, pairs_set, pairs_tail


def _count_check(t, splits, counts):
    ref_pieces, ref_pairs = count_pairs(splits, counts)
    got = t.unpack(t.call("count_pairs", {w: list(s) for w, s in splits.items()}, dict(counts)),
                   "count_pairs", "piece_counts, pair_counts")
    pieces_1, pairs_1, pairs_set, pairs_tail = _count_variants(splits, counts)
    _counter_check(t, "the piece counts", got[0], ref_pieces, [
        (pieces_1, "your piece counts are not weighted: a word seen n times contributes n to each of its pieces.")])
    _counter_check(t, "the pair counts", got[1], ref_pairs, [
        (pairs_1, "your pair counts are not weighted: a word seen n times contributes n to each of its pairs."),
        (pairs_set, "a pair that occurs twice in one word counts twice (each occurrence is a merge candidate)."),
        (pairs_tail, "your pairs skip the first piece of each word: pair piece 0 with piece 1, 1 with 2, ...")])
    t.note(f"{len(ref_pieces)} pieces, {len(ref_pairs)} pairs")


def _merge_variants(pieces, pairs, score):
    def pick(key):
        (a, b) = min(pairs, key=key)
        c = pairs[(a, b)]
        s = c / (pieces[a] * pieces[b]) if score == "likelihood" else float(c)
        return (a, b, a + b[2:], s, c)

    like = (lambda p: (-pairs[p] / (pieces[p[0]] * pieces[p[1]]), -pairs[p], p))
    freq = (lambda p: (-pairs[p], p))
    ref = like if score == "likelihood" else freq
    return [
        (pick(lambda p: (ref(p)[0], p)), "a tie in the score went to the alphabetically first pair: the larger "
                                         "count(a b) decides first, the alphabet only after it."),
        (pick(lambda p: (ref(p)[:-1], tuple(reversed(p)))), "a tie in score and count must go to the "
                                                            "alphabetically first pair, comparing left first."),
        (pick(lambda p: (ref(p)[:-1], [-ord(ch) for ch in p[0] + "\0" + p[1]])),
         "a tie in score and count went to the alphabetically *last* pair: the first one wins."),
        (pick(lambda p: (-pairs[p] / (pieces[p[0]] + pieces[p[1]]), -pairs[p], p)) if score == "likelihood" else None,
         "the likelihood score divides by the *product* of the two pieces' counts, not their sum."),
        (pick(freq if score == "likelihood" else like),
         f"you ranked the pairs by the other score: this check asks for score={score!r}."),
    ]


def _best_check(t, pieces, pairs, score):
    expected = best_merge(pieces, pairs, score)
    got = t.call("best_merge", Counter(pieces), Counter(pairs), score)
    if not isinstance(got, tuple) or len(got) != 5:
        raise CheckFailed(f"best_merge returned {type(got).__name__}; expected Merge(left, right, token, score, count).",
                          "Merge is imported in the starter: return Merge(left, right, token, score, count).")
    if tuple(got[:3]) != tuple(expected[:3]):
        hint = next((h for cand, h in _merge_variants(pieces, pairs, score)
                     if cand is not None and tuple(cand[:3]) == tuple(got[:3])), "")
        if not hint and got[:2] == expected[:2]:
            hint = "the right pair, the wrong token: the merged token is left + right without right's \"##\"."
        raise CheckFailed(f"best_merge chose {tuple(got[:3])}; expected {expected[:2]} with score={score!r}.",
                          hint or "score every pair, then break ties by count, then alphabetically.")
    t.compare("the merge's score", numpy.float64(got[3]), expected.score, tolerance=1e-12, scale_floor=1e-30,
              candidates=[(float(expected.count), "the score is the likelihood ratio here, not the count.")])
    if int(got[4]) != expected.count:
        raise CheckFailed(f"the merge's count is {got[4]}; expected {expected.count} (count(a b)).")


def _merge_pair_check(t, split, left, right):
    expected = merge_pair(split, left, right)
    given = list(split)
    got = t.call("merge_pair", given, left, right)
    if given != split:
        raise CheckFailed("merge_pair changed the list it was given.", "build a new list and return it.")
    if not isinstance(got, list) or got != expected:
        token = left + right[2:]
        hint = ""
        if isinstance(got, list):
            if left + right in got:
                hint = "the merged token keeps right's \"##\": drop it (left + the rest of right)."
            elif got == _merge_from_right(split, left, right, token):
                hint = "you merged scanning from the right: scan from the left, a merged pair is not looked at again."
            elif got == _merge_first(split, left, right, token):
                hint = "only the first occurrence was merged: every occurrence of the pair is."
        raise CheckFailed(f"merge_pair({split}, {left!r}, {right!r}) returned {got!r}; expected {expected!r}.",
                          hint or "scan from the left; when the pair is at i, i + 1 emit the merged token and "
                                  "continue after it.")


def _merge_from_right(split, left, right, token):
    out, i = [], len(split) - 1
    while i >= 0:
        if i >= 1 and split[i - 1] == left and split[i] == right:
            out.insert(0, token)
            i -= 2
        else:
            out.insert(0, split[i])
            i -= 1
    return out


def _merge_first(split, left, right, token):
    for i in range(len(split) - 1):
        if split[i] == left and split[i + 1] == right:
            return split[:i] + [token] + split[i + 2:]
    return list(split)


def _train_check(t, counts, size, score):
    expected = learn_vocab(counts, size, score=score)
    vocab = list(expected.vocab[:5]) + initial_alphabet(counts)
    splits = {w: _split(w) for w in sorted(counts)}
    while len(vocab) < size:
        pieces, pairs = t.unpack(t.call("count_pairs", splits, counts), "count_pairs", "piece_counts, pair_counts")
        if not any(pairs.values()):
            break
        merge = t.call("best_merge", pieces, +pairs, score)
        splits = {w: t.call("merge_pair", s, merge[0], merge[1]) for w, s in splits.items()}
        if merge[2] not in vocab:
            vocab.append(merge[2])
    if vocab != expected.vocab:
        first = next((i for i, (a, b) in enumerate(zip(vocab, expected.vocab)) if a != b), min(len(vocab), len(expected.vocab)))
        raise CheckFailed(f"the vocabulary trained with your functions differs from minibert's from entry {first} on "
                          f"(yours {vocab[first:first + 3]}, expected {expected.vocab[first:first + 3]}).",
                          "each function passed on its own? Then look at the merge where they part: a tie, or a "
                          "count after an earlier merge.")
    t.note(f"{len(expected.merges)} merges")


def check(t):
    with t.check("count_pairs: the course's five words, characters"):
        _count_check(t, {w: _split(w) for w in COURSE}, COURSE)
    with t.check("count_pairs: random words after merges, a pair twice in one word"):
        counts = _random_counts(t.rng)
        counts["aaaaa"], counts["abcbc"] = 3, 2            # (##b, ##c) twice in one word
        splits = {w: merge_pair(_split(w), "##a", "##a") if w == "aaaaa" else _split(w) for w in counts}
        _count_check(t, splits, counts)
    for score in ("likelihood", "frequency"):
        with t.check(f"best_merge, score={score!r}: the course's words"):
            _best_check(t, *count_pairs({w: _split(w) for w in COURSE}, COURSE), score)
    with t.check("best_merge: a tie in score broken by count, a tie in both broken alphabetically"):
        pieces = Counter({"a": 4, "##b": 4, "b": 4, "##a": 4, "x": 8, "##y": 8, "c": 4, "##d": 4, "9": 2, "##z": 2})
        # likelihood: (a, ##b), (b, ##a), (c, ##b) and (9, ##z) all score 1/4; (9, ##z) has the smaller
        # count; of the others (a, ##b) comes first ((b, ##a) if the right part is compared first, (c, ##b)
        # last). frequency: four pairs of count 4, (a, ##b) first.
        pairs = Counter({("c", "##d"): 2, ("b", "##a"): 4, ("x", "##y"): 4, ("9", "##z"): 1, ("a", "##b"): 4,
                         ("c", "##b"): 4})
        _best_check(t, pieces, pairs, "likelihood")
        _best_check(t, pieces, pairs, "frequency")
    with t.check("merge_pair: the ## of the right part, runs of equal pieces, several occurrences"):
        for split, left, right in ((["h", "##u", "##g", "##s"], "h", "##u"), (["h", "##u", "##g", "##s"], "##g", "##s"),
                                   (["b", "##a", "##a", "##a"], "##a", "##a"),
                                   (["b", "##a", "##a", "##a", "##a"], "##a", "##a"),
                                   (["a", "##b", "##a", "##b", "##c"], "##a", "##b"),
                                   (["x", "##y", "##z"], "x", "##z")):
            _merge_pair_check(t, split, left, right)
    with t.check("together: a vocabulary of 40 trained with your functions (likelihood)"):
        _train_check(t, _random_counts(t.rng, 18), 40, "likelihood")
    with t.check("together: the course's words, 25 tokens (frequency)"):
        _train_check(t, COURSE, 25, "frequency")


EXERCISE = Exercise(
    number=18, name="wordpiece_training", title="WordPiece vocabulary training: counting, scoring, merging",
    functions=(count_pairs, best_merge, merge_pair),
    imports="from collections import Counter\n\nfrom minibert.tokenization.vocab_trainer import Merge",
    minutes=60,
    assesses="counting weighted by word frequency; WordPiece's likelihood score against BPE's frequency and why; "
             "a total order for ties (score, count, alphabet); a left-to-right merge with the ## convention; "
             "a vocabulary that is a function of the counts alone",
    statement=STATEMENT, hints=HINTS, check=check,
    docs=("docs/tokenization.md",), notebooks=("02_wordpiece.ipynb",),
    contracts=CONTRACTS, derivation=DERIVATION, questions=QUESTIONS, sanity=SANITY,
)
