"""GLUE readers (SST-2, RTE, QNLI) on the real files, encoding against transformers'
BertTokenizerFast, pad_batch, and every error message."""
from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest

from minibert.data.tasks import TASKS, DataFormatError, EmptyFileError, Encoded, pad_batch
from minibert.data.tasks.glue import GLUE_TASKS, encode_glue, read_glue
from helpers import data_path, minilm_tokenizer, write
from reference import hf_fast

# shared/data/README.md: examples and label counts of each file
EXPECTED = {
    ("sst2", "train"): (67349, {"negative": 29780, "positive": 37569}),
    ("sst2", "dev"): (872, {"negative": 428, "positive": 444}),
    ("rte", "train"): (2490, {"entailment": 1249, "not_entailment": 1241}),
    ("rte", "dev"): (277, {"entailment": 146, "not_entailment": 131}),
    ("qnli", "dev"): (5463, {"entailment": 2702, "not_entailment": 2761}),
}


@pytest.mark.parametrize("task,split", list(EXPECTED))
def test_real_files_read_with_the_readme_counts(task, split):
    spec = GLUE_TASKS[task]
    examples = read_glue(data_path(spec.files[split]), task)
    n, labels = EXPECTED[task, split]
    assert len(examples) == n
    assert Counter(spec.id2label[e.label] for e in examples) == labels
    assert all(e.text_a == e.text_a.strip() and e.text_a for e in examples)     # SST-2's trailing space
    assert all((e.text_b is not None) == spec.is_pair for e in examples)
    if spec.is_pair:
        assert [e.idx for e in examples] == list(range(n))                      # the index column
    assert examples[0].line == 2 and examples[-1].line == n + 1


def test_literal_quotes_are_kept_and_no_line_is_merged():
    # The trap: csv's default quoting merges QNLI lines and eats RTE's quotes.
    path = data_path("qnli/dev.tsv")
    with open(path, newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f, delimiter="\t"))) - 1 == 5267      # what a csv reader gets
    assert len(read_glue(path, "qnli")) == 5463
    rte = read_glue(data_path("rte/dev.tsv"), "rte")
    by_idx = {e.idx: e for e in rte}
    assert by_idx[137].text_a.startswith('"It\'s Only a Play" is Terrence McNally\'s "Give My Regards')
    assert by_idx[137].line == 139


def test_labels_are_huggingface_names_in_sorted_order():
    # Hugging Face's glue configs: sst2 ["negative", "positive"], rte/qnli ["entailment", "not_entailment"]
    assert TASKS["sst2"].id2label == {0: "negative", 1: "positive"}
    assert TASKS["sst2"].label2id == {"negative": 0, "positive": 1}
    for task in ("rte", "qnli"):
        assert TASKS[task].id2label == {0: "entailment", 1: "not_entailment"}
        assert TASKS[task].kind == "sequence" and TASKS[task].is_pair
    assert type(TASKS["rte"].label2id) is dict and type(TASKS["rte"].id2label) is dict
    sst2 = read_glue(data_path("sst2/dev.tsv"), "sst2")
    lines = data_path("sst2/dev.tsv").read_text(encoding="utf-8").split("\n")
    assert all(int(lines[e.line - 1].split("\t")[1]) == e.label for e in sst2)   # 0 -> 0, 1 -> 1


@pytest.mark.parametrize("task,max_len", [("rte", 128), ("sst2", 128), ("qnli", 64)])
def test_encoding_matches_transformers(task, max_len):
    spec = GLUE_TASKS[task]
    examples = read_glue(data_path(spec.files["dev"]), task)[:300]
    encoded = encode_glue(examples, minilm_tokenizer(), max_seq_length=max_len)
    args = [[e.text_a for e in examples]] + ([[e.text_b for e in examples]] if spec.is_pair else [])
    reference = hf_fast()(*args, truncation=True, max_length=max_len)
    assert [f["input_ids"] for f in encoded.features] == reference["input_ids"]
    assert [f["token_type_ids"] for f in encoded.features] == reference["token_type_ids"]
    assert [f["labels"] for f in encoded.features] == [e.label for e in examples]
    lengths = [len(a) + len(b) for a, b in zip(
        minilm_tokenizer()(args[0], add_special_tokens=False)["input_ids"],
        minilm_tokenizer()(args[-1], add_special_tokens=False)["input_ids"] if spec.is_pair
        else [[]] * len(examples))]
    assert encoded.counts["truncated"] == sum(n > max_len - (3 if spec.is_pair else 2) for n in lengths)
    if task != "sst2":
        assert encoded.counts["truncated"] > 0          # the cut is exercised


def test_pad_batch_shapes_and_values():
    encoded = encode_glue(read_glue(data_path("rte/dev.tsv"), "rte")[:5], minilm_tokenizer(), 128)
    batch = encoded.batch(range(5))
    lengths = [len(f["input_ids"]) for f in encoded.features]
    assert batch["input_ids"].shape == (5, max(lengths)) and batch["input_ids"].dtype == np.int64
    assert batch["labels"].shape == (5,)
    np.testing.assert_array_equal(batch["attention_mask"].sum(axis=1), lengths)
    for row, n in enumerate(lengths):
        assert (batch["input_ids"][row, n:] == 0).all() and (batch["token_type_ids"][row, n:] == 0).all()
    assert encoded.batch([0, 1], length=128)["input_ids"].shape == (2, 128)
    # token labels pad with -100, other keys pass through as lists
    batch = pad_batch([{"input_ids": [5, 6, 7], "labels": [1, -100, 2], "word_starts": [1]},
                       {"input_ids": [5], "labels": [0], "word_starts": []}], pad_token_id=9)
    np.testing.assert_array_equal(batch["input_ids"], [[5, 6, 7], [5, 9, 9]])
    np.testing.assert_array_equal(batch["labels"], [[1, -100, 2], [0, -100, -100]])
    assert batch["word_starts"] == [[1], []]


