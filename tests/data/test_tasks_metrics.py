"""minibert.data.tasks.metrics against the references: seqeval 1.2.2 (NER), scikit-learn (confusion
matrix), and hand-computed cases of SQuAD v1.1's official evaluate-v1.1.py definitions."""
from __future__ import annotations

import doctest
import random
import warnings

import numpy as np
import pytest

from minibert.data.tasks import metrics
from minibert.data.tasks.metrics import (
    accuracy, confusion_matrix, exact_match_score, f1_score, get_entities, ner_scores,
    normalize_answer, squad_scores,
)
from helpers import data_path


def seqeval():
    """The seqeval package (the reference), or skip: only the NER parity tests need it."""
    return pytest.importorskip("seqeval.metrics", reason="seqeval (test reference, "
                               "requirements-dev.txt) is not installed")


def seqeval_get_entities(tags):
    """seqeval's default (conlleval) entities: (type, start, end) with end *inclusive*."""
    seqeval()
    from seqeval.metrics.sequence_labeling import get_entities as reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # "seems not to be NE tag" for bare B / I
        return reference(list(tags))


def seqeval_strict_entities(tags):
    """seqeval's strict IOB2 entities: (type, start, end), end exclusive."""
    seqeval()
    from seqeval.scheme import IOB2, Entities
    return [(e.tag, e.start, e.end) for e in Entities([list(tags)], IOB2).entities[0]]


def seqeval_scores(true_tags, pred_tags, mode):
    """seqeval's numbers as Hugging Face's run_ner reads them (classification_report, micro avg)."""
    reference = seqeval()
    from seqeval.scheme import IOB2
    options = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # zero-division warnings on empty types
        report = reference.classification_report(true_tags, pred_tags, output_dict=True, **options)
        accuracy_score = reference.accuracy_score(true_tags, pred_tags)
    return report, accuracy_score


def assert_same_as_seqeval(true_tags, pred_tags, mode):
    ours = ner_scores(true_tags, pred_tags, mode)
    report, accuracy_score = seqeval_scores(true_tags, pred_tags, mode)
    micro = report.pop("micro avg")
    for key, theirs in (("precision", micro["precision"]), ("recall", micro["recall"]),
                        ("f1", micro["f1-score"])):
        assert ours[key] == pytest.approx(theirs, abs=1e-12), (mode, key)
    assert ours["n_true"] == micro["support"]
    assert ours["accuracy"] == pytest.approx(accuracy_score, abs=1e-12)
    types = {k: v for k, v in report.items() if not k.endswith(" avg")}
    assert sorted(ours["per_type"]) == sorted(types)
    for type_, theirs in types.items():
        mine = ours["per_type"][type_]
        assert mine["precision"] == pytest.approx(theirs["precision"], abs=1e-12)
        assert mine["recall"] == pytest.approx(theirs["recall"], abs=1e-12)
        assert mine["f1"] == pytest.approx(theirs["f1-score"], abs=1e-12)
        assert mine["support"] == theirs["support"]
    return ours


# -- entities: hand-made edge cases ----------------------------------------------

EDGE_CASES = [
    # (tags, conlleval entities, strict IOB2 entities), end exclusive
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)], []),                          # I-X after O
    (["B-PER", "I-LOC", "O"], [("PER", 0, 1), ("LOC", 1, 2)], [("PER", 0, 1)]),   # type switch
    (["B-PER", "I-PER", "I-LOC", "I-LOC"], [("PER", 0, 2), ("LOC", 2, 4)], [("PER", 0, 2)]),
    (["O", "B-LOC"], [("LOC", 1, 2)], [("LOC", 1, 2)]),                            # span at the end
    (["O", "B-LOC", "I-LOC"], [("LOC", 1, 3)], [("LOC", 1, 3)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)], [("PER", 0, 1), ("PER", 1, 3)]),
    (["B-PER", "B-LOC"], [("PER", 0, 1), ("LOC", 1, 2)], [("PER", 0, 1), ("LOC", 1, 2)]),
    (["I-PER"], [("PER", 0, 1)], []),                                               # lone I
    (["I-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)], [("PER", 1, 2)]),
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 2)], [("creative-work", 0, 2)]),
    (["O", "O"], [], []),
    ([], [], []),
    (["B", "I", "O", "I"], [("_", 0, 2), ("_", 3, 4)], [("_", 0, 2)]),             # bare tags: type "_"
]


@pytest.mark.parametrize("tags,conlleval,strict", EDGE_CASES)
def test_entities_hand_cases_and_seqeval(tags, conlleval, strict):
    assert get_entities(tags, "conlleval") == conlleval
    assert get_entities(tags, "strict") == strict
    assert [(t, s, e + 1) for t, s, e in seqeval_get_entities(tags)] == conlleval
    assert seqeval_strict_entities(tags) == strict


