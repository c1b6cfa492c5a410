"""`python -m minibert <command>`: the command line, the top layer of minibert.

This package is the one place that parses arguments, prints for the user and exits. Every
command is a `Command` (command.py): a name, a one-line help, the dataclass of its arguments,
whose fields generate its flags (args.py), and the function that runs it. The modules:

    args.py         flags from a dataclass's fields: each flag is written once
    command.py      Command, the parser built from commands, errors -> `error: ...` and an exit code
    pretrain.py     pretrain, plot, fill-mask
    finetune.py     finetune, predict
    distill.py      distill
    tokenize.py     tokenize, train-vocab
    vectors.py      embed, search, similarity, cluster, polysemy, analogy, attention
    records.py      records
    text.py         complete, generate
    summarize.py    summarize, augment
    gradcheck.py    gradcheck
    exercises.py    exercises list, start, check (also `python -m minibert.exercises ...`)

Library code raises minibert's errors (minibert/errors.py); `main` turns each into one line on
stderr and an exit code: 2 for bad input, 3 for a loss that became NaN or inf. argparse's own
errors, and a flag outside its declared range (minibert/checks.py), are one line too. An
unexpected exception is a bug and keeps its traceback; `minibert --debug COMMAND ...` keeps the
traceback of every error.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from minibert import backend
from minibert.cli import (distill, exercises, finetune, gradcheck, pretrain, records, summarize, text, tokenize,
                          vectors)
from minibert.cli.args import add_arguments, from_namespace
from minibert.cli.command import Parser, add_commands, errors_as_messages, run_command

__all__ = ["GROUPS", "build_parser", "main"]

# The commands as `minibert --help` lists them: (heading, commands)
GROUPS = (
    ("pretraining", pretrain.COMMANDS),
    ("fine-tuning", finetune.COMMANDS),
    ("tokenizer", tokenize.COMMANDS),
    ("a pretrained BERT: sentence vectors, words, attention", vectors.COMMANDS + records.COMMANDS),
    ("what else BERT is used for: distillation, text prediction, generation, summaries, augmented data",
     distill.COMMANDS + text.COMMANDS + summarize.COMMANDS),
    ("checking", gradcheck.COMMANDS),
    ("teaching", exercises.COMMANDS),
)

DESCRIPTION = "BERT from scratch in NumPy, every backward pass written by hand."
EPILOG = ("data-parallel training on N processes (MPI; pip install -e .[mpi]):\n"
          "  mpiexec -n N python -m minibert pretrain ...    (or finetune; docs/distributed.md)")


@dataclass(kw_only=True)
class MainArgs:
    """The options given before the command: `minibert --backend cupy pretrain ...`."""
    backend: str | None = field(default=None, metadata={
        "choices": ["numpy", "cupy"], "help": "array backend (default: $MINIBERT_BACKEND or numpy)"})
    debug: bool = field(default=False, metadata={
        "help": "show the traceback of an error instead of one line (to report a bug, or to debug)"})


def command_listing(groups=GROUPS) -> str:
    """The commands under their headings, each with its one-line help."""
    width = max(len(command.name) for _, commands in groups for command in commands)
    lines = ["commands (`minibert COMMAND --help` shows the options of one):"]
    for heading, commands in groups:
        lines.append(f"  {heading}")
        lines.extend(f"    {command.name:<{width}}  {command.help}" for command in commands)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """`minibert [--backend B] COMMAND ...`, every command of GROUPS."""
    parser = Parser(prog="minibert", description=DESCRIPTION + "\n\n" + command_listing(), epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, MainArgs)
    add_commands(parser, [command for _, commands in GROUPS for command in commands],
                 listing="one of the commands listed above")
    return parser


def main(argv=None) -> int:
    """Run `minibert ...` with argv (default: sys.argv[1:]); return its exit code.

    A bad flag and minibert's errors exit with one line, `error: <message>`, and their exit code
    (SystemExit, see command.errors_as_messages); with --debug, minibert's errors keep their traceback.
    """
    namespace = build_parser().parse_args(argv)
    settings = from_namespace(MainArgs, namespace)
    with errors_as_messages(debug=settings.debug):
        if settings.backend is not None:
            backend.use(settings.backend)
        backend.get_xp()            # MINIBERT_BACKEND's backend made usable now: without CuPy, one error line
        return run_command(namespace)
