"""`python -m minibert <command>`: the command-line entry point.

Each command lives in the module that does the work; that module has a
`register(subparsers)` function adding its sub-command with a `func` default.
To add a command, append its module to COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "minibert.gradcheck",         # gradcheck: finite-difference check of every op and the model
    "minibert.pretrain",          # pretrain, plot, fill-mask
    "minibert.finetune",          # finetune, predict
    "minibert.tokenization.cli",  # tokenize, train-vocab
    "minibert.embed",             # embed: texts -> sentence vectors (.npy)
    "minibert.vectors",           # search, similarity, cluster, polysemy, analogy, attention
    "minibert.records",           # records: cluster, classify and check the rows of a CSV
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minibert",
        description="BERT from scratch in NumPy, every backward pass written by hand.",
    )
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                        help="array backend (default: $MINIBERT_BACKEND or numpy)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        from minibert import backend
        backend.use(args.backend)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
