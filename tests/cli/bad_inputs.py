"""Bad inputs for every command: the table of issue 14, shared by the test and the probe script.

    tests/cli/test_bad_inputs.py    runs every probe in-process through minibert.cli.main (fast)
    benchmarks/probe_cli.py         runs every probe as a real `python -m minibert ...` process and
                                    prints the table by category (before/after a change)

A probe is what a careless or hostile user types: the arguments (with placeholders for the files
of a small "world" built once: a tiny pretraining run, a fine-tuning run on it, a corpus, a CSV, ...),
an optional setup that makes a damaged input in the probe's own folder, what goes to stdin, the exit
code expected and a regular expression the one error line must match (it names the flag or the file
and the problem). Every probe must end with exactly one line on stderr, `error: ...`, no traceback,
and every file that existed before it byte-identical afterwards.

Placeholders in the arguments (str.format):

    {corpus}   a small plain-text corpus (documents separated by blank lines)
    {vocab}    a folder with vocab.txt (the world's vocabulary)
    {cfg}      a config.json of a tiny BERT (hidden 16, 1 layer) for that vocabulary
    {run}      a finished pretraining run folder (pretrain on {corpus} with {vocab} and {cfg})
    {mlm}      {run}'s model alone: config.json, vocab.txt, tokenizer files, model.safetensors (with the heads)
    {model}    the same encoder without the pretraining heads (a BertModel folder, as the packaged one)
    {ft}       a finished fine-tuning run folder (sst2 on {model})
    {train}    an sst2 training TSV, {dev} its dev TSV
    {squad}    a small SQuAD v1.1 JSON file
    {csv}      a CSV with text and label columns (records)
    {texts}    a text file, one text per line
    {vectors}  {texts}' vectors from `embed --model {model}` (.npy)
    {case}     this probe's own folder (its setup writes the damaged inputs there)

This module imports nothing from minibert: the probe script runs it against any version of the code
(the one on PYTHONPATH), old or new.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import random
import re
import shlex
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Callable

import numpy

__all__ = ["Probe", "PROBES", "World", "build_world", "tree_hashes", "CATEGORIES"]


# -- the probes -----------------------------------------------------------------------------------

CATEGORIES = {
    "flag syntax": "argparse's own errors: an unknown flag, a value that is not a number, a missing argument",
    "flag range": "a number out of its range: 0, negative, NaN, inf, a fraction above 1",
    "flags together": "flags that do not fit each other or the model (seq-len and positions, divisibility)",
    "missing path": "a file or folder that is not there, or a folder where a file should be",
    "damaged model": "weights, config.json, vocab.txt, tokenizer_config.json or task.json broken or mismatched",
    "damaged input": "a corpus, TSV, CSV, JSON or .npy input that is empty, not UTF-8 or malformed",
    "bad text": "a text the command cannot work with (no [MASK], no TAB in a pair, an unknown word)",
    "output path": "an output that cannot be written (an unsupported extension, a file where a folder goes)",
    "files": "an --out that would replace another run or an input (the files part of issue 14)",
}


@dataclasses.dataclass(frozen=True)
class Probe:
    """One bad input: the command line, how to make its damaged files, what must come out."""
    category: str                                # a key of CATEGORIES
    command: str                                 # `minibert` arguments, shell-quoted, with {placeholders}
    match: str                                   # regex the error line (after "error: ") must match
    setup: Callable | None = None                # setup(world, case): make the damaged input under case
    stdin: bytes | str | None = None             # what the command reads from stdin
    code: int = 2                                # the exit code expected

    def argv(self, world: "World", case: Path) -> list[str]:
        """The arguments with the placeholders filled in."""
        names = {**world.paths(), "case": str(case)}
        return [part.format(**names) for part in shlex.split(self.command)]

    @property
    def name(self) -> str:
        """A short id: the command line as typed, shortened."""
        text = " ".join(self.command.split())
        return text if len(text) <= 90 else text[:87] + "..."


# -- damaged files (setups) -----------------------------------------------------------------------

def write(path: Path, content) -> Path:
    """str as UTF-8, bytes as they are; the folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def files(**contents) -> Callable:
    """A setup writing case/NAME for each NAME=content (use __ for a sub-folder: a__b.txt is a/b.txt)."""
    def setup(world, case):
        for name, content in contents.items():
            write(case / name.replace("__", "/").replace("_DOT_", "."), content)
    return setup


def model_copy(damage: Callable | None = None, source: str = "model") -> Callable:
    """A setup copying one of the world's model folders ("model", "mlm", or "ft": the fine-tuning run's best/)
    to case/m, then damage(case/m)."""
    def setup(world, case):
        src = {"model": world.model, "mlm": world.mlm, "ft": world.ft / "best"}[source]
        shutil.copytree(src, case / "m")
        if damage is not None:
            damage(case / "m")
    return setup


def _arrays(path: Path) -> dict:
    from safetensors.numpy import load_file
    return load_file(str(path))


def _save(path: Path, arrays: dict) -> None:
    from safetensors.numpy import save_file
    save_file(arrays, str(path), metadata={"format": "pt"})


def truncate_file(name: str, keep: float = 0.5) -> Callable:
    def damage(folder):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:int(len(data) * keep)])
    return damage


def replace_file(name: str, content) -> Callable:
    def damage(folder):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        write(path, content)
    return damage


def remove_file(name: str) -> Callable:
    def damage(folder):
        (folder / name).unlink()
    return damage


def folder_instead(name: str) -> Callable:
    """The file `name` replaced by a folder of that name."""
    def damage(folder):
        (folder / name).unlink()
        (folder / name).mkdir()
    return damage


def edit_weights(edit: Callable, name: str = "model.safetensors") -> Callable:
    """edit(arrays) changes the dict of arrays in place; the file is written back."""
    def damage(folder):
        arrays = _arrays(folder / name)
        edit(arrays)
        _save(folder / name, arrays)
    return damage


def edit_json(edit: Callable, name: str = "config.json") -> Callable:
    """edit(dict) changes the JSON object in place (or returns a replacement); it is written back."""
    def damage(folder):
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        data = edit(data) or data
        (folder / name).write_text(json.dumps(data), encoding="utf-8")
    return damage


def edit_vocab(edit: Callable) -> Callable:
    """edit(list of tokens) -> the new list; written back as vocab.txt."""
    def damage(folder):
        tokens = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in edit(tokens)), encoding="utf-8")
    return damage


def _first(arrays: dict, word: str) -> str:
    return next(k for k in sorted(arrays) if word in k)


def _drop(word):
    return lambda a: a.pop(_first(a, word))


def _extra(a):
    a["bert.encoder.layer.7.attention.self.query.weight"] = numpy.zeros((16, 16), numpy.float32)


def _reshape(word):
    def edit(a):
        k = _first(a, word)
        a[k] = numpy.zeros(a[k].shape[:-1] + (a[k].shape[-1] + 1,), a[k].dtype)
    return edit


def _poison(value, word=None):
    def edit(a):
        for k in ([_first(a, word)] if word else list(a)):
            a[k] = numpy.full_like(a[k], value)
    return edit


def _as_int(word):
    def edit(a):
        k = _first(a, word)
        a[k] = a[k].astype(numpy.int32)
    return edit


def _set(**fields):
    return lambda d: d.update(fields)


def _delete(*keys):
    def edit(d):
        for k in keys:
            d.pop(k, None)
    return edit


def run_copy(damage: Callable | None = None, source: str = "run") -> Callable:
    """A setup copying the world's pretraining run (or "ft": its fine-tuning run) to case/r, then damage(case/r)."""
    def setup(world, case):
        shutil.copytree(world.run if source == "run" else world.ft, case / "r")
        if damage is not None:
            damage(case / "r")
    return setup


LATIN1_CSV = ("question,answer,topic\nOù est la gare?,à gauche,travel\n"
              "Quel âge as-tu?,dix ans,people\n").encode("latin-1")           # a spreadsheet's export
CSV_OK = "question,answer,topic\nwhere is the cat,on the mat,animals\nwho ran,the dog,animals\n"
SQUAD_OK = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "The cat sat on the mat.", "qas": [
    {"id": "q1", "question": "Where did the cat sit?", "answers": [{"text": "the mat", "answer_start": 15}]}]}]}]}
LONG_TEXT = " ".join(["word"] * 600) + " [MASK] ."


# -- the table -------------------------------------------------------------------------------------

