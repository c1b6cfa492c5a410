"""Fixtures shared by the tests of minibert/apps."""
from __future__ import annotations

import pytest

from helpers import tiny_pretraining_flags, tiny_pretraining_inputs
from minibert.apps.fill_mask import load_pretraining_model
from minibert.cli import main


@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    """(model, tokenizer, run folder) of a tiny `minibert pretrain` run (1 layer, hidden 32, vocabulary 120),
    the model in float64; one per test module."""
    root = tmp_path_factory.mktemp("mlm")
    (root / "in").mkdir()
    assert main(tiny_pretraining_flags(tiny_pretraining_inputs(root / "in"), root / "run")) == 0
    model, tok = load_pretraining_model(root / "run", dtype="float64")
    return model, tok, root / "run"
