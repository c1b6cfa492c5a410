"""`TaskSpec`: what a fine-tuning task's files hold and what the model predicts.

One spec per task (GLUE's in glue.py, WNUT-17's in ner.py, XQuAD's in
squad.py; all of them in `minibert.data.tasks.TASKS`):

    >>> from minibert.data.tasks import TASKS
    >>> TASKS["rte"].label2id
    {'entailment': 0, 'not_entailment': 1}
    >>> TASKS["sst2"].id2label
    {0: 'negative', 1: 'positive'}

Label ids are the positions of the label names sorted as strings, so the same
names always get the same ids. `label2id` and `id2label` are plain dicts, the
two fields Hugging Face's config.json keeps (it writes the id keys as strings).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TaskSpec", "KINDS"]

# sequence: one label per text or text pair (GLUE); token: one label per word (NER);
# span: a start and an end position in a context (extractive QA).
KINDS = ("sequence", "token", "span")


@dataclass(frozen=True)
class TaskSpec:
    """A task's file layout and labels.

    name: short name ("sst2", "rte", "qnli", "wnut17", "xquad").
    kind: one of KINDS.
    columns: the columns of each line of the file, in order (TSV header / CoNLL fields).
    text_columns: the text inputs, one column (single sentence) or two (a pair).
    label_column: the column holding the label (None for span tasks).
    label_names: every label, sorted; a label's id is its position.
    file_labels: the value written in the file -> label name, where they differ
        (SST-2 writes 0/1; Hugging Face's glue/sst2 calls them negative/positive).
    files: split -> file path relative to the data folder (../shared/data for the tests).
    metric: the metric reported for the task (see metrics.py).
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    text_columns: tuple[str, ...]
    label_column: str | None
    label_names: tuple[str, ...]
    files: dict[str, str]
    metric: str
    file_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if list(self.label_names) != sorted(set(self.label_names)):
            raise ValueError(f"task {self.name}: label_names must be sorted and unique "
                             f"(ids are their positions), got {list(self.label_names)}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def label2id(self) -> dict[str, int]:
        """label name -> id, for config.json's "label2id"."""
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def id2label(self) -> dict[int, str]:
        """id -> label name, for config.json's "id2label"."""
        return dict(enumerate(self.label_names))

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2

    def path(self, data_dir, split: str) -> Path:
        """The file of `split` ("train", "dev", ...) under `data_dir`."""
        if split not in self.files:
            raise ValueError(f"task {self.name} has no {split!r} split; it has {sorted(self.files)}")
        return Path(data_dir) / self.files[split]
