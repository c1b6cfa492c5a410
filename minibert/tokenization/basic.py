"""Basic tokenization: raw text -> words and punctuation, before WordPiece.

This is the first half of BERT's tokenizer (google-research/bert
`tokenization.py`, class `BasicTokenizer`; Hugging Face's is the same with two
additions, marked below). Step by step, on one string:

    >>> bt = BasicTokenizer(do_lower_case=True, never_split=["[MASK]"])
    >>> bt.tokenize("Héllo,\\tWORLD! 中文 [MASK]")
    ['hello', ',', 'world', '!', '中', '文', '[MASK]']

1. `clean_text`: delete NUL, U+FFFD and every control/format character;
   turn tab, newline, CR and every Unicode space into " ".
2. `space_out_cjk`: put spaces around each CJK ideograph, so that each one is
   a word of its own (Chinese is written without spaces between words).
3. NFC-normalize the text (Hugging Face addition, see `BasicTokenizer.tokenize`).
4. Split on whitespace into words.
5. Per word (`BasicTokenizer.split_word`): leave the special tokens alone;
   otherwise lower-case and strip accents (uncased models only), then cut
   every punctuation character out as a token of its own.

`BertTokenizer` runs the same steps, with steps 1-2 fused into one
`str.translate` call (`CleanTable` below) and step 5 cached per word.
"""
from __future__ import annotations

import unicodedata

from minibert.tokenization.chars import is_cjk_ideograph, is_control, is_punctuation, is_whitespace

__all__ = [
    "clean_text", "space_out_cjk", "strip_accents", "split_on_punctuation",
    "punctuation_spans", "CleanTable", "BasicTokenizer",
]


def clean_text(text: str) -> str:
    """Delete invalid and control characters; map all whitespace to " ".

        >>> clean_text("a\\x00b\\tc\\u200bd\\ufffde")
        'ab cde'
    """
    output = []
    for char in text:
        # The reference deletes NUL and U+FFFD (the "replacement character"
        # that a failed decoding leaves behind) explicitly, then every
        # control/format character (see chars.is_control).
        if char == "\x00" or char == "\ufffd" or is_control(char):
            continue
        output.append(" " if is_whitespace(char) else char)
    return "".join(output)


def space_out_cjk(text: str) -> str:
    """Put a space on each side of every CJK ideograph.

        >>> space_out_cjk("BERT中文ok")
        'BERT 中  文 ok'
    """
    output = []
    for char in text:
        if is_cjk_ideograph(char):
            output.append(" " + char + " ")
        else:
            output.append(char)
    return "".join(output)


def strip_accents(text: str) -> str:
    """Remove accents: decompose (NFD) then drop the non-spacing marks ("Mn").

    NFD writes "é" as "e" + U+0301 (COMBINING ACUTE ACCENT); the mark is in
    category Mn and is dropped. Letters with no decomposition, such as "ø",
    "ß" or "æ", are kept as they are.

        >>> strip_accents("café naïve Ångström ø")
        'cafe naive Angstrom ø'
    """
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


def punctuation_spans(word: str) -> list[tuple[int, int]]:
    """(start, end) of each piece of `word` after cutting out punctuation.

    Each punctuation character is a piece of its own; the runs of other
    characters between them are pieces too.

        >>> punctuation_spans("don't!")
        [(0, 3), (3, 4), (4, 5), (5, 6)]
    """
    spans = []
    start = None  # start of the current run of non-punctuation characters
    for i, char in enumerate(word):
        if is_punctuation(char):
            if start is not None:
                spans.append((start, i))
                start = None
            spans.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(word)))
    return spans


def split_on_punctuation(word: str) -> list[str]:
    """Cut every punctuation character out of `word` as a token of its own.

        >>> split_on_punctuation("don't!")
        ['don', "'", 't', '!']
        >>> split_on_punctuation("e-mail...")
        ['e', '-', 'mail', '.', '.', '.']
    """
    return [word[start:end] for start, end in punctuation_spans(word)]


class CleanTable(dict):
    """A `str.translate` table that does `clean_text` and `space_out_cjk` at once.

    Fast path for `BertTokenizer`: `text.translate(table)` runs in C, one
    table look-up per character, instead of two Python loops. The table fills
    itself lazily: the first time a code point is seen, `__missing__` asks the
    readable functions above what to do with it and remembers the answer.

        >>> table = CleanTable(tokenize_chinese_chars=True)
        >>> "a\\x00b\\tc中".translate(table) == space_out_cjk(clean_text("a\\x00b\\tc中"))
        True
    """

    def __init__(self, tokenize_chinese_chars: bool = True):
        super().__init__()
        self.tokenize_chinese_chars = tokenize_chinese_chars

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        replacement = clean_text(char)  # "" (deleted), " " (whitespace) or char
        if self.tokenize_chinese_chars:
            replacement = space_out_cjk(replacement)
        self[code_point] = replacement
        return replacement


