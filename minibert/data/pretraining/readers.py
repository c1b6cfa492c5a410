"""Corpus readers: a text file or a folder of books -> documents of sentences.

Every reader returns the same thing, the input google-research/bert's
`create_pretraining_data.py` works on:

    documents: list[list[str]]      # documents[d][s] = sentence s of document d (raw text)

Document boundaries matter: next-sentence prediction takes "actual next"
segments only from inside a document, and "random next" ones from another.

Readers:
    read_plain_text(path)            a blank line between documents; sentences are
                                     split by minibert (sentences.py), or, with
                                     sentence_per_line=True, one per line exactly as
                                     Google's script expects its input
    read_wikitext(path)              WikiText "raw" files: a ` = Title = ` line starts
                                     an article; ` @-@ ` etc. are turned back into text
    read_gutenberg(folder)           the Project Gutenberg books of ../shared/data/gutenberg,
                                     one document per chapter (rules of its README)
    read_gutenberg_book(path, ...)   one book, given its start line and heading regex
    read_corpus(path, format="auto") any of the above, picked from the path

Errors: a missing path raises FileNotFoundError naming it; a corpus with no
text raises EmptyCorpusError (a ValueError) naming it.
"""
from __future__ import annotations

import re
from pathlib import Path

from minibert.data.pretraining.sentences import split_sentences
from minibert.errors import InputError

__all__ = [
    "EmptyCorpusError", "GUTENBERG_BOOKS", "GUTENBERG_HELD_OUT", "read_corpus",
    "read_gutenberg", "read_gutenberg_book", "read_plain_text", "read_wikitext",
]


class EmptyCorpusError(InputError):
    """The corpus exists but holds no usable text."""


def _check_path(path, kind: str = "file") -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus not found: {path} (no such {kind})")
    if kind == "file" and not path.is_file():
        raise FileNotFoundError(f"corpus {path} is not a file")
    if kind == "folder" and not path.is_dir():
        raise FileNotFoundError(f"corpus {path} is not a folder")
    return path


def _check_not_empty(documents: list[list[str]], path) -> list[list[str]]:
    if not documents:
        raise EmptyCorpusError(f"corpus {path} is empty: no document with any text in it")
    return documents


