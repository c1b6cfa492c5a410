"""The precision setting (fp32 | tf32 | fp16) and the strided-batched GEMM plan that lets cuBLAS read
attention's operands in place (minibert/backend/precision.py, minibert/backend/kernels.py).

Without a GPU the plan is checked by carrying it out with NumPy exactly as cuBLAS reads memory
(column-major matrices at base + batch * stride, leading dimension ld, transpose flags): the product
must be a @ b, and only operands cuBLAS cannot walk with one batch stride may be copied."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from minibert import backend
from minibert.backend import precision
from minibert.backend.kernels import gemm_operand, strided_batched_plan
from minibert.ops.attention import split_heads


@pytest.fixture(autouse=True)
def _restore():
    saved = dict(precision._state)
    yield
    precision._state.update(saved)


def test_numpy_defaults_to_fp32_and_refuses_tf32():
    assert precision.default_precision("numpy") == "fp32" and precision.default_precision("cupy") == "tf32"
    assert precision.get_precision() == "fp32"
    with pytest.raises(precision.PrecisionError, match="tf32 needs the cupy backend"):
        precision.set_precision("tf32")
    with pytest.raises(precision.PrecisionError, match="unknown precision"):
        precision.set_precision("bf16")
    assert precision.set_precision("fp16") == "fp16" and precision.get_precision() == "fp16"
    assert precision.set_precision(None) == "fp32"


def test_strict_stand_in_is_not_cupy_either(xp):
    if backend.name() == "strict":
        with pytest.raises(precision.PrecisionError):
            precision.set_precision("tf32")
        a = xp.ones((2, 3, 4, 5), dtype=np.float32)
        assert np.array_equal(backend.to_host(precision.matmul(a, a.swapaxes(-1, -2))),
                              np.full((2, 3, 4, 4), 5, np.float32))      # the plain matmul, not cuBLAS


def cublas_strided_batched(plan, A, B, dtype):
    """C as cublasGemmStridedBatchedEx writes it (column-major, alpha 1, beta 0), from the plan."""
    e = A.itemsize
    count, m, n, k = plan["batchCount"], plan["m"], plan["n"], plan["k"]

    def mats(X, rows, cols, ld, stride):             # column-major rows x cols matrices, one per batch entry
        return as_strided(X, shape=(count, rows, cols), strides=(stride * e, e, ld * e), writeable=False)
    opA = mats(A, k, m, plan["lda"], plan["strideA"]).transpose(0, 2, 1) if plan["transa"] else \
        mats(A, m, k, plan["lda"], plan["strideA"])
    opB = mats(B, n, k, plan["ldb"], plan["strideB"]).transpose(0, 2, 1) if plan["transb"] else \
        mats(B, k, n, plan["ldb"], plan["strideB"])
    out = np.zeros(count * plan["strideC"], dtype)
    as_strided(out, shape=(count, m, n), strides=(plan["strideC"] * e, e, plan["ldc"] * e))[...] = opA @ opB
    return out.reshape(plan["batch_shape"] + (n, m))


def attention_operands(rng, B=2, A=3, T=5, d=4):
    qkv = rng.normal(size=(B, T, 3 * A * d)).astype(np.float32)           # the fused Q/K/V projection
    q, k, v = (split_heads(qkv[..., i * A * d:(i + 1) * A * d], A) for i in range(3))
    q_scaled = q * 0.5                                                     # contiguous (B, A, T, d)
    p = rng.normal(size=(B, A, T, T)).astype(np.float32)                   # probabilities, dS: contiguous
    dout = rng.normal(size=(B, A, T, d)).astype(np.float32)
    return dict(qk=(q_scaled, k.swapaxes(-1, -2)), pv=(p, v), dv=(p.swapaxes(-1, -2), dout),
                dprobs=(dout, v.swapaxes(-1, -2)), dq=(p, k), dk=(p.swapaxes(-1, -2), q_scaled),
                dense=(dout.reshape(-1, d)[None].repeat(2, 0), rng.normal(size=(d, 7)).astype(np.float32)))


@pytest.mark.parametrize("which", ["qk", "pv", "dv", "dprobs", "dq", "dk", "dense"])
def test_the_plan_carried_out_as_cublas_reads_memory_is_a_matmul(which):
    a, b = attention_operands(np.random.default_rng(0))[which]
    a2, b2, plan = strided_batched_plan(a, b)
    got = cublas_strided_batched(plan, b2, a2, np.float32)                 # cuBLAS's A is b, its B is a
    np.testing.assert_allclose(got, a @ b, rtol=1e-5, atol=1e-5)


def test_only_operands_with_no_single_batch_stride_are_copied():
    ops = attention_operands(np.random.default_rng(0))
    copied = {w: tuple(x is not y for x, y in zip(strided_batched_plan(a, b)[:2], (a, b))) for w, (a, b) in ops.items()}
    # K, V as views of the fused QKV array (batch strides T*3H and d) are copied, as cupy.matmul copies
    # every operand; so is Q/sqrt(d) when, as on NumPy, the product keeps Q's (B, T, A, d) layout; the
    # transposed probabilities and dS (P'^T, dS^T) are read in place with the transpose flag
    assert copied == {"qk": (True, True), "pv": (False, True), "dv": (False, False), "dprobs": (False, True),
                      "dq": (False, True), "dk": (False, True), "dense": (False, False)}


def test_gemm_operand_layouts():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert gemm_operand(x.shape, x.strides, 4) == (False, 5, 20)
    t = x.swapaxes(-1, -2)
    assert gemm_operand(t.shape, t.strides, 4) == (True, 5, 20)
    assert gemm_operand(x[:, :, ::2].shape, x[:, :, ::2].strides, 4) == (False, 10, 20)   # every other row: ld 10
    assert gemm_operand(x[..., ::2].shape, x[..., ::2].strides, 4) is None                # strided columns
    assert gemm_operand(x.transpose(1, 0, 2, 3).shape, x.transpose(1, 0, 2, 3).strides, 4) is None


# -- on a GPU ------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("which", ["qk", "pv", "dv", "dprobs", "dq", "dk"])
def test_strided_batched_gemm_on_cupy_fp32_tf32_fp16(which):
    """fp32: cuBLAS's float32 GEMM, as cupy.matmul (float32 sums in another order: 1e-5); tf32: operands
    rounded to 10-bit mantissas, |error| ~ 2^-11 of the products' scale; fp16 (mixed_precision): the
    float16 products, within float16's rounding of the emulation's result."""
    with backend.using("cupy") as cp:
        a_h, b_h = attention_operands(np.random.default_rng(1), B=4, A=12, T=128, d=64)[which]
        want = a_h.astype(np.float64) @ b_h.astype(np.float64)
        scale = np.abs(want).max()
        a, b = cp.asarray(a_h), cp.asarray(b_h)
        with precision.using_precision("fp32"):
            fp32 = backend.to_host(precision.matmul(a, b))
            assert np.abs(fp32 - want).max() <= 1e-5 * scale
            with precision.mixed_precision():
                fp16 = backend.to_host(precision.matmul(a, b))
        with precision.using_precision("tf32"):
            tf32 = backend.to_host(precision.matmul(a, b))
        assert np.abs(tf32 - want).max() <= 4e-3 * scale
        with precision.mixed_precision():
            emulated = precision.matmul(a_h, b_h)                       # the NumPy emulation of fp16
        assert np.abs(fp16 - emulated).max() <= 2e-3 * scale


@pytest.mark.gpu
def test_set_precision_sets_cupys_compute_type():
    with backend.using("cupy") as cp:
        linalg = cp._core._routines_linalg
        with precision.using_precision("fp32"):
            assert cp._core.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
        with precision.using_precision("tf32"):
            assert cp._core.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_TF32


class _FakeCupyArray(np.ndarray):
    """An ndarray registered as the "cupy" module's ndarray: what CuPy is told, without CuPy."""


