"""Summing a GPU array over the ranks of a data-parallel run without passing through the host: NCCL.

On the CPU, ranks sum their flat gradient with MPI's Allreduce (minibert/train/distributed.py). On
GPUs that would copy the gradient device -> host, sum it over the network, copy it back: two PCIe
crossings of the whole gradient per step. NCCL (NVIDIA's collective library, which CuPy wraps as
`cupy.cuda.nccl`) sums device memory directly (NVLink, PCIe peer to peer, InfiniBand with GPUDirect),
as a ring, inside CUDA kernels queued on a stream like any other:

    setup (once)   rank 0: uid = nccl.get_unique_id()          128 bytes naming the job's rendezvous
                   MPI Bcast of uid to every rank              (as an int64 array: nothing pickled)
                   comm = NcclCommunicator(N, uid, rank)       every rank, on its own GPU
    each step      comm.allReduce(ptr, ptr, count, dtype, SUM, stream)      in place: sendbuf = recvbuf
                   event.record(stream); poll event.done        until done, or the time is up

One GPU per rank: the ranks on one machine are numbered 0, 1, ... by MPI (`local_rank`, from
COMM_WORLD.Split_type(COMM_TYPE_SHARED)) and rank i uses GPU i (modulo the GPUs it sees), chosen before
any array is made (`use_local_device`). NCCL refuses two ranks on one GPU.

CuPy is imported inside the functions only (import minibert never needs it). The pure parts (the unique
id's round trip through an int64 array, the dtype names, the wait loop) are tested on the CPU; the NCCL
calls run on a GPU (tests/train/test_distributed_gpu.py, `gpu` marker, and benchmarks/gpu_check.sh), and
under an emulated `cupy.cuda.nccl` whose allReduce sums through MPI on host memory by pointer
(tests/train/mpi_worker.py).
"""
from __future__ import annotations

import time

import numpy

# NCCL's data type for each dtype a flat gradient (or a count) can have: the attribute of cupy.cuda.nccl
NCCL_DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "int64": "NCCL_INT64"}


def nccl_module():
    """CuPy's NCCL binding, or None when CuPy or its NCCL is not installed (CuPy wheels take NCCL from the
    `nvidia-nccl-cu12` package, for instance)."""
    try:
        from cupy.cuda import nccl     # noqa: PLC0415  (optional: only a multi-GPU run needs it)
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def cupy_module():
    """CuPy itself (only a GPU run calls this)."""
    import cupy                        # noqa: PLC0415  (optional: only the GPU backend calls this)
    return cupy


def device_pointer(array) -> int:
    """The device address of a CuPy array's first element (what NCCL's calls take)."""
    return array.data.ptr


def local_rank(comm) -> tuple[int, int]:
    """(this process's number among the ranks on its machine, how many there are): MPI groups the ranks
    that share memory (COMM_TYPE_SHARED, i.e. one machine) and numbers them in COMM_WORLD's order."""
    from mpi4py import MPI             # noqa: PLC0415  (optional dependency)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return node.Get_rank(), node.Get_size()
    finally:
        node.Free()


def use_local_device(comm) -> int:
    """Make GPU (local rank mod visible GPUs) this process's current device; return its number.

    Called before the model is made: CuPy allocates on the current device. With fewer GPUs than ranks on
    a machine two ranks would share one, which NCCL refuses at set-up (the error says so)."""
    cupy = cupy_module()
    local, _ = local_rank(comm)
    device = local % cupy.cuda.runtime.getDeviceCount()
    cupy.cuda.Device(device).use()
    return device


def uid_to_array(uid) -> numpy.ndarray:
    """NCCL's unique id (CuPy gives a tuple of 128 small ints, the bytes as signed chars) as an int64
    array MPI can broadcast through the buffer interface."""
    return numpy.asarray(uid, dtype=numpy.int64)


def uid_from_array(array: numpy.ndarray) -> tuple:
    """The unique id back as the tuple NcclCommunicator takes."""
    return tuple(int(x) for x in array)


def broadcast_unique_id(comm, nccl) -> tuple:
    """Rank 0 asks NCCL for a unique id and sends it to every rank (MPI Bcast of 128 int64s)."""
    buf = uid_to_array(nccl.get_unique_id()) if comm.Get_rank() == 0 else numpy.zeros(128, dtype=numpy.int64)
    comm.Bcast(buf, root=0)
    return uid_from_array(buf)


def wait_until(done, timeout: float | None) -> bool:
    """Poll done() until it is True (-> True) or `timeout` seconds have passed (-> False); None: for ever.
    Spins for the first 10 ms (a step's all-reduce usually ends in them), then looks every millisecond."""
    start = time.monotonic()
    while not done():
        waited = time.monotonic() - start
        if timeout is not None and waited > timeout:
            return False
        time.sleep(0 if waited < 0.01 else 0.001)
    return True


class NcclAllreduce:
    """An NCCL communicator over the ranks of an MPI communicator, for in-place sums of device arrays.

        summer = NcclAllreduce(MPI.COMM_WORLD)       # every rank, after use_local_device
        if not summer(flat_grad, timeout=600): ...   # False: the other ranks did not join in time

    The sum is queued on CuPy's current stream, so it runs after the backward's kernels that wrote the
    gradient and before the optimizer's that read it, with no host synchronisation in between; the
    host waits on an event recorded behind it only to notice a rank that never joins (the timeout)."""

    def __init__(self, comm):
        self.nccl, self.cupy = nccl_module(), cupy_module()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.comm = self.nccl.NcclCommunicator(self.size, broadcast_unique_id(comm, self.nccl), self.rank)

    def __call__(self, array, timeout: float | None = None) -> bool:
        """array <- the sum of every rank's array, in place, on the current stream. Returns False if the
        sum had not finished after `timeout` seconds (a rank stuck or gone): the communicator is then
        aborted, so this rank's GPU does not wait for ever either."""
        name = NCCL_DTYPES.get(array.dtype.name)
        if name is None:
            raise TypeError(f"NCCL all-reduce of {array.dtype} is not supported (one of {', '.join(NCCL_DTYPES)})")
        stream = self.cupy.cuda.get_current_stream()
        pointer = device_pointer(array)                # a contiguous array: the flat gradient buffer is one
        self.comm.allReduce(pointer, pointer, array.size, getattr(self.nccl, name), self.nccl.NCCL_SUM, stream.ptr)
        if timeout is None:
            return True                                # queued: the step's next read waits for it anyway
        finished = self.cupy.cuda.Event(block=False, disable_timing=True)
        finished.record(stream)
        if wait_until(lambda: finished.done, timeout):
            return True
        self.comm.abort()
        return False