@pytest.mark.parametrize("tags", [
    ["S-PER", "O", "B-LOC", "E-LOC", "O"], ["B-LOC", "I-LOC", "E-LOC", "E-LOC"],
    ["E-PER", "I-PER", "S-PER", "S-LOC", "I-LOC"], ["O", "E-PER", "B-PER", "S-PER"],
])
def test_conlleval_mode_takes_iobes_tags_as_seqeval_does(tags):
    theirs = seqeval_get_entities(tags)
    assert get_entities(tags) == [(t, s, e + 1) for t, s, e in theirs]


def test_sentence_boundaries_end_entities():
    true = [["O", "B-PER", "I-PER"], ["I-PER", "O"]]
    pred = [["O", "B-PER", "I-PER"], ["B-PER", "O"]]
    for mode in ("conlleval", "strict"):
        assert_same_as_seqeval(true, pred, mode)


def test_bad_tags_raise():
    with pytest.raises(ValueError, match=r"tag 'E-PER' is not a BIO tag; strict mode allows O, B-X, I-X \(IOB2\)"):
        get_entities(["B-PER", "E-PER"], "strict")
    with pytest.raises(ValueError, match=r"tag 'PER' is not a BIO tag"):
        get_entities(["PER"])
    with pytest.raises(ValueError, match=r"tag 'B-' is not a BIO tag"):
        get_entities(["B-"])
    with pytest.raises(TypeError, match="tags must be strings, got int 3"):
        get_entities([3])
    with pytest.raises(ValueError, match="mode must be one of"):
        get_entities(["O"], "iob1")
    with pytest.raises(ValueError, match="2 true sentences but 1 predicted ones"):
        ner_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 0 has 2 true tags but 1 predicted ones"):
        ner_scores([["O", "O"]], [["O"]])


# -- entities: WNUT-17 gold against perturbed predictions --------------------------

def wnut_tags(split):
    sentences, current = [], []
    for line in data_path(f"wnut17/{split}.conll").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(line.split("\t")[1])
    return sentences + ([current] if current else [])


def perturb(sentences, seed):
    """Predictions with every kind of mistake: random tags, B->I (I after O), type switches,
    spans cut short or extended, entities dropped."""
    rng = random.Random(seed)
    types = ["corporation", "creative-work", "group", "location", "person", "product"]
    labels = ["O"] + [f"{p}-{t}" for p in "BI" for t in types]
    out = []
    for tags in sentences:
        tags = list(tags)
        for i, tag in enumerate(tags):
            r = rng.random()
            if r < 0.04:
                tags[i] = rng.choice(labels)
            elif r < 0.10 and tag.startswith("B-"):
                tags[i] = "I-" + tag[2:]
            elif r < 0.16 and tag != "O":
                tags[i] = tag[:2] + rng.choice(types)
            elif r < 0.20 and tag.startswith("I-"):
                tags[i] = "O"
            elif r < 0.23 and tag == "O" and i and tags[i - 1] != "O":
                tags[i] = "I-" + tags[i - 1][2:]
        out.append(tags)
    return out


@pytest.mark.parametrize("split", ["dev", "test"])
@pytest.mark.parametrize("mode", ["conlleval", "strict"])
def test_ner_scores_match_seqeval_on_wnut17(split, mode):
    gold = wnut_tags(split)
    pred = perturb(gold, seed=len(gold))
    ours = assert_same_as_seqeval(gold, pred, mode)
    assert 0.3 < ours["f1"] < 0.95          # the perturbation is neither nothing nor everything
    perfect = ner_scores(gold, gold, mode)
    assert perfect["f1"] == perfect["precision"] == perfect["recall"] == 1.0


def test_modes_differ_only_on_stray_inside_tags():
    true = [["B-PER", "I-PER", "O"]]
    pred = [["I-PER", "I-PER", "O"]]                # the B was predicted as I
    assert ner_scores(true, pred, "conlleval")["f1"] == 1.0     # conlleval: still one PER entity
    assert ner_scores(true, pred, "strict")["f1"] == 0.0        # IOB2 strict: no entity at all
    for mode in ("conlleval", "strict"):
        assert_same_as_seqeval(true, pred, mode)


def test_gold_wnut17_entity_counts_match_data_readme():
    # shared/data/README.md: 1,975 / 836 / 1,079 entities; the gold has no I-X after O, so
    # both modes agree on it.
    for split, expected in (("train", 1975), ("dev", 836), ("test", 1079)):
        gold = wnut_tags(split)
        assert sum(len(get_entities(t)) for t in gold) == expected
        assert sum(len(get_entities(t, "strict")) for t in gold) == expected


# -- classification -------------------------------------------------------------------

def test_accuracy_and_confusion_matrix_against_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, size=101)
    predictions = np.where(rng.random(101) < 0.7, labels, rng.integers(0, 3, size=101))
    counts = confusion_matrix(labels, predictions, 3)
    np.testing.assert_array_equal(counts, sklearn_metrics.confusion_matrix(labels, predictions,
                                                                           labels=[0, 1, 2]))
    assert accuracy(predictions, labels) == pytest.approx(sklearn_metrics.accuracy_score(labels, predictions))
    assert accuracy(predictions, labels) == pytest.approx(np.trace(counts) / counts.sum())
    # hand case: a label never predicted still gets its row
    np.testing.assert_array_equal(confusion_matrix([0, 0, 2], [0, 1, 1], 3),
                                  [[1, 1, 0], [0, 0, 0], [0, 1, 0]])


