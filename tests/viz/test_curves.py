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


@pytest.mark.parametrize("total_steps", [None, 2])
def test_a_run_with_one_evaluation_gets_whole_step_ticks(total_steps):
    """Two steps and one evaluation (a 1-epoch SST-2 smoke run): the step axes tick at whole steps, not 1.8, 1.9, ..."""
    fig = finetuning_figure(TRAIN[:2], [dict(EVALS[1], step=2)], total_steps=total_steps)
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


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


def test_plot_span_logits_marks_the_spans():
    from minibert.viz import plot_span_logits

    tokens = ["[CLS]", "who", "?", "[SEP]", "the", "denver", "broncos", "won", "[SEP]"]
    start = numpy.array([0.0, -1, -1, -1, 0.5, 4.0, 1.0, -2, -3])
    end = numpy.array([0.0, -1, -1, -1, -0.5, 1.0, 5.0, 0.0, -3])
    fig = plot_span_logits(tokens, start, end, gold=(5, 6), predicted=(5, 6))
    ax = fig.axes[0]
    lines = _lines(ax)
    assert lines["start logit"] == (list(range(9)), start.tolist())
    assert lines["end logit"] == (list(range(9)), end.tolist())
    assert lines["predicted start"] == ([5], [4.0]) and lines["predicted end"] == ([6], [5.0])
    (gold,) = [p for p in ax.patches if p.get_label() == "gold answer"]
    x0, x1 = gold.get_x(), gold.get_x() + gold.get_width()       # a Rectangle from token 5 - 0.5 to 6 + 0.5
    assert (x0, x1) == pytest.approx((4.5, 6.5))
    assert [t.get_text() for t in ax.get_xticklabels()] == tokens


def test_plot_span_logits_needs_a_logit_per_token():
    from minibert.viz import plot_span_logits

    with pytest.raises(ValueError, match="3 tokens, 2 start and 3 end logits"):
        plot_span_logits(["a", "b", "c"], [0.0, 1.0], [0.0, 1.0, 2.0])


def test_plot_span_logits_of_a_slice():
    from minibert.viz import plot_span_logits

    # tokens 4..6 of a window: positions stay window positions; a span outside the slice is not drawn
    fig = plot_span_logits(["the", "denver", "broncos"], [0.5, 4.0, 1.0], [-0.5, 1.0, 5.0], gold=(5, 6),
                           predicted=(1, 2), offset=4)
    ax = fig.axes[0]
    lines = _lines(ax)
    assert lines["start logit"] == ([4, 5, 6], [0.5, 4.0, 1.0])
    assert "predicted start" not in lines and ax.get_xlim() == pytest.approx((3.5, 6.5))
    (gold,) = ax.patches
    assert (gold.get_x(), gold.get_x() + gold.get_width()) == pytest.approx((4.5, 6.5))
