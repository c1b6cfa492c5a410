"""A small, rule-based sentence splitter for the pretraining readers.

BERT's next-sentence task needs a corpus cut into sentences: google-research/bert
reads one sentence per line and leaves the splitting to the user (the paper's
Wikipedia and BooksCorpus were split beforehand). minibert's readers do it with
the rules below, which are simple enough to read in a minute and good enough
for 19th-century novels and Wikipedia prose. They are not a linguist's splitter
(no statistics, no language model); the errors they make are listed at the end.

The text is cut on whitespace into words, and a sentence ends after a word when

1. the word, once trailing closing quotes, brackets and `_` are removed, ends
   with `.`, `!` or `?` (so `end.`, `end."`, `end?”`, `end.)`, `end...` all count;
   a lone `.`, as in WikiText's `in 2009 . The`, counts too);
2. and, for a `.`, the word is not a known abbreviation (`Mr.`, `Mrs.`, `Dr.`,
   `St.`, `e.g.`, ... see ABBREVIATIONS), not a single capital initial other
   than `I` (`H. G. Wells`, but `said I. Then` ends a sentence), and not a
   dotted acronym (`U.S.`, `i.e.`);
3. and the next word, after its opening quotes and brackets, starts with an
   upper-case letter or a digit (so `"Is it?" said he.` stays one sentence).

Known mistakes: a question followed by a capitalised name (`"Why?" Holmes
asked.`) is split in two; an abbreviation that really ends a sentence (`... and
so on, etc. Then`) is not; a sentence that starts with a lower-case word is
joined to the one before.
"""
from __future__ import annotations

__all__ = ["ABBREVIATIONS", "split_sentences"]

# Lower-cased, without their final period. A word ending in one of these
# followed by "." does not end a sentence.
ABBREVIATIONS = frozenset("""
    mr mrs ms messrs mme mlle dr prof rev revd hon st mt ft capt col gen lt maj sgt
    cpl adm gov sen rep jr sr esq bros co inc ltd corp no nos vol vols pp ch chap
    fig figs vs etc viz cf al ca approx dept est jan feb mar apr jun jul aug sep sept
    oct nov dec e.g i.e a.m p.m
""".split())

_CLOSERS = "\"'”’)]}»_"            # stripped from the end of a word before looking for . ! ?
_OPENERS = "\"'“‘([{«_"            # stripped from the start of the next word
_TERMINALS = (".", "!", "?", "…")


def _ends_sentence(word: str, next_word: str) -> bool:
    """Does a sentence end between `word` and `next_word`? (rules 1-3 above)"""
    core = word.rstrip(_CLOSERS)
    if not core.endswith(_TERMINALS):
        return False                                    # rule 1
    if core.endswith(".") and not core.endswith(".."):
        stem = core[:-1].lstrip(_OPENERS)
        if stem.lower() in ABBREVIATIONS:
            return False                                # rule 2: Mr. Dr. etc.
        if len(stem) == 1 and stem.isupper() and stem != "I":
            return False                                # rule 2: an initial, H. G. Wells
        if "." in stem and all(len(part) <= 2 for part in stem.split(".")):
            return False                                # rule 2: U.S. e.g. i.e.
    start = next_word.lstrip(_OPENERS)
    if not start:
        return True                                     # the next word is only quotes: "
    return start[0].isupper() or start[0].isdigit()     # rule 3


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences; whitespace inside each is collapsed to one space.

        >>> split_sentences('Mr. Holmes sat down. "Is it?" said he. It was.')
        ['Mr. Holmes sat down.', '"Is it?" said he.', 'It was.']
    """
    words = text.split()
    sentences: list[str] = []
    start = 0
    for i in range(len(words) - 1):
        if _ends_sentence(words[i], words[i + 1]):
            sentences.append(" ".join(words[start:i + 1]))
            start = i + 1
    if start < len(words):
        sentences.append(" ".join(words[start:]))
    return sentences
