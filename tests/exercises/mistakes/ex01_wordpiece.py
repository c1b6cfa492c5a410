"""Learner mistakes in exercise 01 (wordpiece), and correct forms written differently."""
from mistakes import Mistake

E = "wordpiece"

REFERENCE = '''
    def greedy_longest_match(word, vocab, max_input_chars_per_word=100, longest_piece=None):
        if len(word) > max_input_chars_per_word:
            return None
        pieces, start = [], 0
        while start < len(word):
            end = len(word) if longest_piece is None else min(len(word), start + longest_piece)
            piece = None
            while end > start:
                candidate = word[start:end]
                if start > 0:
                    candidate = "##" + candidate
                if candidate in vocab:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return None
            pieces.append((piece, start, end))
            start = end
        return pieces
    '''


def _variant(*pairs):
    text = REFERENCE
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert old in text, old
        text = text.replace(old, new)
    return text


MISTAKES = [
    Mistake(E, "the shortest match first", '''
        def greedy_longest_match(word, vocab, max_input_chars_per_word=100, longest_piece=None):
            if len(word) > max_input_chars_per_word:
                return None
            pieces, start = [], 0
            while start < len(word):
                piece = None
                for end in range(start + 1, len(word) + 1):
                    candidate = ("##" if start > 0 else "") + word[start:end]
                    if candidate in vocab:
                        piece = candidate
                        break
                if piece is None:
                    return None
                pieces.append((piece, start, end))
                start = end
            return pieces
        ''', diagnosis=r"you take the shortest match"),
    Mistake(E, "no ## on continuations", _variant('candidate = "##" + candidate', "pass"),
            diagnosis=r"continuation pieces .* are looked up with the \"##\" prefix"),
    Mistake(E, "## on the first piece too", _variant("if start > 0:", "if True:"),
            diagnosis=r"only continuations get \"##\""),
    Mistake(E, "the pieces found so far plus [UNK]", _variant(
        "            if piece is None:\n                return None",
        '            if piece is None:\n                return pieces + [("[UNK]", start, len(word))]'),
            diagnosis=r"the \*whole\* word is unknown"),
    Mistake(E, "an unmatched character skipped", _variant(
        "            if piece is None:\n                return None",
        "            if piece is None:\n                start += 1\n                continue"),
            diagnosis=r"do not skip the character"),
    Mistake(E, "no length limit", _variant("        if len(word) > max_input_chars_per_word:\n            return None\n", ""),
            diagnosis=r"longer than max_input_chars_per_word is unknown at once"),
    Mistake(E, "the length limit off by one", _variant("len(word) > max_input_chars_per_word", "len(word) >= max_input_chars_per_word"),
            diagnosis=r"exactly max_input_chars_per_word characters is still split"),
    Mistake(E, "an empty list for an unknown word", _variant(
        "            if piece is None:\n                return None", "            if piece is None:\n                return []"),
            diagnosis=r"an unknown word is None, not an empty list"),
    Mistake(E, "[UNK] returned for an unknown word", _variant(
        "            if piece is None:\n                return None",
        '            if piece is None:\n                return [("[UNK]", 0, len(word))]'),
            diagnosis=r"the caller \(the tokenizer\) writes \[UNK\]"),
    Mistake(E, "spans that count the ##", _variant("pieces.append((piece, start, end))",
                                                   "pieces.append((piece, start, start + len(piece)))"),
            diagnosis=r"the pieces are right but the \(start, end\) spans are not"),
    Mistake(E, "pieces without their spans", _variant("pieces.append((piece, start, end))", "pieces.append(piece)"),
            diagnosis=r"each item must be a \(piece, start, end\) tuple"),
    Mistake(E, "longest_piece counted from the start of the word", _variant(
        "min(len(word), start + longest_piece)", "min(len(word), longest_piece)"),
            diagnosis=r"bounded from the start of the word, not from the current position"),
]

CORRECT = [
    Mistake(E, "recursive, longest candidate first", '''
        def greedy_longest_match(word, vocab, max_input_chars_per_word=100, longest_piece=None):
            if len(word) > max_input_chars_per_word:
                return None

            def split(start):
                if start == len(word):
                    return []
                for end in range(len(word), start, -1):
                    piece = ("##" if start else "") + word[start:end]
                    if piece in vocab:
                        rest = split(end)
                        return None if rest is None else [(piece, start, end)] + rest
                return None

            return split(0)
        ''', diagnosis=""),
    Mistake(E, "for loops with longest_piece used", '''
        def greedy_longest_match(word, vocab, max_input_chars_per_word=100, longest_piece=None):
            if len(word) > max_input_chars_per_word:
                return None
            out, start = [], 0
            limit = longest_piece or len(word)
            while start < len(word):
                for end in range(min(len(word), start + limit), start, -1):
                    prefix = "##" if out else ""
                    if prefix + word[start:end] in vocab:
                        out.append((prefix + word[start:end], start, end))
                        start = end
                        break
                else:
                    return None
            return out
        ''', diagnosis=""),
]
