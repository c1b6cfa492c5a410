"""backend.scatter_add: deterministic on every backend. NumPy's numpy.add.at adds the occurrences of an id
in their order; the CuPy kernel (sorted segments, SORTED_SEGMENT_ADD_CUDA) and its NumPy twin
(sorted_segment_add) add in that same order from the target's value, so they give numpy.add.at's bits.
Without a GPU the kernel's body is run on the CPU by g++ (a loop over CuPy's element index i)."""
import ctypes

import numpy as np
import pytest

from cuda_emulation import _build, have_gxx, have_nvcc, compile_ptx
from minibert import backend
from minibert.backend import xp as xp_mod
from minibert.backend.xp import SORTED_SEGMENT_ADD_CUDA, scatter_add, sorted_segment_add


def case(rng, dtype, V=11, B=3, T=40, H=6):
    """Zipf-like ids (a few ids many times, as real text), a non-zero target (the tied decoder's gradient
    is already in the word-embedding gradient when the embedding backward adds into it)."""
    ids = np.minimum(rng.zipf(1.5, size=(B, T)) - 1, V - 1).astype(np.int64)
    values = rng.normal(size=(B, T, H)).astype(dtype)
    target = rng.normal(size=(V, H)).astype(dtype)
    return ids, values, target


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_sorted_segments_give_add_at_bit_for_bit(dtype, seed):
    ids, values, target = case(np.random.default_rng(seed), dtype)
    want = target.copy()
    np.add.at(want, ids, values)
    got = target.copy()
    sorted_segment_add(got, ids, values)
    assert np.array_equal(got, want)
    assert np.bincount(ids.ravel()).max() > 5                    # the case has ids repeated many times


def test_a_segment_sum_added_at_the_end_is_only_close():
    """target + (v1 + v2 + ...) (reduceat, a one-hot matmul) against add.at's ((target + v1) + v2) + ...:
    another association, equal to float32 rounding (rtol 1e-6 of the row's scale), not bit for bit."""
    ids, values, target = case(np.random.default_rng(9), np.float32, T=400)
    want = target.copy()
    np.add.at(want, ids, values)
    flat, rows = ids.ravel(), values.reshape(-1, values.shape[-1])
    order = np.argsort(flat, kind="stable")
    starts = np.flatnonzero(np.r_[True, flat[order][1:] != flat[order][:-1]])
    sums = np.add.reduceat(rows[order], starts, axis=0)
    got = target.copy()
    got[flat[order][starts]] += sums
    scale = np.abs(want).max()
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-6)


def test_strict_stand_in_uses_its_scatter_add_and_the_numbers_are_add_at(xp):
    ids, values, target = case(np.random.default_rng(1), np.float32)
    want = target.copy()
    np.add.at(want, ids, values)
    t = xp.asarray(target)
    scatter_add(t, xp.asarray(ids), xp.asarray(values))
    assert np.array_equal(backend.to_host(t), want)


def _body_on_cpu(ids, values, target):
    """SORTED_SEGMENT_ADD_CUDA's body in a C++ loop over i (CuPy's index), raw arrays as flat pointers."""
    k = SORTED_SEGMENT_ADD_CUDA
    code = ("typedef long long I; typedef long long J; typedef double T;\n"
            'extern "C" void run(const I* sorted_ids, const J* order, const T* values, long long N, long long H,'
            " T* target) {\n  for (long long i = 0; i < N * H; ++i) {\n" + k["body"] + "\n  }\n}\n")
    lib = ctypes.CDLL(str(_build(code, ".cpp", lambda s, o: ["g++", "-O1", "-shared", "-fPIC", str(s), "-o", str(o)])))
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable").astype(np.int64)
    sorted_ids = np.ascontiguousarray(flat[order])
    vals = np.ascontiguousarray(values.reshape(flat.size, -1))
    p = lambda a: ctypes.c_void_p(a.ctypes.data)                  # noqa: E731
    lib.run(p(sorted_ids), p(order), p(vals), ctypes.c_longlong(flat.size), ctypes.c_longlong(vals.shape[1]),
            p(target))


@pytest.mark.skipif(not have_gxx(), reason="g++ is not installed here")
def test_the_kernel_body_run_on_the_cpu_gives_add_at_bit_for_bit():
    ids, values, target = case(np.random.default_rng(3), np.float64)
    want = target.copy()
    np.add.at(want, ids, values)
    got = target.copy()
    _body_on_cpu(ids, values, got)
    assert np.array_equal(got, want)


@pytest.mark.skipif(not have_nvcc(), reason="nvcc (the CUDA compiler) is not installed here")
def test_the_kernel_body_compiles_with_nvcc():
    k = SORTED_SEGMENT_ADD_CUDA
    src = ("typedef long long I; typedef long long J; typedef float T;\n"
           'extern "C" __global__ void seg(const I* sorted_ids, const J* order, const T* values, long long N,'
           " long long H, T* target) {\n  const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
           "  if (i < N * H) {\n" + k["body"] + "\n  }\n}\n")
    assert "seg" in compile_ptx(src)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_deterministic_scatter_add_is_add_at_bit_for_bit_run_after_run(dtype):
    ids, values, target = case(np.random.default_rng(5), dtype, V=300, B=32, T=128, H=64)
    want = target.copy()
    np.add.at(want, ids, values)
    with backend.using("cupy") as cp:
        runs = []
        for _ in range(3):
            t = cp.asarray(target)
            scatter_add(t, cp.asarray(ids), cp.asarray(values))
            runs.append(backend.to_host(t))
        atomics = cp.asarray(target)
        scatter_add(atomics, cp.asarray(ids), cp.asarray(values), deterministic=False)
    for r in runs:
        assert np.array_equal(r, want)
    np.testing.assert_allclose(backend.to_host(atomics), want, rtol=1e-5, atol=1e-5)


def test_deterministic_is_the_default():
    assert xp_mod.DETERMINISTIC_SCATTER
