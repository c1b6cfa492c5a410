"""Reading and writing `vocab.txt`: one token per line, id = line number - 1.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
    >>> save_vocab(["[PAD]", "[UNK]", "hello", "##s"], path)
    >>> load_vocab(path)
    ['[PAD]', '[UNK]', 'hello', '##s']

Every problem with the file is reported with a message that names it: a
missing or empty file, bytes that are not UTF-8, an empty line, a token that
appears twice (with both line numbers), missing special tokens.
"""
from __future__ import annotations

import os
from pathlib import Path

from minibert.errors import InputError
from minibert.files import write_text

__all__ = ["VOCAB_FILE", "VocabularyError", "load_vocab", "save_vocab", "check_special_tokens",
           "resolve_vocab_file"]

VOCAB_FILE = "vocab.txt"


class VocabularyError(InputError):
    """A vocab.txt (or tokenizer_config.json) that cannot be a BERT vocabulary; the message names the file."""


def resolve_vocab_file(path) -> Path:
    """`path` itself if it is a file, `path/vocab.txt` if it is a folder.

    Raises FileNotFoundError, naming what was looked for, if there is none.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / VOCAB_FILE
        if not candidate.is_file():
            raise FileNotFoundError(f"no {VOCAB_FILE} in the folder {path}")
        return candidate
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    return path


def load_vocab(path) -> list[str]:
    """The tokens of a vocab.txt, in order (token i has id i).

    As in Hugging Face, a line is the token exactly, without its line ending
    ("\\n", "\\r\\n" or "\\r"); Google's code also strips spaces at both ends,
    which makes no difference for any real BERT vocabulary. Unlike both
    references, which silently keep one of two duplicate lines (Google the
    first, Hugging Face the last, so the ids differ), a duplicate is an error
    here, and so is an empty line.
    """
    path = resolve_vocab_file(path)
    try:
        with open(path, encoding="utf-8") as f:  # text mode: \r\n and \r become \n
            text = f.read()
    except UnicodeDecodeError as error:
        raise VocabularyError(
            f"vocabulary file {path} is not valid UTF-8 (byte {error.start}: {error.reason})"
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start a new token
    if not lines:
        raise VocabularyError(f"vocabulary file {path} is empty")
    first_line_of = {}
    for line_number, token in enumerate(lines, start=1):
        if token == "":
            raise VocabularyError(f"vocabulary file {path}: line {line_number} is empty")
        if token in first_line_of:
            raise VocabularyError(
                f"vocabulary file {path}: duplicate token {token!r} "
                f"on lines {first_line_of[token]} and {line_number}"
            )
        first_line_of[token] = line_number
    return lines


def check_special_tokens(tokens, special_tokens, where: str = "the vocabulary") -> None:
    """Raise VocabularyError (a ValueError) naming every special token missing from `tokens`."""
    present = set(tokens)
    missing = [t for t in special_tokens if t not in present]
    if missing:
        raise VocabularyError(
            f"{where} lacks the special token(s) {', '.join(missing)}; BERT needs all of "
            f"{', '.join(special_tokens)} (add them as lines of the vocab.txt, usually first)"
        )


def save_vocab(tokens, path) -> None:
    """Write `tokens` one per line (UTF-8, "\\n" line endings)."""
    tokens = list(tokens)
    seen = set()
    for token in tokens:
        if token == "" or any(c in token for c in "\n\r"):
            raise ValueError(f"cannot save the token {token!r}: tokens must be non-empty single lines")
        if token in seen:
            raise ValueError(f"cannot save a vocabulary with the duplicate token {token!r}")
        seen.add(token)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, "".join(token + "\n" for token in tokens))          # atomic: never half a vocabulary
