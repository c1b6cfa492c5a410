"""Features -> padded NumPy batches: the one collate step every fine-tuning task shares.

Each task's encoder (glue.py, ner.py, squad.py) turns examples into a list of
*features*, one plain dict per model input, with ragged Python lists:

    {"input_ids": [101, 7592, 102], "token_type_ids": [0, 0, 0],
     "attention_mask": [1, 1, 1], "labels": 1}

`pad_batch` stacks a list of them into arrays (B = batch size, T = the longest
sequence in the batch, or a fixed length):

    input_ids       (B, T) int64   padded with the tokenizer's [PAD] id
    token_type_ids  (B, T) int64   padded with 0
    attention_mask  (B, T) int64   padded with 0 (1 = token, 0 = padding)
    labels          (B, T) int64   token labels (NER), padded with -100, the ignore index
      or            (B,)   int64   one label per sequence (GLUE)
    start_positions (B,)   int64   span targets (QA)
    end_positions   (B,)   int64

Every other key (example ids, character offsets, word maps: what the
post-processing needs) is passed through as a plain list, one entry per feature.

    >>> pad_batch([{"input_ids": [101, 7, 102], "labels": 1},
    ...            {"input_ids": [101, 102], "labels": 0}], pad_token_id=0)
    {'input_ids': array([[101,   7, 102],
           [101, 102,   0]]), 'labels': array([1, 0])}
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from minibert.ops.losses import IGNORE_INDEX   # label of positions that carry no loss (-100, PyTorch's default)

__all__ = ["IGNORE_INDEX", "SEQUENCE_PAD_VALUES", "SCALAR_KEYS", "Encoded", "pad_batch"]

# Keys padded on the right to the batch's length; None = the tokenizer's [PAD] id.
SEQUENCE_PAD_VALUES = {"input_ids": None, "token_type_ids": 0, "attention_mask": 0,
                       "labels": IGNORE_INDEX}
# Keys holding one integer per feature.
SCALAR_KEYS = ("labels", "start_positions", "end_positions")


def pad_batch(features: list[dict], *, pad_token_id: int = 0, length: int | None = None) -> dict:
    """Stack features into a batch: sequences padded to `length` (default: the longest).

    Args:
        features: dicts as the task encoders make them (see the module docstring).
        pad_token_id: the id written into `input_ids` padding (0 in BERT vocabularies).
        length: pad every sequence to exactly this many positions (a fixed T);
            None pads to the longest sequence of this batch.

    Returns a dict with the same keys: int64 arrays for the sequence keys
    (B, T) and the integer keys (B,), plain lists for everything else.
    A feature longer than `length` raises ValueError (truncate when encoding).
    """
    if not features:
        raise ValueError("pad_batch needs at least one feature")
    keys = list(features[0])
    for k, feature in enumerate(features):
        if list(feature) != keys:
            raise ValueError(f"feature {k} has keys {sorted(feature)}, feature 0 has {sorted(keys)}: "
                             f"all features of a batch must come from the same encoder")
    lengths = [len(feature["input_ids"]) for feature in features] if "input_ids" in keys else [0]
    target = max(lengths) if length is None else length
    if max(lengths) > target:
        k = int(np.argmax(lengths))
        raise ValueError(f"feature {k} has {lengths[k]} tokens, more than length={target}: "
                         f"encode with a max_seq_length of at most {target}")
    batch = {}
    for key in keys:
        values = [feature[key] for feature in features]
        if key in SEQUENCE_PAD_VALUES and not _is_int(values[0]):
            pad = pad_token_id if SEQUENCE_PAD_VALUES[key] is None else SEQUENCE_PAD_VALUES[key]
            batch[key] = _pad_rows(values, target, pad, key)                       # (B, T)
        elif key in SCALAR_KEYS:
            batch[key] = np.array(values, dtype=np.int64).reshape(len(values))      # (B,)
        else:
            batch[key] = values
    return batch


def _pad_rows(rows: list, length: int, pad: int, key: str) -> np.ndarray:
    out = np.full((len(rows), length), pad, dtype=np.int64)                         # (B, T)
    for i, row in enumerate(rows):
        if len(row) > length:
            raise ValueError(f"{key} of feature {i} has {len(row)} positions, more than {length}")
        out[i, :len(row)] = row
    return out


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class Encoded:
    """A data set's features, and the counts of what encoding had to do to its examples.

    features: one dict per model input (a SQuAD example can give several).
    counts: e.g. {"examples": 872, "features": 872, "truncated": 0}; each task
        documents its own counts.
    pad_token_id: the tokenizer's [PAD] id, for `batch`.
    """

    features: list[dict]
    counts: dict[str, int] = field(default_factory=dict)
    pad_token_id: int = 0

    def __len__(self) -> int:
        return len(self.features)

    def batch(self, indices, length: int | None = None) -> dict:
        """pad_batch of the features at `indices` (any iterable of ints)."""
        return pad_batch([self.features[int(i)] for i in indices], pad_token_id=self.pad_token_id,
                         length=length)
