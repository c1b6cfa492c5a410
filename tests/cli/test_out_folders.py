"""Never lose a file, through the commands: every refused --out (exit 2, one line naming the path, every
file there byte-identical afterwards), --overwrite that says what it replaces, an earlier output file
replaced, two `pretrain` processes on one folder, a stale lock taken over.

A real, tiny pretraining run (1 layer, hidden 16, a 45-token vocabulary, 8 steps: about a second)
stands for the run a user must not lose; the rules themselves are tested in tests/test_files.py."""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest

from helpers import REPO, minilm_path
from minibert.cli import main

WORDS = ("the a cat dog bird sat ran flew on under over mat tree house river big small red green old new "
         "and then it was is saw found took gave quick slow happy sad morning night day home field").split()


# -- the set-up: inputs, a real pretraining run, a fine-tuning run, a model, other files ---------------

@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Inputs (corpus, vocabulary, config, a labelled TSV, a CSV), a finished pretraining run R, a copy
    of its model M, a fine-tuning run F (its files as `minibert finetune` leaves them) and a folder of
    other files."""
    root = tmp_path_factory.mktemp("out-folders")
    rng = random.Random(0)
    sentence = lambda: " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "."      # noqa: E731
    inputs = root / "inputs"
    inputs.mkdir()
    (inputs / "corpus.txt").write_text("\n\n".join(" ".join(sentence() for _ in range(6)) for _ in range(30)) + "\n")
    (inputs / "vocab").mkdir()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS
    (inputs / "vocab" / "vocab.txt").write_text("\n".join(tokens) + "\n")
    (inputs / "config.json").write_text(json.dumps(dict(
        vocab_size=len(tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32)))
    (inputs / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{sentence()}\t{i % 2}\n" for i in range(16)))
    (inputs / "table.csv").write_text("text,label\n" + "".join(f"{sentence()},{i % 2}\n" for i in range(6)))
    p = {"root": root, "corpus": inputs / "corpus.txt", "vocab": inputs / "vocab", "config": inputs / "config.json",
         "train": inputs / "train.tsv", "csv": inputs / "table.csv", "inputs": inputs}

    p["run"] = root / "R"
    assert main(pretrain_argv(p, p["run"])) == 0
    p["model"] = root / "M"
    p["model"].mkdir()
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        shutil.copy(p["run"] / name, p["model"] / name)
    p["finetune"] = root / "F"
    (p["finetune"] / "best").mkdir(parents=True)
    (p["finetune"] / "run.json").write_text(json.dumps({"task": "sst2", "train": str(p["train"])}))
    for name in ("best/model.safetensors", "best/config.json", "log.jsonl", "metrics.json", "curves.png"):
        (p["finetune"] / name).write_text(f"the {name} of an earlier fine-tuning run\n")
    p["other"] = root / "notes"
    p["other"].mkdir()
    (p["other"] / "todo.md").write_text("- my notes\n")
    p["file"] = root / "a-file.txt"
    p["file"].write_text("a file\n")
    return p


def pretrain_argv(p, out, steps=8, *extra) -> list[str]:
    return ["pretrain", "--no-progress", "--corpus", str(p["corpus"]), "--vocab", str(p["vocab"]),
            "--config", str(p["config"]), "--steps", str(steps), "--batch-size", "4", "--seq-len", "32",
            "--eval-every", "4", "--eval-batches", "1", "--checkpoint-every", "4", "--heldout-fraction", "0.2",
            "--out", str(out), *extra]


def finetune_argv(p, model, out, *extra) -> list[str]:
    return ["finetune", "--no-progress", "--task", "sst2", "--train", str(p["train"]), "--dev", str(p["train"]),
            "--model", str(model), "--epochs", "1", "--batch-size", "8", "--max-seq-len", "16", "--out", str(out),
            *extra]


def snapshot(*paths) -> dict:
    """{path: sha256} of every file under the paths (and the paths themselves), to compare before/after."""
    found = {}
    for top in map(Path, paths):
        for path in [top, *sorted(top.rglob("*"))] if top.is_dir() else [top]:
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.exists():
                found[str(path)] = "folder"
    return found


def refused(argv, capsys) -> str:
    """Run the command in-process; it must exit 2 with one line `error: ...` on stderr. Returns the line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# -- every refusal: exit 2, one line naming the path and what to do, nothing touched ----------------------------

