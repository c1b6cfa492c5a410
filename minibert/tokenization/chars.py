"""Character classes used by BERT's basic tokenizer.

BERT decides what to do with every character from its Unicode category
(`unicodedata.category`, a two-letter code such as "Lu" = upper-case letter,
"Mn" = non-spacing mark, "Po" = other punctuation, "Cc" = control).
These four predicates are the whole of that logic:

    >>> is_whitespace("\\t"), is_control("\\x00"), is_punctuation("$"), is_cjk_ideograph("中")
    (True, True, True, True)

They read Python's own Unicode database, the one Hugging Face's pure-Python
`BertTokenizerLegacy` reads too; the Rust-backed `BertTokenizer` carries its
own tables, of a different Unicode version, so on a handful of rare
characters the two references disagree (see docs/tokenization.md).
"""
from __future__ import annotations

import unicodedata

__all__ = ["is_whitespace", "is_control", "is_punctuation", "is_cjk_ideograph", "CJK_RANGES"]

# The eight blocks of CJK ideographs BERT puts spaces around (inclusive code
# point ranges). Hangul, Hiragana and Katakana are *not* here: those scripts
# separate words with spaces, so BERT treats them like any other letters.
CJK_RANGES = (
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0x3400, 0x4DBF),    # Extension A
    (0x20000, 0x2A6DF),  # Extension B
    (0x2A700, 0x2B73F),  # Extension C
    (0x2B740, 0x2B81F),  # Extension D
    (0x2B820, 0x2CEAF),  # Extension E
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0x2F800, 0x2FA1F),  # CJK Compatibility Ideographs Supplement
)


def is_whitespace(char: str) -> bool:
    """True for space, tab, newline, carriage return and every "Zs" space.

    Tab, newline and CR are control characters to Unicode ("Cc"), but the
    reference counts them as whitespace, so they become spaces, not deleted.

        >>> is_whitespace(" "), is_whitespace("\\u00a0"), is_whitespace("x")
        (True, True, False)
    """
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """True for characters the cleaning step deletes: every category "C*".

    That is Cc (controls), Cf (format: zero-width space, soft hyphen, ...),
    Co (private use), Cs (surrogates) and Cn (unassigned code points).
    Tab, newline and CR are excluded: they are whitespace (see above).

    Deviation noted: Google's `tokenization.py` deletes only Cc and Cf;
    Hugging Face (both of its tokenizers) deletes every C* category, and we
    follow Hugging Face, which is what our parity tests compare against.

        >>> is_control("\\x07"), is_control("\\u200b"), is_control("\\n")
        (True, True, False)
    """
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """True for characters that always become a token of their own.

    Every Unicode punctuation category (P*: Pc, Pd, Pe, Pf, Pi, Po, Ps), plus
    all non-letter, non-digit printable ASCII (33-47, 58-64, 91-96, 123-126).
    The reference adds the ASCII ranges on purpose: "$", "+", "<", "^", "`",
    "|", "~" are Unicode *symbols* (S*), not punctuation, yet BERT splits them
    off like punctuation. Non-ASCII symbols such as "£" or "©" stay attached.

        >>> [c for c in "a,b$c£d" if is_punctuation(c)]
        [',', '$']
    """
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk_ideograph(char: str) -> bool:
    """True for a Chinese/Japanese/Korean ideograph (the ranges in CJK_RANGES).

        >>> is_cjk_ideograph("字"), is_cjk_ideograph("あ"), is_cjk_ideograph("한")
        (True, False, False)
    """
    cp = ord(char)
    return any(low <= cp <= high for low, high in CJK_RANGES)
