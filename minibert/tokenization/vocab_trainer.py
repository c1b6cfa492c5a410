"""Learn a WordPiece vocabulary from a text corpus.

Google never released the program that built BERT's vocabulary. This is the
WordPiece training procedure as Hugging Face teaches it (the NLP course,
chapter 6, "WordPiece tokenization"), written twice: readable and slow
(`learn_vocab_naive`), and incremental and fast (`learn_vocab`); the tests
check that both learn the same vocabulary.

    >>> counts = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}
    >>> result = learn_vocab(counts, vocab_size=25)
    >>> result.vocab[5:]       # after the 5 special tokens: single characters, then merges
    ['b', 'g', 'h', 'n', 'p', 's', 'u', '##b', '##g', '##h', '##n', '##p', '##s', '##u', '##gs', 'pu', 'hu', 'bu', 'hugs', 'hug']
    >>> result.merges[0]
    Merge(left='##g', right='##s', token='##gs', score=0.05, count=5)

1. Count the words of the corpus after basic tokenization (the same
   cleaning, lower-casing and punctuation splitting the tokenizer applies).
   Special-token strings in the corpus are text: "[CLS]" written in a line
   counts as "[", "cls", "]" (the tokenizer's split_special_tokens=True, as
   the pretraining pipeline reads the same text); the special tokens enter
   the vocabulary once, at the top, and are never counted.
2. Start from single characters: every character seen, both as a word
   start ("h") and as a continuation ("##h"), so that any word made of
   known characters can be tokenized. Each word is split into characters:
   "hugs" -> h ##u ##g ##s.
3. Repeatedly merge the adjacent pair (a, b) with the best score
        score(a, b) = count(a b) / (count(a) * count(b))
   (counts weighted by word frequency). Unlike BPE, which merges the most
   frequent pair, this prefers pairs whose parts rarely occur apart: the
   merge that most increases the corpus likelihood under a unigram model.
   The merged token is a + b without b's "##" ("##g" + "##s" -> "##gs").
   Ties go to the more frequent pair, then to the alphabetically first.
4. Stop when the vocabulary has the requested size (or nothing is left to
   merge).

`score="frequency"` merges the most frequent pair instead, as BPE does (and
as Hugging Face tokenizers' WordPieceTrainer, which trains with BPE merges
and saves a WordPiece vocabulary). On a small corpus the likelihood score
spends much of the vocabulary on rare strings (a pair seen once, whose parts
are seen once, scores 1.0, the maximum), so frequent words such as "the"
can stay split; the frequency score makes them whole tokens first. The
pretraining command uses it for that reason.
"""
from __future__ import annotations

import heapq
from collections import Counter, namedtuple
from dataclasses import dataclass, field

from minibert.errors import InputError
from minibert.tokenization.basic import BasicTokenizer, CleanTable
from minibert.tokenization.wordpiece import CONTINUATION_PREFIX

__all__ = ["SPECIAL_TOKENS", "Merge", "TrainingResult", "count_words", "initial_alphabet",
           "learn_vocab", "learn_vocab_naive", "train_vocab", "read_lines"]

# BERT's special tokens, first in the vocabulary (ids 0-4, Hugging Face's order
# for a new vocabulary; Google's released vocabularies have [PAD] at 0 and the
# others at 100-103, after 99 "[unusedN]" slots).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

Merge = namedtuple("Merge", "left right token score count")


@dataclass
class TrainingResult:
    """The learned vocabulary (specials, alphabet, merged tokens) and the merges in order."""
    vocab: list[str]
    merges: list[Merge] = field(default_factory=list)


# -- step 1: counting words --------------------------------------------------

def read_lines(paths):
    """Yield the lines of text files (UTF-8; undecodable bytes become U+FFFD, which cleaning drops)."""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f


def count_words(lines, do_lower_case: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True, max_input_chars_per_word: int = 100,
                show_progress: bool = False) -> Counter:
    """word -> count, words as the basic tokenizer produces them from corpus text.

    Words longer than `max_input_chars_per_word` (which the tokenizer turns
    into [UNK] whole) are not counted. A special token's string in the text is
    text, cut at its brackets like any other word (the basic tokenizer has no
    `never_split` here), so no special token is ever counted:

        >>> count_words(["Hello, hello!", "HELLO world"])
        Counter({'hello': 3, ',': 1, '!': 1, 'world': 1})
        >>> count_words(["a [SEP] b"])
        Counter({'a': 1, '[': 1, 'sep': 1, ']': 1, 'b': 1})
    """
    basic = BasicTokenizer(do_lower_case=do_lower_case, never_split=(),
                           tokenize_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents)
    table = CleanTable(tokenize_chinese_chars)
    # Count raw whitespace-separated words first (fast: str.translate + split
    # + Counter, all in C), then run the basic tokenizer once per distinct word.
    raw = Counter()
    for line in _progress(lines, show_progress, desc="counting words", unit=" lines"):
        raw.update(line.translate(table).split())
    counts = Counter()
    for word, n in raw.items():
        for token in basic.split_word(word):
            if len(token) <= max_input_chars_per_word:
                counts[token] += n
    return counts


