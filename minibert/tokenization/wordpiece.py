"""WordPiece: one word -> the vocabulary pieces it is made of.

A vocabulary holds whole words ("playing"), word beginnings ("play") and word
continuations, written with a "##" prefix ("##ing"). A word is cut greedily:
take the longest vocabulary entry the word starts with, then the longest
"##" entry the rest starts with, and so on.

    >>> vocab = {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "aff": 4}
    >>> wp = WordpieceTokenizer(vocab)
    >>> wp.tokenize("unaffable")
    ['un', '##aff', '##able']
    >>> wp.tokenize("unaffordable")   # "##ord" is not in the vocabulary
    ['[UNK]']

Why "##": it tells a word's first piece from a continuation, so "able" alone
and "##able" inside "unaffable" are different tokens, and the pieces can be
glued back into words (`decode` drops " ##"). Why greedy longest match: it is
fast (no search over all segmentations), deterministic, and long pieces carry
more meaning than short ones. It is not always the segmentation with the
fewest pieces, and if any part of a word cannot be matched the *whole word*
becomes "[UNK]" (BERT's rule, not just the unmatched part).
"""
from __future__ import annotations

__all__ = ["WordpieceTokenizer", "CONTINUATION_PREFIX", "greedy_longest_match"]

CONTINUATION_PREFIX = "##"


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary.

    Args:
        vocab: token -> id (only membership is used here).
        unk_token: what a word that cannot be covered becomes.
        max_input_chars_per_word: longer words become `unk_token` at once.
            100 in Hugging Face (both tokenizers); Google's own code uses 200.
            We follow Hugging Face, as the parity tests do.
    """

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # Speed-up, same result: no vocabulary entry is longer than this, so
        # the search never needs to try a longer candidate (the reference
        # starts every search from the whole rest of the word).
        self.longest_piece = max(
            (len(t) - len(CONTINUATION_PREFIX) if t.startswith(CONTINUATION_PREFIX) else len(t)
             for t in vocab), default=0)

    def tokenize(self, text: str) -> list[str]:
        """Pieces of every whitespace-separated word of `text`, in order.

            >>> WordpieceTokenizer({"a": 0, "##b": 1, "[UNK]": 2}).tokenize("ab abc b")
            ['a', '##b', '[UNK]', '[UNK]']
        """
        pieces = []
        for word in text.split():
            spans = self.split_word(word)
            pieces.extend([self.unk_token] if spans is None else [p for p, _, _ in spans])
        return pieces

    def split_word(self, word: str) -> list[tuple[str, int, int]] | None:
        """The pieces of one word with their (start, end) in it; None if it is [UNK].

            >>> WordpieceTokenizer({"un": 0, "##aff": 1, "##able": 2}).split_word("unaffable")
            [('un', 0, 2), ('##aff', 2, 5), ('##able', 5, 9)]
        """
        return greedy_longest_match(word, self.vocab, self.max_input_chars_per_word, self.longest_piece)


def greedy_longest_match(word: str, vocab, max_input_chars_per_word: int = 100,
                         longest_piece: int | None = None) -> list[tuple[str, int, int]] | None:
    """WordPiece's rule on one word: greedy longest match first, "##" on continuations.

    word: one word without spaces (after basic tokenization).
    vocab: the vocabulary (a dict or set of strings; only `in` is used).
    max_input_chars_per_word: a longer word is unknown at once (returns None).
    longest_piece: no vocabulary entry covers more characters than this (a
        "##" entry counts without its "##"); None: no bound. A speed-up only,
        the result is the same.

    Returns the pieces with the characters each covers, [(piece, start, end), ...]
    with word[start:end] the piece's text (without "##"); or None when some
    part of the word matches no entry: then the whole word is unknown, not just
    that part (the caller writes "[UNK]").

        >>> greedy_longest_match("unaffable", {"un", "##aff", "##able"})
        [('un', 0, 2), ('##aff', 2, 5), ('##able', 5, 9)]
        >>> print(greedy_longest_match("unaffable", {"un", "##aff", "##able", "una"}))
        None

    (In the second call "una" is the longest match at the start, and then no
    entry matches "ffable": greedy does not go back to try "un".)
    """
    if len(word) > max_input_chars_per_word:
        return None
    pieces = []
    start = 0
    while start < len(word):
        # Try the longest candidate first, then one character shorter, ...
        end = len(word) if longest_piece is None else min(len(word), start + longest_piece)
        piece = None
        while end > start:
            candidate = word[start:end]
            if start > 0:
                candidate = CONTINUATION_PREFIX + candidate
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            # Nothing in the vocabulary matches here: the whole word is
            # unknown, even the pieces already found (as in the reference).
            return None
        pieces.append((piece, start, end))
        start = end
    return pieces
