"""`python -m minibert --help` lists every command, grouped; every command's `--help` works."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from minibert.cli import GROUPS, main
from minibert.cli.exercises import main as exercises_main
from minibert.exercises import EXERCISES

# Every command of minibert (the list): a command left out of GROUPS fails here
EVERY_COMMAND = {"pretrain", "plot", "fill-mask", "finetune", "predict", "tokenize", "train-vocab", "embed",
                 "search", "similarity", "cluster", "polysemy", "analogy", "attention", "records", "gradcheck",
                 "exercises", "distill", "complete", "generate", "summarize", "augment"}
COMMANDS = [command for _, commands in GROUPS for command in commands]


def command_paths() -> list[list[str]]:
    """["pretrain"], ..., ["exercises"], ["exercises", "list"], ...: every command and sub-command."""
    paths = []
    for command in COMMANDS:
        paths.append([command.name])
        paths.extend([command.name, sub.name] for sub in command.subcommands)
    return paths


def test_the_groups_hold_every_command_once():
    names = [command.name for command in COMMANDS]
    assert sorted(names) == sorted(EVERY_COMMAND)
    assert [sub.name for sub in next(c for c in COMMANDS if c.name == "exercises").subcommands] == [
        "list", "start", "check", "report", "capstone"]


def test_top_level_help_lists_every_command_under_its_heading():
    r = subprocess.run([sys.executable, "-m", "minibert", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: minibert [-h] [--backend {numpy,cupy}] [--debug] COMMAND ...")
    listing = r.stdout.split("\noptions:")[0]
    for heading, commands in GROUPS:
        block = listing.split(f"\n  {heading}\n")[1]               # the lines under the heading
        for command in commands:
            assert re.match(rf"(    \S+ +.+\n)*    {re.escape(command.name)} +{re.escape(command.help)}\n",
                            block), (heading, command.name)
    assert "\n    pretrain            pretrain BERT" not in r.stdout      # not listed a second time, ungrouped


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_has_a_help(path, capsys):
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: minibert {' '.join(path)} ")
    assert "Traceback" not in out and "options:" in out


def test_exercises_runs_on_its_own_too(capsys):
    """`python -m minibert.exercises ...` is `python -m minibert exercises ...` under its old name."""
    with pytest.raises(SystemExit) as done:
        exercises_main(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m minibert.exercises [-h] COMMAND ...")
    assert exercises_main(["list"]) == 0
    alone = capsys.readouterr().out
    assert main(["exercises", "list"]) == 0
    assert capsys.readouterr().out == alone and f"\n{len(EXERCISES)} exercises, about " in alone
