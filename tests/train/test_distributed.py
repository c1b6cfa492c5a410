"""Data-parallel training (minibert/train/distributed.py): the share and weight logic without MPI, the
checksum guard with a stand-in communicator, and runs under `mpiexec -n 2` on loopback (tests/train/
mpi_worker.py) that must give the one-process parameters (float64, dropout off) within 1e-12."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibert.train.distributed import (SINGLE, DistributedError, DivergedError, ProcessGroup, checksum, detect,
                                        launched_size, share)
from minibert.train.step import count_totals, loss_weights

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]


# -- shares and weights, no MPI -------------------------------------------------------------------------

def test_shares_cover_the_batch_in_order_and_differ_by_at_most_one_row():
    rows = np.arange(10, 17)                                   # 7 rows
    parts = [rows[share(7, r, 2)] for r in range(2)]
    assert [len(p) for p in parts] == [3, 4]
    assert np.array_equal(np.concatenate(parts), rows)
    for n in range(1, 20):
        for size in range(1, 6):
            sizes = [len(range(n)[share(n, r, size)]) for r in range(size)]
            assert sum(sizes) == n and max(sizes) - min(sizes) <= 1


def test_one_process_micro_batches_are_the_usual_ones():
    """SINGLE.micro_rows is rows[i*m:(i+1)*m] for m = batch / accumulate, also for an epoch's short last
    batch (3 rows of a batch of 8 in micro-batches of 2: 2 + 1): the one-process data order does not change."""
    rows = np.arange(12)
    assert [list(p) for p in SINGLE.micro_rows(rows, 3, 12)] == [list(rows[i:i + 4]) for i in range(0, 12, 4)]
    assert [list(p) for p in SINGLE.micro_rows(np.arange(3), 4, 8)] == [[0, 1], [2]]


def test_ranks_micro_batches():
    """7 rows over 2 ranks in 2 micro-batches each: rank 0 3 rows (2 + 1), rank 1 4 (2 + 2); a short batch
    of 1 row leaves rank 0 with none (it still joins the all-reduces, with zero counts)."""
    ranks = [ProcessGroup(_Rank(r, 2)) for r in range(2)]
    assert [[list(p) for p in g.micro_rows(np.arange(7), 2, 7)] for g in ranks] == [[[0, 1], [2]], [[3, 4], [5, 6]]]
    assert [[list(p) for p in g.micro_rows(np.arange(1), 2, 7)] for g in ranks] == [[], [[0]]]


def test_global_totals_make_the_ranks_weights_sum_to_one_batch():
    """Uneven shares weighted by the global denominators: the weights over every rank's micro-batches are
    the one-process weights, micro-batch for micro-batch (the gradient is then the same sum)."""
    counts = [(3, 2), (5, 2), (1, 1), (4, 2)]               # (predictions, sequences) of 4 micro-batches
    one = loss_weights(counts)
    totals = count_totals(counts)                          # what allreduce_counts returns on every rank
    ranks = [loss_weights(counts[:1], totals), loss_weights(counts[1:], totals)]
    assert ranks[0] + ranks[1] == one
    assert loss_weights(counts[1:]) != one[1:]             # local totals would weigh rank 1 as a whole batch


def test_single_process_group_does_nothing():
    g = np.arange(5.0)
    assert SINGLE.allreduce_(g) is g and np.array_equal(g, np.arange(5.0))
    assert SINGLE.allreduce_counts((3, 4)) == (3, 4) and SINGLE.allreduce_numbers([1.5]) == [1.5]
    SINGLE.check_consistent(g)
    assert (SINGLE.rank, SINGLE.size, SINGLE.distributed, SINGLE.is_main) == (0, 1, False, True)


class _Rank:
    """A stand-in communicator: rank `rank` of `size` (no collective)."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


class _TwoRanks:
    """A stand-in communicator of rank 0 of 2 whose partner holds `other` (for Allgather)."""

    def __init__(self, other: float):
        self.other = other

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Allgather(self, send, recv):
        recv[0], recv[1] = send[0], self.other


def test_diverged_parameters_name_the_rank():
    x = np.linspace(-1, 1, 11)
    ProcessGroup(_TwoRanks(checksum(x))).check_consistent(x, step=4)          # equal: passes
    with pytest.raises(DivergedError, match=r"diverged after step 4: rank 0 has checksum .* rank 1 "):
        ProcessGroup(_TwoRanks(checksum(x) + 1e-12)).check_consistent(x, step=4)