def _paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs (blank lines separate paragraphs)."""
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _sentences_of(lines: list[str]) -> list[str]:
    """Lines of one document -> its sentences; a paragraph end always ends a sentence."""
    return [s for paragraph in _paragraphs(lines) for s in split_sentences(paragraph)]


# -- plain text ---------------------------------------------------------------

def read_plain_text(path, *, sentence_per_line: bool = False) -> list[list[str]]:
    """A UTF-8 text file with a blank line (or several) between documents.

    sentence_per_line=False (default): the lines of a document are joined
        (hard-wrapped text is fine) and split into sentences by minibert.
    sentence_per_line=True: each non-blank line is one sentence, as is,
        google-research/bert's own input format. Lines are stripped and a
        whitespace-only line counts as blank, as in Google's reader.
    """
    path = _check_path(path)
    documents, block = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                block.append(line)
                continue
            if block:
                documents.append(block)
                block = []
    if block:
        documents.append(block)
    if sentence_per_line:
        documents = [[line.strip() for line in block] for block in documents]
    else:
        documents = [_sentences_of(block) for block in documents]
    return _check_not_empty([d for d in documents if d], path)


# -- WikiText -----------------------------------------------------------------

# WikiText's raw files are tokenized Moses-style; these marks undo the splits
# inside numbers and hyphenated words ("state @-@ of @-@ the @-@ art", "1 @,@ 000").
WIKITEXT_MARKS = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}
_WIKI_TITLE = re.compile(r"^ = (?!=)(.*) = $")        # " = Robert Boulter = "
_WIKI_HEADING = re.compile(r"^ (= )+.*( =)+ $")       # " = = Career = = " (and the titles)


def _between_blank_lines(lines: list[str], i: int) -> bool:
    def blank(j):
        return j < 0 or j >= len(lines) or not lines[j].strip()
    return blank(i - 1) and blank(i + 1)


def _is_wiki_title(lines: list[str], i: int) -> bool:
    """Line i is ` = Title = ` with a blank line (or the file's edge) on each side.

    The blank lines matter: a paragraph line can look like a title or a heading
    (` = 1 henry and capacitance C = ` in the test split, part of a formula).
    """
    return bool(_WIKI_TITLE.match(lines[i])) and _between_blank_lines(lines, i)


def _is_wiki_heading(lines: list[str], i: int) -> bool:
    """Line i is a title or a ` = = Section = = ` heading, between blank lines."""
    return bool(_WIKI_HEADING.match(lines[i])) and _between_blank_lines(lines, i)


def read_wikitext(path) -> list[list[str]]:
    """A WikiText file (raw or tokenized) -> one document per article.

    A line ` = Title = ` (one `=` on each side, a blank line above and
    below) starts an article. Titles and section headings (` = = Section = = `,
    also between blank lines) are dropped, as the BERT paper did
    for Wikipedia ("we extract only the text passages and ignore lists,
    tables, and headers"). Each remaining line is a paragraph: its ` @-@ `,
    ` @,@ ` and ` @.@ ` marks are undone and it is split into sentences.
    `<unk>` (in the *.tokens.txt files, where it replaced every rare word) is
    left as written: it is text, and the pipeline reads it as "<", "un", "##k",
    ">", as Google's and Hugging Face's scripts do on these files. (Writing
    "[UNK]" instead would not give the [UNK] token either: corpus text is
    tokenized with split_special_tokens on, instances.py says why.) Text
    before the first title, if any, is a document of its own.
    """
    path = _check_path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    articles: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        if _is_wiki_title(lines, i):
            articles.append([])
            continue
        if not line.strip() or _is_wiki_heading(lines, i):
            continue
        for mark, text in WIKITEXT_MARKS.items():
            line = line.replace(mark, text)
        articles[-1].extend(split_sentences(line))
    return _check_not_empty([a for a in articles if a], path)


# -- Project Gutenberg books --------------------------------------------------

# From ../shared/data/gutenberg/README.md, "Documents (one per chapter)":
# file name -> (1-based line where the first document starts, regex of a line
# that starts a new document). The leading spaces in two patterns are deliberate.
GUTENBERG_BOOKS = {
    "austen-emma.txt": (8, r"^(VOLUME|CHAPTER) [IVXL]+$"),
    "austen-pride_and_prejudice.txt": (7, r"^Chapter \d+$"),
    "austen-sense_and_sensibility.txt": (10, r"^CHAPTER \d+$"),
    "bronte_c-jane_eyre.txt": (31, r"^(PREFACE|NOTE TO THE THIRD EDITION|CHAPTER [IVXL]+(--CONCLUSION)?)$"),
    "bronte_e-wuthering_heights.txt": (4, r"^CHAPTER [IVXL]+$"),
    "carroll-alice_in_wonderland.txt": (10, r"^CHAPTER [IVXL]+\. "),
    "carroll-through_the_looking_glass.txt": (11, r"^CHAPTER [IVXL]+\. "),
    "conrad-heart_of_darkness.txt": (8, r"^[IVX]+$"),
    "dickens-great_expectations.txt": (12, r"^Chapter [IVXL]+$"),
    "dickens-tale_of_two_cities.txt": (71, r"^(Book the |[IVXL]+\. [A-Z])"),
    "doyle-adventures_of_sherlock_holmes.txt": (25, r"^(ADVENTURE [IVXL]+\. |[IVXL]+\. THE ADVENTURE OF )"),
    "doyle-hound_of_the_baskervilles.txt": (8, r"^Chapter \d+\. "),
    "melville-moby_dick.txt": (298, r"^(CHAPTER \d+\. |Epilogue$|  ETYMOLOGY\.$|EXTRACTS\.$)"),
    "shelley-frankenstein.txt": (84, r"^(Letter|Chapter) \d+$"),
    "stevenson-jekyll_and_hyde.txt": (8, r"^(STORY OF THE DOOR|SEARCH FOR MR\. HYDE|DR\. JEKYLL WAS QUITE AT EASE"
                                         r"|THE CAREW MURDER CASE|INCIDENT OF THE LETTER|INCIDENT OF DR\. LANYON"
                                         r"|INCIDENT AT THE WINDOW|THE LAST NIGHT|DR\. LANYON’S NARRATIVE"
                                         r"|HENRY JEKYLL’S FULL STATEMENT OF THE CASE)$"),
    "stevenson-treasure_island.txt": (111, r"^(\d+|PART [A-Z]+--.*)$"),
    "stoker-dracula.txt": (161, r"^CHAPTER [IVXL]+$"),
    "twain-huckleberry_finn.txt": (490, r"^(EXPLANATORY|CHAPTER [IVXL]+\.|CHAPTER THE LAST)$"),
    "twain-tom_sawyer.txt": (431, r"^(PREFACE|CHAPTER [IVXL]+|CONCLUSION)$"),
    "wells-time_machine.txt": (37, r"^ ([IVX]+|Epilogue)$"),
    "wells-war_of_the_worlds.txt": (50, r"^([IVX]+\.|BOOK (ONE|TWO))$"),
    "wilde-dorian_gray.txt": (10, r"^(THE PREFACE|CHAPTER \d+)$"),
}
# The README's suggested held-out pair (27 documents, 2.7% of the words).
GUTENBERG_HELD_OUT = ("stevenson-jekyll_and_hyde.txt", "wells-time_machine.txt")
MIN_CHAPTER_WORDS = 20      # a shorter piece (a bare part title) joins the next one


def split_chapters(lines: list[str], start_line: int, heading: str,
                   min_words: int = MIN_CHAPTER_WORDS) -> list[list[str]]:
    """A book's lines -> chapters (lists of lines), by the README's three rules.

    1. drop the lines before `start_line` (1-based): title page, contents;
    2. a line matching `heading` (re.match, without its newline) starts a new
       chapter and stays in it;
    3. a piece with fewer than `min_words` words is merged into the next piece.
    """
    pattern = re.compile(heading)
    pieces: list[list[str]] = [[]]
    for line in lines[start_line - 1:]:
        if pattern.match(line) and any(l.strip() for l in pieces[-1]):
            pieces.append([])
        pieces[-1].append(line)
    chapters: list[list[str]] = []
    carry: list[str] = []
    for piece in pieces:
        piece = carry + piece
        if sum(len(l.split()) for l in piece) < min_words:
            carry = piece
        else:
            chapters.append(piece)
            carry = []
    if carry and any(l.strip() for l in carry):
        if chapters:
            chapters[-1].extend(carry)      # a short last piece has no "next": it joins the one before
        else:
            chapters.append(carry)
    return chapters


def read_gutenberg_book(path, start_line: int, heading: str, *,
                        strip_underscores: bool = True) -> list[list[str]]:
    """One book -> one document per chapter, each a list of sentences.

    Hard-wrapped lines are joined into paragraphs and each paragraph split into
    sentences; the heading line is a sentence of its chapter. With
    strip_underscores (default) the `_italic_` markers are removed: they are
    typography, not words (minibert's choice; the README keeps them in the files).
    """
    path = _check_path(path)
    text = path.read_text(encoding="utf-8")
    if strip_underscores:
        text = text.replace("_", "")
    chapters = split_chapters(text.split("\n"), start_line, heading)
    return _check_not_empty([d for d in (_sentences_of(c) for c in chapters) if d], path)


def read_gutenberg(folder, books=None, *, exclude=(), strip_underscores: bool = True) -> list[list[str]]:
    """The Gutenberg books in `folder` -> one document per chapter, books in name order.

    books: file names to read (default: every file of GUTENBERG_BOOKS present
        in the folder). exclude: file names to leave out, e.g. GUTENBERG_HELD_OUT.
    All 22 books give 780 documents, as the README counts.
    """
    folder = _check_path(folder, "folder")
    if books is None:
        books = [name for name in sorted(GUTENBERG_BOOKS) if (folder / name).is_file()]
        if not books:
            raise EmptyCorpusError(
                f"corpus {folder} holds none of the Gutenberg books minibert knows how to split "
                f"({len(GUTENBERG_BOOKS)} names in minibert.data.pretraining.readers.GUTENBERG_BOOKS)")
    unknown = [name for name in books if name not in GUTENBERG_BOOKS]
    if unknown:
        raise ValueError(f"no chapter rule for {', '.join(unknown)}; known books: "
                         f"{', '.join(sorted(GUTENBERG_BOOKS))} (or use read_gutenberg_book)")
    documents = []
    for name in books:
        if name in exclude:
            continue
        start, heading = GUTENBERG_BOOKS[name]
        documents.extend(read_gutenberg_book(folder / name, start, heading,
                                             strip_underscores=strip_underscores))
    return _check_not_empty(documents, folder)


# -- any of the above ---------------------------------------------------------

FORMATS = ("auto", "plain", "lines", "wikitext", "gutenberg")


def read_corpus(path, format: str = "auto") -> list[list[str]]:
    """Read a corpus, picking the reader from `format` or, with "auto", from the path.

    "plain": read_plain_text; "lines": read_plain_text(sentence_per_line=True)
    (Google's format); "wikitext": read_wikitext; "gutenberg": read_gutenberg
    (a folder). "auto": a folder is Gutenberg books; a file whose name contains
    "wiki" or whose first non-blank line is a ` = Title = ` line is WikiText;
    anything else is plain text.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown corpus format {format!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus not found: {path}")
    if format == "auto":
        if path.is_dir():
            format = "gutenberg"
        elif "wiki" in path.name.lower() or _first_line_is_wiki_title(path):
            format = "wikitext"
        else:
            format = "plain"
    if format == "gutenberg":
        return read_gutenberg(path)
    if format == "wikitext":
        return read_wikitext(path)
    return read_plain_text(path, sentence_per_line=(format == "lines"))


def _first_line_is_wiki_title(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                return bool(_WIKI_TITLE.match(line.rstrip("\n")))
    return False
