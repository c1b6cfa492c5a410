"""minibert.viz's fine-tuning plots: the curves drawn from log rows (live or from a run folder), the confusion matrix.

The figures are checked by what they hold (the plotted data, the titles, the counts written in
the cells), not by their pixels.
"""
from __future__ import annotations

import json

import numpy
import pytest

pytest.importorskip("matplotlib")

from minibert.viz import finetuning_figure, plot_confusion, plot_finetuning  # noqa: E402

TRAIN = [{"step": s, "epoch": 1, "loss": 0.7 - 0.05 * s, "lr": 1e-4} for s in range(1, 7)]
EVALS = [{"step": 3, "epoch": 1, "train_loss": 0.6, "dev_loss": 0.65, "accuracy": 0.6, "_confusion": [[1, 2], [3, 4]]},
         {"step": 6, "epoch": 1, "train_loss": 0.45, "dev_loss": 0.62, "accuracy": 0.7}]


def _lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_finetuning_figure_plots_the_rows():
    fig = finetuning_figure(TRAIN, EVALS, title="sst2", total_steps=10)
    ax_loss, ax_metric = fig.axes[:2]
    loss = _lines(ax_loss)
    assert loss["train loss (per step)"] == ([1, 2, 3, 4, 5, 6], [r["loss"] for r in TRAIN])
    assert loss["train loss (mean since last eval)"] == ([3, 6], [0.6, 0.45])
    assert loss["dev loss"] == ([3, 6], [0.65, 0.62])
    assert _lines(ax_metric) == {"dev accuracy": ([3, 6], [0.6, 0.7])}       # only the metrics the rows have
    assert ax_loss.get_title() == "sst2: loss"
    for ax in (ax_loss, ax_metric):                                          # fixed axis: a live plot does not rescale
        assert ax.get_xlim() == pytest.approx((0, 10.3))


def test_finetuning_figure_before_the_first_evaluation():
    fig = finetuning_figure(TRAIN[:2], [])
    ax_loss, ax_metric = fig.axes[:2]
    assert list(_lines(ax_loss)) == ["train loss (per step)"]
    assert ax_metric.get_lines() == [] and ax_loss.get_title() == "loss"
    fig = finetuning_figure(TRAIN[:2], [{"step": 2, "train_loss": 1.0, "dev_loss": 1.1, "f1": 0.2, "precision": 0.3,
                                         "recall": 0.1, "accuracy": 0.9}])
    assert sorted(_lines(fig.axes[1])) == ["dev accuracy", "dev f1", "dev precision", "dev recall"]


def test_plot_finetuning_reads_a_run_folder(tmp_path):
    with open(tmp_path / "log.jsonl", "w") as log:
        for row in TRAIN[:3] + EVALS[:1] + TRAIN[3:] + EVALS[1:]:
            log.write(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}) + "\n")
    (tmp_path / "run.json").write_text(json.dumps({"task": "wnut17"}))
    out = plot_finetuning(tmp_path)
    assert out == tmp_path / "curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = plot_finetuning(tmp_path, tmp_path / "other.png")
    assert other.is_file()


def test_plot_finetuning_names_a_missing_log(tmp_path):
    with pytest.raises(FileNotFoundError, match="log.jsonl"):
        plot_finetuning(tmp_path)


def test_plot_confusion_writes_the_counts(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    texts = []
    real_savefig = Figure.savefig

    def savefig(fig, *args, **kwargs):                    # keep the cells' texts of the figure being saved
        texts.extend(t.get_text() for t in fig.axes[0].texts)
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = plot_confusion(numpy.array([[40, 2], [7, 51]]), ["negative", "positive"], tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert texts == ["40", "2", "7", "51"]                # row = true label, column = prediction
