"""Every notebook in notebooks/ runs from top to bottom without an error.

Generic on purpose: a new `notebooks/*.ipynb` is picked up automatically (one test per file, named
after it). Notebooks under notebooks/exercises/ are left out: their student versions have blanks to
fill in (tests/exercises/test_exercises.py generates and runs them, blank and solved). Each runs in a fresh
"python3" kernel with the notebooks folder as working directory and matplotlib's non-interactive
backend; a cell that raises fails the test with that cell's error.

Time budget: every notebook must finish within BUDGET_S with its default parameters, the budget the
README states. A notebook with a long full-size version reads the environment variable MINIBERT_FULL
(`MINIBERT_FULL=1` selects it); the tests remove it, so they always run the short version.
"""
from __future__ import annotations

import re
import time

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from helpers import REPO, data_path

NOTEBOOKS = REPO / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))     # top level only, so notebooks/exercises/ is not collected
CELL_TIMEOUT_S = 600
BUDGET_S = 180          # per notebook, default parameters; stated in README.md ("Learning path")
README = NOTEBOOKS.parent / "README.md"
NEEDS_DATA = {"05_finetuning.ipynb": ("sst2", "wnut17", "xquad")}   # under ../shared/data: skipped without them


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    for part in NEEDS_DATA.get(path.name, ()):
        data_path(part)
    # The kernel inherits this process's environment: no display, Hugging Face offline.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("MINIBERT_FULL", raising=False)      # the short, default run
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})  # cwd = notebooks/
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:   # its message holds the failing cell's source and traceback
        pytest.fail(f"{path.name}: a cell raised an error\n{err}", pytrace=False)
    seconds = time.perf_counter() - start
    assert seconds < BUDGET_S, (f"{path.name} took {seconds:.0f} s, over the {BUDGET_S} s budget the README "
                                f"states: shrink its default parameters (keep the big run behind MINIBERT_FULL=1)")


def test_readme_states_the_notebook_budget_and_the_full_size_flag():
    text = README.read_text(encoding="utf-8")
    stated = re.search(r"within (\d+) s\s+each", text)
    assert stated and int(stated.group(1)) == BUDGET_S, "README.md must state the notebooks' time budget"
    assert "MINIBERT_FULL=1" in text