def test_pad_batch_errors():
    with pytest.raises(ValueError, match="pad_batch needs at least one feature"):
        pad_batch([])
    with pytest.raises(ValueError, match=r"feature 1 has 3 tokens, more than length=2: encode with a "
                                         r"max_seq_length of at most 2"):
        pad_batch([{"input_ids": [1]}, {"input_ids": [1, 2, 3]}], length=2)
    with pytest.raises(ValueError, match="feature 1 has keys .* all features of a batch must come "
                                         "from the same encoder"):
        pad_batch([{"input_ids": [1], "labels": 0}, {"input_ids": [1]}])
    assert len(Encoded([{"input_ids": [1]}])) == 1


# -- the traps and the errors, on small files ---------------------------------------

def test_bom_crlf_blank_lines_and_quotes(tmp_path):
    text = '\ufeffindex\tsentence1\tsentence2\tlabel \r\n0\t"Quoted" start\tb "x\tentailment\r\n\r\n' \
           '1\ta\u2028b\tc\tnot_entailment\r\n'
    examples = read_glue(write(tmp_path / "x.tsv", text), "rte")
    assert [(e.idx, e.text_a, e.text_b, e.label, e.line) for e in examples] == [
        (0, '"Quoted" start', 'b "x', 0, 2), (1, "a\u2028b", "c", 1, 4)]


def test_wrong_header_names_expected_and_found_columns(tmp_path):
    path = write(tmp_path / "x.tsv", "sentence\tlabel\nhello\t1\n")
    with pytest.raises(DataFormatError, match=r"x\.tsv, line 1: expected the rte header with the "
                       r"tab-separated columns \['index', 'sentence1', 'sentence2', 'label'\], found "
                       r"\['sentence', 'label'\] \(is this a rte file\?\)"):
        read_glue(path, "rte")


def test_wrong_column_count_names_the_line(tmp_path):
    path = write(tmp_path / "x.tsv", "sentence\tlabel\ngood movie\t1\nno label here\n")
    with pytest.raises(DataFormatError, match=r"x\.tsv, line 3: expected 2 tab-separated columns "
                       r"\['sentence', 'label'\], found 1: 'no label here'"):
        read_glue(path, "sst2")


def test_unknown_label_names_it_and_the_line(tmp_path):
    path = write(tmp_path / "x.tsv", "index\tquestion\tsentence\tlabel\n0\tq\ts\tentailment\n1\tq\ts\tneutral\n")
    with pytest.raises(DataFormatError, match=r"x\.tsv, line 3: unknown label 'neutral'; qnli labels "
                       r"are \['entailment', 'not_entailment'\]"):
        read_glue(path, "qnli")
    path = write(tmp_path / "x.tsv", "sentence\tlabel\nok\t2\n")
    with pytest.raises(DataFormatError, match=r"line 2: unknown label '2'; sst2 labels are \['0', '1'\]"):
        read_glue(path, "sst2")


def test_empty_files(tmp_path):
    with pytest.raises(EmptyFileError, match=r"sst2 file .*x\.tsv is empty"):
        read_glue(write(tmp_path / "x.tsv", ""), "sst2")
    with pytest.raises(EmptyFileError, match=r"sst2 file .*x\.tsv is empty"):
        read_glue(write(tmp_path / "x.tsv", "\ufeff\r\n"), "sst2")                 # a BOM and a line end only
    with pytest.raises(EmptyFileError, match=r"x\.tsv has a header but no examples"):
        read_glue(write(tmp_path / "x.tsv", "sentence\tlabel\n\n"), "sst2")


def test_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="sst2 file not found: .*nope.tsv"):
        read_glue(tmp_path / "nope.tsv", "sst2")
    with pytest.raises(DataFormatError, match=r"x\.tsv, line 2: not UTF-8"):
        read_glue(write(tmp_path / "x.tsv", b"sentence\tlabel\n\xff\t1\n"), "sst2")
    with pytest.raises(DataFormatError, match=r"line 2: the index column should be an integer, found 'a'"):
        read_glue(write(tmp_path / "x.tsv", "index\tsentence1\tsentence2\tlabel\na\tx\ty\tentailment\n"), "rte")
    with pytest.raises(ValueError, match=r"unknown GLUE task 'mrpc'; known: \['qnli', 'rte', 'sst2'\]"):
        read_glue(tmp_path / "x.tsv", "mrpc")
    with pytest.raises(ValueError, match=r"task qnli has no 'train' split; it has \['dev'\]"):
        TASKS["qnli"].path("data", "train")
    with pytest.raises(ValueError, match="max_seq_length=3 leaves no room for text after the 3 special tokens"):
        encode_glue(read_glue(data_path("rte/dev.tsv"), "rte")[:1], minilm_tokenizer(), 3)
    with pytest.raises(ValueError, match="label_names must be sorted and unique"):
        type(TASKS["rte"])(name="t", kind="sequence", columns=("a",), text_columns=("a",),
                           label_column="a", label_names=("b", "a"), files={}, metric="accuracy")
