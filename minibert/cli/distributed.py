"""`--distributed` and the data-parallel launch of `minibert pretrain` / `minibert finetune`:

    mpiexec -n 2 python -m minibert pretrain --out runs/dp        (detected from the MPI environment)

`process_group` finds the ranks (minibert/train/distributed.py); `abort_on_error` makes an error on one rank
end the whole job: the message goes out as `error: rank R of N: ...`, then MPI.COMM_WORLD.Abort, because
the other ranks may be waiting for this one in a collective and would otherwise wait forever.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from dataclasses import field

from minibert import checks
from minibert.cli.command import _code_and_message
from minibert.errors import MinibertError
from minibert.train.distributed import detect


def distributed_field():
    return field(default=False, metadata={
        "help": "data-parallel training over MPI (needs `pip install -e .[mpi]`); launched as "
                "`mpiexec -n N python -m minibert ...` it is detected without this flag"})


def timeout_field():
    return field(default=600.0, metadata={
        "check": checks.finite_positive,
        "help": "data-parallel: seconds a step's all-reduce waits for the other ranks before the job stops, "
                "naming the rank that gave up (a rank stuck or gone)"})


def process_group(flag: bool, timeout: float):
    """The run's process group: MPI's when launched with several ranks or with --distributed, else one process.
    On the CuPy backend each rank takes its own GPU and the gradient sums go through NCCL (ProcessGroup.use_gpus).
    Rank 0 says which process is which rank (MPI's launcher names a process that dies by its PID)."""
    group = detect(required=flag, timeout=timeout)
    if group.distributed:
        devices = group.gather_objects(group.use_gpus())      # on CuPy: each rank on its GPU, NCCL set up
        ranks = group.gather_objects((os.getpid(), socket.gethostname()))
        if group.is_main:
            print(f"data-parallel over {group.size} ranks: "
                  + ", ".join(f"rank {r} pid {pid} on {host}" for r, (pid, host) in enumerate(ranks)))
            for line in filter(None, devices):
                print(line)
    return group


@contextlib.contextmanager
def abort_on_error(group):
    """On one rank of several: an error is said with the rank's number, then every rank is ended (Abort,
    with the error's exit code). One process: errors pass through unchanged (`error: ...` as always)."""
    try:
        yield
    except (MinibertError, OSError) as err:
        if not group.distributed:
            raise
        code, message = _code_and_message(err) if isinstance(err, MinibertError) else (2, str(err))
        print(f"error: rank {group.rank} of {group.size}: " + " ".join(message.splitlines()), file=sys.stderr)
        _abort(group, code)
    except Exception:
        if not group.distributed:
            raise
        print(f"rank {group.rank} of {group.size} failed (a bug in minibert):", file=sys.stderr)
        traceback.print_exc()
        _abort(group, 1)


def _abort(group, code: int) -> None:
    """Flush the message, give MPI's launcher a moment to pass it on (MPICH's mpiexec forwards each
    rank's output through a pipe, and an Abort can end the job before the last lines are through: seen
    under load), then end every rank."""
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(0.5)
    group.abort(code)