def test_checksum_sees_two_values_swapped():
    x = np.array([1.0, 2.0, 3.0])
    assert checksum(x) != checksum(x[[1, 0, 2]])


def test_launch_detection(monkeypatch):
    assert launched_size({}) == 1 and launched_size({"PMI_SIZE": "4"}) == 4
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "3"}) == 3
    assert detect(environ={}) is SINGLE
    monkeypatch.setitem(sys.modules, "mpi4py", None)                         # as if not installed
    with pytest.raises(DistributedError, match=r"rank 1 of 2: .*needs mpi4py.*pip install mpi4py mpich"):
        detect(environ={"PMI_SIZE": "2", "PMI_RANK": "1"})


# -- under mpiexec -n 2 ----------------------------------------------------------------------------------

def _mpiexec() -> str:
    """The mpiexec beside the running Python (the mpich wheel installs it there), else on PATH."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install -e .[mpi]): the 2-rank runs need it")
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec (pip install mpich)")
    return found


def _run(tmp_path, kind, dropout, ranks):
    out = tmp_path / f"{kind}-{dropout}-{ranks}"
    cmd = [sys.executable, str(WORKER), kind, str(dropout), str(out)]
    if ranks > 1:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return [np.load(out / f"params-{r}.npy") for r in range(ranks)], out


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_two_ranks_train_as_one_process(tmp_path, kind):
    """10 steps, global batch 7 (shares 3 + 4, two micro-batches each), float64, dropout off: the same
    parameters as one process with the whole batch, within 1e-12; the ranks' parameters bit-identical."""
    _mpiexec()
    (one,), _ = _run(tmp_path, kind, 0, 1)
    (r0, r1), out = _run(tmp_path, kind, 0, 2)
    assert np.array_equal(r0, r1)
    assert np.abs(r0 - one).max() < 1e-12
    assert len((out / "run" / "log.jsonl").read_text().splitlines()) == 10  # rank 0 alone wrote the log


def test_with_dropout_the_ranks_stay_identical(tmp_path):
    """Different dropout masks per rank, the same summed gradient: the checksums compared after every step
    (check_every=1 in the worker) and the final parameters agree bit for bit; not those of one process."""
    _mpiexec()
    (r0, r1), _ = _run(tmp_path, "pretrain", 1, 2)
    (one,), _ = _run(tmp_path, "pretrain", 1, 1)
    assert np.array_equal(r0, r1)
    assert not np.array_equal(r0, one)


# -- the commands under mpiexec -n 2 -----------------------------------------------------------------------

def _command(cmd, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A corpus (Alice's first chapters) and a BERT config without dropout and with it; the pretrain flags."""
    from helpers import data_path, write
    from minibert.data.pretraining import read_gutenberg
    folder = tmp_path_factory.mktemp("dp")
    docs = read_gutenberg(data_path("gutenberg"), books=["carroll-alice_in_wonderland.txt"])[:6]
    corpus = write(folder / "alice.txt", "\n\n".join(" ".join(d) for d in docs) + "\n")
    config = dict(vocab_size=600, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64)
    for name, p in (("cfg0.json", 0.0), ("cfg1.json", 0.1)):
        write(folder / name, {**config, "hidden_dropout_prob": p, "attention_probs_dropout_prob": p})
    flags = ["--no-progress", "--corpus", str(corpus), "--vocab-size", "600", "--steps", "8", "--batch-size", "7",
             "--seq-len", "64", "--eval-every", "4", "--eval-batches", "2", "--checkpoint-every", "4",
             "--heldout-fraction", "0.2", "--lr", "1e-3"]
    return folder, flags


def _steps(run_dir):
    """The log's rows without their timings."""
    import json
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "seconds")} for r in rows]