# -- step 2: the alphabet ----------------------------------------------------

def initial_alphabet(word_counts) -> list[str]:
    """Every character of the corpus, alone then with "##", each group sorted.

        >>> initial_alphabet({"ab": 1, "ba": 2})
        ['a', 'b', '##a', '##b']
    """
    chars = sorted({char for word in word_counts for char in word})
    return chars + [CONTINUATION_PREFIX + char for char in chars]


def _initial_vocab(word_counts, vocab_size, special_tokens) -> list[str]:
    vocab = list(special_tokens) + [t for t in initial_alphabet(word_counts) if t not in special_tokens]
    if vocab_size < len(vocab):
        raise InputError(
            f"vocab_size={vocab_size} is too small: the {len(special_tokens)} special tokens and the "
            f"{len(vocab) - len(special_tokens)} single characters (with and without ##) of this "
            f"corpus already make {len(vocab)}")
    return vocab


def _split_into_chars(word: str) -> list[str]:
    """"hugs" -> ["h", "##u", "##g", "##s"]."""
    return [word[0]] + [CONTINUATION_PREFIX + char for char in word[1:]]


def _merged(left: str, right: str) -> str:
    """"hu" + "##g" -> "hug": the right part always continues a word, so drop its "##"."""
    return left + right[len(CONTINUATION_PREFIX):]


def _apply_merge(split: list[str], left: str, right: str, token: str) -> list[str]:
    """Replace every adjacent (left, right) in `split`, scanning left to right, by `token`."""
    out, i = [], 0
    while i < len(split):
        if i + 1 < len(split) and split[i] == left and split[i + 1] == right:
            out.append(token)
            i += 2
        else:
            out.append(split[i])
            i += 1
    return out


SCORES = ("likelihood", "frequency")


def _score(count, count_a, count_b, score):
    """likelihood: count(a b) / (count(a) count(b)); frequency: count(a b)."""
    return count / (count_a * count_b) if score == "likelihood" else float(count)


def _check_score(score):
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")


def _best(candidates):
    """The winning (key, pair): highest score, then highest count, then alphabetical."""
    return min(candidates)


# -- step 3, readable: recount everything before every merge ------------------

def learn_vocab_naive(word_counts, vocab_size: int, special_tokens=SPECIAL_TOKENS,
                      score: str = "likelihood") -> TrainingResult:
    """The training loop exactly as described above; slow (it recounts every pair each time).

        >>> learn_vocab_naive({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}, 25).vocab[-6:]
        ['##gs', 'pu', 'hu', 'bu', 'hugs', 'hug']
    """
    _check_score(score)
    vocab = _initial_vocab(word_counts, vocab_size, special_tokens)
    known = set(vocab)
    words = sorted(word_counts)
    splits = {word: _split_into_chars(word) for word in words}
    merges = []
    while len(vocab) < vocab_size:
        piece_counts, pair_counts = Counter(), Counter()
        for word in words:
            split, n = splits[word], word_counts[word]
            for piece in split:
                piece_counts[piece] += n
            for pair in zip(split, split[1:]):
                pair_counts[pair] += n
        if not pair_counts:
            break  # every word is a single token: nothing left to merge
        key, (left, right) = _best(
            ((-_score(count, piece_counts[a], piece_counts[b], score), -count, a, b), (a, b))
            for (a, b), count in pair_counts.items())
        token = _merged(left, right)
        merges.append(Merge(left, right, token, -key[0], -key[1]))
        for word in words:
            splits[word] = _apply_merge(splits[word], left, right, token)
        if token not in known:  # the same string can be reached by two merge paths
            vocab.append(token)
            known.add(token)
    return TrainingResult(vocab, merges)


# -- step 3, fast: update only what a merge changes ---------------------------

