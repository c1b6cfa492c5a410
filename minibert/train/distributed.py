"""Data-parallel training over MPI: N processes, one model each, the same numbers as one process.

    mpiexec -n 2 python -m minibert pretrain ...        (each process is a *rank*, 0 .. N-1)

Every rank holds the whole model and the same parameters. One optimizer step of a global batch of
B rows (the batch the single-process run with the same --batch-size reads, in the same order):

    rank r takes its contiguous share, rows[B*r//N : B*(r+1)//N]          (`share`)
    counts   n_rk  = what loss term k averages over in rank r's share     (host ints)
    totals   N_k   = sum_r n_rk                           Allreduce #1   (`allreduce_counts`)
    weights  w_ik  = n_ik / N_k  per micro-batch i of this rank: the GLOBAL denominator, so uneven
                     shares are weighted exactly (train/step.py's loss_weights with totals)
    backward       g_r = sum_i w_i * grad(loss_i)         on each rank, into the flat gradient buffer
    gradient       g   = sum_r g_r                        Allreduce #2   (`allreduce_`, in place)
    then clipping and AdamW run on every rank over the same g: the parameters stay equal.

Since sum_r sum_i n_ik / N_k * grad_ik is the single-process gradient, the run is the one-process
run up to the order of the floating-point additions (float64: within ~1e-15 relative per step).

(A third, small all-reduce sums the weighted losses, right answers and tokens for the log.) They use
upper-case `Allreduce` (MPI's buffer interface: the NumPy array's memory is handed to MPI, nothing is
pickled) with MPI.IN_PLACE, and the gradient is ONE flat array (`model.grads.buffers.grad`,
minibert/model/flat.py): one collective per step, not one per tensor. With a `timeout` they are the
non-blocking `Iallreduce`, tested until done or the time is up (DistributedError: a rank stuck or gone).

Guards: every K steps the ranks compare a float64 checksum of their parameters (`check_consistent`,
one `Allgather` of one number each); ranks that differ from rank 0 are named in DivergedError.
An error on one rank while the others wait in a collective would hang the job: the command line
calls `abort` (MPI.COMM_WORLD.Abort), which ends every rank with the exit code.

On GPUs (the CuPy backend) `use_gpus` puts each rank on its own GPU and the gradient sum goes through
NCCL on the devices (minibert/backend/collectives.py), not through the host.

mpi4py (and an MPI: the `mpich` wheel) is an optional extra, `pip install -e .[mpi]`; it is imported
only when a launch has more than one rank, inside `detect`. A single process uses `SINGLE`, whose
collectives return their input.
"""
from __future__ import annotations

import os
import time

import numpy

from minibert import backend
from minibert.backend import collectives
from minibert.errors import MinibertError

# What MPI launchers put in each process's environment: the rank and the number of ranks.
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MPI_LOCALRANKID")
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS")

INSTALL_HINT = "pip install mpi4py mpich   (or: pip install -e .[mpi])"


class DistributedError(MinibertError):
    """A data-parallel run cannot start or continue (MPI missing, ranks that disagree); names the rank(s)."""


class DivergedError(DistributedError):
    """The ranks' parameters are no longer equal: their checksums are named, rank by rank."""


