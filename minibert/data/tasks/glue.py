"""GLUE sentence and sentence-pair classification: SST-2, RTE, QNLI.

    from minibert.data.tasks import glue
    examples = glue.read_glue("../shared/data/rte/dev.tsv", "rte")
    examples[0]        # SequenceExample(idx=0, text_a='Dana Reeve, ...', text_b='...', label=1, line=2)
    encoded = glue.encode_glue(examples, tokenizer, max_seq_length=128)
    batch = encoded.batch(range(32))   # input_ids, token_type_ids, attention_mask (B, T), labels (B,)

The files (one example per line, tab-separated, a header row):

    sst2  sentence \\t label                               label 0 / 1 = negative / positive
    rte   index \\t sentence1 \\t sentence2 \\t label         entailment / not_entailment
    qnli  index \\t question \\t sentence \\t label           entailment / not_entailment

GLUE files are *not* CSV-quoted: a sentence may start with a literal '"' and
hold tabs-free text with any number of quotes. A csv or pandas reader with
default quoting treats those quotes as field delimiters, silently merging lines
(QNLI dev: 5,267 rows instead of 5,463) or eating the quotes (RTE). So each line
is split on tabs and nothing else (files.py handles BOM and CRLF). SST-2
sentences end with a space before the tab; every text is stripped.

Encoding is Hugging Face's run_glue (and google-research/bert's run_classifier):
`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, the longer text cut first until the
pair fits max_seq_length ("longest_first" = Google's truncate_seq_pair).
"""
from __future__ import annotations

from dataclasses import dataclass

from minibert.data.tasks.batching import Encoded
from minibert.data.tasks.files import DataFormatError, EmptyFileError, read_lines
from minibert.data.tasks.spec import TaskSpec
from minibert.errors import InputError
from minibert.tokenization.encoding import build_model_input, truncate

__all__ = ["GLUE_TASKS", "SequenceExample", "encode_glue", "read_glue"]

_ENTAILMENT = ("entailment", "not_entailment")

GLUE_TASKS = {
    "sst2": TaskSpec(
        name="sst2", kind="sequence", columns=("sentence", "label"), text_columns=("sentence",),
        label_column="label", label_names=("negative", "positive"),
        file_labels={"0": "negative", "1": "positive"},
        files={"train": "sst2/train.tsv", "dev": "sst2/dev.tsv"}, metric="accuracy"),
    "rte": TaskSpec(
        name="rte", kind="sequence", columns=("index", "sentence1", "sentence2", "label"),
        text_columns=("sentence1", "sentence2"), label_column="label", label_names=_ENTAILMENT,
        files={"train": "rte/train.tsv", "dev": "rte/dev.tsv"}, metric="accuracy"),
    "qnli": TaskSpec(
        name="qnli", kind="sequence", columns=("index", "question", "sentence", "label"),
        text_columns=("question", "sentence"), label_column="label", label_names=_ENTAILMENT,
        files={"dev": "qnli/dev.tsv"}, metric="accuracy"),
}


@dataclass(frozen=True)
class SequenceExample:
    """One labelled text or text pair.

    idx: the file's `index` column where it has one, else the row number (0-based).
    text_a, text_b: the texts, stripped (text_b is None for single sentences).
    label: the label id (TaskSpec.label2id).
    line: the line of the file it came from (1-based), for messages.
    """

    idx: int
    text_a: str
    text_b: str | None
    label: int
    line: int


def _spec(task) -> TaskSpec:
    if isinstance(task, TaskSpec):
        return task
    if task not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {sorted(GLUE_TASKS)}")
    return GLUE_TASKS[task]


def read_glue(path, task) -> list[SequenceExample]:
    """Read a GLUE TSV file of `task` ("sst2", "rte", "qnli" or a TaskSpec).

    Blank lines are skipped. Raises DataFormatError (naming the file and the
    line) for a header that is not the task's columns, a line with the wrong
    number of columns, a label the task does not have, or an index that is not
    an integer; EmptyFileError for a file with no examples.
    """
    spec = _spec(task)
    lines = read_lines(path, f"{spec.name} file")
    header = [column.strip() for column in lines[0].split("\t")]
    if tuple(header) != spec.columns:
        raise DataFormatError(
            f"{path}, line 1: expected the {spec.name} header with the tab-separated columns "
            f"{list(spec.columns)}, found {header} (is this a {spec.name} file?)")
    label2id = spec.label2id
    examples = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(spec.columns):
            raise DataFormatError(
                f"{path}, line {number}: expected {len(spec.columns)} tab-separated columns "
                f"{list(spec.columns)}, found {len(fields)}: {_preview(line)}")
        row = dict(zip(spec.columns, fields))
        value = row[spec.label_column].strip()
        name = spec.file_labels.get(value, value)
        if name not in label2id:
            known = sorted(spec.file_labels) if spec.file_labels else list(spec.label_names)
            raise DataFormatError(f"{path}, line {number}: unknown label {value!r}; "
                                  f"{spec.name} labels are {known}")
        texts = [row[column].strip() for column in spec.text_columns]
        examples.append(SequenceExample(
            idx=_index(row, len(examples), path, number), text_a=texts[0],
            text_b=texts[1] if spec.is_pair else None, label=label2id[name], line=number))
    if not examples:
        raise EmptyFileError(f"{path} has a header but no examples")
    return examples


def _index(row: dict, position: int, path, number: int) -> int:
    if "index" not in row:
        return position
    try:
        return int(row["index"])
    except ValueError:
        raise DataFormatError(f"{path}, line {number}: the index column should be an integer, "
                              f"found {row['index']!r}") from None


def _preview(line: str, width: int = 80) -> str:
    return repr(line if len(line) <= width else line[:width] + "...")


def encode_glue(examples: list[SequenceExample], tokenizer, max_seq_length: int = 128) -> Encoded:
    """Examples -> features {input_ids, token_type_ids, attention_mask, labels}.

    Pairs are cut "longest_first" to fit max_seq_length (special tokens
    included), as Hugging Face's run_glue and Google's run_classifier do.
    counts: examples, truncated (how many lost tokens).
    """
    n_special = 3 if examples and examples[0].text_b is not None else 2
    if max_seq_length <= n_special:
        raise InputError(f"max_seq_length={max_seq_length} leaves no room for text after the "
                         f"{n_special} special tokens")
    ids_a = tokenizer([e.text_a for e in examples], add_special_tokens=False)["input_ids"] if examples else []
    if n_special == 3:
        ids_b = tokenizer([e.text_b for e in examples], add_special_tokens=False)["input_ids"]
    else:
        ids_b = [None] * len(examples)
    features, truncated = [], 0
    for example, a, b in zip(examples, ids_a, ids_b):
        if (b is None) != (example.text_b is None):
            raise ValueError("encode_glue got single sentences and pairs mixed in one list")
        n_before = len(a) + len(b or ())
        a, b = truncate(a, b, max_seq_length - n_special, "longest_first")
        truncated += len(a) + len(b or ()) < n_before
        input_ids, token_type_ids = build_model_input(a, b, tokenizer.cls_token_id, tokenizer.sep_token_id)
        features.append({"input_ids": input_ids, "token_type_ids": token_type_ids,
                         "attention_mask": [1] * len(input_ids), "labels": example.label})
    return Encoded(features, {"examples": len(examples), "truncated": truncated},
                   pad_token_id=tokenizer.pad_token_id)
