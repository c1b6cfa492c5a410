"""`minibert gradcheck`: every backward against finite differences."""
from __future__ import annotations

import argparse

from minibert import gradcheck
from minibert.gradcheck import run


def register(subparsers):
    p = subparsers.add_parser("gradcheck", help="check every backward pass against finite differences",
                              description=gradcheck.__doc__, formatter_class=_raw())
    p.add_argument("--config", default="tiny", help="preset for the whole-model check (tiny, mini, ...) or 'odd'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-param", type=int, default=4, help="entries checked per model parameter")
    p.set_defaults(func=lambda args: 0 if run(args.config, args.seed, args.per_param) else 1)


def _raw():
    return argparse.RawDescriptionHelpFormatter