FAST = "--no-progress --steps 2 --batch-size 4 --seq-len 32 --eval-every 2 --eval-batches 1 --checkpoint-every 2"
PRE = f"pretrain {FAST} --corpus {{corpus}} --vocab {{vocab}} --config {{cfg}} --heldout-fraction 0.2"
PRE_OUT = PRE + " --out {case}/out"
FT = "finetune --no-progress --task sst2 --train {train} --dev {dev} --model {model} --epochs 1 --batch-size 4 " \
     "--max-seq-len 32"
FT_OUT = FT + " --out {case}/out"
M = "--model {model}"
DM = "--model {case}/m"          # a damaged copy of the model folder


def _flag_range() -> list[Probe]:
    """Numbers out of their range, per command."""
    P = lambda cmd, flag, match: Probe("flag range", cmd, rf"argument {re.escape(flag)}: {match}")  # noqa: E731
    rows = []
    for flag, value in [("--steps", "0"), ("--steps", "-5"), ("--batch-size", "0"), ("--accumulate", "0"),
                        ("--checkpoint-every", "0"), ("--eval-every", "0"), ("--eval-batches", "0"),
                        ("--keep", "0"), ("--dupe-factor", "0"), ("--eval-dupe-factor", "0"),
                        ("--vocab-size", "0"), ("--max-predictions", "0")]:
        rows.append(P(f"{PRE_OUT} {flag} {value}", flag, f"must be an integer >= 1, got {value}"))
    rows += [P(f"{PRE_OUT} --seq-len {n}", "--seq-len", f"must be an integer >= 5, got {n}") for n in (1, 4)]
    for flag, value, match in [("--lr", "-1", "must be a finite number > 0, got -1"),
                               ("--lr", "nan", "must be a finite number > 0, got nan"),
                               ("--lr", "inf", "must be a finite number > 0, got inf"),
                               ("--lr", "0", "must be a finite number > 0, got 0"),
                               ("--heldout-fraction", "1.5", r"must be a number in \(0, 1\), got 1.5"),
                               ("--heldout-fraction", "0", r"must be a number in \(0, 1\), got 0"),
                               ("--warmup", "1", r"must be a number in \[0, 1\), got 1"),
                               ("--warmup", "-0.1", r"must be a number in \[0, 1\), got -0.1"),
                               ("--short-seq-prob", "2", r"must be a number in \[0, 1\], got 2"),
                               ("--weight-decay", "-0.01", "must be a finite number >= 0, got -0.01"),
                               ("--weight-decay", "nan", "must be a finite number >= 0, got nan"),
                               ("--max-grad-norm", "-1", "must be a finite number >= 0, got -1"),
                               ("--max-grad-norm", "inf", "must be a finite number >= 0, got inf")]:
        rows.append(P(f"{PRE_OUT} {flag} {value}", flag, match))
    for flag, value, match in [("--epochs", "0", "must be an integer >= 1, got 0"),
                               ("--batch-size", "0", "must be an integer >= 1, got 0"),
                               ("--accumulate", "0", "must be an integer >= 1, got 0"),
                               ("--lr", "nan", "must be a finite number > 0, got nan"),
                               ("--lr=-3e-5", None, "must be a finite number > 0, got -3e-5"),
                               ("--warmup", "1.5", r"must be a number in \[0, 1\), got 1.5"),
                               ("--dropout", "1", r"must be a number in \[0, 1\), got 1"),
                               ("--max-seq-len", "0", "must be an integer >= 3, got 0"),
                               ("--train-limit", "0", "must be an integer >= 1, got 0"),
                               ("--dev-limit", "-1", "must be an integer >= 1, got -1"),
                               ("--doc-stride", "0", "must be an integer >= 1, got 0"),
                               ("--eval-every", "-1", "must be an integer >= 0, got -1"),
                               ("--patience", "0", "must be an integer >= 1, got 0"),
                               ("--freeze-layers", "-1", "must be an integer >= 0, got -1"),
                               ("--max-grad-norm", "nan", "must be a finite number >= 0, got nan")]:
        typed = flag if value is None else f"{flag} {value}"             # --lr=-3e-5: argparse reads -3e-5 as a flag
        rows.append(P(f"{FT_OUT} {typed}", flag.split("=")[0], match))
    rows += [
        P("fill-mask --model {mlm} --top-k 0 'the [MASK] sat'", "--top-k", "must be an integer >= 1, got 0"),
        P("fill-mask --model {mlm} --top-k -1 'the [MASK] sat'", "--top-k", "must be an integer >= 1, got -1"),
        P("complete --model {mlm} --top-k 0 'the cat'", "--top-k", "must be an integer >= 1, got 0"),
        P("complete --model {mlm} --words 0 'the cat'", "--words", "must be an integer >= 1, got 0"),
        P("generate --model {mlm} --length 0", "--length", "must be an integer >= 1, got 0"),
        P("generate --model {mlm} --samples -2", "--samples", "must be an integer >= 1, got -2"),
        P("generate --model {mlm} --temperature 0", "--temperature", "must be a finite number > 0, got 0"),
        P("generate --model {mlm} --temperature nan", "--temperature", "must be a finite number > 0, got nan"),
        P("generate --model {mlm} --top-k -1", "--top-k", "must be an integer >= 0, got -1"),
        P("generate --model {mlm} --iterations 0", "--iterations", "must be an integer >= 1, got 0"),
        P("generate --model {mlm} --burn-in -1", "--burn-in", "must be an integer >= 0, got -1"),
        P("predict --model {ft} --top-k 0 'a text'", "--top-k", "must be an integer >= 1, got 0"),
        P("tokenize --max-length 0", "--max-length", "must be an integer >= 2, got 0"),
        P("tokenize --vocab {vocab} --max-length 1", "--max-length", "must be an integer >= 2, got 1"),
        P("train-vocab --corpus {corpus} --vocab-size 0 --out {case}/v", "--vocab-size",
          "must be an integer >= 1, got 0"),
        P("train-vocab --corpus {corpus} --vocab-size -3 --out {case}/v", "--vocab-size",
          "must be an integer >= 1, got -3"),
        P("embed --input {texts} --out {case}/v.npy --batch-size 0", "--batch-size", "must be an integer >= 1, got 0"),
        P("embed --input {texts} --out {case}/v.npy --max-length 0", "--max-length", "must be an integer >= 2, got 0"),
        P("search --corpus {texts} --top-k 0 cat", "--top-k", "must be an integer >= 1, got 0"),
        P("search --corpus {texts} --top-k -2 cat", "--top-k", "must be an integer >= 1, got -2"),
        P("similarity --batch-size -1 a b", "--batch-size", "must be an integer >= 1, got -1"),
        P("cluster --corpus {texts} -k 0", "-k", "must be an integer >= 1, got 0"),
        P("analogy --top-k 0 king", "--top-k", "must be an integer >= 1, got 0"),
        P("attention --dpi 0 'a text'", "--dpi", "must be an integer >= 1, got 0"),
        P("records --csv {csv} --text-columns question --clusters 0 --out {case}/r.csv", "--clusters",
          "must be an integer >= 1, got 0"),
        P("records --csv {csv} --text-columns question --folds 1 --out {case}/r.csv", "--folds",
          "must be an integer >= 2, got 1"),
        P("records --csv {csv} --text-columns question --epochs 0 --out {case}/r.csv", "--epochs",
          "must be an integer >= 1, got 0"),
        P("gradcheck --per-param 0", "--per-param", "must be an integer >= 1, got 0"),
        P("exercises check --reference --timeout -1 gelu", "--timeout", "must be a finite number >= 0, got -1"),
        P("exercises check --reference --timeout nan gelu", "--timeout", "must be a finite number >= 0, got nan"),
    ]
    return rows



