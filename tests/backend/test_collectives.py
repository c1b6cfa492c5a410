"""The NCCL path of data-parallel training (minibert/backend/collectives.py) on the CPU, one process.

What can be checked without a GPU: the unique id's round trip through the int64 array MPI broadcasts,
the data types, the in-place call on the device address with the current stream, a rank that never joins
(the wait gives up, the communicator is aborted, the step stops with the rank named), and that the NumPy
backend never touches CuPy. The two-rank runs through an emulated NCCL are in tests/train/test_distributed.py;
the real NCCL calls are `gpu` tests (tests/train/test_distributed_gpu.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from minibert import backend
from minibert.backend import collectives
from minibert.train.distributed import DistributedError, ProcessGroup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import fake_nccl  # noqa: E402


class _OneRank:
    """A one-rank stand-in communicator: Bcast, allgather and Allreduce of a single rank."""

    def __init__(self, rank=0, size=1):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Bcast(self, buf, root=0):
        pass

    def allgather(self, value):
        return [value] * self.size

    def Allreduce(self, send, recv, op=None):
        pass


def test_unique_id_round_trip():
    uid = tuple(int(b) for b in np.frombuffer(bytes(range(256))[::2], dtype=np.int8))   # signed chars
    array = collectives.uid_to_array(uid)
    assert array.dtype == np.int64 and array.shape == (128,)
    assert collectives.uid_from_array(array) == uid


def test_every_gradient_dtype_has_an_nccl_type():
    for name in ("float16", "float32", "float64", "int64"):
        assert hasattr(fake_nccl.FakeNccl, collectives.NCCL_DTYPES[name])


@pytest.fixture
def strict():
    with backend.using("strict"):
        yield backend.get_xp()


def test_sum_is_in_place_on_the_device_buffer_and_on_the_stream(monkeypatch, strict):
    fake = fake_nccl.FakeNccl(_OneRank())
    monkeypatch.setattr(collectives, "nccl_module", lambda: fake)
    monkeypatch.setattr(collectives, "cupy_module", lambda: fake_nccl.fake_cupy(fake))
    monkeypatch.setattr(collectives, "device_pointer", fake_nccl.strict_pointer)
    summer = collectives.NcclAllreduce(_OneRank())
    for dtype in ("float32", "float64", "float16"):
        grad = strict.arange(6, dtype=dtype)
        assert summer(grad, timeout=5.0) is True
    assert fake.calls == [(6, "float32"), (6, "float64"), (6, "float16")]
    with pytest.raises(TypeError, match="NCCL all-reduce of int32 is not supported"):
        summer(strict.arange(3, dtype="int32"))


def test_a_rank_that_never_joins_stops_the_step_with_its_rank_named(monkeypatch, strict):
    fake = fake_nccl.FakeNccl(_OneRank(1, 2), done=False)      # the event never completes
    monkeypatch.setattr(collectives, "nccl_module", lambda: fake)
    monkeypatch.setattr(collectives, "cupy_module", lambda: fake_nccl.fake_cupy(fake))
    monkeypatch.setattr(collectives, "device_pointer", fake_nccl.strict_pointer)
    group = ProcessGroup(_OneRank(1, 2), timeout=0.05)
    group.device_sum = collectives.NcclAllreduce(group.comm)
    with pytest.raises(DistributedError, match=r"rank 1 of 2 waited 0 s for the other ranks in the NCCL all-reduce "
                                               r"of the gradient: a rank is stuck or gone"):
        group.allreduce_(strict.zeros(4, dtype="float32"))
    assert fake.aborted                                         # NCCL's own wait ended too


def test_wait_until_polls_until_done_or_gives_up():
    polls = []
    assert collectives.wait_until(lambda: polls.append(1) or len(polls) == 3, None) is True
    assert len(polls) == 3                                      # polled until done, no timeout
    assert collectives.wait_until(lambda: False, 0.02) is False  # never done: gives up
    assert collectives.wait_until(lambda: True, 0.0) is True


def test_numpy_backend_and_one_process_never_touch_the_gpu(monkeypatch):
    def refuse():
        raise AssertionError("CuPy was asked for")
    monkeypatch.setattr(collectives, "cupy_module", refuse)
    assert ProcessGroup().use_gpus() == ""                      # one process
    assert ProcessGroup(_OneRank(0, 2)).use_gpus() == ""        # two ranks on NumPy: MPI's Allreduce
