"""WNUT-17 CoNLL reader on the real files, word-piece label alignment against transformers'
BertTokenizerFast word_ids (Hugging Face's run_ner rule), predictions back to words, errors."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from minibert.data.tasks import IGNORE_INDEX, DataFormatError, EmptyFileError
from minibert.data.tasks.metrics import ner_scores
from minibert.data.tasks.ner import WNUT17, TokenExample, encode_ner, label_list, read_conll, word_predictions
from helpers import data_path, minilm_tokenizer, write
from reference import hf_fast

# shared/data/README.md: sentences and tokens of each split
COUNTS = {"train": (3394, 62730), "dev": (1009, 15733), "test": (1287, 23394)}


@pytest.fixture(scope="module")
def wnut():
    return {split: read_conll(data_path(f"wnut17/{split}.conll")) for split in COUNTS}


def test_real_files_read_with_the_readme_counts(wnut):
    for split, (sentences, tokens) in COUNTS.items():
        examples = wnut[split]
        assert len(examples) == sentences, split
        assert sum(len(e.words) for e in examples) == tokens, split
        assert all(len(e.words) == len(e.tags) > 0 for e in examples)
    # train.conll separates most sentences with a line holding one tab, not an empty line:
    # a reader that only splits on empty lines finds 1,000 "sentences" there.
    text = data_path("wnut17/train.conll").read_text(encoding="utf-8")
    assert text.count("\n\t\n") > 2000
    assert len([b for b in text.split("\n\n") if b.strip()]) == 1000
    assert label_list(wnut["train"]) == list(WNUT17.label_names)
    assert len(WNUT17.label_names) == 13 and WNUT17.kind == "token"
    assert WNUT17.label2id["O"] == 12 and WNUT17.id2label[0] == "B-corporation"   # sorted order


def hf_run_ner_features(examples, max_length):
    """Hugging Face run_ner's tokenize_and_align_labels (label_all_tokens=False), on the fast tokenizer."""
    reference = hf_fast()([list(e.words) for e in examples], is_split_into_words=True,
                               truncation=True, max_length=max_length)
    labels = []
    for i, example in enumerate(examples):
        row, previous = [], None
        for word in reference.word_ids(i):
            if word is None or word == previous:
                row.append(IGNORE_INDEX)
            else:
                row.append(WNUT17.label2id[example.tags[word]])
            previous = word
        labels.append(row)
    return reference["input_ids"], labels


@pytest.mark.parametrize("split", ["dev", "test"])
def test_alignment_matches_huggingface_run_ner(wnut, split):
    examples = wnut[split]
    encoded = encode_ner(examples, minilm_tokenizer(), WNUT17.label2id, max_seq_length=128)
    input_ids, labels = hf_run_ner_features(examples, 128)
    assert [f["input_ids"] for f in encoded.features] == input_ids
    assert [f["labels"] for f in encoded.features] == labels
    # U+FE0F (emoji variation selector) alone on a line: accent stripping deletes it, no piece.
    empty = [w for e in examples for w in e.words if not minilm_tokenizer().tokenize(w)]
    assert empty and set(empty) == {"\ufe0f"}
    assert encoded.counts["words_without_pieces"] == len(empty) == {"dev": 4, "test": 3}[split]
    assert encoded.counts["truncated_sentences"] == {"dev": 0, "test": 2}[split]
    assert encoded.counts["words"] == COUNTS[split][1]


def test_word_starts_point_at_first_pieces(wnut):
    tok = minilm_tokenizer()
    encoded = encode_ner(wnut["dev"], tok, WNUT17.label2id, max_seq_length=128)
    for example, feature in zip(wnut["dev"], encoded.features):
        for word, tag, start in zip(example.words, example.tags, feature["word_starts"]):
            pieces = tok(word, add_special_tokens=False)["input_ids"]
            if start < 0:
                assert not pieces
                continue
            assert feature["input_ids"][start:start + len(pieces)] == pieces
            assert feature["labels"][start] == WNUT17.label2id[tag]
        assert feature["labels"][0] == feature["labels"][-1] == IGNORE_INDEX       # [CLS], [SEP]


def test_a_word_without_pieces_does_not_shift_labels():
    tok = minilm_tokenizer()
    example = TokenExample(0, ("Paris", "\ufe0f", "", "Hilton", "loves", "\u200b"),
                           ("B-person", "O", "O", "I-person", "O", "O"), 1)
    encoded = encode_ner([example], tok, WNUT17.label2id)
    feature = encoded.features[0]
    assert tok.convert_ids_to_tokens(feature["input_ids"]) == ["[CLS]", "paris", "hilton", "loves", "[SEP]"]
    assert feature["labels"] == [-100, WNUT17.label2id["B-person"], WNUT17.label2id["I-person"],
                                 WNUT17.label2id["O"], -100]
    assert feature["word_starts"] == [1, -1, -1, 2, 3, -1]
    assert encoded.counts["words_without_pieces"] == 3
    # predictions back to words: the piece-less words predict "O", the entity is intact
    predictions = np.array([[12, 4, 10, 12, 12]])                       # (1, T) label ids
    assert word_predictions(predictions, encoded, WNUT17.id2label) == [
        ["B-person", "O", "O", "I-person", "O", "O"]]