class ProcessGroup:
    """The ranks of a data-parallel run and the collectives a training step needs.

    rank, size    this process's number and the number of processes
    comm          the mpi4py communicator (None for a single process)
    timeout       seconds a training step's all-reduce may wait for the other ranks before this rank
                  stops with DistributedError (a rank stuck or gone); None: wait for ever

    A single process (`ProcessGroup()`, the module's SINGLE) does nothing: every collective returns
    its input unchanged, so the one-process numbers stay bit for bit what they were.
    """

    def __init__(self, comm=None, timeout: float | None = None):
        self.comm, self.timeout = comm, timeout
        self.device_sum = None       # on GPUs: a collectives.NcclAllreduce (use_gpus), else host staging
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the log, checkpoints, plots and the model."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"ProcessGroup(rank {self.rank} of {self.size})"

    # -- the collectives ----------------------------------------------------------------------------
    def allreduce_counts(self, totals: tuple[int, ...]) -> tuple[int, ...]:
        """Each loss term's denominator summed over the ranks: N_k = sum_r n_rk (int64, exact)."""
        if not self.distributed:
            return tuple(totals)
        buf = numpy.asarray(totals, dtype=numpy.int64)
        self._sum(buf, "the loss denominators")
        return tuple(int(n) for n in buf)

    def allreduce_(self, array, what: str = "the gradient"):
        """Sum `array` over the ranks, in place (every rank ends with the same sum); returns it.

        A NumPy array goes to MPI through the buffer interface (no copy, no pickling). A device array
        (CuPy) is summed by NCCL on the GPUs when `use_gpus` set it up (no host copy: the sum is queued
        on the stream); without NCCL it is copied to the host, summed by MPI and copied back (correct
        on any MPI, two PCIe crossings of the array).
        """
        if not self.distributed:
            return array
        if self.device_sum is not None and not isinstance(array, numpy.ndarray):
            if not self.device_sum(array, timeout=self.timeout):
                raise DistributedError(f"rank {self.rank} of {self.size} waited {self.timeout:.0f} s for the other "
                                       f"ranks in the NCCL all-reduce of {what}: a rank is stuck or gone; "
                                       f"stopping every rank")
            return array
        if isinstance(array, numpy.ndarray):
            if not array.flags.c_contiguous:
                raise DistributedError("all-reduce needs a contiguous array (the flat gradient buffer is one)")
            self._sum(array, what)
            return array
        host = numpy.ascontiguousarray(backend.to_host(array))
        self._sum(host, what)
        array[...] = backend.get_xp(array).asarray(host)
        return array

    def _sum(self, buf: numpy.ndarray, what: str) -> None:
        """buf <- the sum of every rank's buf, in place: Allreduce(IN_PLACE, buf, SUM), through the buffer
        interface. With a timeout, the non-blocking Iallreduce, tested until it completes or the time is up."""
        MPI = self._mpi()
        if self.timeout is None:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            return
        request = self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        start = time.monotonic()
        while not request.Test():              # each Test also lets MPI progress the reduction
            waited = time.monotonic() - start
            if waited > self.timeout:
                raise DistributedError(f"rank {self.rank} of {self.size} waited {waited:.0f} s for the other ranks in "
                                       f"the all-reduce of {what}: a rank is stuck or gone; stopping every rank")
            time.sleep(0 if waited < 0.01 else 0.001)    # spin for 10 ms, then look every millisecond

    def allreduce_numbers(self, values: list[float]) -> list[float]:
        """A few host numbers (the step's weighted losses, right answers, tokens) summed over the ranks."""
        if not self.distributed:
            return list(values)
        return self.allreduce_(numpy.asarray(values, dtype=numpy.float64), "the step's losses").tolist()

    def check_consistent(self, params_flat, step: int | None = None) -> None:
        """Compare a checksum of every rank's parameters; DivergedError naming the ranks that differ from rank 0.

        checksum = sum_j data[j] * (1 + j / size) in float64: a position-weighted sum, so a swap of two
        values changes it too. One Allgather of one float64 per rank. Every rank raises the same error.
        """
        if not self.distributed:
            return
        sums = numpy.empty(self.size, dtype=numpy.float64)
        self.comm.Allgather(numpy.array([checksum(params_flat)], dtype=numpy.float64), sums)
        differ = [r for r in range(1, self.size) if sums[r] != sums[0]]
        if differ:
            where = f" after step {step}" if step is not None else ""
            listed = ", ".join(f"rank {r} {sums[r]!r}" for r in differ)
            raise DivergedError(f"the ranks' parameters diverged{where}: rank 0 has checksum {sums[0]!r}, {listed}; "
                                f"every rank must run the same code on the same data and MPI must sum "
                                f"identically on each (ranks {', '.join(map(str, differ))} differ)")

    def use_gpus(self) -> str:
        """On a device backend with several ranks: put this rank on its GPU (local rank mod GPUs, before
        any array is made) and sum gradients with NCCL when CuPy has it. Returns what was chosen, in
        words, for the run's first line ("" for a single process or the NumPy backend)."""
        if not self.distributed or backend.name() == "numpy":
            return ""
        device = collectives.use_local_device(self.comm)
        if collectives.nccl_module() is None:
            return (f"rank {self.rank}: GPU {device}, gradients summed through host memory by MPI (CuPy's NCCL "
                    f"is missing: pip install nvidia-nccl-cu12 for sums on the GPUs)")
        self.device_sum = collectives.NcclAllreduce(self.comm)
        return f"rank {self.rank}: GPU {device}, gradients summed by NCCL"

    # -- this rank's part of a step -------------------------------------------------------------------
    def micro_rows(self, rows, accumulate: int, batch_size: int) -> list:
        """This rank's micro-batches of a global batch's rows: its contiguous share, cut into pieces of
        m = ceil(full share / accumulate) rows, the full share being this rank's part of a whole batch of
        `batch_size`. A short batch (an epoch's last) gives fewer pieces, never an empty one; a rank may
        get none (it still joins the step's all-reduces). One process: rows[i*m:(i+1)*m] for
        m = batch_size / accumulate, the pieces the one-process run has always used."""
        full = share(batch_size, self.rank, self.size)
        m = -(-(full.stop - full.start) // accumulate)                   # ceil
        mine = rows[share(len(rows), self.rank, self.size)]
        return [mine[i:i + m] for i in range(0, len(mine), m)]

    def seed_dropout(self, model, seed: int) -> None:
        """Give this rank its own dropout stream: rank 0 keeps the model's (the one-process stream,
        numpy default_rng([seed, 1])), rank r > 0 draws from default_rng([seed, 1, r]). Reproducible,
        and different per rank (the same masks on every rank would be one smaller batch's noise)."""
        if self.rank:
            getattr(model, "bert", model).rng = numpy.random.default_rng([seed, 1, self.rank])

    def gather_objects(self, value) -> list:
        """Every rank's `value` (small Python objects, pickled: the dropout generators' states) on every rank."""
        return [value] if not self.distributed else self.comm.allgather(value)

    def barrier(self) -> None:
        if self.distributed:
            self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job (MPI.COMM_WORLD.Abort): one rank's error must not leave the others
        waiting forever in a collective. A single process just returns (the caller exits)."""
        if self.distributed:
            self._mpi().COMM_WORLD.Abort(code)

    @staticmethod
    def _mpi():
        from mpi4py import MPI       # noqa: PLC0415  (optional dependency, imported only by a multi-rank run)
        return MPI


SINGLE = ProcessGroup()


def checksum(params_flat) -> float:
    """A float64 fingerprint of a flat parameter array: sum_j x_j * (1 + j / n)."""
    x = backend.to_host(params_flat).astype(numpy.float64).ravel()
    return float(x @ (1.0 + numpy.arange(x.size, dtype=numpy.float64) / max(x.size, 1)))


def launched_size(environ=None) -> int:
    """The number of ranks an MPI launcher says this process belongs to (1 when not launched by one)."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return 1


def detect(required: bool = False, environ=None, timeout: float | None = None) -> ProcessGroup:
    """The process group of this process: MPI's COMM_WORLD when launched with more than one rank (or when
    `required`, --distributed), else SINGLE. Without mpi4py a multi-rank launch raises DistributedError
    saying what to install (a launch of N copies that each trained alone would be N wrong runs)."""
    size = launched_size(environ)
    if size <= 1 and not required:
        return SINGLE
    try:
        from mpi4py import MPI       # noqa: PLC0415  (optional dependency)
    except ImportError:
        env = os.environ if environ is None else environ
        rank = next((env[n] for n in RANK_VARIABLES if n in env), "?")
        raise DistributedError(f"rank {rank} of {size}: data-parallel training needs mpi4py and an MPI, "
                               f"which are not installed; {INSTALL_HINT}") from None
    return ProcessGroup(MPI.COMM_WORLD, timeout=timeout)


def share(n_rows: int, rank: int, size: int) -> slice:
    """Rank `rank`'s contiguous share of a global batch of n_rows: rows[n*r//N : n*(r+1)//N].

    Shares differ by at most one row (7 rows over 2 ranks: 3 and 4); the exact weights (global
    denominators) make uneven shares give the one-process gradient."""
    return slice(n_rows * rank // size, n_rows * (rank + 1) // size)


def check_batch(batch_size: int, accumulate: int, size: int) -> None:
    """Every rank needs at least one row in each of its micro-batches: batch_size >= size * accumulate."""
    if batch_size < size * accumulate:
        raise DistributedError(f"--batch-size {batch_size} is too small for {size} ranks x --accumulate "
                               f"{accumulate}: each rank's micro-batch needs a row (at least {size * accumulate})")