CASES = {
    # pretrain: another kind, a file, other files, an input, an earlier run
    "pretrain on an earlier run": (lambda p: pretrain_argv(p, p["run"]),
        r"--out {run} already holds a pretraining run \(2 checkpoints, up to step 8, the trained model\); "
        r"use another --out, --resume to continue it, or --overwrite to replace it"),
    "pretrain on a fine-tuning run": (lambda p: pretrain_argv(p, p["finetune"], 8, "--overwrite"),
        r"--out {finetune} holds a fine-tuning run of sst2 \(its best model, metrics.json, a log\), "
        r"not a pretraining run: it is never replaced; use another --out"),
    "pretrain on a model": (lambda p: pretrain_argv(p, p["model"]), r"--out {model} holds a model"),
    "pretrain on a file": (lambda p: pretrain_argv(p, p["file"]), r"--out {file} is a file, not a folder"),
    "pretrain on other files": (lambda p: pretrain_argv(p, p["other"]),
        r"--out {other} holds 1 other file \(todo.md\), not a pretraining run"),
    "pretrain on its --vocab": (lambda p: pretrain_argv(p, p["vocab"]), r"--out {vocab} is the --vocab input"),
    "pretrain around its --corpus": (lambda p: pretrain_argv(p, p["inputs"]),
        r"--out {inputs} contains the --corpus input"),
    "pretrain --resume --overwrite": (lambda p: pretrain_argv(p, p["run"], 8, "--resume", "--overwrite"),
        r"--resume continues the run in --out, --overwrite replaces it: give one of them"),
    "pretrain --resume on a fine-tuning run": (lambda p: pretrain_argv(p, p["finetune"], 8, "--resume"),
        r"--out {finetune} holds a fine-tuning run of sst2 .*not a pretraining run"),
    # finetune: the model it reads, an earlier fine-tuning run, a pretraining run, around its data
    "finetune --model R --out R": (lambda p: finetune_argv(p, p["run"], p["run"]),
        r"--out {run} is the --model input: writing there would change what the command reads; use another --out"),
    "finetune --out inside --model": (lambda p: finetune_argv(p, p["run"], p["run"] / "best"),
        r"--out {run}/best is inside the --model input"),
    "finetune on an earlier fine-tuning run": (lambda p: finetune_argv(p, p["model"], p["finetune"]),
        r"--out {finetune} already holds a fine-tuning run of sst2 \(its best model, metrics.json, a log\); "
        r"use another --out, --resume to continue it, or --overwrite to replace it"),
    "finetune on a pretraining run": (lambda p: finetune_argv(p, p["model"], p["run"], "--overwrite"),
        r"--out {run} holds a pretraining run .*, not a fine-tuning run"),
    "finetune around its --train": (lambda p: finetune_argv(p, p["model"], p["inputs"]),
        r"--out {inputs} contains the --train input"),
    # train-vocab: a model, the folder of its corpus, an earlier vocabulary, a run
    "train-vocab on a model": (lambda p: ["train-vocab", "--corpus", str(p["corpus"]), "--vocab-size", "40",
                                          "--out", str(p["model"])], r"--out {model} holds a model.*not a vocabulary"),
    "train-vocab on its corpus's folder": (lambda p: ["train-vocab", "--corpus", str(p["corpus"]), "--vocab-size",
                                                      "40", "--out", str(p["inputs"])],
        r"--out {inputs} contains the --corpus input"),
    "train-vocab on a vocabulary": (lambda p: ["train-vocab", "--corpus", str(p["corpus"]), "--vocab-size", "40",
                                               "--out", str(p["vocab"])],
        r"--out {vocab} already holds a vocabulary \(vocab.txt, 45 tokens\); use another --out, or --overwrite"),
    "train-vocab on a run": (lambda p: ["train-vocab", "--corpus", str(p["corpus"]), "--vocab-size", "40",
                                        "--out", str(p["run"]), "--overwrite"], r"--out {run} holds a pretraining run"),
    # records, embed, cluster, similarity, polysemy, attention: single output files
    "records --csv X --out X": (lambda p: ["records", "--csv", str(p["csv"]), "--text-columns", "text",
                                           "--out", str(p["csv"])], r"--out {csv} is the --csv input"),
    "records --out a folder": (lambda p: ["records", "--csv", str(p["csv"]), "--text-columns", "text",
                                          "--out", str(p["other"])], r"--out {other} is a folder; give a file name"),
    "records --out and --plot one file": (lambda p: ["records", "--csv", str(p["csv"]), "--text-columns", "text",
                                                     "--out", str(p["root"] / "r.png"), "--plot", str(p["root"] / "r.png")],
        r"--plot and --out are the same file {root}/r.png"),
    "records --out a file of a run": (lambda p: ["records", "--csv", str(p["csv"]), "--text-columns", "text",
                                                 "--out", str(p["run"] / "run.json")],
        r"--out {run}/run.json is a file of a pretraining run .* it is never replaced"),
    "embed --out its --input": (lambda p: ["embed", "--input", str(p["root"] / "a-file.npy"), "--out",
                                           str(p["root"] / "a-file.npy")], r"--out {root}/a-file.npy is the --input input"),
    "embed --out inside --model": (lambda p: ["embed", "--model", str(p["model"]), "--input", str(p["corpus"]),
                                              "--out", str(p["model"] / "vectors.npy")],
        r"--out {model}/vectors.npy is inside the --model input"),
    "cluster --out its --corpus": (lambda p: ["cluster", "--corpus", str(p["corpus"]), "--out", str(p["corpus"])],
        r"--out {inputs}/corpus.txt is the --corpus input"),
    "cluster --plot a file of a fine-tuning run": (lambda p: ["cluster", "--corpus", str(p["corpus"]), "--plot",
                                                              str(p["finetune"] / "curves.png")],
        r"--plot {finetune}/curves.png is a file of a fine-tuning run"),
    "similarity --plot a model's weights": (lambda p: ["similarity", "a", "b", "--plot",
                                                     str(p["model"] / "model.safetensors")],
        r"--plot {model}/model.safetensors is a file of a model \(config.json, model.safetensors\) in {model}: "
        r"it is never replaced"),
    "polysemy --plot its --sense file": (lambda p: ["polysemy", "--sense", f"one={p['corpus']}",
                                                    "--sense", f"two={p['train']}", "--plot", str(p["train"])],
        r"--plot {inputs}/train.tsv is the --sense input"),
    "attention --html inside --model": (lambda p: ["attention", "--model", str(p["model"]), "--html",
                                                   str(p["model"] / "config.json"), "a text"],
        r"--html {model}/config.json is inside the --model input"),
    "exercises start in other files": (lambda p: ["exercises", "start", str(p["other"])],
        r"{other} holds 1 other file \(todo.md\), not an exercises workspace: give a new or empty folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_out_changes_nothing(place, case, capsys):
    make_argv, message = CASES[case]
    (place["root"] / "a-file.npy").write_text("texts, one per line\n")
    before = snapshot(place["root"])
    line = refused(make_argv(place), capsys)
    expected = message.format(**{k: str(v) for k, v in place.items()})
    assert re.search(expected, line), (expected, line)
    assert snapshot(place["root"]) == before


# -- --overwrite says what it replaces, then replaces it -----------------------------------------------------------

def test_pretrain_overwrite_says_what_it_replaces_and_starts_afresh(place, tmp_path, capsys):
    out = tmp_path / "R2"
    shutil.copytree(place["run"], out)
    assert main(pretrain_argv(place, out, 4, "--overwrite")) == 0
    said = capsys.readouterr().out
    assert f"--overwrite: replacing a pretraining run (2 checkpoints, up to step 8, the trained model) in {out}" in said
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [1, 2, 3, 4] and json.loads((out / "run.json").read_text())["steps"] == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000004"]   # step 8's is gone
    assert not (out / ".lock").exists()


def test_finetune_refuses_its_earlier_run_then_overwrite_replaces_it(place, tmp_path, capsys):
    out = tmp_path / "F2"
    assert main(finetune_argv(place, place["run"], out)) == 0
    first = snapshot(out)
    line = refused(finetune_argv(place, place["run"], out, "--lr", "1e-2"), capsys)
    assert f"--out {out} already holds a fine-tuning run of sst2" in line and snapshot(out) == first
    assert main(finetune_argv(place, place["run"], out, "--lr", "1e-2", "--overwrite")) == 0
    assert f"--overwrite: replacing a fine-tuning run of sst2 (its best model, metrics.json, a log) in {out}" \
        in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["lr"] == 1e-2 and not (out / ".lock").exists()


def test_train_vocab_overwrite_replaces_a_vocabulary_and_says_so(place, tmp_path, capsys):
    out = tmp_path / "vocab"
    argv = lambda size, *extra: ["train-vocab", "--quiet", "--corpus", str(place["corpus"]),      # noqa: E731
                                 "--vocab-size", str(size), "--out", str(out), *extra]
    assert main(argv(60)) == 0 and len((out / "vocab.txt").read_text().split()) == 60
    refused(argv(70), capsys)
    assert len((out / "vocab.txt").read_text().split()) == 60
    assert main(argv(70, "--overwrite")) == 0
    assert f"--overwrite: replacing a vocabulary (vocab.txt, 60 tokens) in {out}" in capsys.readouterr().err
    assert len((out / "vocab.txt").read_text().split()) == 70


def test_an_earlier_output_file_is_replaced(place, tmp_path, capsys):
    """Single outputs may replace an earlier one (atomically): embed twice into one .npy."""
    minilm_path()
    texts = tmp_path / "texts.txt"
    out = tmp_path / "vectors.npy"
    for n in (2, 3):
        texts.write_text("".join(f"sentence number {i}\n" for i in range(n)))
        assert main(["embed", "--no-progress", "--input", str(texts), "--out", str(out)]) == 0
        assert numpy.load(out).shape == (n, 384)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["texts.txt", "vectors.npy"]     # no temporary left


# -- one writer per run folder ------------------------------------------------------------------------------------------

def test_two_pretrain_processes_on_one_folder_one_runs_the_other_is_refused(place, tmp_path):
    out = tmp_path / "shared"
    command = [sys.executable, "-m", "minibert", *pretrain_argv(place, out, 3000)]
    command[command.index("--checkpoint-every") + 1] = command[command.index("--eval-every") + 1] = "1000"
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (out / ".lock").exists() and first.poll() is None:     # until the first one holds the folder
        time.sleep(0.02)                                               # (or has ended: then the asserts say so)
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and second.stdout == "", second.stderr
    host = socket.gethostname()
    assert second.stderr.startswith(f"error: {out} is in use by process {first.pid} on {host} since ")
    assert second.stderr.endswith("; wait for it to finish, or use another --out\n") and second.stderr.count("\n") == 1
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == list(range(1, 3001))             # the first run's log, whole and alone
    assert not (out / ".lock").exists()


def test_a_stale_lock_from_a_killed_run_is_taken_over_with_a_warning(place, tmp_path, capsys):
    out = tmp_path / "stale"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                           "started": "2026-01-01 10:00:00"}))
    assert main(pretrain_argv(place, out, 4)) == 0
    said = capsys.readouterr().out
    assert (f"warning: {out / '.lock'} was left by process {dead.pid} on {socket.gethostname()} "
            f"(since 2026-01-01 10:00:00), which is no longer running; took the lock over") in said
    assert (out / "model.safetensors").is_file() and not (out / ".lock").exists()
