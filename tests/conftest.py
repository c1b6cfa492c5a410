"""Shared test set-up: offline Hugging Face, the strict CuPy stand-in, markers, data paths."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))              # the shared helpers (helpers.py, strict_xp.py, reference.py, ...)

from helpers import DATA, REPO  # noqa: E402,F401

from minibert import backend  # noqa: E402
from strict_xp import strict_xp  # noqa: E402

backend.register("strict", strict_xp)


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("MINIBERT_SLOW") == "1"
    gpu_ok = backend.gpu_available()
    skip_slow = pytest.mark.skip(reason="slow test: set MINIBERT_SLOW=1 to run it")
    skip_gpu = pytest.mark.skip(reason="needs CuPy with a CUDA device; none here (backend.gpu_available() is False)")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not gpu_ok:
            item.add_marker(skip_gpu)


@pytest.fixture
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


@pytest.fixture
def strict_backend():
    """Run the test body with the strict CuPy stand-in as the backend."""
    with backend.using("strict") as xp:
        yield xp
