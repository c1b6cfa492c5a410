"""`minibert records`: reading CSVs, the classifier head, the row checks, the report, the errors.

The example CSV (examples/xquad_records.csv, 196 real XQuAD questions from 8 Wikipedia
articles, 11 rows damaged on purpose and listed in xquad_records.damage.json) drives the
end-to-end tests; it is in the repository, so nothing here needs ../shared.
"""
from __future__ import annotations

import csv
import json

import numpy
import pytest
from helpers import REPO, write

import minibert.__main__
from minibert.apps.records import (RecordsError, SoftmaxHead, analyse, cross_validate, far_from_clusters,
                                   read_csv, row_text, stratified_folds)

EXAMPLE = REPO / "examples" / "xquad_records.csv"
DAMAGE = json.loads(EXAMPLE.with_suffix(".damage.json").read_text())


# -- reading ---------------------------------------------------------------------------------

def test_read_csv_quotes_bom_short_and_long_rows(tmp_path):
    path = write(tmp_path / "data.csv", '\ufeffa,b,c\n1,"two, with a comma",3\n4,"a ""quoted"" word"\n\n7,8,9,10\n')
    table = read_csv(path)
    assert table.columns == ["a", "b", "c"]
    assert table.rows[0]["b"] == "two, with a comma"
    assert table.rows[1] == {"a": "4", "b": 'a "quoted" word', "c": ""}
    assert table.malformed == [False, True, True]
    tsv = write(tmp_path / "data.tsv", "x\ty\nhello\tworld\n")
    assert read_csv(tsv).rows == [{"x": "hello", "y": "world"}]


@pytest.mark.parametrize("text,match", [
    (None, "no CSV file at"),
    ("", "is empty"),
    ("a,b\n", "has a header but no rows"),
    (",\n1,2\n", "first line should be a header"),
    ("a,a\n1,2\n", r"names column\(s\) \['a'\] more than once"),
])
def test_read_csv_errors(tmp_path, text, match):
    path = tmp_path / "missing.csv" if text is None else write(tmp_path / "data.csv", text)
    with pytest.raises(RecordsError, match=match):
        read_csv(path)


def test_row_text_joins_and_skips_placeholders():
    row = {"q": "What is it?", "a": "a cat", "b": "N/A", "c": "  ", "d": "done"}
    assert row_text(row, ["q", "a", "b", "c", "d"]) == "What is it? a cat. done"
    assert row_text(row, ["b", "c"]) == ""


# -- the head, cross-validation, the far-from-clusters rule -----------------------------------

def test_softmax_head_learns_with_adamw():
    rng = numpy.random.default_rng(0)
    centres = rng.normal(size=(3, 10)) * 3
    y = rng.integers(0, 3, 150)
    x = centres[y] + rng.normal(size=(150, 10))
    head = SoftmaxHead(10, ["a", "b", "c"], seed=0)
    losses = head.fit(x, y, epochs=60, lr=0.05)
    assert losses[-1] < 0.25 * losses[0]
    p = head.predict_proba(x)
    numpy.testing.assert_allclose(p.sum(1), 1.0)
    assert (p.argmax(1) == y).mean() > 0.95


def test_head_gradient_matches_finite_differences():
    """The head's backward (minibert's linear + cross-entropy ops) against central differences."""
    from minibert.ops.linear import linear_backward
    from minibert.ops.losses import cross_entropy_backward, cross_entropy_forward

    rng = numpy.random.default_rng(1)
    head = SoftmaxHead(5, [0, 1, 2, 3], seed=1)
    head.params["classifier.bias"][...] = rng.normal(size=4)
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 4, 7)

    def loss():
        return float(cross_entropy_forward(head.logits(x)[0], y)[0])

    logits, c_lin = head.logits(x)
    _, c_ce = cross_entropy_forward(logits, y)
    _, dw, db = linear_backward(cross_entropy_backward(1.0, c_ce), c_lin, need_dx=False)
    for name, grad in (("classifier.weight", dw), ("classifier.bias", db)):
        p = head.params[name]
        numeric = numpy.zeros_like(p)
        for i in numpy.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = loss()
            p[i] = old - 1e-6
            down = loss()
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        assert numpy.abs(numeric - grad).max() / max(1e-8, numpy.abs(grad).max()) < 1e-6, name


def test_stratified_folds_and_cross_validation():
    y = numpy.array([0] * 10 + [1] * 5 + [2] * 3)
    folds = stratified_folds(y, 3, seed=0)
    for cls in range(3):
        counts = numpy.bincount(folds[y == cls], minlength=3)
        assert counts.max() - counts.min() <= 1
    rng = numpy.random.default_rng(0)
    x = numpy.eye(3)[y] * 4 + rng.normal(size=(18, 3)) * 0.3
    cv = cross_validate(x, [["x", "y", "z"][v] for v in y], folds=3, epochs=80, lr=0.05)
    assert cv["accuracy"] == 1.0 and cv["majority"] == pytest.approx(10 / 18)
    with pytest.raises(RecordsError, match="only one value"):
        cross_validate(x, ["same"] * 18)


