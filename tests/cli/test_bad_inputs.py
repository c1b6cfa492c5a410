"""Every command given bad input ends with one clear line and exit code 2, and changes no file.

The probes are the table of tests/cli/bad_inputs.py (also run as real processes by
benchmarks/probe_cli.py). Each runs in-process through minibert.cli.main in a small world made
once for the session (a tiny pretraining run, a fine-tuning run on it, a corpus, a CSV ...), and
must give:

- the probe's exit code (2), raised as SystemExit, not any other exception (a traceback);
- exactly one line on stderr, `error: <message>`, where <message> matches the probe's regex
  (it names the flag or the file, and the problem);
- every file that existed before (the world's and the probe's own damaged inputs) byte-identical
  afterwards, none deleted, and nothing new: a refused command leaves no run folder, lock or output
  behind (it checks everything before it writes anything).

A few probes also run as subprocesses, to show that no traceback reaches a terminal; and a few
tests check what the table cannot: --debug keeps the traceback, a bug keeps its traceback, a
capped --top-k or --clusters says so.
"""
from __future__ import annotations

import io
import re
import subprocess
import sys
import traceback

import pytest

import minibert.apps.embed
import minibert.cli.vectors
from bad_inputs import CATEGORIES, PROBES, build_world, tree_hashes
from helpers import REPO
from minibert.cli import main


def run_cli(argv) -> int:
    """main(argv)'s exit code (0 when it returns normally)."""
    try:
        return int(main(argv) or 0)
    except SystemExit as done:
        return done.code


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The small valid inputs every probe starts from (made once: about 2 seconds)."""
    return build_world(tmp_path_factory.mktemp("world"), run_cli)


def test_the_table_covers_every_command_and_category():
    commands = {p.command.split()[0] if not p.command.startswith("--") else p.command.split()[2]
                for p in PROBES if p.command}
    assert {"pretrain", "finetune", "predict", "plot", "fill-mask", "tokenize", "train-vocab", "embed", "search",
            "similarity", "cluster", "polysemy", "analogy", "attention", "records", "gradcheck",
            "exercises", "distill", "complete", "generate", "summarize", "augment"} <= commands
    assert {p.category for p in PROBES} <= set(CATEGORIES)
    assert len(PROBES) >= 120


@pytest.mark.parametrize("probe", PROBES, ids=[f"{n:03d}-{p.category.replace(' ', '_')}" for n, p in enumerate(PROBES)])
def test_bad_input_is_one_line_exit_2_and_no_file_changes(probe, world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    case = tmp_path / "case"
    case.mkdir()
    if probe.setup is not None:
        probe.setup(world, case)
    stdin = probe.stdin.encode("utf-8") if isinstance(probe.stdin, str) else (probe.stdin or b"")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    before = tree_hashes(world.root, case)
    argv = probe.argv(world, case)
    try:
        main(argv)
    except SystemExit as done:
        code = done.code
    except Exception:                                              # what a user would see as a traceback
        pytest.fail(f"minibert {' '.join(argv)}\nraised instead of one error line:\n{traceback.format_exc()}")
    else:
        code = 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == probe.code, f"exit code {code}, expected {probe.code}; stderr: {err!r}"
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error: "), f"stderr should be one error line: {err!r}"
    assert re.search(probe.match, lines[0][len("error: "):]), f"{lines[0]!r} does not match {probe.match!r}"
    after = tree_hashes(world.root, case)
    changed = sorted(p for p, h in before.items() if after.get(p) != h)
    assert changed == [], f"changed or deleted by a failed command: {changed}"
    created = sorted(set(after) - set(before))
    assert created == [], f"left behind by a failed command (a run folder, a lock, an output): {created}"


@pytest.mark.parametrize("argv,match", [
    (["pretrain", "--steps", "0"], r"^error: argument --steps: must be an integer >= 1, got 0 \(see minibert "
                                   r"pretrain --help\)$"),
    (["fill-mask", "--model", "nowhere", "the [MASK]"], r"^error: no run folder at nowhere$"),
    (["search", "--corpus", "nowhere.txt", "--top-k", "-1", "q"], r"^error: argument --top-k: must be an integer"),
])
def test_no_traceback_reaches_the_terminal(argv, match, tmp_path):
    r = subprocess.run([sys.executable, "-m", "minibert", *argv], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.search(match, r.stderr.strip()) and len(r.stderr.splitlines()) == 1, r.stderr


def test_debug_keeps_the_traceback_of_an_expected_error(world, tmp_path):
    """`minibert --debug ...`: the error itself is raised (a traceback in a terminal), not one line."""
    from minibert.model.io import CheckpointError
    with pytest.raises(CheckpointError, match="no run folder"):
        main(["--debug", "fill-mask", "--model", str(tmp_path / "nowhere"), "the [MASK]"])
    r = subprocess.run([sys.executable, "-m", "minibert", "--debug", "fill-mask", "--model", str(tmp_path / "x"),
                        "the [MASK]"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr and "CheckpointError" in r.stderr


def test_an_unexpected_error_keeps_its_traceback(world, monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug in minibert")
    monkeypatch.setattr(minibert.apps.embed, "embed", bug)
    monkeypatch.setattr(minibert.cli.vectors, "embed", bug)
    with pytest.raises(ZeroDivisionError):
        main(["similarity", "--model", str(world.model), "a", "b"])


def test_a_top_k_beyond_the_vocabulary_is_capped_with_a_note(world, capsys):
    assert main(["fill-mask", "--model", str(world.mlm), "--top-k", "100000", "the [MASK] sat"]) == 0
    out, err = capsys.readouterr()
    n = len((world.mlm / "vocab.txt").read_text().splitlines())
    assert err == f"note: --top-k 100000 is more than the {n} tokens of the vocabulary: showing {n}\n"
    assert len(re.findall(r" \(\d\.\d{3}\)", out)) == n                # every token of the vocabulary, once


def test_records_says_when_it_caps_the_clusters(world, tmp_path, capsys):
    assert main(["records", "--model", str(world.model), "--csv", str(world.csv), "--text-columns", "question",
                 "--clusters", "1000", "--no-progress", "--out", str(tmp_path / "r.csv")]) == 0
    rows = len(world.csv.read_text().splitlines()) - 1
    assert f"note: --clusters 1000 is more than the {rows} rows with text: using {rows}" in capsys.readouterr().err


def test_the_probe_script_counts_outcomes_by_category():
    """benchmarks/probe_cli.py, on one category: every probe a real process, each one error line here."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "probe_cli.py"), "--only", "flags together"],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    n = sum(p.category == "flags together" for p in PROBES)
    row = re.search(r"^flags together" + r"\s+(\d+)" * 8 + "$", r.stdout, re.M)
    assert row, r.stdout
    assert [int(x) for x in row.groups()] == [n, n, 0, 0, 0, n, 0, 0]   # probes, one line, ..., names it, ...
    assert re.search(rf"^total\s+{n}\s+{n}\s", r.stdout, re.M)