def _flag_syntax() -> list[Probe]:
    S = lambda cmd, match: Probe("flag syntax", cmd, match if match.endswith("$") else  # noqa: E731
                                 match + r".*\(see minibert.*--help\)$")
    return [
        S(f"{PRE_OUT} --steps x", r"argument --steps: invalid int value: 'x'"),
        S(f"{PRE_OUT} --lr fast", r"argument --lr: invalid float value: 'fast'"),
        S(f"{PRE_OUT} --stpes 3", r"unrecognized arguments: --stpes 3 \(did you mean --steps\?\) \(see minibert "
                                  r"pretrain --help\)$"),
        S("embed --input {texts} --out {case}/v.npy --normalise", r"unrecognized arguments: --normalise \(did you mean "
                                                                  r"--no-normalize\?\)"),
        S(f"{PRE_OUT} --config", r"argument --config: expected one argument"),
        S(f"{PRE_OUT} --optimizer sgd", r"argument --optimizer: invalid choice: 'sgd'"),
        S("finetune --train {train} --dev {dev}", r"the following arguments are required: --task"),
        S("finetune --task cola --train {train} --dev {dev}", r"argument --task: invalid choice: 'cola'"),
        S("embed --input {texts}", r"the following arguments are required: --out"),
        S("search --corpus {texts}", r"the following arguments are required: query"),
        S("fill-mask --model {mlm}", r"the following arguments are required: text"),
        S("complete --model {mlm}", r"the following arguments are required: text"),
        S("generate --model {mlm} --order backwards", r"argument --order: invalid choice: 'backwards'"),
        S("generate 'the cat'", r"the following arguments are required: --model"),
        S("train-vocab --corpus {corpus} --out {case}/v", r"the following arguments are required: --vocab-size"),
        S("tokenize --max-length ten", r"argument --max-length: invalid int value: 'ten'"),
        S("embed --pooling max --input {texts} --out {case}/v.npy", r"argument --pooling: invalid choice: 'max'"),
        S("pretrian", r"argument COMMAND: invalid choice: 'pretrian'"),
        S("", r"the following arguments are required: COMMAND"),
        S("--backend torch plot {run}", r"argument --backend: invalid choice: 'torch'"),
        S("exercises", r"the following arguments are required: COMMAND"),
        S("exercises grade", r"invalid choice: 'grade'"),
    ]


def _flags_together() -> list[Probe]:
    T = lambda cmd, match: Probe("flags together", cmd, match)  # noqa: E731
    return [
        T(f"{PRE_OUT} --batch-size 6 --accumulate 4", r"--batch-size 6 must be divisible by --accumulate 4"),
        T(f"{PRE_OUT} --seq-len 128", r"--seq-len 128 is longer than max_position_embeddings=64"),
        T(f"{PRE_OUT} --max-predictions 40", r"--max-predictions 40 is more than the 29 word positions .*--seq-len 32"),
        T(f"{FT_OUT} --batch-size 6 --accumulate 4", r"--batch-size 6 must be divisible by --accumulate 4"),
        T(f"{FT_OUT} --max-seq-len 100", r"--max-seq-len 100 .*max_position_embeddings=64"),
        T(f"{FT_OUT} --freeze-layers 5", r"--freeze-layers 5: the model has 1 encoder layer"),
        T(f"{FT_OUT} --split-articles 2", r"--split-articles is for the squad task"),
        T(f"{FT_OUT} --fp16 --dtype float64", r"--fp16 .*--dtype float64"),
        T("embed --model {model} --input {texts} --out {case}/v.npy --max-length 10000",
          r"--max-length 10000 .*max_position_embeddings=64"),
        T("search --model {model} --corpus {texts} --max-length 100 cat",
          r"--max-length 100 .*max_position_embeddings=64"),
        T("cluster --model {model} --corpus {texts} -k 50", r"-k 50 is more than the \d+ texts"),
    ]


def _missing_path() -> list[Probe]:
    G = lambda cmd, match: Probe("missing path", cmd, match)  # noqa: E731
    return [
        G(f"pretrain {FAST} --corpus {{case}}/nowhere.txt --out {{case}}/out",
          r"corpus not found: .*nowhere.txt \(--corpus\)"),
        G(f"pretrain {FAST} --corpus {{corpus}} --eval-corpus {{case}}/nowhere.txt --out {{case}}/out",
          r"held-out corpus not found: .*nowhere.txt \(--eval-corpus\)"),
        G(f"pretrain {FAST} --corpus {{corpus}} --vocab {{case}}/nowhere --out {{case}}/out",
          r"vocabulary not found: .*nowhere \(--vocab\)"),
        G(f"pretrain {FAST} --corpus {{corpus}} --config {{case}}/nowhere.json --out {{case}}/out",
          r"--config .*nowhere.json: no such file, and not a preset \(tiny, mini"),
        G("pretrain --out {case}/nowhere --resume", r"no run to resume in .*nowhere"),
        G("plot {case}/nowhere", r"no log at .*nowhere/log.jsonl: is .* a run folder"),
        G("plot {corpus}", r"no log at .*corpus.txt/log.jsonl: is .* a run folder"),
        G("fill-mask --model {case}/nowhere 'the [MASK]'", r"no run folder at .*nowhere"),
        G("fill-mask --model {corpus} 'the [MASK]'", r"corpus.txt is a file, not a run folder"),
        G("complete --model {case}/nowhere 'the cat'", r"no run folder at .*nowhere"),
        G("generate --model {corpus}", r"corpus.txt is a file, not a run folder"),
        G("finetune --task sst2 --train {case}/nowhere.tsv --dev {dev} --model {model} --out {case}/out",
          r"--train .*nowhere.tsv: no such file"),
        G("finetune --task sst2 --train {train} --dev {case}/nowhere.tsv --model {model} --out {case}/out",
          r"--dev .*nowhere.tsv: no such file"),
        G("finetune --task sst2 --train {train} --dev {dev} --model {case}/nowhere --out {case}/out",
          r"--model .*nowhere: no config.json there"),
        G("predict --model {case}/nowhere 'a text'", r"nowhere has no task.json"),
        G("predict --model {run} 'a text'", r"run has no task.json: not a folder written by `minibert finetune`"),
        G("tokenize --vocab {case}/nowhere", r"no tokenizer folder or vocabulary file at .*nowhere"),
        G("train-vocab --corpus {case}/nowhere.txt --vocab-size 50 --out {case}/v",
          r"--corpus .*nowhere.txt: no such file"),
        G("train-vocab --corpus {case} --vocab-size 50 --out {case}/v", r"--corpus .*: a folder: give the text files"),
        G("embed --model {case}/nowhere --input {texts} --out {case}/v.npy",
          r"cannot load the model: no model folder at .*nowhere"),
        G("embed --model {model} --input {case}/nowhere.txt --out {case}/v.npy", r"no input file at .*nowhere.txt"),
        G("search --model {model} --corpus {case}/nowhere.txt cat", r"no corpus file at .*nowhere.txt"),
        G("search --model {model} --corpus {texts} --vectors {case}/nowhere.npy cat",
          r"no vectors file at .*nowhere.npy"),
        G("similarity --model {model} --input {case}/nowhere.txt", r"no input file at .*nowhere.txt"),
        G("cluster --model {model} --corpus {case}/nowhere.txt", r"no corpus file at .*nowhere.txt"),
        G("polysemy --model {model} --sense a={case}/nowhere.txt --sense b={texts}",
          r"no sense 'a' file at .*nowhere.txt"),
        G("attention --model {case}/nowhere 'a text'", r"cannot load the model: no model folder at .*nowhere"),
        G("records --model {model} --csv {case}/nowhere.csv --text-columns question --out {case}/r.csv",
          r"no CSV file at .*nowhere.csv"),
        G("exercises check {case}/nowhere", r"no workspace at .*nowhere"),
    ]


