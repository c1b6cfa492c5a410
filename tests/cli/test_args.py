"""Flags generated from dataclasses (minibert/cli/args.py): each field gives one flag, and back."""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from minibert.cli import GROUPS, build_parser
from minibert.cli.args import add_arguments, flag_names, from_namespace
from minibert.cli.finetune import FinetuneCommandArgs, finetune_settings
from minibert.cli.pretrain import PretrainCommandArgs, pretrain_settings
from minibert.train.finetune import FinetuneArgs, FinetuneError
from minibert.train.pretrain import PretrainArgs


def subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[name]


def parse(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command, args_class", [("pretrain", PretrainArgs), ("finetune", FinetuneArgs)])
def test_every_field_is_a_flag(command, args_class):
    by_dest = {a.dest: a for a in subparser(command)._actions}
    for f in dataclasses.fields(args_class):
        assert f.name in by_dest, f.name
        assert tuple(by_dest[f.name].option_strings) == flag_names(f)
        assert by_dest[f.name].help, f"{f.name} has no help text"
    fields = {f.name: f for f in dataclasses.fields(PretrainArgs)}
    assert flag_names(fields["vocab_size"]) == ("--vocab-size",)
    assert flag_names(fields["progress"]) == ("--no-progress",)


def pretrain_args(*argv) -> PretrainArgs:
    """The settings `minibert pretrain ARGV` runs with (steps, lr, ... parse to None when not given: see
    cli/pretrain.py, PretrainCommandArgs)."""
    return pretrain_settings(from_namespace(PretrainCommandArgs, parse("pretrain", *argv)))


def test_the_parsed_flags_build_the_dataclass_back():
    assert pretrain_args() == PretrainArgs()
    args = pretrain_args("--corpus", "books", "--vocab-size", "16000", "--lr", "1e-3", "--whole-word-mask",
                         "--no-progress", "--vocab-score", "likelihood")
    assert args == PretrainArgs(corpus="books", vocab_size=16000, lr=1e-3, whole_word_mask=True, progress=False,
                                vocab_score="likelihood")
    assert parse("pretrain", "--resume").resume is True                    # the command's own flag
    required = ("finetune", "--task", "sst2", "--train", "t.tsv", "--dev", "d.tsv")
    finetune_args = lambda *argv: finetune_settings(from_namespace(FinetuneCommandArgs, parse(*argv)))  # noqa: E731
    assert finetune_args(*required) == FinetuneArgs(task="sst2", train="t.tsv", dev="d.tsv")
    args = finetune_args(*required, "--max-seq-len", "64", "--fp16", "--patience", "2", "--dropout", "0.2",
                         "--no-progress")
    assert args == FinetuneArgs(task="sst2", train="t.tsv", dev="d.tsv", max_seq_len=64, fp16=True, patience=2,
                                dropout=0.2, progress=False)


def test_every_command_field_has_help_text():
    for _, commands in GROUPS:
        for command in commands:
            for c in command.subcommands or (command,):
                for f in dataclasses.fields(c.args):
                    assert f.metadata.get("help"), f"{c.name}: {f.name} has no help"


def test_bad_values_are_argparse_errors(capsys):
    for argv in (["pretrain", "--steps", "many"], ["finetune", "--task", "mnli", "--train", "a", "--dev", "b"]):
        with pytest.raises(SystemExit) as done:
            parse(*argv)
        assert done.value.code == 2
    assert "invalid choice: 'mnli'" in capsys.readouterr().err
    # --task is required unless --resume (it is then the run's): the command says so, as argparse would
    with pytest.raises(FinetuneError, match=r"the following arguments are required: --task, or --resume"):
        finetune_settings(from_namespace(FinetuneCommandArgs, parse("finetune", "--train", "a", "--dev", "b")))


@dataclass(kw_only=True)
class Example:
    name: str = field(metadata={"help": "required"})
    size: int = field(default=3, metadata={"help": "how many"})
    rate: float | None = field(default=None, metadata={"help": "a rate"})
    loud: bool = field(default=False, metadata={"help": "say more"})
    colour: bool = field(default=True, metadata={"help": "no colours"})
    mode: str = field(default="a", metadata={"choices": ["a", "b"], "help": "10% of the default a"})
    k: int = field(default=2, metadata={"flags": ("-k",), "help": "clusters"})
    minus: list[str] | None = field(default=None, metadata={"flags": ("--not",), "action": "append", "help": "x"})
    files: list[str] = field(metadata={"positional": True, "nargs": "+", "help": "the files"})


def test_the_generator_rules(capsys):
    parser = argparse.ArgumentParser(prog="example")
    add_arguments(parser, Example)
    ns = parser.parse_args(["--name", "n", "a.txt", "b.txt"])
    assert from_namespace(Example, ns) == Example(name="n", files=["a.txt", "b.txt"])
    ns = parser.parse_args(["--name", "n", "--size", "5", "--rate", "0.5", "--loud", "--no-colour", "--mode", "b",
                            "-k", "4", "--not", "x", "--not", "y", "f"])
    assert from_namespace(Example, ns) == Example(name="n", size=5, rate=0.5, loud=True, colour=False, mode="b",
                                                  k=4, minus=["x", "y"], files=["f"])
    parser.print_help()
    text = " ".join(capsys.readouterr().out.split())
    assert "--size SIZE how many (default: 3)" in text and "--rate RATE a rate" in text
    assert "--loud say more" in text and "--no-colour no colours" in text
    assert "10% of the default a" in text and "(default: a)" not in text     # % escaped; a default said once
    with pytest.raises(SystemExit):
        parser.parse_args(["a.txt"])                                          # --name is required
