"""Word unigram and bigram models: the baselines that text prediction and generation are measured against.

    counts = NgramCounts.from_documents(train_documents)       # documents[d][s] = a sentence (raw text)
    counts.next_words("the cat sat on the", k=5)               # [("same", 0.02), ...] bigram, backing off
    counts.infill_words("sat on", "mat", k=5)                  # the word between, from both neighbours
    counts.sample(numpy.random.default_rng(0), 20)             # 20 words drawn from the bigram chain

Words are split as the model's tokenizer splits text before WordPiece (BasicTokenizer: lower-cased,
accents stripped, punctuation its own token), so "Don't!" is the words don ' t !. A *word* (what is
predicted and counted in accuracy) is a token of letters only (`is_word`); punctuation tokens are
counted too (a bigram "the , " is real text) but never predicted by `next_words`/`infill_words`.

The models, for a previous word p and a candidate word w:

    unigram   P(w) = c(w) / N                              (N: all tokens counted)
    bigram    S(w | p) = c(p w) / c(p)          if c(p w) > 0
                       = 0.4 * P(w)             otherwise   ("stupid back-off", Brants et al. 2007)

S is a score, not a normalised probability: it ranks candidates, which is all top-k accuracy needs.
Sentence starts have the previous word `<s>`. The sampler draws from the true bigram distribution
c(p w) / c(p) (every token, punctuation included), backing off to the unigram distribution after a
token never seen with a successor.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy

from minibert.errors import InputError
from minibert.tokenization.basic import BasicTokenizer

__all__ = ["START", "BACK_OFF", "NgramCounts", "is_word", "split_words"]

START = "<s>"            # the "previous word" of a sentence's first word
BACK_OFF = 0.4           # stupid back-off's factor (Brants et al. 2007)

_BASIC = BasicTokenizer(do_lower_case=True)


def split_words(text: str, basic: BasicTokenizer = _BASIC) -> list[str]:
    """The tokens of `text` as BERT's basic tokenizer gives them: lower-cased, punctuation split off."""
    return basic.tokenize(text)


def is_word(token: str) -> bool:
    """A word is letters only ("cat", "café" after accent stripping "cafe"); not "," or "1887"."""
    return token.isalpha()


class NgramCounts:
    """Unigram and bigram counts of a text, and what they predict.

    unigrams: Counter token -> count; bigrams: dict previous -> Counter next -> count.
    """

    def __init__(self, unigrams: Counter, bigrams: dict):
        if not unigrams:
            raise InputError("no words to count: the training text is empty")
        self.unigrams = unigrams
        self.bigrams = bigrams
        self.total = sum(unigrams.values())
        self._word_ranking = [w for w, _ in unigrams.most_common() if is_word(w)]     # unigram top-k, words only
        self._sorted_next: dict = {}                                                   # p -> successors by count

    @classmethod
    def from_sentences(cls, sentences, basic: BasicTokenizer = _BASIC) -> "NgramCounts":
        """Count every sentence's tokens and adjacent pairs (a sentence starts after <s>)."""
        unigrams, bigrams = Counter(), defaultdict(Counter)
        for sentence in sentences:
            previous = START
            for token in split_words(sentence, basic):
                unigrams[token] += 1
                bigrams[previous][token] += 1
                previous = token
        return cls(unigrams, dict(bigrams))

    @classmethod
    def from_documents(cls, documents, basic: BasicTokenizer = _BASIC) -> "NgramCounts":
        """documents[d][s] = sentence s of document d (minibert's readers' format)."""
        return cls.from_sentences((s for d in documents for s in d), basic)

    # -- probabilities ------------------------------------------------------------------------------------

    def unigram(self, word: str) -> float:
        """P(w) = c(w) / N."""
        return self.unigrams.get(word, 0) / self.total

    def bigram_score(self, previous: str, word: str) -> float:
        """S(w | p): c(p w) / c(p) when the pair was seen, else 0.4 P(w) (stupid back-off)."""
        following = self.bigrams.get(previous)
        if following and following.get(word, 0):
            return following[word] / sum(following.values())
        return BACK_OFF * self.unigram(word)

    # -- prediction -----------------------------------------------------------------------------------------

    def top_unigram_words(self, k: int) -> list[tuple[str, float]]:
        """The k most frequent words (context-free): the unigram baseline's guesses, every time."""
        return [(w, self.unigram(w)) for w in self._word_ranking[:k]]

    def _successor_words(self, previous: str) -> list[str]:
        """The words seen after `previous`, most frequent first (cached per previous word)."""
        if previous not in self._sorted_next:
            following = self.bigrams.get(previous, Counter())
            self._sorted_next[previous] = [w for w, _ in following.most_common() if is_word(w)]
        return self._sorted_next[previous]

    def next_words(self, context, k: int = 5) -> list[tuple[str, float]]:
        """The k best next words after `context` (text, or its list of tokens) by S(w | last token).

        Seen successors of the last token come first (their scores are c(p w)/c(p)); the list is filled
        up from the unigram ranking (scores 0.4 P(w)), which is where the back-off puts them.
        """
        tokens = split_words(context) if isinstance(context, str) else list(context)
        previous = tokens[-1] if tokens else START
        return self._rank(previous, k, lambda w: self.bigram_score(previous, w))

    def infill_words(self, left, right, k: int = 5) -> list[tuple[str, float]]:
        """The k best words w between `left` and `right` (texts or token lists) by S(w | l) * S(r | w).

        l is the last token of left (<s> if none), r the first of right (none: S(w | l) alone). The
        candidates are the words seen after l and the most frequent words; the right neighbour re-ranks them.
        """
        left = split_words(left) if isinstance(left, str) else list(left)
        right = split_words(right) if isinstance(right, str) else list(right)
        previous = left[-1] if left else START
        if not right:
            return self._rank(previous, k, lambda w: self.bigram_score(previous, w))
        after = right[0]
        return self._rank(previous, k, lambda w: self.bigram_score(previous, w) * self.bigram_score(w, after),
                          pool=max(k, 200))

    def _rank(self, previous: str, k: int, score, pool: int | None = None) -> list[tuple[str, float]]:
        """Score the candidates (successors of previous, then frequent words) and keep the k best."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        candidates = self._successor_words(previous)
        if pool is not None:
            candidates = candidates[:pool]
        candidates = list(dict.fromkeys(candidates + self._word_ranking[:max(k, pool or k)]))
        scored = sorted(((score(w), w) for w in candidates), key=lambda sw: (-sw[0], sw[1]))
        return [(w, s) for s, w in scored[:k]]

    # -- sampling ---------------------------------------------------------------------------------------------

    def sample(self, rng: numpy.random.Generator, length: int, prompt: str = "") -> list[str]:
        """`length` tokens drawn from the bigram chain after `prompt` (or a sentence start): each token
        w ~ c(p w) / c(p) given the one before, the unigram distribution after a token with no successor.
        Returns the drawn tokens only (the prompt's are not repeated)."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise InputError(f"length must be a positive integer, got {length!r}")
        tokens = split_words(prompt) if prompt else []
        previous = tokens[-1] if tokens else START
        drawn = []
        for _ in range(length):
            following = self.bigrams.get(previous) or self.unigrams
            words = list(following)
            counts = numpy.fromiter(following.values(), dtype=numpy.float64, count=len(words))
            previous = words[rng.choice(len(words), p=counts / counts.sum())]
            drawn.append(previous)
        return drawn
