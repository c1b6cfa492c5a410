"""Data augmentation with a masked-LM: new sentences keep their words but a fraction, replacements are whole
words of the vocabulary, seeded; the TSV keeps labels and counts; the label filter keeps only agreeing rows."""
from __future__ import annotations

import numpy
import pytest

from helpers import tiny_pretraining_flags, tiny_pretraining_inputs
from minibert.apps.augment import Augmenter, augment_examples, augment_tsv, replaceable
from minibert.apps.fill_mask import mask_probabilities
from minibert.cli import main
from minibert.data.tasks.glue import read_glue
from minibert.errors import InputError

SENTENCES = ["the cat sat on the mat .", "a dog ran , and the bird sang !", "over the hill by the river"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny `minibert pretrain` run (about 1.5 s)."""
    root = tmp_path_factory.mktemp("aug")
    (root / "in").mkdir()
    tiny_pretraining_inputs(root / "in")
    assert main(tiny_pretraining_flags(root / "in", root / "run")) == 0
    return root / "run"


@pytest.fixture(scope="module")
def augmenter(run):
    return Augmenter.load(run)


def changed(a: str, b: str) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a.split(), b.split())) if x != y]


def test_variants_replace_a_fraction_of_words_with_whole_words(augmenter):
    tok = augmenter.tokenizer
    for sentence in SENTENCES:
        rows = augmenter.variants(sentence, 4, seed=3)
        assert len(rows) == 4
        words = sentence.split()
        m = max(1, round(0.15 * sum(replaceable(w) for w in words)))
        for row in rows:
            assert len(row.split()) == len(words)
            where = changed(sentence, row)
            assert len(where) == m                              # every masked word changed (the original excluded)
            for i in where:
                new = row.split()[i]
                assert replaceable(words[i]) and new in tok.vocab and not new.startswith("##")
                assert new not in tok.all_special_tokens


def test_fraction_one_replaces_every_word_but_punctuation(augmenter):
    aug = Augmenter(augmenter.model, augmenter.tokenizer, fraction=1.0)
    row = aug.variants("a dog ran , and the bird sang !", 1, seed=0)[0]
    assert changed("a dog ran , and the bird sang !", row) == [0, 1, 2, 4, 5, 6, 7]
    assert row.split()[3] == "," and row.split()[8] == "!"
    assert aug.variants(", . !", 2) == [", . !", ", . !"]    # nothing replaceable: unchanged


def test_seeded_and_top_k_one_is_the_argmax(augmenter):
    assert augmenter.variants(SENTENCES[0], 3, seed=1) == augmenter.variants(SENTENCES[0], 3, seed=1)
    many = {row for s in range(6) for row in augmenter.variants(SENTENCES[0], 2, seed=s)}
    assert len(many) > 1
    greedy = Augmenter(augmenter.model, augmenter.tokenizer, fraction=1.0, top_k=1)
    rows = {greedy.variants("the cat sat", 1, seed=s)[0] for s in range(4)}
    assert len(rows) == 1                                      # every word masked, the best whole word each time


def test_mask_logits_match_fill_mask(augmenter):
    tok = augmenter.tokenizer
    ids = augmenter._masked_ids("the cat sat on the mat".split(), {1, 4})
    (logits,) = augmenter._mask_logits([ids])
    p = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = mask_probabilities(augmenter.model, tok, f"the {tok.mask_token} sat on {tok.mask_token} mat")
    assert numpy.allclose(p, expected, atol=1e-6)


def test_bad_settings(augmenter):
    for kw in ({"fraction": 0}, {"fraction": 1.5}, {"temperature": 0}, {"top_k": -1}):
        with pytest.raises(InputError):
            Augmenter(augmenter.model, augmenter.tokenizer, **kw)
    with pytest.raises(InputError, match=">= 1"):
        augmenter.variants("a b", 0)


def write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{s} \t{y}\n" for s, y in rows), encoding="utf-8")
    return path


def test_tsv_keeps_labels_and_counts(augmenter, tmp_path):
    src = write_tsv(tmp_path / "train.tsv", [(SENTENCES[0], 1), (SENTENCES[1], 0), (SENTENCES[2], 1)])
    counts = augment_tsv(augmenter, src, tmp_path / "aug.tsv", 3, seed=5)
    assert counts == {"examples": 3, "new": 9, "written": 12, "filtered_out": 0}
    out = read_glue(tmp_path / "aug.tsv", "sst2")              # a valid SST-2 file
    assert [e.label for e in out] == [1] * 4 + [0] * 4 + [1] * 4
    assert [e.text_a for e in out[::4]] == SENTENCES            # each original first, then its new rows
    assert all(len(changed(out[4 * (i // 4)].text_a, e.text_a)) >= 1 for i, e in enumerate(out) if i % 4)


class OnlyWithoutCat:
    """A stand-in classifier: label 1 unless the sentence says "cat"."""
    def predict(self, sentences):
        return numpy.array([0 if "cat" in s.split() else 1 for s in sentences])


def test_filter_keeps_only_rows_labelled_as_the_source(augmenter):
    examples = read_glue_rows([("the cat sat", 1)])
    kept = augment_examples(augmenter, examples, 3, seed=0, label_filter=OnlyWithoutCat(), tries=50)[0]
    assert all("cat" not in s.split() for s in kept) and len(kept) == 3
    none = augment_examples(Augmenter(augmenter.model, augmenter.tokenizer, fraction=0.1), examples, 2, seed=0,
                            label_filter=OnlyWithoutCat(), tries=1)[0]
    assert all("cat" not in s.split() for s in none)           # at most 2: "cat" is seldom the word masked


def read_glue_rows(rows):
    from minibert.data.tasks.glue import SequenceExample
    return [SequenceExample(i, s, None, y, i + 2) for i, (s, y) in enumerate(rows)]


def test_cli_with_a_real_filter_model(run, tmp_path, capsys):
    rng = numpy.random.default_rng(0)
    words = "the cat sat on a mat and dog ran to house".split()
    train = write_tsv(tmp_path / "t.tsv", [(" ".join(rng.choice(words, 5)), i % 2) for i in range(12)])
    assert main(["finetune", "--no-progress", "--task", "sst2", "--train", str(train), "--dev", str(train),
                 "--model", str(run), "--epochs", "1", "--batch-size", "4", "--max-seq-len", "16",
                 "--out", str(tmp_path / "ft")]) == 0
    capsys.readouterr()
    assert main(["augment", "--model", str(run), "--in", str(train), "--out", str(tmp_path / "a.tsv"),
                 "--per-example", "2", "--filter-model", str(tmp_path / "ft"), "--limit", "4"]) == 0
    said = capsys.readouterr().out
    out = read_glue(tmp_path / "a.tsv", "sst2")
    assert f"{len(out)} rows (4 original" in said and 4 <= len(out) <= 12
    assert main(["augment", "--model", str(run), "--in", str(train), "--out", str(tmp_path / "b.tsv"),
                 "--per-example", "2"]) == 0
    assert len(read_glue(tmp_path / "b.tsv", "sst2")) == 36


@pytest.mark.slow
def test_the_benchmark_script_runs(run, tmp_path):
    """benchmarks/eval_augment.py on 8 sentences, 3 steps, 16 dev sentences: the table and the JSON (not the figures)."""
    import json
    import subprocess
    import sys

    from helpers import REPO, data_path, minilm_path
    minilm_path()
    data = data_path("sst2").parent
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "eval_augment.py"), "--mlm", str(run), "--sizes", "8",
                        "--seeds", "0", "--per-example", "1", "--min-steps", "2", "--dev-limit", "16",
                        "--data", str(data), "--out", str(tmp_path), "--filter"], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rows 16" in r.stdout and "plain" in r.stdout and "filtered" in r.stdout
    result = json.loads((tmp_path / "results.json").read_text())
    runs = [(x["arm"], x["rows"], x["steps"]) for x in result["runs"]]
    assert runs[:2] == [("plain", 8, 3), ("augmented", 16, 3)]          # 3 epochs of 1 step
    filtered = result["runs"][2]                                        # the plain arm's classifier kept some rows
    assert filtered["arm"] == "filtered" and filtered["rows"] == 16 - filtered["filtered_out"] and filtered["steps"] == 3


def test_runs_on_every_backend(run, xp):
    """Under the strict CuPy stand-in too: the model on the device, the ids and the sampling on the host."""
    aug = Augmenter.load(run)
    rows = aug.variants(SENTENCES[1], 3, seed=2)
    assert len(rows) == 3 and all(len(changed(SENTENCES[1], r)) == 1 for r in rows)
