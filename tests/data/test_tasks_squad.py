"""SQuAD v1.1 / XQuAD: the reader on the real file, context windows and answer positions
against transformers' BertTokenizerFast overflowing tokens and Hugging Face run_qa's
prepare_train_features, the span search against brute force, and every error."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minibert.data.tasks import DataFormatError, EmptyFileError
from minibert.data.tasks.metrics import squad_scores
from minibert.data.tasks.squad import (
    XQUAD, QAExample, SkippedAnswersWarning, encode_squad, postprocess_qa_predictions, read_squad,
    read_xquad, references, window_starts,
)
from helpers import data_path, minilm_tokenizer, write
from reference import hf_fast


@pytest.fixture(scope="module")
def xquad():
    return read_squad(data_path(XQUAD.files["train"]))


def test_xquad_file_and_split(xquad):
    # shared/data/README.md: 48 articles, 240 paragraphs, 1,190 questions, 1 answer each, all
    # answer_start offsets right; first 38 articles train (970 questions), last 10 eval (220).
    assert len(xquad) == 1190 and len({e.context for e in xquad}) == 240
    assert len({e.article for e in xquad}) == 48 and len({e.id for e in xquad}) == 1190
    assert all(len(e.answers) == 1 and e.answer_found() for e in xquad)
    train, evaluation = (read_xquad(data_path(XQUAD.files[s]), s) for s in ("train", "eval"))
    assert (len(train), len(evaluation)) == (970, 220)
    assert {e.article for e in train} == set(range(38)) and {e.article for e in evaluation} == set(range(38, 48))
    assert xquad[0].title == "Super_Bowl_50" and xquad[0].answers[0] == {"text": "308", "answer_start": 34}
    assert references(evaluation)[evaluation[0].id] == [evaluation[0].answers[0]["text"]]


def hf_run_qa_features(examples, max_length, stride):
    """transformers' overflowing windows + run_qa's prepare_train_features start/end rule."""
    reference = hf_fast()([e.question.lstrip() for e in examples], [e.context for e in examples],
                               truncation="only_second", max_length=max_length, stride=stride,
                               return_overflowing_tokens=True, return_offsets_mapping=True)
    positions, context_offsets = [], []
    for i, offsets in enumerate(reference["offset_mapping"]):
        sequence_ids = reference.sequence_ids(i)
        example = examples[reference["overflow_to_sample_mapping"][i]]
        start_char = example.answers[0]["answer_start"]
        end_char = start_char + len(example.answers[0]["text"])
        first = sequence_ids.index(1)
        last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
        context_offsets.append([tuple(o) if s == 1 else None for o, s in zip(offsets, sequence_ids)])
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            positions.append((0, 0))
            continue
        while first < len(offsets) and offsets[first][0] <= start_char:
            first += 1
        while offsets[last][1] >= end_char:
            last -= 1
        positions.append((first - 1, last + 1))
    return reference, positions, context_offsets


@pytest.mark.parametrize("max_length,stride", [(384, 128), (128, 32)])
def test_windows_and_positions_match_huggingface_run_qa(xquad, max_length, stride):
    encoded = encode_squad(xquad, minilm_tokenizer(), training=True, max_seq_length=max_length,
                           doc_stride=stride)
    reference, positions, offsets = hf_run_qa_features(xquad, max_length, stride)
    features = encoded.features
    assert len(features) == len(reference["input_ids"]) > len(xquad)      # some contexts need windows
    assert [f["input_ids"] for f in features] == reference["input_ids"]
    assert [f["token_type_ids"] for f in features] == reference["token_type_ids"]
    assert [f["example_index"] for f in features] == reference["overflow_to_sample_mapping"]
    assert [f["offset_mapping"] for f in features] == offsets
    assert [(f["start_positions"], f["end_positions"]) for f in features] == positions
    assert max(len(f["input_ids"]) for f in features) == max_length
    assert encoded.counts == {"examples": 1190, "features": len(features), "skipped_answers": 0,
                              "questions_cut": 0}


def worked_example():
    context = "The Denver Broncos beat the Carolina Panthers 24-10 in Super Bowl 50 at Levi's Stadium."
    return QAExample("q1", "Who won Super Bowl 50?", context,
                     ({"text": "Denver Broncos", "answer_start": 4},), "Super_Bowl_50", 0)


def test_worked_example_of_docs_tasks_md():
    tok = minilm_tokenizer()
    example = worked_example()
    encoded = encode_squad([example], tok, training=True, max_seq_length=20, doc_stride=6)
    # 6 question pieces -> 20 - 6 - 3 = 11 context pieces a window; step 11 - 6 = 5
    windows = [tok.convert_ids_to_tokens(f["input_ids"][8:-1]) for f in encoded.features]
    assert windows == [
        ["the", "denver", "broncos", "beat", "the", "carolina", "panthers", "24", "-", "10", "in"],
        ["carolina", "panthers", "24", "-", "10", "in", "super", "bowl", "50", "at", "levi"],
        ["in", "super", "bowl", "50", "at", "levi", "'", "s", "stadium", "."]]
    assert [(f["start_positions"], f["end_positions"]) for f in encoded.features] == [(9, 10), (0, 0), (0, 0)]
    assert encoded.features[0]["offset_mapping"][9:11] == [(4, 10), (11, 18)]
    reference = hf_fast()(example.question, example.context, truncation="only_second", max_length=20,
                               stride=6, return_overflowing_tokens=True)
    assert [f["input_ids"] for f in encoded.features] == reference["input_ids"]
    # the answer: logits favour "denver" .. "broncos" in window 0
    start, end = np.full((3, 20), -10.0), np.full((3, 20), -10.0)
    start[0, 9], end[0, 10] = 3.0, 2.0
    start[1, 12], end[1, 12] = 1.0, 1.0        # "10" in window 1: the second candidate
    answers, n_best = postprocess_qa_predictions([example], encoded, start, end)
    assert answers == {"q1": "Denver Broncos"}
    assert n_best["q1"][0]["score"] == 5.0
    assert (n_best["q1"][1]["text"], n_best["q1"][1]["score"]) == ("10", 2.0)
    assert sum(c["probability"] for c in n_best["q1"]) == pytest.approx(1.0)


def test_window_starts():
    assert window_starts(10, budget=4, doc_stride=1) == [0, 3, 6]
    assert window_starts(4, budget=4, doc_stride=3) == [0]
    assert window_starts(0, budget=4, doc_stride=1) == [0]
    assert window_starts(11, budget=4, doc_stride=2) == [0, 2, 4, 6, 8]
    for n in range(1, 40):                          # windows cover everything, overlap by stride
        starts = window_starts(n, 7, 3)
        assert starts[-1] + 7 >= n and all(b - a == 4 for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError, match=r"doc_stride=4 must be smaller than the 4 context pieces a window "
                                         r"holds \(max_seq_length minus the question and 3 special tokens\)"):
        window_starts(10, budget=4, doc_stride=4)


def test_answer_in_the_last_piece_of_a_window():
    # run_qa's loop walks from the answer start into the [SEP] after the context (its offsets
    # are (0, 0), "<= start_char") and would point at [SEP]; the start must be the last piece.
    tok = minilm_tokenizer()
    context = "alpha beta gamma delta epsilon zeta eta theta"
    example = QAExample("q", "which?", context, ({"text": "delta", "answer_start": context.index("delta")},), "t", 0)
    encoded = encode_squad([example], tok, training=True, max_seq_length=9, doc_stride=2)
    first = encoded.features[0]
    assert tok.convert_ids_to_tokens(first["input_ids"]) == ["[CLS]", "which", "?", "[SEP]", "alpha",
                                                             "beta", "gamma", "delta", "[SEP]"]
    assert (first["start_positions"], first["end_positions"]) == (7, 7)


def test_answer_ending_inside_a_piece_is_widened_to_the_piece():
    # XQuAD 5729e2316aef0514001550c5: the gold text "... (2,70" stops inside the piece "700"
    # (2 , 700 , 000); positions cover whole pieces, so the span read back is "... (2,700".
    tok = minilm_tokenizer()
    context = "about 7,000,000 square kilometres (2,700,000 sq mi)"
    text = "7,000,000 square kilometres (2,70"
    example = QAExample("q", "how big?", context, ({"text": text, "answer_start": 6},), "t", 0)
    encoded = encode_squad([example], tok, training=True)
    feature = encoded.features[0]
    offsets = feature["offset_mapping"]
    s, e = feature["start_positions"], feature["end_positions"]
    assert context[offsets[s][0]:offsets[e][1]] == "7,000,000 square kilometres (2,700"


def test_unfound_answers_are_counted_and_skipped_with_one_warning():
    tok = minilm_tokenizer()
    good = worked_example()
    bad = QAExample("q2", "Who lost?", good.context, ({"text": "Panthers", "answer_start": 3},), "t", 0)
    with pytest.warns(SkippedAnswersWarning, match=r"skipped 1 of 2 training questions whose answer text "
                                                   r"is not at its answer_start in the context, or missing \(first: \['q2'\]\)"):
        encoded = encode_squad([good, bad], tok, training=True)
    assert encoded.counts["skipped_answers"] == 1 and len(encoded) == 1
    assert encode_squad([good, bad], tok, training=False).counts["skipped_answers"] == 0   # eval keeps all


def test_long_questions_are_cut_to_max_query_length():
    tok = minilm_tokenizer()
    example = worked_example()
    long = QAExample("q", " ".join(["why"] * 80), example.context, example.answers, "t", 0)
    encoded = encode_squad([long], tok, training=True)
    assert encoded.counts["questions_cut"] == 1
    assert encoded.features[0]["input_ids"][1:66] == [tok.vocab["why"]] * 64 + [tok.sep_token_id]


# -- the span search -----------------------------------------------------------------

def brute_force_best(feature_rows, start_logits, end_logits, max_answer_length):
    best = None
    for f, feature in feature_rows:
        offsets = feature["offset_mapping"]
        for s in range(len(offsets)):
            for e in range(s, min(len(offsets), s + max_answer_length)):
                if offsets[s] is None or offsets[e] is None:
                    continue
                score = start_logits[f, s] + end_logits[f, e]
                if best is None or score > best[0]:
                    best = (score, offsets[s][0], offsets[e][1])
    return best


def test_span_search_equals_brute_force_over_all_windows(xquad):
    tok = minilm_tokenizer()
    examples = xquad[:40]
    encoded = encode_squad(examples, tok, training=False, max_seq_length=48, doc_stride=16)
    assert len(encoded) > 2 * len(examples)                 # several windows per question
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(2, len(encoded), 48))     # (N, T) each, padding rows included
    # n_best_size >= T: every start and end is looked at, so the best valid span is the global one
    answers, n_best = postprocess_qa_predictions(examples, encoded, start, end, n_best_size=48,
                                                 max_answer_length=5)
    for index, example in enumerate(examples):
        rows = [(f, feat) for f, feat in enumerate(encoded.features) if feat["example_index"] == index]
        score, a, b = brute_force_best(rows, start, end, max_answer_length=5)
        assert answers[example.id] == example.context[a:b]
        assert n_best[example.id][0]["score"] == pytest.approx(score)
        assert len(n_best[example.id]) == 48
        scores = [c["score"] for c in n_best[example.id]]
        assert scores == sorted(scores, reverse=True)


def test_span_search_rules():
    tok = minilm_tokenizer()
    example = worked_example()
    encoded = encode_squad([example], tok, training=False, max_seq_length=32)
    n, t = 1, 32
    # the best raw logits are on [CLS] and the question: not context, never chosen
    start, end = np.full((n, t), -10.0), np.full((n, t), -10.0)
    start[0, 0] = end[0, 0] = start[0, 2] = end[0, 3] = 100.0
    start[0, 9], end[0, 10] = 2.0, 2.0                    # "denver broncos"
    assert postprocess_qa_predictions([example], encoded, start, end)[0]["q1"] == "Denver Broncos"
    # too long: the span "The ... Stadium." has 20 pieces (positions 8 to 27)
    start, end = np.full((n, t), -10.0), np.full((n, t), -10.0)
    start[0, 8], end[0, 27] = 6.0, 5.0
    start[0, 9], end[0, 10] = 1.0, 1.0
    assert postprocess_qa_predictions([example], encoded, start, end, max_answer_length=19)[0]["q1"] == \
        "The Denver Broncos"
    assert postprocess_qa_predictions([example], encoded, start, end, max_answer_length=20)[0]["q1"] == \
        example.context
    # n_best_size=1: only the single best start and end are paired, as run_qa does; an invalid
    # pair leaves no candidate and the answer is "" (run_qa writes "empty")
    start, end = np.zeros((n, t)), np.zeros((n, t))
    start[0, 10], end[0, 9] = 5.0, 5.0
    answers, n_best = postprocess_qa_predictions([example], encoded, start, end, n_best_size=1)
    assert answers == {"q1": ""} and n_best == {"q1": []}


def test_gold_logits_recover_the_answers(xquad):
    # Logits peaked on the training targets, through windows of 128 pieces, give back the gold
    # text for all but the one XQuAD answer that ends inside a word piece ("(2,70" of "(2,700").
    encoded = encode_squad(xquad, minilm_tokenizer(), training=True, max_seq_length=128, doc_stride=32)
    rng = np.random.default_rng(1)
    start, end = rng.normal(size=(2, len(encoded), 128))
    for f, feature in enumerate(encoded.features):
        if feature["start_positions"]:
            start[f, feature["start_positions"]] = end[f, feature["end_positions"]] = 10.0
    answers, _ = postprocess_qa_predictions(xquad, encoded, start, end)
    wrong = {e.id: answers[e.id] for e in xquad if answers[e.id] != e.answers[0]["text"]}
    assert wrong == {"5729e2316aef0514001550c5": "7,000,000 square kilometres (2,700"}
    scores = squad_scores(answers, references(xquad))
    assert scores["exact_match"] == pytest.approx(100 * 1189 / 1190)


# -- errors ----------------------------------------------------------------------------

def squad_file(**qa_overrides):
    qa = {"id": "a", "question": "q?", "answers": [{"text": "c", "answer_start": 0}], **qa_overrides}
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [qa]}]}]}


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="SQuAD file not found: .*none.json"):
        read_squad(tmp_path / "none.json")
    with pytest.raises(DataFormatError, match=r"x\.json is not SQuAD JSON: Expecting"):
        read_squad(write(tmp_path / "x.json", '{"data": ['))
    with pytest.raises(DataFormatError, match=r"x\.json, the top level: no 'data' field \(SQuAD v1\.1 layout expected\)"):
        read_squad(write(tmp_path / "x.json", {"version": "2.0"}))
    file = squad_file()
    del file["data"][0]["paragraphs"][0]["qas"][0]["id"]
    with pytest.raises(DataFormatError, match=r"x\.json, data\[0\]\.paragraphs\[0\]\.qas\[0\]: no 'id' field"):
        read_squad(write(tmp_path / "x.json", file))
    with pytest.raises(DataFormatError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]\.answer_start: "
                                              r"expected int, found str"):
        read_squad(write(tmp_path / "x.json", squad_file(answers=[{"text": "c", "answer_start": "0"}])))
    file = squad_file()
    file["data"][0]["paragraphs"].append(file["data"][0]["paragraphs"][0])
    with pytest.raises(DataFormatError, match=r"data\[0\]\.paragraphs\[1\]\.qas\[0\]: the id 'a' is used twice"):
        read_squad(write(tmp_path / "x.json", file))
    with pytest.raises(EmptyFileError, match=r"x\.json has no question"):
        read_squad(write(tmp_path / "x.json", {"data": []}))
    with pytest.raises(DataFormatError, match=r"data\[0\]: expected a JSON object, found list"):
        read_squad(write(tmp_path / "x.json", {"data": [[]]}))
    assert read_squad(write(tmp_path / "x.json", "\ufeff" + json.dumps(squad_file())))[0].id == "a"   # a BOM
    with pytest.raises(ValueError, match="split must be 'train' or 'eval', got 'dev'"):
        read_xquad(write(tmp_path / "x.json", squad_file()), "dev")


def test_encoding_and_postprocessing_errors():
    tok = minilm_tokenizer()
    example = worked_example()
    with pytest.raises(ValueError, match="max_seq_length=3 and max_query_length=64 leave no room"):
        encode_squad([example], tok, training=True, max_seq_length=3)
    with pytest.raises(ValueError, match="question q1 leaves no room for context in 9 positions"):
        encode_squad([example], tok, training=True, max_seq_length=9)
    with pytest.raises(ValueError, match="doc_stride=128 must be smaller than the 11 context pieces"):
        encode_squad([example], tok, training=True, max_seq_length=20)
    assert encode_squad([], tok, training=True).counts["features"] == 0
    encoded = encode_squad([example], tok, training=False)
    with pytest.raises(ValueError, match=r"start_logits and end_logits should both be \(N, T\) with N = 1 "
                                         r"features, got \(2, 8\) and \(2, 8\)"):
        postprocess_qa_predictions([example], encoded, np.zeros((2, 8)), np.zeros((2, 8)))
