"""`minibert records`: cluster, classify and check the rows of a CSV."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from minibert import checks
from minibert.apps.records import analyse, parse_columns, read_csv, summary, write_report
from minibert.apps.vectors import pca
from minibert.cli.command import Command
from minibert.cli.vectors import ModelArgs, check_figure_file, encoder_from_args
from minibert.files import check_out_files, figure_path, save_figure
from minibert.viz import plot_clusters


@dataclass(kw_only=True)
class RecordsArgs(ModelArgs):
    csv: str = field(metadata={"help": "CSV file with a header row"})
    text_columns: str = field(metadata={"help": "comma-separated names of the text columns"})
    label_column: str | None = field(default=None, metadata={"help": "column with a label to learn (optional)"})
    clusters: int | None = field(default=None, metadata={
        "check": checks.positive,
        "help": "k of k-means (default: the number of labels, or 5 without a label column)"})
    folds: int = field(default=5, metadata={
        "check": checks.at_least(2), "help": "cross-validation folds for the held-out accuracy"})
    epochs: int = field(default=100, metadata={
        "check": checks.positive, "help": "training epochs of the classifier head"})
    seed: int = field(default=0, metadata={"help": "seed of k-means, the folds and the classifier"})
    delimiter: str | None = field(default=None, metadata={
        "help": "field separator (default: tab for .tsv, else comma)"})
    out: str = field(default="runs/records/report.csv", metadata={
        "help": "the report CSV (its folder is created; runs/ is ignored by git)"})
    plot: str | None = field(default=None, metadata={
        "help": "write a PCA scatter of the rows (colour = cluster, marker = label)"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})


def run_records(args: RecordsArgs) -> int:
    """Analyse the CSV, write the report, print the summary (and draw the scatter with --plot)."""
    check_out_files([("--out", args.out), ("--plot", figure_path(args.plot) if args.plot else None)],
                    inputs=[("--csv", args.csv), ("--model", args.model)])
    check_figure_file("--plot", args.plot)
    table = read_csv(args.csv, args.delimiter)
    text_columns = parse_columns(args.text_columns, table)
    if args.label_column:
        parse_columns([args.label_column], table, "label column")
    encoder = encoder_from_args(args)
    result = analyse(table, text_columns, args.label_column, k=args.clusters, model=encoder,
                     folds=args.folds, seed=args.seed, batch_size=args.batch_size, epochs=args.epochs,
                     progress=None if args.progress else False)
    if args.clusters is not None and result["k"] < args.clusters:
        print(f"note: --clusters {args.clusters} is more than the {result['k']} rows with text: using "
              f"{result['k']}", file=sys.stderr)
    out = write_report(result, table, args.out)
    print(summary(result))
    print(f"report -> {out}")
    if args.plot:
        _plot(args, table, result)
    return 0


def _plot(args: RecordsArgs, table, result) -> None:
    """The rows in the plane of their first two principal components: colour = cluster, marker = label."""
    coords, ratio = pca(result["vectors"], 2)
    truth = None
    if args.label_column:
        truth = [table.rows[i][args.label_column].strip() or "(none)" for i in result["rows_with_text"]]
    fig = plot_clusters(coords, result["kmeans"]["labels"], ratio=ratio, truth=truth,
                        title=f"{Path(args.csv).name}: k-means clusters (colour)"
                              + (", labels (marker)" if truth else ""))
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    print(f"PCA scatter -> {save_figure(fig, args.plot, dpi=110)}")


COMMANDS = (
    Command("records", "cluster, classify and check the rows of a CSV with text columns", RecordsArgs,
            run_records, description=__doc__),
)