def _damaged_model() -> list[Probe]:
    D = lambda cmd, match, damage: Probe("damaged model", cmd, match,  # noqa: E731
                                         model_copy(damage, "mlm" if cmd.startswith("fill-mask") else "model"))
    fill = "fill-mask --model {case}/m 'the [MASK] sat .'"
    embed = "embed --model {case}/m --input {texts} --out {case}/v.npy"
    rows = [
        D(fill, r"model.safetensors.*(truncated|corrupted)", truncate_file("model.safetensors")),
        D(fill, r"model.safetensors.*(truncated|corrupted)", truncate_file("model.safetensors", 0.001)),
        D(fill, r"model.safetensors.*(truncated|corrupted)", replace_file("model.safetensors", b"")),
        D(fill, r"does not fit the model: missing 1 weights: bert.encoder.layer.0.output.dense.weight",
          edit_weights(_drop("layer.0.output.dense.weight"))),
        D(fill, r"unexpected weight.*layer\.7|num_hidden_layers=1 but the weights have 8", edit_weights(_extra)),
        D(fill, r"shape \(.*\) in .* but \(.*\) in the model", edit_weights(_reshape("intermediate.dense.weight"))),
        D(fill, r"model.safetensors: weight \S+ holds \d+ NaN or infinite values", edit_weights(_poison(numpy.nan))),
        D(fill, r"model.safetensors: weight .*word_embeddings.weight holds \d+ NaN or infinite",
          edit_weights(_poison(numpy.inf, "word_embeddings"))),
        D(fill, r"weight .*word_embeddings.weight has dtype int32, expected floating point",
          edit_weights(_as_int("word_embeddings"))),
        D(fill, r"no weights|model.safetensors", remove_file("model.safetensors")),
        D(fill, r"config.json.*not valid JSON", replace_file("config.json", "{not json")),
        D(fill, r"config.json.*(JSON object|a config must)", replace_file("config.json", "[1, 2]")),
        D(fill, r"hidden_size must be a positive integer, got 'big'", edit_json(_set(hidden_size="big"))),
        D(fill, r"num_hidden_layers must be a positive integer, got -1", edit_json(_set(num_hidden_layers=-1))),
        D(fill, r"hidden_size .* divisible by num_attention_heads", edit_json(_set(num_attention_heads=3))),
        D(fill, r"config says hidden_size=768 but the weights have 16", edit_json(_delete("hidden_size"))),
        D(fill, r"config.json.*(not UTF-8|not valid)", replace_file("config.json", b"\xff\xfe{\x00}")),
        D(fill, r"(?i)(is a directory|is a folder).*config.json", folder_instead("config.json")),
        D(fill, r"no weights file at .*model.safetensors", folder_instead("model.safetensors")),
        D(fill, r"no vocab.txt in the folder", folder_instead("vocab.txt")),
        D(fill, r"vocab.txt is empty", replace_file("vocab.txt", "")),
        D(fill, r"vocab.txt.*duplicate token", edit_vocab(lambda t: t + [t[-1]])),
        D(fill, r"vocab.txt.*not valid UTF-8", replace_file("vocab.txt", b"[PAD]\n\xff\xfe\x00\x01\n")),
        D(fill, r"vocab.txt has \d+ tokens but .*vocab_size=\d+", edit_vocab(lambda t: t[:-5])),
        D(fill, r"vocab.txt has \d+ tokens but .*vocab_size=\d+", edit_vocab(lambda t: t + ["zzz1", "zzz2"])),
        D(fill, r"lacks the special token.*\[MASK\]", edit_vocab(lambda t: [x if x != "[MASK]" else "[MAZK]"
                                                                             for x in t])),
        D(fill, r"tokenizer_config.json.*not valid JSON", replace_file("tokenizer_config.json", "{")),
        D(embed, r"model.safetensors.*(truncated|corrupted)", truncate_file("model.safetensors")),
        D(embed, r"vocab.txt is empty", replace_file("vocab.txt", "")),
        D(embed, r"vocab.txt.*not valid UTF-8", replace_file("vocab.txt", b"\x80\x81\n")),
        D(embed, r"vocab.txt has \d+ tokens but .*vocab_size=\d+", edit_vocab(lambda t: t[:-5])),
        D(embed, r"NaN or infinite", edit_weights(_poison(numpy.nan))),
        D(embed, r"config.json.*not valid JSON", replace_file("config.json", "")),
        D("search --model {case}/m --corpus {texts} cat", r"vocab.txt.*duplicate token",
          edit_vocab(lambda t: t + [t[-1]])),
        D("similarity --model {case}/m a b", r"max_position_embeddings must be a positive integer",
          edit_json(_set(max_position_embeddings=0))),
        D("cluster --model {case}/m --corpus {texts}", r"missing 1 weight",
          edit_weights(_drop("embeddings.LayerNorm.weight"))),
        D("analogy --model {case}/m cat", r"tokenizer_config.json.*not valid JSON",
          replace_file("tokenizer_config.json", "nope")),
        D("attention --model {case}/m 'a text'", r"model.safetensors.*(truncated|corrupted)",
          truncate_file("model.safetensors", 0.9)),
        D("polysemy --model {case}/m --word cat", r"vocab.txt: line 1 is empty", replace_file("vocab.txt", "\n")),
        D("records --model {case}/m --csv {csv} --text-columns question --out {case}/r.csv",
          r"NaN or infinite", edit_weights(_poison(numpy.nan))),
        D(f"{FT} --model {{case}}/m --out {{case}}/out", r"model.safetensors.*(truncated|corrupted)",
          truncate_file("model.safetensors")),
        D(f"{FT} --model {{case}}/m --out {{case}}/out", r"vocab.txt has \d+ tokens but .*vocab_size=\d+",
          edit_vocab(lambda t: t[:-3])),
        D(f"{FT} --model {{case}}/m --out {{case}}/out", r"NaN or infinite", edit_weights(_poison(numpy.nan))),
        D(f"{FT} --model {{case}}/m --out {{case}}/out", r"config.json.*not valid JSON",
          replace_file("config.json", "{")),
        D(f"{PRE} --vocab {{case}}/m --out {{case}}/out", r"vocab.txt.*duplicate token",
          edit_vocab(lambda t: t + [t[-1]])),
        D(f"{PRE} --config {{case}}/m/config.json --out {{case}}/out", r"config.json.*not valid JSON",
          replace_file("config.json", "{")),
        D(f"{PRE} --config {{case}}/m/config.json --out {{case}}/out", r"vocab_size=3 but the vocabulary has",
          edit_json(_set(vocab_size=3))),
        D("tokenize --vocab {case}/m", r"vocab.txt is empty", replace_file("vocab.txt", "")),
        D("tokenize --vocab {case}/m", r"tokenizer_config.json.*not valid JSON",
          replace_file("tokenizer_config.json", "{")),
    ]
    P = lambda cmd, match, damage: Probe("damaged model", cmd, match, model_copy(damage, "ft"))  # noqa: E731
    rows += [
        P("predict --model {case}/m 'a text'", r"task.json has no \"task\"", edit_json(_delete("task"), "task.json")),
        P("predict --model {case}/m 'a text'", r"task.json.*not valid JSON", replace_file("task.json", "{")),
        P("predict --model {case}/m 'a text'", r"task.json.*unknown task 'cola'",
          edit_json(_set(task="cola"), "task.json")),
        P("predict --model {case}/m 'a text'", r"task.json should hold a JSON object", replace_file("task.json", "[]")),
        P("predict --model {case}/m 'a text'", r"model.safetensors.*(truncated|corrupted)",
          truncate_file("model.safetensors")),
        P("predict --model {case}/m 'a text'", r"vocab.txt has \d+ tokens but .*vocab_size=\d+",
          edit_vocab(lambda t: t[:-2])),
        P("predict --model {case}/m 'a text'", r"no trained BertForSequenceClassification head: missing "
                                               r"classifier.weight", edit_weights(_drop("classifier.weight"))),
        P("predict --model {case}/m 'a text'", r"weight classifier.weight holds \d+ NaN",
          edit_weights(_poison(numpy.nan, "classifier.weight"))),
        P("predict --model {case}/m 'a text'", r"task.json: max_seq_len must be an integer >= 3",
          edit_json(_set(max_seq_len=-4), "task.json")),
    ]
    R = lambda cmd, match, damage: Probe("damaged model", cmd, match, run_copy(damage))  # noqa: E731
    rows += [
        R("pretrain --out {case}/r --resume", r"run.json that names no corpus and no task \(damaged",
          replace_file("run.json", "{")),
        R("pretrain --out {case}/r --resume", r"run.json: steps must be an integer, got 'many'",
          edit_json(_set(steps="many"), "run.json")),
        R("pretrain --out {case}/r --resume", r"run.json: steps must be an integer >= 1, got 0",
          edit_json(_set(steps=0), "run.json")),
        R("pretrain --out {case}/r --resume", r"run.json: optimizer must be one of torch, google, got 'sgd'",
          edit_json(_set(optimizer="sgd"), "run.json")),
        R("pretrain --out {case}/r --resume", r"run.json: whole_word_mask must be true or false, got 'yes'",
          edit_json(_set(whole_word_mask="yes"), "run.json")),
        R("pretrain --out {case}/r --resume", r"run.json holds settings this minibert does not know \(colour\)",
          edit_json(_set(colour="red"), "run.json")),
        R("fill-mask --model {case}/r 'the [MASK] sat'", r"model.safetensors.*(truncated|corrupted)",
          truncate_file("model.safetensors")),
        R("plot {case}/r", r"run.json is not valid JSON", replace_file("run.json", "{")),
        R("plot {case}/r", r"no log at .*log.jsonl", folder_instead("log.jsonl")),
    ]
    return rows


