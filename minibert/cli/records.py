"""`minibert records`: cluster, classify and check the rows of a CSV."""
from __future__ import annotations

import argparse
from pathlib import Path

from minibert.apps.records import RecordsError, analyse, parse_columns, read_csv, summary, write_report
from minibert.apps.vectors import pca
from minibert.cli.vectors import add_model_arguments, encoder_from_args
from minibert.viz import plot_clusters


def _cmd_records(args) -> int:

    try:
        table = read_csv(args.csv, args.delimiter)
        text_columns = parse_columns(args.text_columns, table)
        if args.label_column:
            parse_columns([args.label_column], table, "label column")
        if args.clusters is not None and args.clusters < 1:
            raise RecordsError("--clusters must be at least 1")
        encoder = encoder_from_args(args)
        result = analyse(table, text_columns, args.label_column, k=args.clusters, model=encoder,
                         folds=args.folds, seed=args.seed, batch_size=args.batch_size, epochs=args.epochs,
                         progress=None if args.progress else False)
    except RecordsError as err:
        raise SystemExit(f"error: {err}") from None
    out = write_report(result, table, args.out)
    print(summary(result))
    print(f"report -> {out}")
    if args.plot:
        coords, ratio = pca(result["vectors"], 2)
        truth = None
        if args.label_column:
            truth = [table.rows[i][args.label_column].strip() or "(none)" for i in result["rows_with_text"]]
        fig = plot_clusters(coords, result["kmeans"]["labels"], ratio=ratio, truth=truth,
                            title=f"{Path(args.csv).name}: k-means clusters (colour)"
                                  + (", labels (marker)" if truth else ""))
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"PCA scatter -> {args.plot}")
    return 0


def register(subparsers) -> None:

    p = subparsers.add_parser("records", help="cluster, classify and check the rows of a CSV with text columns",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv", required=True, help="CSV file with a header row")
    p.add_argument("--text-columns", required=True, help="comma-separated names of the text columns")
    p.add_argument("--label-column", help="column with a label to learn (optional)")
    p.add_argument("--clusters", type=int, default=None,
                   help="k of k-means (default: the number of labels, or 5 without a label column)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the held-out accuracy")
    p.add_argument("--epochs", type=int, default=100, help="training epochs of the classifier head")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--delimiter", default=None, help="field separator (default: tab for .tsv, else comma)")
    p.add_argument("--out", default="records_report.csv", help="the report CSV")
    p.add_argument("--plot", help="write a PCA scatter of the rows (colour = cluster, marker = label)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_model_arguments(p)
    p.set_defaults(func=_cmd_records)
