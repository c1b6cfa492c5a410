"""minibert/checks.py: the declared ranges of settings, and a run.json read back for --resume checked with them.

The command line's side (argparse naming the flag, every command through its bad inputs) is
tests/cli/test_bad_inputs.py; here the library's side, which a notebook calling pretrain.run meets."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from minibert import checks
from minibert.cli.pretrain import PretrainCommandArgs, pretrain_settings
from minibert.train.pretrain import PretrainArgs, PretrainError, load_run_args


def field(name: str) -> dataclasses.Field:
    return PretrainArgs.__dataclass_fields__[name]


@pytest.mark.parametrize("name, value, problem", [
    ("steps", 10, None),
    ("steps", 0, "must be an integer >= 1"),
    ("steps", "many", "must be an integer"),
    ("steps", True, "must be an integer"),                 # a bool is not a count
    ("lr", 1, None),                                       # an int where a float goes: JSON writes 1.0 as 1
    ("lr", math.nan, "must be a finite number > 0"),
    ("corpus", None, None),
    ("corpus", 5, "must be a string or null"),
    ("whole_word_mask", "yes", "must be true or false"),
    ("optimizer", "sgd", "must be one of torch, google"),
    ("max_predictions", None, None),                       # optional: checked only when given
    ("max_predictions", 0, "must be an integer >= 1"),
])
def test_field_problem_checks_type_choices_and_range(name, value, problem):
    assert checks.field_problem(field(name), value) == problem


def test_settings_are_checked_when_made_and_none_means_not_given():
    with pytest.raises(checks.SettingError, match=r"^--eval-every: must be an integer >= 1, got 0$"):
        PretrainArgs(eval_every=0)
    given = PretrainCommandArgs()                          # --steps, --lr, ... not typed: None, not checked
    assert given.steps is None and given.lr is None
    assert pretrain_settings(given) == PretrainArgs()      # resolved: the defaults, checked again


def write_run_json(folder, settings: dict):
    folder.mkdir(exist_ok=True)
    (folder / "run.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


def test_load_run_args_reads_back_what_a_run_wrote(tmp_path):
    saved = {**dataclasses.asdict(PretrainArgs(steps=20, lr=2e-3)),
             "schedule": [{"from_step": 0, "steps": 10, "lr": 1e-3}, {"from_step": 8, "steps": 20, "lr": 2e-3}]}
    args = load_run_args(write_run_json(tmp_path / "r", saved), progress=False)
    assert (args.steps, args.lr, args.progress) == (20, 2e-3, False)


@pytest.mark.parametrize("settings, message", [
    ([1, 2], r"run.json should hold a JSON object of settings, got list"),
    ({"task": "sst2", "train": "train.tsv"}, r"run.json is the run.json of a fine-tuning run \(task 'sst2'\), not "
                                             r"of a pretraining run"),
    ({"corpus": None, "colour": "red"}, r"run.json holds settings this minibert does not know \(colour\)"),
    ({"corpus": None, "steps": "many"}, r"run.json: steps must be an integer, got 'many' \(edited by hand\?\)"),
    ({"corpus": None, "seq_len": 2}, r"run.json: seq_len must be an integer >= 5, got 2"),
    ({"corpus": None, "dtype": "float16"}, r"run.json: dtype must be one of float32, float64, got 'float16'"),
])
def test_load_run_args_refuses_what_is_not_a_pretraining_runs_settings(tmp_path, settings, message):
    with pytest.raises(PretrainError, match=message):
        load_run_args(write_run_json(tmp_path / "r", settings))


def test_load_run_args_without_a_run(tmp_path):
    with pytest.raises(PretrainError, match=r"--resume: no run to resume in .* \(no run.json\)"):
        load_run_args(tmp_path)


@dataclasses.dataclass
class _Settings:
    name: str
    steps: int = 3


@pytest.mark.parametrize("saved, message", [
    ("text", r"r.json should hold a JSON object of settings, got str; it was not written by `minibert x`"),
    ({"name": "a", "colour": 1}, r"r.json holds settings this minibert does not know \(colour\)"),
    ({"steps": 2}, r"r.json lacks the settings name \(edited by hand\?\)"),
    ({"name": "a", "steps": 2.5}, r"r.json: steps must be an integer, got 2.5 \(edited by hand\?\)"),
])
def test_settings_from_json_names_the_file_and_the_problem(saved, message):
    with pytest.raises(ValueError, match=message):
        checks.settings_from_json(saved, _Settings, "r.json", ValueError, command="x")


def test_settings_from_json_drops_the_records_it_is_told_to_ignore():
    saved = {"name": "a", "history": [1, 2]}
    assert checks.settings_from_json(saved, _Settings, "r.json", ValueError, command="x", ignore=("history",)) == \
        {"name": "a"}
