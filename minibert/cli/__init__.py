"""`python -m minibert <command>`: the command line, the top layer of minibert.

This package is the one place that parses arguments, prints for the user and exits.
Each module registers one group of commands (`register(subparsers)`):

    gradcheck.py    gradcheck
    pretrain.py     pretrain, plot, fill-mask
    finetune.py     finetune, predict
    tokenize.py     tokenize, train-vocab
    vectors.py      embed, search, similarity, cluster, polysemy, analogy, attention
    records.py      records
"""
from __future__ import annotations

import argparse

from minibert import backend
from minibert.cli import finetune, gradcheck, pretrain, records, tokenize, vectors

COMMAND_GROUPS = [gradcheck, pretrain, finetune, tokenize, vectors, records]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minibert",
        description="BERT from scratch in NumPy, every backward pass written by hand.",
    )
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                        help="array backend (default: $MINIBERT_BACKEND or numpy)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        backend.use(args.backend)
    return int(args.func(args) or 0)
