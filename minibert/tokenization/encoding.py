"""From token ids to model inputs: truncation, [CLS]/[SEP], segment ids, padding.

BERT's input for one text A is `[CLS] A [SEP]`, for a pair `[CLS] A [SEP] B [SEP]`;
`token_type_ids` (segment ids) are 0 up to and including the first [SEP], then
1 for B and its [SEP]. `attention_mask` is 1 on real tokens, 0 on padding.

    >>> truncate_seq_pair([1, 2, 3, 4, 5], [6, 7], max_num_tokens=4)
    ([1, 2], [6, 7])
    >>> build_model_input([7, 8], [9], cls_id=101, sep_id=102)
    ([101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1])
"""
from __future__ import annotations

__all__ = ["TRUNCATION_STRATEGIES", "truncate_seq_pair", "truncate", "build_model_input", "pad_to"]

# Accepted values of `truncation` (Hugging Face's names); True means "longest_first".
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int) -> tuple[list, list]:
    """Shorten the longer of the two lists, one token at a time, until they fit.

    This is google-research/bert's `truncate_seq_pair`: remove the last token
    of A if A is longer than B, else of B (so on a tie, B loses first). It
    keeps as much of the shorter text as possible. Hugging Face's
    "longest_first" computes the same result in closed form.

        >>> truncate_seq_pair(list("abcdef"), list("xyz"), 6)
        (['a', 'b', 'c'], ['x', 'y', 'z'])
        >>> truncate_seq_pair(list("abcd"), list("wxyz"), 5)
        (['a', 'b', 'c'], ['w', 'x'])
    """
    tokens_a, tokens_b = list(tokens_a), list(tokens_b)
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()
    return tokens_a, tokens_b


def truncate(ids_a: list, ids_b: list | None, max_num_tokens: int, strategy: str):
    """Apply a truncation strategy so that len(ids_a) + len(ids_b) <= max_num_tokens.

    `max_num_tokens` is what is left of max_length once the special tokens
    are counted. Returns (ids_a, ids_b). Only ever removes from the end.

    Deviation noted: where the strategy cannot reach the length (e.g.
    "only_second" with B shorter than what must go), Hugging Face logs an
    error and returns the sequence *untruncated*; we raise ValueError.

        >>> truncate([1, 2, 3], [4, 5, 6], 4, "only_second")
        ([1, 2, 3], [4])
    """
    if strategy == "do_not_truncate":
        return ids_a, ids_b
    if strategy not in TRUNCATION_STRATEGIES:
        raise ValueError(f"unknown truncation strategy {strategy!r}; use one of {TRUNCATION_STRATEGIES}")
    length_b = len(ids_b) if ids_b is not None else 0
    excess = len(ids_a) + length_b - max_num_tokens
    if excess <= 0:
        return ids_a, ids_b
    if strategy == "longest_first":
        if ids_b is None:
            return ids_a[:max_num_tokens], None
        return truncate_seq_pair(ids_a, ids_b, max_num_tokens)
    if strategy == "only_second" and ids_b is None:
        raise ValueError("truncation='only_second' needs a text pair")
    if strategy == "only_first":
        if excess > len(ids_a):
            raise ValueError(
                f"truncation='only_first' cannot fit: the first text has {len(ids_a)} tokens, "
                f"{excess} must go; use truncation='longest_first'")
        return ids_a[:len(ids_a) - excess], ids_b
    if excess > len(ids_b):
        raise ValueError(
            f"truncation='only_second' cannot fit: the second text has {len(ids_b)} tokens, "
            f"{excess} must go; use truncation='longest_first'")
    return ids_a, ids_b[:len(ids_b) - excess]


def build_model_input(ids_a: list, ids_b: list | None, cls_id, sep_id) -> tuple[list, list]:
    """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, and the segment ids.

    Works on ids, tokens or character offsets alike (pass what [CLS] and
    [SEP] should be in each case).

        >>> build_model_input(["a"], ["b", "c"], "[CLS]", "[SEP]")
        (['[CLS]', 'a', '[SEP]', 'b', 'c', '[SEP]'], [0, 0, 0, 1, 1, 1])
    """
    sequence = [cls_id] + list(ids_a) + [sep_id]
    segments = [0] * len(sequence)
    if ids_b is not None:
        sequence += list(ids_b) + [sep_id]
        segments += [1] * (len(ids_b) + 1)
    return sequence, segments


def pad_to(encoding: dict, length: int, pad_values: dict) -> dict:
    """Pad every list in `encoding` on the right to `length` with `pad_values[key]`.

        >>> pad_to({"input_ids": [5, 6], "attention_mask": [1, 1]}, 4,
        ...        {"input_ids": 0, "attention_mask": 0})
        {'input_ids': [5, 6, 0, 0], 'attention_mask': [1, 1, 0, 0]}
    """
    return {key: values + [pad_values[key]] * (length - len(values)) for key, values in encoding.items()}
