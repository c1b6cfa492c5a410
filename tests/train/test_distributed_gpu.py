"""Data-parallel training on real GPUs with NCCL (`gpu` marker: skipped without CuPy and a CUDA device).

benchmarks/gpu_check.sh runs these the day a GPU is lent. On the CPU the same code is driven through an
emulated NCCL (tests/backend/test_collectives.py, tests/train/test_distributed.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibert import backend
from minibert.backend import collectives

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "mpi_worker.py"


def test_nccl_is_there():
    assert collectives.nccl_module() is not None, "CuPy's NCCL is missing: pip install nvidia-nccl-cu12"


def test_one_rank_nccl_sum_in_place():
    """A one-rank NCCL communicator (COMM_SELF): the sum of one rank is its input, in place, on the stream."""
    MPI = pytest.importorskip("mpi4py.MPI")
    if collectives.nccl_module() is None:
        pytest.skip("CuPy's NCCL is missing")
    with backend.using("cupy"):
        xp = backend.get_xp()
        summer = collectives.NcclAllreduce(MPI.COMM_SELF)
        for dtype in ("float32", "float64", "float16"):
            grad = xp.arange(1000, dtype=dtype)
            before = int(grad.data.ptr)
            assert summer(grad, timeout=30.0)
            assert int(grad.data.ptr) == before
            np.testing.assert_array_equal(grad.get(), np.arange(1000, dtype=dtype))


def test_two_gpus_train_as_one_process(tmp_path):
    """mpiexec -n 2 on two GPUs, real NCCL, float64, dropout off: the parameters of one NumPy process."""
    import cupy
    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs 2 GPUs (NCCL refuses two ranks on one)")
    from shutil import which
    mpiexec = which("mpiexec", path=str(Path(sys.executable).parent)) or which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(WORKER), "finetune", "0", str(tmp_path / "one")], env=env, check=True,
                   timeout=300)
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(WORKER), "finetune", "0", str(tmp_path / "two"),
                           "cupy"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    one = np.load(tmp_path / "one" / "params-0.npy")
    r0, r1 = (np.load(tmp_path / "two" / f"params-{r}.npy") for r in range(2))
    assert np.array_equal(r0, r1)
    assert np.abs(r0 - one).max() < 1e-10
    for rank in range(2):
        assert json.loads((tmp_path / "two" / f"nccl-{rank}.json").read_text())["nccl"]