def test_pretrain_command_on_two_ranks_is_the_one_process_run(small_run):
    """`mpiexec -n 2 python -m minibert pretrain` (float64, dropout off, 7 sequences per step: shares 3 + 4):
    the model within 1e-12 of one process's, the same log, the same output (rank 0 alone speaks)."""
    from safetensors.numpy import load_file
    mpiexec = _mpiexec()
    folder, flags = small_run
    flags = flags + ["--config", str(folder / "cfg0.json"), "--dtype", "float64"]
    one = _command([sys.executable, "-m", "minibert", "pretrain", *flags, "--out", str(folder / "one")])
    two = _command([mpiexec, "-n", "2", sys.executable, "-m", "minibert", "pretrain", *flags,
                    "--out", str(folder / "two")])
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = load_file(folder / "one" / "model.safetensors"), load_file(folder / "two" / "model.safetensors")
    assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-12
    for r1, r2 in zip(_steps(folder / "one"), _steps(folder / "two"), strict=True):
        assert r1.keys() == r2.keys()
        for k in r1:
            assert r2[k] == pytest.approx(r1[k], rel=1e-12, abs=1e-12), (r1["step"], k)
    assert "2 ranks (data-parallel), 7 sequences per step in all" in two.stdout
    assert len(two.stdout.splitlines()) == len(one.stdout.splitlines()) + 1      # and which rank is which pid:
    assert re.search(r"data-parallel over 2 ranks: rank 0 pid \d+ on .*, rank 1 pid \d+ on ", two.stdout)


