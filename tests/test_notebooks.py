"""Every notebook in notebooks/ runs from top to bottom without an error.

Generic on purpose: a new `notebooks/*.ipynb` is picked up automatically (one test per file, named
after it). Notebooks under notebooks/exercises/ are left out: their student versions have blanks to
fill in (tests/exercises/test_exercises.py generates and runs them, blank and solved). Each runs in a fresh
"python3" kernel with the notebooks folder as working directory and matplotlib's non-interactive
backend; a cell that raises fails the test with that cell's error.

Notebooks 02 and 03 read ../shared/data when it is there and built-in text otherwise; the README's
main install has no data folder, so they also run from a copy where it is absent (their assertion
cells, the figures their text states, must hold on both paths).

No time is checked here: how long a notebook takes depends on the machine and on what else runs on
it, so a bound would fail on a busy machine for no fault of the notebook. `benchmarks/bench_notebooks.py`
prints each notebook's wall-clock and CPU time instead. A notebook with a long full-size version reads
the environment variable MINIBERT_FULL (`MINIBERT_FULL=1` selects it); the tests remove it, so they
always run the short version.
"""
from __future__ import annotations

import re

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from helpers import REPO, data_path

NOTEBOOKS = REPO / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))     # top level only, so notebooks/exercises/ is not collected
CELL_TIMEOUT_S = 1800   # a hang guard for one cell, not a time the notebook must keep to
README = NOTEBOOKS.parent / "README.md"
NEEDS_DATA = {"05_finetuning.ipynb": ("sst2", "wnut17", "xquad")}   # under ../shared/data: skipped without them


def execute(path, workdir, monkeypatch) -> nbformat.NotebookNode:
    """Run the notebook at `path` in a fresh kernel whose working directory is `workdir`; return it executed."""
    # The kernel inherits this process's environment: no display, Hugging Face offline.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("MINIBERT_FULL", raising=False)      # the short, default run
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as err:   # its message holds the failing cell's source and traceback
        pytest.fail(f"{path.name}: a cell raised an error\n{err}", pytrace=False)
    return nb


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    for part in NEEDS_DATA.get(path.name, ()):
        data_path(part)
    execute(path, NOTEBOOKS, monkeypatch)     # cwd = notebooks/, so ../../shared/data is the data folder


# Notebooks that read ../shared/data when it is there and built-in text otherwise. The README's main
# install has no data folder, so the other path is what a learner runs: its assertion cells (the
# figures the text states) must hold there too. Notebook 03 trains for a while on either path: slow.
WITHOUT_DATA = [pytest.param("02_wordpiece.ipynb", id="02_wordpiece.ipynb"),
                pytest.param("03_mlm_nsp.ipynb", id="03_mlm_nsp.ipynb", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", WITHOUT_DATA)
def test_notebook_runs_without_the_shared_data(name, tmp_path, monkeypatch):
    """A copy in TMP/repo/notebooks/, where ../../shared/data does not exist, takes its fallback path."""
    folder = tmp_path / "repo" / "notebooks"
    folder.mkdir(parents=True)
    copy = folder / name
    copy.write_bytes((NOTEBOOKS / name).read_bytes())
    nb = execute(copy, folder, monkeypatch)
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                      for out in cell.get("outputs", ()))
    assert "is not here" in printed, f"{name} did not say it fell back to its built-in text"


def test_readme_names_the_benchmark_and_the_full_size_flag():
    """The README says how long the notebooks take by pointing at the benchmark that measures it."""
    text = README.read_text(encoding="utf-8")
    assert "benchmarks/bench_notebooks.py" in text and "MINIBERT_FULL=1" in text
    assert not re.search(r"within \d+ s", text), "a time bound in the README is a promise no test keeps"
