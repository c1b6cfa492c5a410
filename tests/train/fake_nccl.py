"""An emulated `cupy` + `cupy.cuda.nccl` for the NCCL path of data-parallel training, on the CPU.

minibert/backend/collectives.py drives NCCL through CuPy's binding: a unique id made on rank 0 and
broadcast, `NcclCommunicator(nranks, uid, rank)`, `allReduce(sendptr, recvptr, count, dtype, op,
stream)` on raw device addresses, an event polled for completion, `abort()`. This stand-in takes the
same calls and checks what a real NCCL would refuse or get wrong:

- every rank's communicator is made with the same unique id (compared over MPI), its own rank and N;
- allReduce gets one address for send and receive (in place), NCCL's SUM, a known data type whose size
  matches the buffer, and the current stream's handle;
- the sum itself reads and writes the memory AT THAT ADDRESS (ctypes over the host buffer that the strict
  stand-in's "device" array wraps) and sums it with MPI: if minibert passed a copy's address, or the wrong
  count or type, the ranks' parameters would not be the one-process run's.

`install(collectives, comm)` patches minibert's hooks (cupy_module, nccl_module, device_pointer) and returns
the stand-in, whose `calls` and `devices` a test reads. `done=False` makes every event stay pending (a
rank that never joins): the timeout path.
"""
from __future__ import annotations

import ctypes
import os
from types import SimpleNamespace

import numpy

# NCCL's enum values (nccl.h): ncclInt64 4, ncclFloat16 6, ncclFloat32 7, ncclFloat64 8; ncclSum 0
NCCL_TYPES = {4: (numpy.int64, ctypes.c_int64), 6: (numpy.float16, ctypes.c_uint16),
              7: (numpy.float32, ctypes.c_float), 8: (numpy.float64, ctypes.c_double)}
STREAM = 0x5EED           # the handle get_current_stream() gives: allReduce must receive it


class FakeNccl:
    NCCL_INT64, NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 4, 6, 7, 8, 0
    available = True

    def __init__(self, mpi_comm, done: bool = True):
        self.mpi_comm, self.done = mpi_comm, done
        self.calls, self.devices, self.aborted = [], [], False

    def get_unique_id(self) -> tuple:
        return tuple(int(b) for b in numpy.frombuffer(os.urandom(128), dtype=numpy.int8))   # signed chars

    def NcclCommunicator(self, nranks, uid, rank):      # noqa: N802  (CuPy's name)
        assert nranks == self.mpi_comm.Get_size() and rank == self.mpi_comm.Get_rank(), (nranks, rank)
        assert len(uid) == 128 and all(-128 <= x < 128 for x in uid), "not an NCCL unique id"
        every = self.mpi_comm.allgather(tuple(uid))
        assert all(u == every[0] for u in every), "the ranks were given different unique ids"
        return _Communicator(self)


class _Communicator:
    def __init__(self, fake: FakeNccl):
        self.fake = fake

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):   # noqa: N802  (CuPy's name)
        assert sendbuf == recvbuf, "minibert sums in place: send and receive are one buffer"
        assert op == FakeNccl.NCCL_SUM and stream == STREAM, (op, stream)
        dtype, ctype = NCCL_TYPES[datatype]
        memory = numpy.ctypeslib.as_array((ctype * count).from_address(sendbuf)).view(dtype)
        self.fake.mpi_comm.Allreduce(_in_place(), memory, op=_sum())           # the sum, at that address
        self.fake.calls.append((count, dtype.__name__))

    def abort(self):
        self.fake.aborted = True


def _in_place():
    try:
        from mpi4py import MPI
    except ImportError:          # a one-rank stand-in communicator (tests/backend/test_collectives.py)
        return None
    return MPI.IN_PLACE


def _sum():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.SUM


class _Event:
    def __init__(self, fake, block=False, disable_timing=False):
        self.fake, self.recorded = fake, False

    def record(self, stream=None):
        assert stream is not None and stream.ptr == STREAM
        self.recorded = True

    @property
    def done(self):
        return self.recorded and self.fake.done


def fake_cupy(fake: FakeNccl, gpus: int = 2):
    """What collectives.py uses of `cupy`: the device count, Device(i).use(), the current stream, Event."""
    def device(i):
        return SimpleNamespace(use=lambda: fake.devices.append(i))
    cuda = SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: gpus), Device=device,
                           get_current_stream=lambda: SimpleNamespace(ptr=STREAM),
                           Event=lambda **kw: _Event(fake, **kw))
    return SimpleNamespace(cuda=cuda)


def strict_pointer(array) -> int:
    """The address of a strict stand-in array's memory (what `array.data.ptr` is for a CuPy array)."""
    data = array._data
    assert data.flags.c_contiguous, "NCCL needs a contiguous buffer"
    return data.ctypes.data


def install(collectives, mpi_comm, done: bool = True, gpus: int = 2) -> FakeNccl:
    """Patch minibert.backend.collectives to use the stand-in; returns it."""
    fake = FakeNccl(mpi_comm, done=done)
    collectives.nccl_module = lambda: fake
    collectives.cupy_module = lambda: fake_cupy(fake, gpus)
    collectives.device_pointer = strict_pointer
    return fake
