"""Plots of training: the curves of a run folder (or of rows in memory), confusion matrices, span logits.

Figures are built with matplotlib's object API (`Figure`, no pyplot state), so
they save to PNG on a machine with no display and show inline in a notebook
(return the Figure as a cell's last value).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy
from matplotlib.ticker import MaxNLocator

from minibert.files import save_figure
from minibert.train.loop import read_jsonl
from minibert.viz.figure import figure


def read_log(run_dir) -> tuple[list[dict], list[dict]]:
    """(training rows, evaluation rows) of RUN_DIR/log.jsonl."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no log at {path}: is {run_dir} a run folder?")
    rows = read_jsonl(path)
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_loss" in r]
    return train, evals


def _smooth(values, window):
    if len(values) < window or window < 2:
        return numpy.asarray(values, dtype=float)
    kernel = numpy.ones(window) / window
    return numpy.convolve(values, kernel, mode="valid")


def _whole_steps(ax) -> None:
    """Ticks on whole steps only: a run with one evaluation would otherwise get ticks at 1.8, 1.9, 2.0, ..."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


# the context-free baselines an evaluation row may carry (train/pretrain.py: context_free_baselines)
BASELINES = {"mlm_accuracy": (("eval_mlm_accuracy_most_frequent", "most frequent word"),
                              ("eval_mlm_accuracy_unigram", "unigram guess")),
             "nsp_accuracy": (("eval_nsp_accuracy_majority", "majority class"),)}


def plot_pretraining(run_dir, out=None) -> Path:
    """Loss (train and held-out), MLM and NSP accuracy, and learning rate against step -> curves.png."""
    train, evals = read_log(run_dir)
    fig = figure((11, 7))
    axes = fig.subplots(2, 2)
    steps = numpy.array([r["step"] for r in train])
    window = max(1, len(train) // 50)
    sm_steps = steps[window - 1:] if len(steps) >= window else steps

    ax = axes[0, 0]
    for key, label in (("loss", "train loss (MLM + NSP)"), ("mlm_loss", "train MLM loss")):
        ax.plot(steps, [r[key] for r in train], alpha=0.25)
        ax.plot(sm_steps, _smooth([r[key] for r in train], window), label=label, color=ax.lines[-1].get_color())
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="held-out loss")
        ax.plot([r["step"] for r in evals], [r["eval_mlm_loss"] for r in evals], "o-", label="held-out MLM loss")
        if "eval_perplexity_unigram" in evals[-1]:
            ax.axhline(numpy.log(evals[-1]["eval_perplexity_unigram"]), color="gray", linestyle=":",
                       label="MLM loss of the unigram model")
    ax.set(title="loss", xlabel="step", ylabel="cross-entropy")
    ax.legend()

    for ax, key, title in ((axes[0, 1], "mlm_accuracy", "masked-LM accuracy"),
                           (axes[1, 0], "nsp_accuracy", "next-sentence accuracy")):
        ax.plot(sm_steps, _smooth([r[key] for r in train], window), label="train")
        if evals:
            ax.plot([r["step"] for r in evals], [r["eval_" + key] for r in evals], "o-", label="held-out")
        if key == "mlm_accuracy" and evals and "eval_mlm_accuracy_at_mask" in evals[-1]:
            ax.plot([r["step"] for r in evals], [r["eval_mlm_accuracy_at_mask"] for r in evals], "s--",
                    label="held-out, at [MASK] inputs")
        for baseline, label in BASELINES[key]:                 # what ignoring the context scores
            if evals and baseline in evals[-1]:
                ax.axhline(evals[-1][baseline], color="gray", linestyle=("--" if "most" in baseline else ":"),
                           label=label)
        ax.set(title=title, xlabel="step", ylabel="accuracy")
        ax.legend()

    ax = axes[1, 1]
    ax.plot(steps, [r["lr"] for r in train])
    ax.set(title="learning rate (warm-up, then linear decay)", xlabel="step", ylabel="lr")
    for ax in axes.flat:
        _whole_steps(ax)

    return save_figure(fig, Path(out) if out else Path(run_dir) / "curves.png", dpi=100)   # atomic


FINETUNING_METRICS = ("accuracy", "f1", "exact_match", "precision", "recall")   # drawn when an evaluation has them


def finetuning_figure(train: list[dict], evals: list[dict], title: str = "", total_steps: int | None = None):
    """The fine-tuning curves as a Figure, from log rows held in memory (a live plot redraws it).

    train: step rows ({"step", "loss"}); evals: evaluation rows ({"step", "train_loss", "dev_loss"}
    and the task's metrics, e.g. "accuracy" or "f1"). Left: train loss per step, and at each
    evaluation the mean train loss since the previous one next to the dev loss (overfitting: dev
    loss rising while train loss falls). Right: the dev metrics per evaluation. total_steps fixes
    the step axis, so a plot redrawn during a run does not rescale.
    """
    fig = figure((11, 4))
    ax_loss, ax_metric = fig.subplots(1, 2, sharex=True)     # the same steps: an evaluation lines up with its loss
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], alpha=0.25, label="train loss (per step)")
    if evals:
        e_steps = [r["step"] for r in evals]
        ax_loss.plot(e_steps, [r["train_loss"] for r in evals], "o-", label="train loss (mean since last eval)")
        ax_loss.plot(e_steps, [r["dev_loss"] for r in evals], "o-", label="dev loss")
        for k in (k for k in FINETUNING_METRICS if k in evals[0]):
            ax_metric.plot(e_steps, [r[k] for r in evals], "o-", label=f"dev {k}")
        ax_metric.legend()
    ax_loss.set(title=f"{title}: loss" if title else "loss", xlabel="step", ylabel="loss")
    ax_loss.legend()
    ax_metric.set(title="dev metric per evaluation", xlabel="step")
    for ax in (ax_loss, ax_metric):
        _whole_steps(ax)
        if total_steps:
            ax.set_xlim(0, total_steps * 1.03)
    return fig


def plot_finetuning(run_dir, out=None) -> Path:
    """Fine-tuning curves of a run folder (log.jsonl, run.json) -> curves.png (see finetuning_figure)."""
    rows = read_jsonl(Path(run_dir) / "log.jsonl")
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "dev_loss" in r]
    task = json.loads((Path(run_dir) / "run.json").read_text()).get("task", "")
    fig = finetuning_figure(train, evals, title=task)
    return save_figure(fig, Path(out) if out else Path(run_dir) / "curves.png", dpi=100)   # atomic


def plot_confusion(matrix, label_names, out, title="confusion matrix") -> Path:
    """A confusion matrix (rows: true label, columns: predicted) with its counts -> PNG."""
    matrix = numpy.asarray(matrix)
    fig = figure((1.2 * len(label_names) + 2.5, 1.0 * len(label_names) + 2))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(label_names)), label_names, rotation=30, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax)
    return save_figure(fig, out, dpi=100)


def plot_span_logits(tokens, start_logits, end_logits, gold=None, predicted=None, offset: int = 0,
                     title="start and end logits"):
    """An extractive-QA window: the start and end logit of every token, with the gold span (first, last)
    shaded and the predicted span's two tokens marked -> Figure.

    tokens, start_logits, end_logits: one entry per token (T,), the whole window or a slice of it that
    starts at position `offset`; gold and predicted are positions in the window (a span outside the
    slice is not drawn). The answer is the (start, end) pair with the largest
    start_logit[start] + end_logit[end] among the valid pairs: see minibert.data.tasks.squad.
    """
    start_logits, end_logits = numpy.asarray(start_logits, dtype=float), numpy.asarray(end_logits, dtype=float)
    if not (len(tokens) == len(start_logits) == len(end_logits)):
        raise ValueError(f"plot_span_logits needs one start and one end logit per token: got {len(tokens)} tokens, "
                         f"{len(start_logits)} start and {len(end_logits)} end logits")
    T = len(tokens)
    x = offset + numpy.arange(T)
    inside = lambda i: offset <= i < offset + T                                             # noqa: E731
    fig = figure((max(6.0, 0.2 * T + 1.5), 3.6))
    ax = fig.subplots()
    ax.plot(x, start_logits, ".-", lw=1, label="start logit")
    ax.plot(x, end_logits, ".-", lw=1, label="end logit")
    if gold is not None and inside(gold[0]) and inside(gold[1]):
        ax.axvspan(gold[0] - 0.5, gold[1] + 0.5, color="gold", alpha=0.35, label="gold answer")
    if predicted is not None and inside(predicted[0]) and inside(predicted[1]):
        ax.plot([predicted[0]], [start_logits[predicted[0] - offset]], "v", color="C0", ms=10, label="predicted start")
        ax.plot([predicted[1]], [end_logits[predicted[1] - offset]], "^", color="C1", ms=10, label="predicted end")
    ax.set_xticks(x, tokens, rotation=90, fontsize=7)
    ax.set(xlim=(offset - 0.5, offset + T - 0.5), ylabel="logit", title=title)
    ax.legend(fontsize=8)
    return fig




def plot_run(run_dir) -> list[Path]:
    """Draw every figure of a run folder from its files; return their paths.

    A `minibert pretrain` folder: curves.png. A `minibert finetune` folder (run.json names a task):
    curves.png and, for classification (metrics.json holds the best evaluation's confusion matrix),
    confusion.png.
    """
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    if not (run_json.is_file() and "task" in json.loads(run_json.read_text(encoding="utf-8"))):
        return [plot_pretraining(run_dir)]
    drawn = [plot_finetuning(run_dir)]
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    if "confusion" in metrics:
        drawn.append(plot_confusion(metrics["confusion"], metrics["label_names"], run_dir / "confusion.png",
                                    title=f"{metrics['task']} dev, step {metrics['best_step']}"))
    return drawn
