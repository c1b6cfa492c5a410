"""How long each notebook takes with its default parameters: wall-clock and CPU time, notebook by notebook.

    python benchmarks/bench_notebooks.py                     # every notebook in notebooks/
    python benchmarks/bench_notebooks.py notebooks/03_mlm_nsp.ipynb [--full]

Each notebook runs from top to bottom in a fresh "python3" kernel, as tests/test_notebooks.py runs it:
the notebook's folder as working directory, matplotlib's non-interactive backend, Hugging Face offline,
MINIBERT_FULL removed (`--full` sets MINIBERT_FULL=1: the full-size runs, 30 to 60 minutes for
notebook 03). Printed for each notebook:

    wall s     what a learner waits, from starting the kernel to its last cell
    CPU s      the processor time of the kernel (and of anything it ran), user + system
    CPU/wall   above 1: NumPy's matmuls ran on several cores; well below 1: the machine was busy
               with something else, or the notebook waited (on a kernel start, on files)

The tests check that every notebook runs and what it shows, never how long it takes: a time depends
on the machine and on what else runs on it. This script is where the time is measured; a notebook
that fails stops it with the failing cell's error and exit code 1.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import nbclient
import nbformat
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (a kernel counts once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_notebook(path: Path, cell_timeout: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of the notebook in a fresh kernel, shut down at the end."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=cell_timeout,
                                     resources={"metadata": {"path": str(path.parent)}})
    cpu0, wall0 = children_cpu_seconds(), time.perf_counter()
    client.execute()               # starts the kernel, runs every cell, shuts the kernel down (and reaps it)
    return time.perf_counter() - wall0, children_cpu_seconds() - cpu0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks to run (default: every notebooks/*.ipynb, not notebooks/exercises/)")
    ap.add_argument("--full", action="store_true", help="MINIBERT_FULL=1: the full-size runs")
    ap.add_argument("--cell-timeout", type=int, default=3600,
                    help="seconds one cell may run before it counts as hung (default 3600)")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    # The kernels inherit this environment: no display, Hugging Face offline, the short or the full run.
    os.environ.update(MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if args.full:
        os.environ["MINIBERT_FULL"] = "1"
    else:
        os.environ.pop("MINIBERT_FULL", None)

    width = max(len(p.name) for p in paths)
    print(f"{len(paths)} notebook(s), {'full-size' if args.full else 'default'} parameters, "
          f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}")
    print(f"{'notebook':<{width}}  {'wall s':>8}  {'CPU s':>8}  {'CPU/wall':>8}")
    total_wall = total_cpu = 0.0
    for path in paths:
        try:
            wall, cpu = run_notebook(path, args.cell_timeout)
        except CellExecutionError as err:
            print(f"{path.name}: a cell raised an error\n{err}", file=sys.stderr)
            return 1
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"{path.name:<{width}}  {wall:8.1f}  {cpu:8.1f}  {cpu / wall:8.2f}", flush=True)
    print(f"{'total':<{width}}  {total_wall:8.1f}  {total_cpu:8.1f}  {total_cpu / max(total_wall, 1e-9):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