class BasicTokenizer:
    """Text -> list of words and punctuation marks (no WordPiece yet).

    Args:
        do_lower_case: lower-case every word (uncased models). Cased models
            keep case *and* accents.
        never_split: tokens passed through untouched (the special tokens).
        tokenize_chinese_chars: put spaces around CJK ideographs.
        strip_accents: None (the default) strips accents exactly when
            lower-casing, as in the original BERT; True or False forces it
            (a Hugging Face option).

        >>> BasicTokenizer(do_lower_case=False, never_split=["[CLS]"]).tokenize("Héllo, [CLS] World!")
        ['Héllo', ',', '[CLS]', 'World', '!']
    """

    def __init__(self, do_lower_case: bool = True, never_split=(),
                 tokenize_chinese_chars: bool = True, strip_accents: bool | None = None):
        self.do_lower_case = do_lower_case
        self.never_split = frozenset(never_split)
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents

    def tokenize(self, text: str) -> list[str]:
        """The readable path: every step of the reference, one after the other."""
        text = clean_text(text)
        if self.tokenize_chinese_chars:
            text = space_out_cjk(text)
        # Hugging Face addition: NFC ("composed") normalization, so that "é"
        # typed as one code point or as "e" + U+0301 gives the same tokens.
        # Google's code does not do this, nor does HF's Rust tokenizer (a
        # known difference between HF's two tokenizers; it only shows in
        # cased mode, since uncased mode decomposes again to strip accents).
        text = unicodedata.normalize("NFC", text)
        tokens = []
        for word in text.split():  # str.split() splits on any Unicode whitespace
            tokens.extend(self.split_word(word))
        return tokens

    def normalize(self, word: str) -> str:
        """Lower-case and/or strip accents, as configured.

            >>> BasicTokenizer().normalize("Ärger")
            'arger'
        """
        if self.do_lower_case:
            # Python's str.lower() is context-aware: a Greek capital sigma at
            # the end of a word becomes "ς", elsewhere "σ". The Python
            # reference does the same; HF's Rust tokenizer lowers character by
            # character and always gives "σ" (a known disagreement).
            word = word.lower()
        if self.strip_accents:
            word = strip_accents(word)
        return word

    def split_word(self, word: str) -> list[str]:
        """One whitespace-separated word -> its basic tokens.

            >>> BasicTokenizer().split_word("Don't!")
            ['don', "'", 't', '!']
        """
        return [text[start:end] for text, start, end in self._pieces(word)]

    def split_word_with_spans(self, word: str) -> tuple[list[str], list[tuple[int, int]]]:
        """Like `split_word`, also giving each piece's (start, end) in `word`.

        `word` is the word as it appears in the cleaned text, *before* NFC,
        lower-casing and accent stripping; the spans point into it, so that
        character offsets into the original text can be given for every token
        (what question answering needs).

            >>> BasicTokenizer().split_word_with_spans("Café!")
            (['cafe', '!'], [(0, 4), (4, 5)])
        """
        normalized, alignment, pieces = self.split_word_aligned(word)
        tokens = [normalized[start:end] for start, end in pieces]
        spans = [(alignment[start][0], alignment[end - 1][1]) for start, end in pieces]
        return tokens, spans

    # -- internals -------------------------------------------------------

    def _nfc(self, word: str) -> str:
        # ASCII is already in NFC: skip the call (a pure speed-up).
        return word if word.isascii() else unicodedata.normalize("NFC", word)

    def _pieces(self, word: str):
        """(normalized word, start, end) for each piece, spans in the normalized word."""
        word = self._nfc(word)
        if word in self.never_split:
            # Special tokens such as "[MASK]" are neither lower-cased nor split
            # (Hugging Face; Google's tokenizer has no such list).
            return [(word, 0, len(word))]
        normalized = self.normalize(word)
        return [(normalized, start, end) for start, end in punctuation_spans(normalized)]

    def split_word_aligned(self, word: str):
        """(normalized word, span in `word` of each of its characters, pieces' spans in it).

        What `BertTokenizer` builds on: the pieces are cut from the normalized
        word, and the alignment maps any of its characters back to `word`.

            >>> BasicTokenizer().split_word_aligned("Éa!")
            ('ea!', [(0, 1), (1, 2), (2, 3)], [(0, 2), (2, 3)])
        """
        nfc = self._nfc(word)
        if nfc in self.never_split:
            return nfc, [(0, len(word))] * len(nfc), [(0, len(nfc))]
        normalized = self.normalize(nfc)
        return normalized, self._align(word, normalized), punctuation_spans(normalized)

    def _align(self, word: str, normalized: str) -> list[tuple[int, int]]:
        """For each character of `normalized`, the (start, end) it came from in `word`.

        Normalizing one character at a time keeps track of where every output
        character came from (this is how HF's Rust tokenizer computes its
        offsets): "İ" lowers to "i" + U+0307 and both come from that one
        character; a dropped accent simply has no output character. When the
        whole-word result differs from the character-by-character one (a word
        NFC changed, or a final sigma), characters are matched one to one if
        the lengths agree, else every character gets the whole word's span.
        """
        if word == normalized:
            return [(i, i + 1) for i in range(len(word))]
        built, alignment = [], []
        for i, char in enumerate(word):
            out = self.normalize(char)
            built.append(out)
            alignment.extend([(i, i + 1)] * len(out))
        if "".join(built) == normalized or len(alignment) == len(normalized):
            return alignment
        return [(0, len(word))] * len(normalized)