def test_truncation_counts_and_predicts_o_for_cut_words():
    tok = minilm_tokenizer()
    words = ("Barack", "Obama", "visited", "unaffable", "Reykjavik")
    example = TokenExample(0, words, ("B-person", "I-person", "O", "O", "B-location"), 1)
    pieces = [len(tok.tokenize(w)) for w in words]
    assert pieces[3] > 1                                   # a word cut in the middle below
    max_len = 2 + sum(pieces[:3]) + 1                       # room for the first piece of word 3
    encoded = encode_ner([example], tok, WNUT17.label2id, max_seq_length=max_len)
    feature = encoded.features[0]
    assert len(feature["input_ids"]) == max_len
    assert feature["word_starts"][4] == -1 and feature["word_starts"][3] == max_len - 2
    assert encoded.counts == {"examples": 1, "words": 5, "words_without_pieces": 0,
                              "truncated_sentences": 1, "truncated_words": 1}
    gold_ids = np.array([[f if f >= 0 else 0 for f in feature["labels"]]])
    tags = word_predictions(gold_ids, encoded, WNUT17.id2label)
    assert tags == [["B-person", "I-person", "O", "O", "O"]]       # the cut word predicts "O"


def test_gold_through_the_model_layout_scores_one(wnut):
    # Labels as "predictions" (the best a model can do) give F1 = 1 except where words lost
    # their positions; on dev only piece-less U+FE0F words (tag O) are lost, so F1 is exactly 1.
    examples = wnut["dev"]
    encoded = encode_ner(examples, minilm_tokenizer(), WNUT17.label2id, max_seq_length=128)
    batch = encoded.batch(range(len(encoded)))
    predictions = np.where(batch["labels"] >= 0, batch["labels"], 0)                # (N, T)
    tags = word_predictions(predictions, encoded, WNUT17.id2label)
    assert ner_scores([list(e.tags) for e in examples], tags)["f1"] == 1.0
    logits = np.eye(13)[predictions]                                                 # (N, T, K)
    assert word_predictions(logits, encoded, WNUT17.id2label) == tags


# -- errors ------------------------------------------------------------------------------

def test_crlf_docstart_whitespace_separators(tmp_path):
    path = write(tmp_path / "x.conll", "-DOCSTART-\tO\r\n\r\nParis\tB-location\r\nis\tO\r\n \t \r\n\tO\r\nok\tO\r\n")
    examples = read_conll(path)
    assert [(e.words, e.tags, e.line) for e in examples] == [
        (("Paris", "is"), ("B-location", "O"), 3), (("", "ok"), ("O", "O"), 6)]


def test_bad_line_names_file_line_and_fields(tmp_path):
    with pytest.raises(DataFormatError, match=r"x\.conll, line 2: expected 2 tab-separated fields "
                       r"\(token, tag\), found 1: 'is O'"):
        read_conll(write(tmp_path / "x.conll", "Paris\tB-location\nis O\n"))
    with pytest.raises(DataFormatError, match=r"line 1: expected 2 tab-separated fields \(token, tag\), found 3"):
        read_conll(write(tmp_path / "x.conll", "Paris\tNNP\tB-location\n"))


def test_unknown_tag_names_it_and_the_line(tmp_path):
    path = write(tmp_path / "x.conll", "Paris\tB-location\n\nIBM\tB-ORG\n")
    with pytest.raises(DataFormatError, match=r"x\.conll, line 3: unknown tag 'B-ORG'; wnut17 tags are "
                       r"\['B-corporation'"):
        read_conll(path)
    assert label_list(read_conll(path, task=None)) == ["B-ORG", "B-location"]
    with pytest.raises(DataFormatError, match=r"line 1: tag 'PER' is not a BIO tag \(O, B-X, I-X\)"):
        read_conll(write(tmp_path / "x.conll", "Bob\tPER\n"), task=None)


def test_empty_files(tmp_path):
    with pytest.raises(EmptyFileError, match=r"CoNLL file .*x\.conll is empty"):
        read_conll(write(tmp_path / "x.conll", ""))
    with pytest.raises(EmptyFileError, match=r"CoNLL file .*x\.conll is empty"):
        read_conll(write(tmp_path / "x.conll", "\n\t\n\n"))
    with pytest.raises(EmptyFileError, match=r"x\.conll has no sentence \(only blank lines\)"):
        read_conll(write(tmp_path / "x.conll", "-DOCSTART- -X- -X- O\n\n"))


def test_encoding_and_prediction_errors():
    tok = minilm_tokenizer()
    example = TokenExample(7, ("IBM",), ("B-ORG",), 12)
    with pytest.raises(ValueError, match=r"sentence 7 \(line 12\) has the tag 'B-ORG', which label2id lacks"):
        encode_ner([example], tok, WNUT17.label2id)
    with pytest.raises(ValueError, match="max_seq_length=2 leaves no room for a word"):
        encode_ner([example], tok, {"B-ORG": 0}, max_seq_length=2)
    encoded = encode_ner([TokenExample(0, ("a", "b"), ("O", "O"), 1)], tok, WNUT17.label2id)
    with pytest.raises(ValueError, match=r"predictions should be \(N, T\) or \(N, T, K\) with N = 1 "
                                         r"features, got shape \(2, 4\)"):
        word_predictions(np.zeros((2, 4), dtype=int), encoded, WNUT17.id2label)
    with pytest.raises(ValueError, match="a prediction row has 3 positions but feature 0 has 4"):
        word_predictions(np.zeros((1, 3), dtype=int), encoded, WNUT17.id2label)
    assert Counter(word_predictions(np.zeros((1, 4), dtype=int), encoded, WNUT17.id2label)[0]) == \
        Counter({"B-corporation": 2})
