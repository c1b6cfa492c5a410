"""The one place where errors become messages: `error: <message>` on one line, and an exit code."""
from __future__ import annotations

import subprocess
import sys

import pytest

import minibert.cli.pretrain
import minibert.train.pretrain
from minibert.apps.records import RecordsError
from minibert.backend import BackendError
from minibert.cli import main
from minibert.data.pretraining.readers import EmptyCorpusError
from minibert.data.tasks.files import DataFormatError, EmptyFileError
from minibert.errors import InputError, MinibertError
from minibert.exercises import StudentFileError
from minibert.exercises.catalog import UnknownExerciseError
from minibert.model.config import ConfigError
from minibert.model.io import CheckpointError
from minibert.model.pretrained import PretrainedModelNotFound
from minibert.tokenization.vocab import VocabularyError
from minibert.train.finetune import FinetuneError
from minibert.train.pretrain import PretrainError
from minibert.train.step import NonFiniteLossError


def run_main(argv, capsys) -> tuple[int, str]:
    """main(argv)'s exit code and what it wrote on stderr."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, capsys.readouterr().err


def test_a_minibert_error_is_one_line_and_exit_code_2(monkeypatch, tmp_path, capsys):
    def bad(run_dir):
        raise InputError(f"{run_dir} is not\na run folder")
    monkeypatch.setattr(minibert.cli.pretrain, "plot_run", bad)
    code, err = run_main(["plot", str(tmp_path)], capsys)
    assert code == 2 and err == f"error: {tmp_path} is not a run folder\n"


def test_a_non_finite_loss_is_exit_code_3(monkeypatch, capsys):
    def diverge(args, resume=False, overwrite=False, group=None):
        raise NonFiniteLossError("loss is nan at step 3; parameters were not updated")
    monkeypatch.setattr(minibert.train.pretrain, "run", diverge)
    code, err = run_main(["pretrain", "--no-progress"], capsys)
    assert code == 3 and err == "error: loss is nan at step 3; parameters were not updated\n"


def test_minibert_errors_keep_their_old_base_classes():
    for error, base in [(ConfigError, ValueError), (CheckpointError, RuntimeError), (PretrainError, RuntimeError),
                        (FinetuneError, RuntimeError), (DataFormatError, ValueError),
                        (EmptyFileError, DataFormatError),
                        (EmptyCorpusError, ValueError), (RecordsError, ValueError), (BackendError, RuntimeError),
                        (PretrainedModelNotFound, RuntimeError), (StudentFileError, Exception),
                        (VocabularyError, ValueError), (UnknownExerciseError, KeyError),
                        (NonFiniteLossError, FloatingPointError)]:
        assert issubclass(error, MinibertError) and issubclass(error, base), error
        assert error("x").exit_code == (3 if error is NonFiniteLossError else 2)


def test_a_bad_path_is_exit_code_2(monkeypatch, tmp_path, capsys):
    def missing(run_dir):
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "log.jsonl"))
    monkeypatch.setattr(minibert.cli.pretrain, "plot_run", missing)
    code, err = run_main(["plot", str(tmp_path)], capsys)
    assert code == 2 and err == f"error: No such file or directory: {tmp_path / 'log.jsonl'}\n"


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    def bug(run_dir):
        raise ZeroDivisionError("a bug in minibert")
    monkeypatch.setattr(minibert.cli.pretrain, "plot_run", bug)
    with pytest.raises(ZeroDivisionError):
        main(["plot", str(tmp_path)])


def test_no_traceback_from_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minibert", "plot", str(tmp_path / "nowhere")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "minibert.exercises", "check", "ws", "no_such_exercise"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: no exercise 'no_such_exercise'; choose one of")
