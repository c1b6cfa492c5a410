"""Reading task files line by line, robustly, with errors that name the file and the line.

The traps this handles (docs/tasks.md lists where each was met):
- a UTF-8 byte order mark at the start of the file (Excel and Notepad write one):
  dropped, so the first column name is not "\\ufeffindex";
- CRLF line endings: the "\\r" is dropped, so the last column is not "label\\r";
- `str.splitlines()` is *not* used: it also breaks lines at \\x0b, \\x0c, \\x1c-\\x1e,
  \\x85, U+2028 and U+2029, characters that may sit inside a sentence. Lines end
  at "\\n" only, as in csv and in the GLUE and CoNLL tools;
- bytes that are not UTF-8: an error naming the file and the line.
"""
from __future__ import annotations

from pathlib import Path

from minibert.errors import InputError

__all__ = ["DataFormatError", "EmptyFileError", "read_lines"]


class DataFormatError(InputError):
    """A task file does not have the expected layout; the message names the file and line."""


class EmptyFileError(DataFormatError):
    """A task file has no examples in it."""


def read_lines(path, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file, without BOM, line ends or a final empty line.

    Line k of the file (1-based, as editors count) is `lines[k - 1]`.
    Raises FileNotFoundError for a missing file, EmptyFileError for a file of
    0 bytes, DataFormatError for bytes that are not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataFormatError(f"{path}, line {line}: not UTF-8 ({error.reason} at byte "
                              f"{error.start}); save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise EmptyFileError(f"{what} {path} is empty")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()   # the file's final newline
    return [line[:-1] if line.endswith("\r") else line for line in lines]