def _damaged_input() -> list[Probe]:
    I = lambda cmd, match, setup=None, stdin=None: Probe("damaged input", cmd, match, setup, stdin)  # noqa: E731,E741
    pre = f"pretrain {FAST} --vocab {{vocab}} --config {{cfg}} --out {{case}}/out --corpus {{case}}/c.txt"
    ft = "finetune --no-progress --task sst2 --model {model} --epochs 1 --batch-size 4 --max-seq-len 32 " \
         "--out {case}/out --dev {dev} --train {case}/t.tsv"
    squad = "finetune --no-progress --task squad --model {model} --epochs 1 --batch-size 4 --max-seq-len 32 " \
            "--doc-stride 8 --out {case}/out --dev {squad} --train {case}/t.json"
    rec = "records --model {model} --text-columns question --out {case}/r.csv --csv {case}/in.csv"
    return [
        I(pre, r"c.txt.*(empty|no words)", files(c_DOT_txt="")),
        I(pre, r"c.txt.*(empty|no words)", files(c_DOT_txt="  \n\n \t \n")),
        I(pre, r"c.txt.*line 2.*not UTF-8", files(c_DOT_txt=b"hello there.\n\xff\xfe oh no\n")),
        I(pre, r"c.txt has 1 document\(s\); at least 2 are needed", files(c_DOT_txt="one short line.\n")),
        I(f"pretrain {FAST} --vocab {{vocab}} --config {{cfg}} --out {{case}}/out --corpus {{corpus}} "
          f"--eval-corpus {{case}}/e.txt", r"e.txt.*(empty|no words)", files(e_DOT_txt="\n")),
        I(pre, r"c.txt, line \d+: not UTF-8", files(c_DOT_txt=bytes(range(256)) * 4)),
        I(ft, r"sst2 file .*t.tsv is empty", files(t_DOT_tsv="")),
        I(ft, r"t.tsv, line 1: expected the sst2 header", files(t_DOT_tsv="text\tlabel\nnice\t1\n")),
        I(ft, r"t.tsv, line 2: expected 2 tab-separated columns", files(t_DOT_tsv="sentence\tlabel\nnice\n")),
        I(ft, r"t.tsv, line 3: unknown label 'maybe'", files(t_DOT_tsv="sentence\tlabel\nnice\t1\nhm\tmaybe\n")),
        I(ft, r"t.tsv, line 2: not UTF-8", files(t_DOT_tsv=b"sentence\tlabel\nn\xe9e\t1\n")),
        I(ft, r"t.tsv has a header but no examples", files(t_DOT_tsv="sentence\tlabel\n")),
        I(squad, r"t.json is not SQuAD JSON", files(t_DOT_json="{\"data\": [")),
        I(squad, r"t.json, the top level: no 'data' field", files(t_DOT_json="{\"version\": \"1.1\"}")),
        I(squad, r"t.json.*(answer|context)", files(t_DOT_json=json.dumps(
            {"data": [{"title": "T", "paragraphs": [{"qas": [{"id": "1", "question": "q?"}]}]}]}))),
        I(squad, r"t.json is not SQuAD JSON: .*utf-8", files(t_DOT_json=b"{\"data\": [\"\xff\"]}")),
        I(rec, r"in.csv.*line 2.*not UTF-8.*(convert|save).*UTF-8", files(in_DOT_csv=LATIN1_CSV)),
        I(rec, r"in.csv is empty", files(in_DOT_csv="")),
        I(rec, r"in.csv has a header but no rows", files(in_DOT_csv="question,answer\n")),
        I(rec, r"not in the CSV's header", files(in_DOT_csv="q,a\nwhere,here\n")),
        I(rec, r"header names column\(s\) .* more than once", files(in_DOT_csv="question,question\na,b\n")),
        I(rec, r"every row is empty", files(in_DOT_csv="question,answer\n,x\n ,y\n")),
        I(rec + " --label-column question", r"both a text column and the label column", files(in_DOT_csv=CSV_OK)),
        I("embed --model {model} --input {case}/in.txt --out {case}/v.npy", r"input file .*in.txt is empty",
          files(in_DOT_txt="")),
        I("embed --model {model} --input {case}/in.txt --out {case}/v.npy", r"in.txt.*line 1.*not UTF-8",
          files(in_DOT_txt=b"caf\xe9\n")),
        I("embed --model {model} --out {case}/v.npy", r"^stdin is empty", stdin=""),
        I("search --model {model} --corpus {texts} --vectors {case}/v.npy cat", r"v.npy.*(cannot read|\.npy)",
          files(v_DOT_npy=b"\x93NUMPY garbage")),
        I("search --model {model} --corpus {texts} --vectors {case}/v.npy cat", r"v.npy has shape \(3, 2\)",
          lambda w, c: numpy.save(c / "v.npy", numpy.zeros((3, 2), numpy.float32))),
        I("search --model {model} --corpus {texts} --vectors {case}/v.npy cat", r"v.npy holds NaN or infinite values",
          lambda w, c: numpy.save(c / "v.npy", numpy.full((len(w.text_lines), 16), numpy.nan, numpy.float32))),
        I("search --model {model} --corpus {texts} --vectors {case}/v.npy cat",
          r"v.npy holds 5-d vectors but the model makes 16-d ones",
          lambda w, c: numpy.save(c / "v.npy", numpy.ones((len(w.text_lines), 5), numpy.float32))),
        I("similarity --model {model} --input {case}/in.txt", r"at least two texts", files(in_DOT_txt="one\n")),
        I("cluster --model {model} --corpus {case}/in.txt", r"in.txt has only blank lines", files(in_DOT_txt="\n\n")),
        I("polysemy --model {model} --word cat --sense a={case}/a.txt --sense b={case}/b.txt",
          r"sense 'a' file .*a.txt has only blank lines", files(a_DOT_txt="\n", b_DOT_txt="the cat sat\n")),
        I("polysemy --model {model} --word cat --sense a={case}/a.txt --sense b={case}/b.txt",
          r"'cat' occurs 0 time\(s\) in 'the dog ran'",
          files(a_DOT_txt="the cat sat\n", b_DOT_txt="the dog ran\n")),
        I("polysemy --model {model} --sense {case}/a.txt", r"--sense takes NAME=FILE"),
        Probe("damaged input", "tokenize --vocab {vocab} --pair", r"line 1 has no TAB", stdin="no tab here\n",
              code=1),                                     # 1: the lines before it were printed (BadLineError)
        I("exercises check --reference nosuch", r"no exercise 'nosuch'; choose one of"),
        I("finetune --no-progress --task rte --model {model} --max-seq-len 32 --out {case}/out --dev {dev} "
          "--train {case}/t.tsv", r"t.tsv, line 2: expected 4 tab-separated columns",
          files(t_DOT_tsv="index\tsentence1\tsentence2\tlabel\n0\ta\tentailment\n")),
        I("finetune --no-progress --task wnut17 --model {model} --max-seq-len 32 --out {case}/out --dev {dev} "
          "--train {case}/t.conll", r"t.conll, line 2", files(t_DOT_conll="word\tO\nlonely\nend\tB-xyz\n")),
        I("finetune --no-progress --task sst2 --model {model} --max-seq-len 32 --out {case}/out --dev {dev} "
          "--train {case}", r"--train .*: a folder, not a file"),
        I("embed --model {model} --input {case}/in --out {case}/v.npy", r"no input file at .* \(it is a folder\)",
          lambda w, c: (c / "in").mkdir()),
        I("tokenize --vocab {corpus}", r"vocabulary file .*corpus.txt: line 2 is empty"),
        I("gradcheck --config enormous", r"unknown preset 'enormous'; choose one of"),
        I("exercises start {case}/f.txt", r"f.txt is a file, not a folder", files(f_DOT_txt="my notes\n")),
    ]


