"""Shared test set-up: offline Hugging Face, the strict CuPy stand-in, the markers, the `xp` fixture.

- tests/ goes on sys.path, so every test file imports the shared modules by name: helpers.py (paths,
  perturbed models, padded batches, file writers, ...), reference.py (transformers / torch references),
  tokenization_data.py, strict_xp.py.
- The strict stand-in for CuPy (strict_xp.py) is registered as the backend "strict".
- Markers: `slow` tests run only with MINIBERT_SLOW=1; `gpu` tests (real CuPy) only where
  backend.gpu_available(). Both are skipped otherwise, with the reason.

Fixture `xp` (parametrised): the test runs twice, its body once under each backend, and gets that
backend's array module:

    xp[numpy]   minibert.backend.using("numpy"): xp is numpy
    xp[strict]  minibert.backend.using("strict"): xp is the strict CuPy stand-in, whose arrays
                (xp.ndarray, StrictArray) refuse implicit conversion to NumPy and mixing with
                host arrays, as CuPy's do; a line that would fail on a GPU fails here

    def test_model_stays_on_the_device(xp):
        model = BertModel(cfg)                          # made with the selected backend
        assert isinstance(model.params[name], xp.ndarray)
        with backend.using("numpy"):                    # the host run to compare with
            ...

Real CuPy is tested by the `gpu`-marked tests, which select it themselves (backend.using("cupy")).
"""
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

from minibert import backend  # noqa: E402
from strict_xp import strict_xp  # noqa: E402

backend.register("strict", strict_xp)

BACKENDS = ("numpy", "strict")


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


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The test body runs under backend `request.param` ("numpy", then "strict"); yields its array module."""
    with backend.using(request.param) as module:
        yield module