def test_classification_metric_errors():
    with pytest.raises(ValueError, match=r"predictions have shape \(2,\), labels \(3,\)"):
        accuracy([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="accuracy of no examples is undefined"):
        accuracy([], [])
    with pytest.raises(ValueError, match=r"prediction id 3 is outside 0\.\.2"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match=r"label id -1 is outside 0\.\.1"):
        confusion_matrix([-1], [0], 2)
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        confusion_matrix([0, 1], [0], 2)


# -- SQuAD v1.1 -------------------------------------------------------------------------
# Hand-computed from evaluate-v1.1.py's definitions: normalize = lower, drop
# string.punctuation, replace \b(a|an|the)\b by a space, ' '.join(split()).

@pytest.mark.parametrize("text,normalized", [
    ("The Broncos", "broncos"),
    ("  Denver   Broncos. ", "denver broncos"),
    ("A-ha!", "aha"),                          # punctuation goes first, then the article check
    ("an apple, the pear and a plum", "apple pear and plum"),
    ("Theatre", "theatre"),                    # \b: "the" inside a word stays
    ("the", ""),
    ("Saint-Saëns’ “Danse”", "saintsaëns’ “danse”"),   # only ASCII punctuation is removed
    ("1,000", "1000"),
])
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_and_f1_hand_cases():
    assert exact_match_score("the Denver Broncos", "Denver Broncos!")
    assert not exact_match_score("Denver", "Denver Broncos")
    assert exact_match_score("the", "a")                        # both normalize to ""
    assert f1_score("Denver Broncos", "Denver Broncos") == 1.0
    assert f1_score("Denver", "Denver Broncos") == pytest.approx(2 / 3)          # p=1, r=1/2
    assert f1_score("the Carolina Panthers team", "Carolina Panthers") == pytest.approx(0.8)  # p=2/3, r=1
    assert f1_score("Panthers Panthers", "Panthers") == pytest.approx(2 / 3)     # bag of words: p=1/2
    assert f1_score("the", "a") == 0.0                           # no shared word: 0 even if both empty
    assert f1_score("", "Broncos") == 0.0


def test_squad_scores_max_over_gold_and_missing():
    references = {"q1": ["Denver Broncos", "the Broncos"], "q2": ["Carolina Panthers"],
                  "q3": ["Santa Clara"]}
    predictions = {"q1": "Broncos", "q2": "Panthers team", "extra": "ignored"}
    scores = squad_scores(predictions, references)
    # q1: EM 1 ("broncos" == "broncos"), F1 1; q2: EM 0, F1 p=1/2 r=1/2 -> 1/2; q3 missing: 0
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * 1.5 / 3)
    assert scores["total"] == 3 and scores["missing"] == 1
    with pytest.raises(ValueError, match="question q has no gold answer"):
        squad_scores({"q": "x"}, {"q": []})
    with pytest.raises(ValueError, match="at least one reference question"):
        squad_scores({}, {})


def test_docstring_examples_run():
    from minibert.data.tasks import batching, spec, squad
    for module in (metrics, batching, spec, squad):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_device_arrays_are_brought_to_the_host(xp):
    # Logits and predictions come from the model on the device; the metrics and the
    # post-processing must copy them with backend.to_host, never np.asarray (CuPy refuses it).
    from minibert.data.tasks.batching import Encoded
    from minibert.data.tasks.ner import word_predictions
    from minibert.data.tasks.squad import QAExample, postprocess_qa_predictions
    if xp is not np:
        with pytest.raises(TypeError, match="implicit conversion"):
            np.asarray(xp.asarray([1, 2]))                 # the stand-in is as strict as CuPy
    assert accuracy(xp.asarray([1, 0, 1]), xp.asarray([1, 1, 1])) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(confusion_matrix(xp.asarray([0, 1]), xp.asarray([1, 1]), 2), [[0, 1], [0, 1]])
    encoded = Encoded([{"input_ids": [101, 7, 102], "word_starts": [1], "example_index": 0}])
    assert word_predictions(xp.asarray([[0, 1, 0]]), encoded, {0: "O", 1: "B-x"}) == [["B-x"]]
    example = QAExample("q", "?", "ab", ({"text": "ab", "answer_start": 0},), "t", 0)
    encoded = Encoded([{"input_ids": [101, 1, 102, 5, 102], "offset_mapping": [None, None, None, (0, 2), None],
                        "example_index": 0}])
    logits = xp.asarray([[0.0, 0.0, 0.0, 1.0, 0.0]])
    assert postprocess_qa_predictions([example], encoded, logits, logits)[0] == {"q": "ab"}