def _bad_text() -> list[Probe]:
    B = lambda cmd, match, stdin=None: Probe("bad text", cmd, match, stdin=stdin)  # noqa: E731
    return [
        B("fill-mask --model {mlm} 'no blank here'", r"no \[MASK\] in 'no blank here'"),
        B(f"fill-mask --model {{mlm}} '{LONG_TEXT}'", r"\[MASK\] .*beyond the model's 64 positions"),
        B("fill-mask --model {mlm} ''", r"no \[MASK\]"),
        B("complete --model {mlm} ' '", r"the text is empty: nothing to complete"),
        B("complete --model {mlm} --words 2 'the [MASK] sat [MASK]'", r"--words 2 is for completing a text; a ___ or \[MASK\] blank gets one word"),
        B("complete --model {model} 'the cat'", r"model.safetensors has no masked-LM head .*encoder only"),
        B("fill-mask --model {model} 'the [MASK] sat'", r"model.safetensors has no masked-LM head .*encoder only"),
        B("generate --model {mlm} --length 63", r"length 63 does not fit: .* room for 62 generated pieces"),
        B("generate --model {mlm} --prompt 'the [MASK] sat'", r"the prompt has a \[MASK\]: write it as plain text"),
        B("predict --model {ft}", r"nothing to predict", stdin=""),
        B("analogy --model {model} zzzzqqq", r"'zzzzqqq' is not one token"),
        B("analogy --model {model} cat --expect qqqzzz", r"--expect: 'qqqzzz' is not in the vocabulary"),
        B("similarity --model {model} a", r"at least two texts"),
        B("search --model {model} --corpus {texts} cat ''", r"query 2 is empty"),
        B("attention --model {model} ''", r"the text is empty: it gives no tokens"),
        B(f"attention --model {{model}} '{LONG_TEXT}'", r"the input has \d+ tokens .*more than max_length=64"),
        B("polysemy --model {model} --word zzzzqqq", r"'zzzzqqq' occurs 0 time\(s\) in"),
    ]


def _output_path() -> list[Probe]:
    O = lambda cmd, match, setup=None: Probe("output path", cmd, match, setup)  # noqa: E731,E741
    return [
        O("similarity --model {model} --plot {case}/out.txt a b", r"--plot .*out.txt: a figure cannot be written as "
                                                                 r"\.txt; use \.png \(or .*\.pdf.*\.svg"),
        O("cluster --model {model} --corpus {texts} --plot {case}/out.csv", r"--plot .*out.csv: .*\.csv; use \.png"),
        O("polysemy --model {model} --plot {case}/p.doc", r"--plot .*p.doc: .*\.doc; use \.png"),
        O("records --model {model} --csv {csv} --text-columns question --out {case}/r.csv --plot {case}/p.txt",
          r"--plot .*p.txt: .*; use \.png"),
        O("attention --model {model} --plot {case}/a.html 'a text'", r"--plot .*a.html: .*; use \.png"),
        O("attention --model {model} --html {case}/a.png 'a text'", r"--html .*a.png: give a file name ending in "
                                                                    r"\.html or \.htm"),
        O("similarity --model {model} --plot {case}/d a b", r"--plot .*d is a folder; give a file name",
          lambda w, c: (c / "d").mkdir()),
        O("similarity --model {model} --plot {case}/heat.npy a b", r"--plot .*heat.npy: a figure cannot be written "
                                                                   r"as \.npy"),
        O(f"{PRE} --out {{case}}/file.txt", r"--out .*file.txt.*(is a file|not a folder)",
          files(file_DOT_txt="keep me\n")),
        O(f"{FT} --out {{case}}/file.txt", r"--out .*file.txt is a file, not a folder",
          files(file_DOT_txt="keep\n")),
        O("train-vocab --corpus {corpus} --vocab-size 50 --out {case}/file.txt",
          r"--out .*file.txt.*(is a file|not a folder)", files(file_DOT_txt="keep\n")),
        O("embed --model {model} --input {texts} --out {case}/d", r"--out .*d is a folder",
          lambda w, c: (c / "d").mkdir()),
        O("embed --model {model} --input {texts} --out {case}/v.txt", r"--out .*v.txt: give a file name ending in "
                                                                      r"\.npy"),
        O("records --model {model} --csv {csv} --text-columns question --out {case}/d", r"--out .*d is a folder",
          lambda w, c: (c / "d").mkdir()),
        O("cluster --model {model} --corpus {texts} --out {case}/d", r"--out .*d is a folder",
          lambda w, c: (c / "d").mkdir()),
    ]


def locked(source: str | None = "run") -> Callable:
    """A setup: case/r (a copy of the world's pretraining run, "ft" its fine-tuning run, None an empty
    folder) locked by another live process, as a run in progress leaves it (RUN/.lock, minibert/files.py).

    The holder is a `sleep` started here: a lock naming this very process would count as the command's
    own (the in-process test runs minibert in this process), and a dead PID as a stale lock taken over.
    It is killed when this interpreter exits, if it has not ended by itself."""
    def setup(world, case):
        folder = case / "r"
        if source is None:
            folder.mkdir()
        else:
            run_copy(source=source)(world, case)
        holder = subprocess.Popen(["sleep", "120"])
        atexit.register(holder.kill)
        write(folder / ".lock", json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                            "started": "2026-01-01 10:00:00"}) + "\n")
    return setup


