"""`--precision fp32|tf32|fp16` on pretrain and finetune (minibert/cli/precision.py): what reaches the run,
the errors (one line), and that the older --fp16 keeps working."""
from __future__ import annotations

import pytest

import minibert.cli.finetune
import minibert.cli.pretrain
from minibert.backend import precision
from minibert.cli import main


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, capsys.readouterr().err


@pytest.fixture
def runs(monkeypatch):
    """The commands' runs replaced by a recorder of (fp16 setting, precision in effect during the run)."""
    seen = []

    def finetune_run(settings, overwrite=False, group=None, resume=False):
        seen.append((settings.fp16, precision.get_precision()))

    def pretrain_run(settings, resume=False, overwrite=False, group=None):
        seen.append((None, precision.get_precision()))
    monkeypatch.setattr(minibert.cli.finetune.finetune, "run", finetune_run)
    monkeypatch.setattr(minibert.cli.finetune, "plot_run", lambda out: [])
    monkeypatch.setattr(minibert.cli.pretrain.pretrain, "run", pretrain_run)
    monkeypatch.setattr(minibert.cli.pretrain, "_fill_mask_examples", lambda *a, **k: None)
    return seen


@pytest.mark.parametrize("flags, want", [([], (False, "fp32")), (["--precision", "fp32"], (False, "fp32")),
                                         (["--precision", "fp16"], (True, "fp16")), (["--fp16"], (True, "fp16")),
                                         (["--fp16", "--precision", "fp16"], (True, "fp16"))])
def test_finetune_precision_reaches_the_run_and_is_put_back(flags, want, runs, tmp_path):
    assert main(["finetune", "--task", "sst2", "--train", "t.tsv", "--dev", "d.tsv", "--out", str(tmp_path / "ft"), *flags]) == 0
    assert runs == [want]
    assert precision._state["precision"] is None                # the setting is the command's only


def test_pretrain_precision(runs, tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "pt"), "--precision", "fp32"]) == 0
    assert runs == [(None, "fp32")]
    code, err = run_main(["pretrain", "--out", str(tmp_path / "pt2"), "--precision", "fp16"], capsys)
    assert code == 2 and "no loss scaling" in err and err.count("\n") == 1


@pytest.mark.parametrize("flags, message", [(["--precision", "tf32"], "tf32 needs the cupy backend"),
                                            (["--fp16", "--precision", "fp32"], "contradict")])
def test_finetune_precision_errors_are_one_line(flags, message, runs, tmp_path, capsys):
    code, err = run_main(["finetune", "--task", "sst2", "--train", "t.tsv", "--dev", "d.tsv", "--out", str(tmp_path / "ft"), *flags], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert runs == []