@pytest.fixture
def fake_cupy(monkeypatch):
    import types
    calls = []
    linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7)
    core = types.SimpleNamespace(_routines_linalg=linalg,
                                 set_compute_type=lambda dtype, ct: calls.append((np.dtype(dtype).name, ct)))
    monkeypatch.setitem(backend.xp._modules, "cupy", types.SimpleNamespace(ndarray=_FakeCupyArray, _core=core))
    monkeypatch.setattr(backend.xp, "_current", "cupy")
    return calls


def test_cupy_is_told_the_compute_type_at_its_first_matmul_and_at_each_change(fake_cupy):
    a = np.ones((3, 4), np.float32).view(_FakeCupyArray)
    assert precision.get_precision() == "tf32"                       # CuPy's default
    precision.matmul(a, a.T)
    precision.matmul(a, a.T)
    assert fake_cupy == [("float32", 7)]                             # once, at the first matmul: TF32
    with precision.using_precision("fp32"):
        precision.matmul(a, a.T)
        assert fake_cupy[-1] == ("float32", 1)                       # full float32 (CUBLAS_COMPUTE_32F)
    assert fake_cupy[-1] == ("float32", 7) and len(fake_cupy) == 3   # put back on exit
    precision.set_precision("fp16")
    assert fake_cupy[-1] == ("float32", 1)                           # fp16: float32 matmuls outside autocast full


def test_only_stacks_of_the_same_batch_shape_take_the_strided_batched_gemm(fake_cupy):
    from minibert.backend.kernels import batched_gemm_available
    f = lambda *s: np.ones(s, np.float32).view(_FakeCupyArray)      # noqa: E731
    assert batched_gemm_available(f(2, 3, 4, 5), f(2, 3, 5, 6))
    assert not batched_gemm_available(f(2, 3, 4, 5), f(5, 6))          # stack @ matrix: one 2-D GEMM is better
    assert not batched_gemm_available(f(2, 3, 4, 5), f(1, 3, 5, 6))    # broadcast batch: cupy.matmul
    assert not batched_gemm_available(f(4, 5), f(5, 6))
    assert not batched_gemm_available(np.ones((2, 4, 5), np.float32), np.ones((2, 5, 6), np.float32))   # NumPy