class _PairStats:
    """Counts of pieces and adjacent pairs over all words, kept up to date merge by merge.

    A max-heap (heapq with negated keys) holds candidate pairs. A merge of
    (a, b) changes count(a) and count(b), hence the score of *every* pair
    that contains a, b or the new token, so all of those are pushed again
    with their new score; an entry is used only if the counts stored with it
    are still the current ones (older entries are skipped when popped).
    """

    def __init__(self, words, freqs, splits, score="likelihood"):
        self.freqs, self.splits, self.score = freqs, splits, score
        self.piece_counts = Counter()
        self.pair_counts = Counter()
        self.words_with_pair = {}    # pair -> ids of the words it occurs in
        self.pairs_with_piece = {}   # piece -> pairs it is part of (left or right)
        for w, split in enumerate(splits):
            for piece in split:
                self.piece_counts[piece] += freqs[w]
            for pair in zip(split, split[1:]):
                self._add_pair(pair, w, freqs[w])
        self.heap = []
        for pair in self.pair_counts:
            self._push(pair)
        heapq.heapify(self.heap)

    def _add_pair(self, pair, word_id, count):
        if pair not in self.words_with_pair:
            self.words_with_pair[pair] = set()
            self.pairs_with_piece.setdefault(pair[0], set()).add(pair)
            self.pairs_with_piece.setdefault(pair[1], set()).add(pair)
        self.words_with_pair[pair].add(word_id)
        self.pair_counts[pair] += count

    def _remove_pair(self, pair, count):
        self.pair_counts[pair] -= count
        if self.pair_counts[pair] == 0:
            del self.pair_counts[pair], self.words_with_pair[pair]
            self.pairs_with_piece[pair[0]].discard(pair)
            self.pairs_with_piece[pair[1]].discard(pair)

    def _key(self, pair):
        a, b = pair
        count, count_a, count_b = self.pair_counts[pair], self.piece_counts[a], self.piece_counts[b]
        return (-_score(count, count_a, count_b, self.score), -count, a, b, count_a, count_b)

    def _push(self, pair):
        heapq.heappush(self.heap, self._key(pair))

    def pop_best(self):
        """The best (score, count, left, right) still valid, or None if no pair is left."""
        while self.heap:
            neg_score, neg_count, a, b, count_a, count_b = heapq.heappop(self.heap)
            if (self.pair_counts.get((a, b)) == -neg_count and self.piece_counts[a] == count_a
                    and self.piece_counts[b] == count_b):
                return -neg_score, -neg_count, a, b
        return None

    def merge(self, left, right, token):
        """Apply the merge in every word that has the pair; re-score affected pairs."""
        for w in sorted(self.words_with_pair[(left, right)]):
            old = self.splits[w]
            new = _apply_merge(old, left, right, token)
            n = self.freqs[w]
            removed = Counter(zip(old, old[1:]))
            added = Counter(zip(new, new[1:]))
            for pair, times in (removed - added).items():
                self._remove_pair(pair, times * n)
                if pair in self.words_with_pair and pair not in added:
                    self.words_with_pair[pair].discard(w)
            for pair, times in (added - removed).items():
                self._add_pair(pair, w, times * n)
            merged = (len(old) - len(new)) * n  # each merge turns a, b into one token
            self.piece_counts[left] -= merged
            self.piece_counts[right] -= merged
            self.piece_counts[token] += merged
            self.splits[w] = new
        for piece in (left, right, token):
            if self.piece_counts[piece] == 0:
                del self.piece_counts[piece]
        changed = set()
        for piece in (left, right, token):
            changed |= self.pairs_with_piece.get(piece, set())
        for pair in changed:
            self._push(pair)


def learn_vocab(word_counts, vocab_size: int, special_tokens=SPECIAL_TOKENS,
                show_progress: bool = False, score: str = "likelihood") -> TrainingResult:
    """Same result as `learn_vocab_naive`, updating counts incrementally (see _PairStats)."""
    _check_score(score)
    vocab = _initial_vocab(word_counts, vocab_size, special_tokens)
    known = set(vocab)
    words = sorted(word_counts)
    freqs = [word_counts[w] for w in words]
    stats = _PairStats(words, freqs, [_split_into_chars(w) for w in words], score)
    merges = []
    with _progress(None, show_progress, total=vocab_size - len(vocab), desc="merges") as bar:
        while len(vocab) < vocab_size:
            best = stats.pop_best()
            if best is None:
                break  # every word is a single token: nothing left to merge
            value, count, left, right = best
            token = _merged(left, right)
            merges.append(Merge(left, right, token, value, count))
            stats.merge(left, right, token)
            if token not in known:  # the same string can be reached by two merge paths
                vocab.append(token)
                known.add(token)
                bar.update(1)
    return TrainingResult(vocab, merges)


# -- everything together ------------------------------------------------------

def train_vocab(lines, vocab_size: int, do_lower_case: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True, special_tokens=SPECIAL_TOKENS,
                show_progress: bool = True, score: str = "likelihood") -> TrainingResult:
    """Count the words of `lines` (an iterable of str) and learn a vocabulary of `vocab_size`.

    `special_tokens` open the vocabulary (ids 0, 1, ...); their strings in
    `lines` are counted as text (see count_words).

    To train and save in one go (a folder `BertTokenizer.from_pretrained` reads):

        result = train_vocab(read_lines(["corpus.txt"]), vocab_size=16000)
        BertTokenizer(result.vocab, do_lower_case=True).save_pretrained("my_vocab")
    """
    counts = count_words(lines, do_lower_case=do_lower_case, strip_accents=strip_accents,
                         tokenize_chinese_chars=tokenize_chinese_chars, show_progress=show_progress)
    if not counts:
        raise InputError("the corpus has no words to learn from (is it empty?)")
    return learn_vocab(counts, vocab_size, special_tokens=special_tokens, show_progress=show_progress, score=score)


def _progress(iterable, show: bool, **kwargs):
    from tqdm import tqdm
    return tqdm(iterable, disable=not show, mininterval=0.5, **kwargs)