def _files() -> list[Probe]:
    """--out refusals (another run kind, an input, an existing run, a run in progress) and --resume's own
    refusals: the files and resume parts of issue 14 (tests/cli/test_out_folders.py has the same rules
    on its own folders, tests/train/test_resume.py the resume ones)."""
    F = lambda cmd, match, setup=None: Probe("files", cmd, match, setup)  # noqa: E731
    in_use = r"{path} is in use by process \d+ on .* since 2026-01-01 10:00:00; wait for it to finish, or use " \
             r"another --out"
    return [
        # pretrain: an earlier run, another kind, an input, a run in progress
        F(f"{PRE} --out {{case}}/r", r"--out .*r already holds a pretraining run \(1 checkpoint, up to step 2, "
                                     r"the trained model\); use another --out, --resume to continue it, or "
                                     r"--overwrite to replace it", run_copy()),
        F(f"{PRE} --out {{case}}/r --overwrite", r"--out .*r holds a fine-tuning run of sst2 .*not a pretraining "
                                                 r"run: it is never replaced", run_copy(source="ft")),
        F("pretrain --out {case}/r --resume", r"--out .*r holds a fine-tuning run of sst2 .*not a pretraining run",
          run_copy(source="ft")),
        F(f"{PRE} --out {{case}}/m", r"--out .*m holds a model \(config.json, model.safetensors\), not a "
                                     r"pretraining run", model_copy()),
        F(f"{PRE} --out {{vocab}}", r"--out .*vocab is the --vocab input: writing there would change what the "
                                    r"command reads"),
        F(f"{PRE} --corpus {{case}}/c.txt --out {{case}}", r"--out \S+ contains the --corpus input",
          files(c_DOT_txt="A cat sat on a mat. The dog ran.\n\nA bird sang in a tree. The sun was out.\n")),
        F("pretrain --out {case}/r --resume --overwrite",
          r"--resume continues the run in --out, --overwrite replaces it: give one of them", run_copy()),
        F("pretrain --out {case}/r --resume", in_use.format(path=".*r"), locked()),
        F(f"{PRE} --out {{case}}/r", in_use.format(path=".*r"), locked(None)),
        # pretrain --resume: what the run's run.json and checkpoints allow
        F("pretrain --out {case}/r --resume --seq-len 16", r"--resume keeps the settings in .*run.json, but got "
                                                           r"--seq-len 16 \(the run's: 32\); only --steps, --lr, "
                                                           r"--checkpoint-every, --keep may change", run_copy()),
        F("pretrain --out {case}/r --resume --steps 1", r"--steps 1 would end the run before its newest checkpoint "
                                                        r".*step-0*2 \(step 2\); give --steps 2 or more",
          run_copy()),
        F("pretrain --out {case}/none --resume", r"--resume: no run to resume in .*none \(no run.json\)"),
        F("pretrain --out {case} --resume", r"--resume: no run to resume in \S+ \(no run.json\)"),
        # finetune: the model it reads, a pretraining run, an earlier fine-tuning run, a run in progress
        F(f"{FT} --model {{case}}/r --out {{case}}/r", r"--out .*r is the --model input: writing there would change "
                                                       r"what the command reads; use another --out", run_copy()),
        F(f"{FT} --model {{case}}/r --out {{case}}/r/best", r"--out .*r/best is inside the --model input",
          run_copy()),
        F(f"{FT} --out {{case}}/r", r"--out .*r holds a pretraining run \(1 checkpoint, up to step 2, the trained "
                                    r"model\), not a fine-tuning run: it is never replaced", run_copy()),
        F(f"{FT} --out {{case}}/r", r"--out .*r already holds a fine-tuning run of sst2 \(its best model, "
                                    r"metrics.json, a log\); use another --out, --resume to continue it, or "
                                    r"--overwrite to replace it", run_copy(source="ft")),
        F(f"{FT} --out {{case}}/r", in_use.format(path=".*r"), locked(None)),
        # finetune --resume: a run to continue, its settings (tests/train/test_finetune_resume.py)
        F("finetune --out {case}/none --resume", r"--resume: no run to resume in .*none \(no run.json\)"),
        F("finetune --out {case}/r --resume --overwrite",
          r"--resume continues the run in --out, --overwrite replaces it: give one of them", run_copy(source="ft")),
        F("finetune --out {case}/r --resume", r"--out .*r holds a pretraining run .*not a fine-tuning run",
          run_copy()),
        F("finetune --out {case}/r --resume", in_use.format(path=".*r"), locked(None)),
        F("finetune --out {case}/r --resume --epochs 2 --lr 0.1",
          r"--resume keeps the settings in .*run.json, but got --epochs 2 \(the run's: 1\), --lr 0.1 \(the "
          r"run's: 3e-05\); only --checkpoint-every, --keep may change", run_copy(source="ft")),
        F("finetune --out {case}/r --resume --no-progress", r"r/run.json: epochs must be an integer >= 1, got 0 "
                                                           r"\(edited by hand\?\)",
          run_copy(edit_json(_set(epochs=0), "run.json"), source="ft")),
        F("finetune --out {case}/r --resume", r"r/run.json holds settings this minibert does not know \(colour\)",
          run_copy(edit_json(_set(colour="red"), "run.json"), source="ft")),
        # train-vocab: a model, a run, an earlier vocabulary, its corpus's folder
        F("train-vocab --corpus {corpus} --vocab-size 50 --out {case}/m", r"--out .*m holds a model .*not a "
                                                                         r"vocabulary", model_copy()),
        F("train-vocab --corpus {corpus} --vocab-size 50 --out {case}/r --overwrite",
          r"--out .*r holds a pretraining run .*not a vocabulary", run_copy()),
        F("train-vocab --corpus {corpus} --vocab-size 50 --out {case}/v", r"--out .*v already holds a vocabulary "
                                                                         r"\(vocab.txt, 3 tokens\); use another "
                                                                         r"--out, or --overwrite",
          files(v__vocab_DOT_txt="[PAD]\n[UNK]\ncat\n")),
        F("train-vocab --corpus {case}/c.txt --vocab-size 50 --out {case}", r"--out \S+ contains the --corpus "
                                                                            r"input", files(c_DOT_txt="a cat\n")),
        # single output files: an input, a file of a run or model, another output
        F("records --model {model} --csv {case}/x.csv --text-columns question --out {case}/x.csv",
          r"--out .*x.csv is the --csv input", lambda w, c: shutil.copy(w.csv, c / "x.csv")),
        F("records --model {model} --csv {csv} --text-columns question --out {case}/r/run.json",
          r"--out .*r/run.json is a file of a pretraining run .* it is never replaced", run_copy()),
        F("records --model {model} --csv {csv} --text-columns question --out {case}/p.png --plot {case}/p.png",
          r"--plot and --out are the same file .*p.png"),
        F("embed --model {model} --input {case}/t.npy --out {case}/t.npy", r"--out .*t.npy is the --input input",
          files(t_DOT_npy="a text, one per line\n")),
        F("embed --model {case}/m --input {texts} --out {case}/m/vectors.npy",
          r"--out .*m/vectors.npy is inside the --model input", model_copy()),
        F("cluster --model {model} --corpus {case}/t.txt --out {case}/t.txt", r"--out .*t.txt is the --corpus input",
          files(t_DOT_txt="a cat\na dog\n")),
        F("cluster --model {model} --corpus {texts} --plot {case}/r/curves.png",
          r"--plot .*r/curves.png is a file of a fine-tuning run", run_copy(source="ft")),
        F("similarity --model {model} --plot {case}/m/model.safetensors a b",
          r"--plot .*m/model.safetensors is a file of a model \(config.json, model.safetensors\) in .*m: it is "
          r"never replaced", model_copy()),
        F("polysemy --model {model} --word cat --sense a={case}/a.txt --sense b={case}/b.txt --plot {case}/b.txt",
          r"--plot .*b.txt is the --sense input", files(a_DOT_txt="the cat sat\n", b_DOT_txt="a cat ran\n")),
        F("attention --model {case}/m --html {case}/m/config.json 'a text'",
          r"--html .*m/config.json is inside the --model input", model_copy()),
        F("exercises start {case}/notes", r"notes holds 1 other file \(todo.md\), not an exercises workspace: give "
                                          r"a new or empty folder", files(notes__todo_DOT_md="- my notes\n")),
    ]


DISTILL = "distill --no-progress --teacher {ft} --task sst2 --train {train} --dev {dev} --out {case}/out"
DISTILL_PRE = "distill --no-progress --pretraining --teacher {run} --out {case}/out"


def _distill() -> list[Probe]:
    """`minibert distill` (issue 19): task distillation from {ft}, pretraining distillation from {run}."""
    P = lambda cmd, flag, match: Probe("flag range", cmd, rf"argument {re.escape(flag)}: {match}")  # noqa: E731
    T = lambda cmd, match, setup=None: Probe("flags together", cmd, match, setup)  # noqa: E731
    return [
        P(f"{DISTILL} --temperature 0", "--temperature", "must be a finite number > 0, got 0"),
        P(f"{DISTILL} --temperature nan", "--temperature", "must be a finite number > 0, got nan"),
        P(f"{DISTILL} --alpha 1.5", "--alpha", r"must be a number in \[0, 1\], got 1.5"),
        P(f"{DISTILL} --alpha=-0.1", "--alpha", r"must be a number in \[0, 1\], got -0.1"),
        P(f"{DISTILL_PRE} --ce-weight=-1", "--ce-weight", "must be a finite number >= 0, got -1"),
        P(f"{DISTILL_PRE} --steps 0", "--steps", "must be an integer >= 1, got 0"),
        T("distill --teacher {ft} --out {case}/out", r"task distillation needs --task, --train, --dev"),
        T(f"{DISTILL_PRE} --task sst2", r"--task: a setting of task distillation, not of --pretraining"),
        T(f"{DISTILL_PRE} --epochs 2", r"--epochs: a setting of task distillation, not of --pretraining"),
        T(f"{DISTILL} --steps 10", r"--steps: a setting of --pretraining, not of task distillation \(task "
                                   r"distillation runs --epochs\)"),
        T(f"{DISTILL} --ce-weight 1 --cos-weight 0", r"--ce-weight, --cos-weight: a setting of --pretraining, not "
                                                     r"of task distillation"),
        T(f"{DISTILL_PRE} --alpha 0.9", r"--alpha: a setting of task distillation, not of --pretraining"),
        T(f"{DISTILL_PRE} --resume", r"--resume: no distillation to resume in .*out \(no run.json\)"),
        T("distill --out {case}/out", r"task distillation needs --teacher, --task, --train, --dev \(or --resume"),
        T("distill --out {ft} --resume", r"--resume: .*run.json is not the run.json of a `minibert distill` run"),
        T("distill --out {case}/out --resume", r"out/run.json: ce_weight must be a number, got 'lots' \(edited by "
                                              r"hand\?\)",
          files(out__run_DOT_json='{"teacher": "t", "ce_weight": "lots"}')),
        T("distill --out {case}/out --resume", r"out/run.json holds settings this minibert does not know \(colour\)",
          files(out__run_DOT_json='{"teacher": "t", "alpha": 0.5, "colour": "red"}')),
        T("distill --out {case}/out --resume", r"out/run.json lacks the settings dev, task, train \(edited by hand\?\)",
          files(out__run_DOT_json='{"teacher": "t", "alpha": 0.5}')),
        T(f"{DISTILL_PRE} --ce-weight 0 --mlm-weight 0 --cos-weight 0", r"are all 0: nothing to train"),
        T(f"{DISTILL} --student-layers 0,3", r"--student-layers '0,3': the teacher has layers 0..0; 3 is not"),
        T(f"{DISTILL} --student-layers two", r"--student-layers 'two': give teacher layer numbers"),
        T(DISTILL.replace("--task sst2", "--task rte"), r"--teacher .* was fine-tuned for sst2, not --task rte"),
        Probe("missing path", DISTILL.replace("{ft}", "{case}/nowhere"), r"--teacher .*nowhere: no such folder"),
        Probe("missing path", DISTILL_PRE.replace("{run}", "{case}/nowhere"), r"--teacher .*nowhere: no such folder"),
        Probe("damaged model", DISTILL.replace("{ft}", "{run}"), r"run has no task.json: not a folder written by"),
        Probe("damaged model", DISTILL_PRE.replace("{run}", "{ft}"), r"--teacher .*: not a `minibert pretrain` run"),
    ]