def test_far_from_clusters_flags_only_beyond_the_fence():
    rng = numpy.random.default_rng(0)
    distances = rng.uniform(0.8, 1.2, (100, 3))             # no tail: nothing but row 7 stands out
    distances[7] = [5.0, 6.0, 7.0]                          # far from every centre
    distances[9] = [5.0, 0.9, 7.0]                          # far from two, near one: not flagged
    flags, nearest, fence = far_from_clusters(distances)
    numpy.testing.assert_array_equal(numpy.flatnonzero(flags), [7])
    q1, q3 = numpy.percentile(nearest, [25, 75])
    assert fence == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert not far_from_clusters(numpy.ones((10, 2)))[0].any()      # nothing stands out: no flag


# -- the example CSV, end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def example_result():
    table = read_csv(EXAMPLE)
    return table, analyse(table, ["question", "answer"], "article", seed=0)


def test_example_is_what_the_readme_says(example_result):
    table, _ = example_result
    assert len(table.rows) == 196 and table.columns == ["id", "question", "answer", "article"]
    ids = {row["id"] for row in table.rows}
    assert set(DAMAGE) <= ids and len(DAMAGE) == 11


def test_example_clusters_and_held_out_accuracy(example_result):
    _, result = example_result
    cv = result["cv"]
    print(f"\nexample CSV: {cv['folds']}-fold held-out accuracy {cv['accuracy']:.3f} (majority {cv['majority']:.3f}); "
          f"k-means k={result['k']} vs labels: ARI {result['ari']:.3f}, best-match {result['best_match_accuracy']:.3f}")
    assert result["k"] == 8 and len(cv["classes"]) == 8
    assert cv["accuracy"] > 0.8 > 0.2 > cv["majority"]
    assert result["ari"] > 0.5


def test_example_flags_the_damaged_rows(example_result):
    table, result = example_result
    flags = {row["id"]: set(f) for row, f in zip(table.rows, result["flags"])}
    expected = {
        "empty answer": {"empty:answer"}, "blank question (spaces only)": {"empty:question"},
        "placeholder answer": {"placeholder:answer"}, "placeholder question": {"placeholder:question"},
        "missing label": {"missing_label"},
    }
    for row_id, why in DAMAGE.items():
        if why in expected:
            assert expected[why] <= flags[row_id], (row_id, why, flags[row_id])
        elif why.startswith("duplicate of") or why.startswith("original of"):
            assert {"duplicate", "conflicting_labels"} <= flags[row_id], (row_id, flags[row_id])
    duplicate = next(i for i in DAMAGE if i.endswith("-dup"))
    assert "label_disagrees" in flags[duplicate]          # the copy's label is the wrong one
    far = [row_id for row_id, f in flags.items() if "far_from_clusters" in f]
    print(f"\nflagged rows {sum(1 for f in flags.values() if f)}; far_from_clusters: {far or 'none'}; "
          f"fence {result['fence']:.3f}; injected rows not flagged: "
          f"{[DAMAGE[i] for i in DAMAGE if not flags[i]]}")


def test_records_command_writes_the_report(tmp_path, capsys):
    out, plot = tmp_path / "report.csv", tmp_path / "records.png"
    assert minibert.__main__.main(["records", "--csv", str(EXAMPLE), "--text-columns", "question,answer",
                                   "--label-column", "article", "--out", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    assert "held-out accuracy" in printed and "flagged rows" in printed
    with out.open(encoding="utf-8") as f:
        report = list(csv.DictReader(f))
    assert len(report) == 196
    assert list(report[0]) == ["id", "question", "answer", "article", "row", "text", "cluster",
                               "cluster_distance", "predicted", "p_given_label", "flags"]
    assert plot.stat().st_size > 1000
    missing = next(r for r in report if DAMAGE.get(r["id"]) == "missing label")
    assert missing["predicted"] == "" and missing["cluster"] != "" and "missing_label" in missing["flags"]


def test_records_without_labels_and_input_errors(tmp_path, capsys, monkeypatch):
    main = minibert.__main__.main
    small = write(tmp_path / "data.csv", "name,notes\nalpha,the cat sat on the mat\nbeta,\ngamma,stocks fell\n"
                                         "delta,a kitten on a rug\n")
    monkeypatch.chdir(tmp_path)                 # the default --out: runs/records/report.csv, not the current folder
    assert main(["records", "--csv", str(small), "--text-columns", "notes", "--clusters", "2"]) == 0
    out = tmp_path / "runs" / "records" / "report.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "runs"]
    report = list(csv.DictReader(out.open(encoding="utf-8")))
    assert report[1]["flags"] == "empty:notes" and report[1]["cluster"] == ""
    assert "held-out accuracy" not in capsys.readouterr().out
    for args, match in [
        (["--text-columns", "nope"], r"text column\(s\) \['nope'\] not in the CSV's header; it has: name, notes"),
        (["--text-columns", "notes", "--label-column", "label"], r"label column\(s\) \['label'\] not in"),
        (["--text-columns", "notes", "--label-column", "notes"], "both a text column and the label column"),
        (["--text-columns", ","], "no text columns given"),
        (["--text-columns", "notes", "--clusters", "0"], "argument --clusters: must be an integer >= 1, got 0"),
    ]:
        with pytest.raises(SystemExit, match=match):
            main(["records", "--csv", str(small), "--out", str(out)] + args)
    empty_text = write(tmp_path / "e.csv", "a,b\n1,\n2,N/A\n")
    with pytest.raises(SystemExit, match="every row is empty in the text columns"):
        main(["records", "--csv", str(empty_text), "--text-columns", "b", "--out", str(out)])
    with pytest.raises(SystemExit, match="no CSV file at"):
        main(["records", "--csv", str(tmp_path / "none.csv"), "--text-columns", "b"])