def test_a_killed_rank_ends_the_job_and_resume_is_the_uninterrupted_run(small_run):
    """Dropout on. Rank 1 SIGKILLed as its 7th step starts (tests/train/kill_at.py; rank 0 waits for it in the
    all-reduce): the job exits non-zero at once, hydra naming a PID of the job. `--resume` on 2 ranks from the
    step-4 checkpoint (every rank's dropout state in it) ends bit for bit as the uninterrupted 2-rank run: model
    and log."""
    from safetensors.numpy import load_file
    mpiexec = _mpiexec()
    folder, flags = small_run
    flags = flags + ["--config", str(folder / "cfg1.json")]
    minibert = [sys.executable, "-m", "minibert", "pretrain", *flags]
    full = _command([mpiexec, "-n", "2", *minibert, "--out", str(folder / "full")])
    assert full.returncode == 0, full.stderr
    killer = [sys.executable, str(Path(__file__).with_name("kill_at.py")), "minibert.train.loop:train_step", "7",
              "before", "--", "pretrain", *flags]
    killed = _command([mpiexec, "-n", "1", *minibert, "--out", str(folder / "cut"), ":",
                       "-n", "1", *killer, "--out", str(folder / "cut")], timeout=60)
    assert killed.returncode != 0
    out = killed.stdout + killed.stderr
    assert "BAD TERMINATION" in out                                           # MPICH's hydra ends the job
    assert "Killed (signal 9)" in out
    pids = dict(re.findall(r"rank (\d) pid (\d+)", out))                    # rank 0's map of ranks to processes
    # the process hydra names: rank 1's as a rule, but its clean-up SIGKILLs rank 0 too and it reports the
    # first it reaps, so under load now and then rank 0's (docs/distributed.md, "A rank that dies")
    assert re.search(r"PID (\d+)", out).group(1) in (pids["1"], pids["0"]), out
    assert (folder / "cut" / "checkpoints" / "step-00000004").is_dir()
    assert not (folder / "cut" / "model.safetensors").exists()
    resumed = _command([mpiexec, "-n", "2", *minibert, "--out", str(folder / "cut"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout and "(step 4)" in resumed.stdout
    a, b = load_file(folder / "full" / "model.safetensors"), load_file(folder / "cut" / "model.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert _steps(folder / "full") == _steps(folder / "cut")


def test_an_error_on_one_rank_names_it_and_aborts_every_rank(small_run):
    """A refused run (a corpus that does not exist) on 2 ranks: `error: rank R of 2: ...` and a non-zero exit
    (MPI_Abort), not a hang."""
    mpiexec = _mpiexec()
    folder, flags = small_run
    done = _command([mpiexec, "-n", "2", sys.executable, "-m", "minibert", "pretrain", *flags, "--config",
                     str(folder / "cfg0.json"), "--corpus", str(folder / "missing.txt"), "--out", str(folder / "bad")],
                    timeout=60)
    assert done.returncode == 2
    assert re.search(r"error: rank [01] of 2: .*missing\.txt", done.stderr), done.stderr


def test_the_benchmark_runs():
    """benchmarks/bench_distributed.py at tiny sizes (figures not checked: that the script still works)."""
    _mpiexec()
    done = _command([sys.executable, str(ROOT / "benchmarks" / "bench_distributed.py"), "--steps", "1", "--batch",
                     "4", "--seq", "16", "--sizes", "tiny", "--repeats", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 ranks x 1 thread" in done.stdout and re.search(r"tiny\s+1,528,130", done.stdout)


def test_a_stuck_rank_stops_the_job_at_the_timeout(tmp_path):
    """Rank 1 stuck (asleep for 60 s) before its 3rd step; the all-reduce timeout is 2 s: rank 0 gives up,
    says so with its rank, and MPI Abort ends the job before rank 1 wakes (a job that waited for it would
    pass the 45 s hang guard, and the test would fail with TimeoutExpired)."""
    mpiexec = _mpiexec()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(WORKER), "pretrain", "0", str(tmp_path), "hang"],
                          env=env, capture_output=True, text=True, timeout=45)
    assert done.returncode != 0
    assert re.search(r"error: rank 0 of 2: rank 0 of 2 waited \d+ s for the other ranks in the all-reduce of",
                     done.stderr), done.stderr


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_two_ranks_on_devices_sum_through_nccl(tmp_path, kind):
    """The GPU path on the CPU: each rank's model on the strict CuPy stand-in, its gradient summed by an
    emulated NCCL (tests/train/fake_nccl.py) at the device buffer's address, in place, on the current
    stream; each rank on its own GPU (local ranks 0 and 1); one NCCL call per step; the parameters those
    of one NumPy process within 1e-12 (a sum that missed the buffer would leave each rank's half)."""
    _mpiexec()
    (one,), _ = _run(tmp_path, kind, 0, 1)
    out = tmp_path / f"{kind}-nccl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(WORKER), kind, "0", str(out), "nccl"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    r0, r1 = (np.load(out / f"params-{r}.npy") for r in range(2))
    assert np.array_equal(r0, r1)
    assert np.abs(r0 - one).max() < 1e-12
    for rank in range(2):
        record = json.loads((out / f"nccl-{rank}.json").read_text())
        assert record["chosen"] == f"rank {rank}: GPU {rank}, gradients summed by NCCL"
        assert record["devices"] == [rank] and not record["aborted"]
        assert record["calls"] == [[one.size, "float64"]] * 10            # the flat gradient, once a step


def _cut_back_to_step_4(run_dir: Path) -> None:
    """Make a finished run look killed after its step-4 checkpoint: no final model, no later checkpoint."""
    (run_dir / "model.safetensors").unlink()
    shutil.rmtree(run_dir / "checkpoints" / "step-00000008")


def test_resume_on_another_number_of_ranks(small_run):
    """float64, dropout off: a checkpoint written by 2 ranks resumed by 1 process, and one written by 1 process
    resumed by 2 ranks, both end within 1e-12 of the uninterrupted one-process run (the same global batches
    and schedule: only the additions' order differs). The second says that ranks 1.. start new dropout streams."""
    from safetensors.numpy import load_file
    mpiexec = _mpiexec()
    folder, flags = small_run
    minibert = [sys.executable, "-m", "minibert", "pretrain", *flags, "--config", str(folder / "cfg0.json"),
                "--dtype", "float64", "--keep", "5"]
    runs = {"ref": [], "from2": [mpiexec, "-n", "2"], "from1": []}
    for name, launch in runs.items():
        done = _command([*launch, *minibert, "--out", str(folder / f"n-{name}")])
        assert done.returncode == 0, done.stderr
    for name, launch in (("from2", []), ("from1", [mpiexec, "-n", "2"])):
        _cut_back_to_step_4(folder / f"n-{name}")
        done = _command([*launch, *minibert, "--out", str(folder / f"n-{name}"), "--resume"])
        assert done.returncode == 0, done.stderr
        assert "(step 4)" in done.stdout
        if name == "from1":
            assert "written by 1 rank(s), this run has 2: the dropout streams of ranks 1.. start afresh" in done.stdout
        a, b = load_file(folder / "n-ref" / "model.safetensors"), load_file(folder / f"n-{name}" / "model.safetensors")
        assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-12, name