def _summarize_augment() -> list[Probe]:
    """summarize and augment (issue 19): flags out of range, missing and damaged inputs, an --out that is the input."""
    P = lambda cmd, flag, match: Probe("flag range", cmd, rf"argument {re.escape(flag)}: {match}")  # noqa: E731
    G = lambda cmd, match: Probe("missing path", cmd, match)  # noqa: E731
    I = lambda cmd, match, setup=None, stdin=None: Probe("damaged input", cmd, match, setup, stdin)  # noqa: E731,E741
    AUG = "augment --model {mlm} --in {train} --out {case}/a.tsv --per-example 2"
    return [
        P("summarize --model {model} {texts} --sentences 0", "--sentences/-k", "must be an integer >= 1, got 0"),
        P("summarize --model {model} {texts} -k -1", "--sentences/-k", "must be an integer >= 1, got -1"),
        P("summarize --model {model} {texts} -k 2 --lambda 1.5", "--lambda", r"must be a number in \[0, 1\], got 1.5"),
        P("summarize --model {model} {texts} -k 2 --lambda nan", "--lambda", r"must be a number in \[0, 1\], got nan"),
        P("augment --model {mlm} --in {train} --out {case}/a.tsv --per-example 0", "--per-example",
          "must be an integer >= 1, got 0"),
        P(AUG + " --fraction 0", "--fraction", r"must be a number in \(0, 1\], got 0"),
        P(AUG + " --fraction 1.5", "--fraction", r"must be a number in \(0, 1\], got 1.5"),
        P(AUG + " --temperature 0", "--temperature", "must be a finite number > 0, got 0"),
        P(AUG + " --top-k -1", "--top-k", "must be an integer >= 0, got -1"),
        Probe("flag syntax", "summarize --model {model} {texts}", r"the following arguments are required: --sentences"),
        Probe("flag syntax", "augment --model {mlm} --in {train} --out {case}/a.tsv",
              r"the following arguments are required: --per-example"),
        G("summarize --model {model} {case}/nowhere.txt -k 2", r"no file to summarise at .*nowhere.txt"),
        G("summarize --model {case}/nowhere {texts} -k 2", r"cannot load the model: no model folder at .*nowhere"),
        G("augment --model {mlm} --in {case}/nowhere.tsv --out {case}/a.tsv --per-example 2",
          r"no --in file at .*nowhere.tsv"),
        G("augment --model {case}/nowhere --in {train} --out {case}/a.tsv --per-example 2",
          r"cannot load the masked-LM --model .*nowhere: no run folder at .*nowhere"),
        G(AUG + " --filter-model {case}/nowhere", r"nowhere has no task.json"),
        G(AUG + " --filter-model {run}", r"run has no task.json"),
        I("summarize --model {model} {case}/doc.txt -k 2", r"doc.txt is empty: there is nothing to summarise",
          files(doc_DOT_txt=" \n\n")),
        I("summarize --model {model} - -k 2", r"^stdin is empty: there is nothing to summarise", stdin=""),
        I("summarize --model {model} {case}/doc.txt -k 2", r"doc.txt, line 2: not UTF-8",
          files(doc_DOT_txt=b"fine.\n\x80 bad\n")),
        I("augment --model {mlm} --in {case}/t.tsv --out {case}/a.tsv --per-example 2",
          r"t.tsv, line 1: expected the sst2 header", files(t_DOT_tsv="text\tlabel\na b\t1\n")),
        I("augment --model {mlm} --in {case}/t.tsv --out {case}/a.tsv --per-example 2",
          r"t.tsv, line 2: unknown label '7'", files(t_DOT_tsv="sentence\tlabel\na b\t7\n")),
        I("augment --model {mlm} --in {case}/t.tsv --out {case}/a.tsv --per-example 2",
          r"t.tsv has a header but no examples", files(t_DOT_tsv="sentence\tlabel\n")),
        Probe("files", "augment --model {mlm} --in {train} --out {train} --per-example 2", r"--out .*(is|inside) .*--in"),
    ]


PROBES: list[Probe] = (_flag_syntax() + _flag_range() + _flags_together() + _missing_path() + _damaged_model()
                       + _damaged_input() + _bad_text() + _output_path() + _files()
                       + _distill() + _summarize_augment())


# -- the world the probes run in --------------------------------------------------------------------

WORDS = ("the cat sat on a mat and dog ran to house while bird sang in tree over river by hill with sun "
         "money bank water").split()


@dataclasses.dataclass
class World:
    """The small valid inputs every probe starts from (see the module docstring)."""
    root: Path

    @property
    def corpus(self): return self.root / "corpus.txt"
    @property
    def vocab(self): return self.root / "vocab"
    @property
    def cfg(self): return self.root / "config.json"
    @property
    def run(self): return self.root / "run"
    @property
    def mlm(self): return self.root / "mlm"
    @property
    def model(self): return self.root / "model"
    @property
    def ft(self): return self.root / "ft"
    @property
    def train(self): return self.root / "train.tsv"
    @property
    def dev(self): return self.root / "dev.tsv"
    @property
    def squad(self): return self.root / "squad.json"
    @property
    def csv(self): return self.root / "records.csv"
    @property
    def texts(self): return self.root / "texts.txt"
    @property
    def vectors(self): return self.root / "vectors.npy"

    @property
    def text_lines(self) -> list[str]:
        return self.texts.read_text(encoding="utf-8").splitlines()

    def paths(self) -> dict:
        names = ("corpus", "vocab", "cfg", "run", "mlm", "model", "ft", "train", "dev", "squad", "csv", "texts",
                 "vectors")
        return {name: str(getattr(self, name)) for name in names}


def build_world(root, run_cli: Callable[[list[str]], int]) -> World:
    """Write the world's files under `root` and make its runs with `run_cli(argv) -> exit code` (a few seconds)."""
    world = World(Path(root))
    world.root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    docs = []
    for _ in range(12):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(6)]
        docs.append(" ".join(sentences))
    write(world.corpus, "\n\n".join(docs) + "\n")
    letters = sorted(set("".join(WORDS)) | set(".,!?'"))
    tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS) + [c for c in letters if c not in WORDS]
              + ["##" + c for c in letters if c.isalpha()])
    write(world.vocab / "vocab.txt", "".join(t + "\n" for t in tokens))
    write(world.cfg, json.dumps({"vocab_size": len(tokens), "hidden_size": 16, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "intermediate_size": 32,
                                 "max_position_embeddings": 64}))
    code = run_cli(["pretrain", *FAST.split(), "--corpus", str(world.corpus), "--vocab", str(world.vocab),
                    "--config", str(world.cfg), "--heldout-fraction", "0.2", "--out", str(world.run)])
    assert code == 0, f"building the world: pretrain exited {code}"
    for folder in (world.mlm, world.model):
        folder.mkdir()
        for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                     "model.safetensors"):
            shutil.copy(world.run / name, folder / name)
    weights = _arrays(world.mlm / "model.safetensors")
    encoder = {k[len("bert."):]: v for k, v in weights.items() if k.startswith("bert.")}        # no heads
    _save(world.model / "model.safetensors", encoder)
    sst2 = ["sentence\tlabel"] + [f"{' '.join(rng.choice(WORDS) for _ in range(6))}\t{i % 2}" for i in range(16)]
    write(world.train, "\n".join(sst2[:13]) + "\n")
    write(world.dev, "\n".join([sst2[0]] + sst2[13:]) + "\n")
    write(world.squad, json.dumps(SQUAD_OK))
    write(world.csv, CSV_OK + "".join(f"{' '.join(rng.choice(WORDS) for _ in range(4))},"
                                      f"{rng.choice(WORDS)},{rng.choice(['animals', 'places'])}\n" for _ in range(8)))
    write(world.texts, "".join(" ".join(rng.choice(WORDS) for _ in range(5)) + "\n" for _ in range(6)))
    code = run_cli(FT.format(**world.paths()).split() + ["--out", str(world.ft)])
    assert code == 0, f"building the world: finetune exited {code}"
    code = run_cli(["embed", "--no-progress", "--model", str(world.model), "--input", str(world.texts),
                    "--out", str(world.vectors)])
    assert code == 0, f"building the world: embed exited {code}"
    return world


def tree_hashes(*roots) -> dict:
    """{path: sha256 of its bytes} of every file under the roots ("<dir>" for every folder)."""
    found = {}
    for root in roots:
        root = Path(root)
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            if path.is_dir():
                found[str(path)] = "<dir>"
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
