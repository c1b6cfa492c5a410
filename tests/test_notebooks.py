"""Every notebook in notebooks/ runs from top to bottom without an error.

Generic on purpose: a new `notebooks/*.ipynb` is picked up automatically (one test per file, named
after it). Notebooks under notebooks/exercises/ are left out: their student versions have blanks to
fill in. Each runs in a fresh "python3" kernel with the notebooks folder as working directory and
matplotlib's non-interactive backend; a cell that raises fails the test with that cell's error.
"""
from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))     # top level only, so notebooks/exercises/ is not collected
CELL_TIMEOUT_S = 600


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits this process's environment: no display, Hugging Face offline.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})  # cwd = notebooks/
    try:
        client.execute()
    except CellExecutionError as err:   # its message holds the failing cell's source and traceback
        pytest.fail(f"{path.name}: a cell raised an error\n{err}", pytrace=False)
