"""The CUDA side of minibert/ops/fused.py, tested without a GPU.

- Selection: NumPy arrays and the strict stand-in run the NumPy twin (no kernel is ever built); an array
  of the registered "cupy" module runs the kernel; MINIBERT_FUSED_KERNELS / kernels.ENABLED turns them off;
  a mask of another dtype takes the twin.
- The launch: each kernel's arguments are given by name and come out in the order of its CUDA signature,
  with the C type the signature declares (int -> int32, long long -> int64, TYPE -> the array dtype's
  scalar, TYPE* -> a C-contiguous array of that dtype).
- The sources: compiled to PTX by nvcc for float and double (skipped without nvcc), and run on the CPU
  (g++, one thread per block: tests/cuda_emulation.py) through the real fused functions, against
  the twin, to the tolerances below. The block reductions with many threads run only on a GPU
  (tests/ops/test_fused_cuda.py, marked gpu).
"""
import contextlib
import types

import numpy as np
import pytest

import strict_xp as strict_module
from cuda_emulation import ElementwiseBody, RowKernel, compile_ptx, have_gxx, have_nvcc
from strict_xp import counting, strict_xp
from minibert import backend
from minibert.backend import kernels
from minibert.backend.grad_mode import no_grad
from minibert.ops import fused
from minibert.ops.attention import attention_mask_bias
from minibert.ops.dropout import dropout_mask

ROW_KERNELS = {
    "residual_layer_norm_forward": fused.RESIDUAL_LAYER_NORM_FORWARD_CUDA,
    "residual_layer_norm_backward": fused.RESIDUAL_LAYER_NORM_BACKWARD_CUDA,
    "masked_softmax_dropout_forward": fused.MASKED_SOFTMAX_DROPOUT_FORWARD_CUDA,
    "softmax_dropout_backward": fused.SOFTMAX_DROPOUT_BACKWARD_CUDA,
}
ELEMENTWISE = [fused.BIAS_GELU_CUDA, fused.BIAS_GELU_INFERENCE_CUDA, fused.GELU_BACKWARD_CUDA]
CTYPES = {np.float32: "float", np.float64: "double"}
# kernel vs twin on the CPU (one thread per block: sequential row sums; std::erf vs erf.py's float32 A&S)
TOL = {np.float32: dict(rtol=2e-6, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


# -- selection ------------------------------------------------------------------------------------

class _FakeCupyArray(np.ndarray):
    """An ndarray subclass registered as the "cupy" module's ndarray: fused_kernels_available's question."""


def test_numpy_and_strict_arrays_take_the_twin(xp, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA kernel was asked for on a non-CuPy array")
    for name in ("elementwise_kernel", "row_kernel", "reduction_kernel"):
        monkeypatch.setattr(fused, name, refuse)
    rng = np.random.default_rng(0)
    z, b = xp.asarray(rng.normal(size=(2, 3, 8)).astype(np.float32)), xp.asarray(np.ones(8, np.float32))
    assert not kernels.fused_kernels_available(z)
    y, d = fused.bias_gelu_forward(z, b)
    fused.bias_gelu_backward(xp.ones_like(y), d)
    y, c = fused.residual_layer_norm_forward(z, z * 2, b, b, 1e-12)
    fused.residual_layer_norm_backward(y, c)
    scores = xp.asarray(rng.normal(size=(2, 2, 4, 4)).astype(np.float32))
    p, dropped = fused.masked_softmax_dropout_forward(scores, None, None)
    fused.softmax_dropout_backward(xp.ones_like(p), p, None)


def test_a_cupy_array_takes_the_kernel_unless_turned_off(monkeypatch):
    monkeypatch.setitem(backend.xp._modules, "cupy", types.SimpleNamespace(ndarray=_FakeCupyArray))
    a = np.zeros((2, 4), np.float32).view(_FakeCupyArray)
    assert kernels.fused_kernels_available(a)
    assert not kernels.fused_kernels_available(np.zeros((2, 4), np.float32))       # plain NumPy
    assert not kernels.fused_kernels_available(np.zeros((2, 4), np.float16).view(_FakeCupyArray))   # no fp16 kernel
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert not kernels.fused_kernels_available(a)


def test_a_mask_in_another_dtype_takes_the_twin(monkeypatch):
    called = []
    monkeypatch.setattr(fused, "fused_kernels_available", lambda a: True)
    monkeypatch.setattr(fused, "_softmax_dropout_backward_cuda", lambda *a: called.append(a))
    dp, p = np.ones((1, 1, 3, 3), np.float32), np.full((1, 1, 3, 3), 1 / 3, np.float32)
    fused.softmax_dropout_backward(dp.copy(), p, np.ones((1, 1, 3, 3), np.uint8))
    assert not called
    fused.softmax_dropout_backward(dp.copy(), p, np.ones((1, 1, 3, 3), np.float32))
    assert len(called) == 1


# -- the launch arguments -------------------------------------------------------------------------

def _declared(source, name):
    decls = source.split(f"void {name}(", 1)[1].split(")", 1)[0].split(",")
    return [d.strip() for d in decls]


class _Recorder:
    """Stands in for a RawKernel: records grid, block and args, checks them against the signature."""

    def __init__(self, source, name, dtype):
        self.decls = _declared(source, f"{name}_TYPE")
        self.dtype = np.dtype(dtype)
        self.calls = []

    def __call__(self, grid, block, args):
        assert len(args) == len(self.decls)
        for decl, a in zip(self.decls, args):
            kind = " ".join(decl.replace("const", "").split()[:-1])
            if "*" in decl:
                assert isinstance(a, np.ndarray) and a.dtype == self.dtype and a.flags.c_contiguous, decl
            else:
                want = {"int": np.int32, "long long": np.int64, "TYPE": self.dtype.type}[kind]
                assert type(a) is want, (decl, type(a))
        assert block[0] in (32, 64, 128, 256)
        self.calls.append((grid, block, args))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_row_kernel_is_launched_with_its_signature_s_types_and_one_block_per_row(dtype, monkeypatch):
    made = {}

    def fake_row_kernel(source, name, dt):
        made[name] = made.get(name) or _Recorder(source, name, dt)
        return made[name]
    monkeypatch.setattr(fused, "row_kernel", fake_row_kernel)
    monkeypatch.setattr(fused, "reduction_kernel", lambda **k: lambda a, b, axis: (a * b).sum(axis=axis))
    rng = np.random.default_rng(1)
    B, A, T, H = 2, 3, 5, 12
    x, sub = (rng.normal(size=(B, T, H)).astype(dtype) for _ in range(2))
    g = np.ones(H, dtype)
    mask = dropout_mask((B, T, H), 0.1, rng, np, np.dtype(dtype))
    y, c = fused._residual_layer_norm_forward_cuda(x, sub, g, g, 1e-12, mask)
    fused._residual_layer_norm_backward_cuda(y, c)
    scores = rng.normal(size=(B, A, T, T)).astype(dtype)
    bias = attention_mask_bias(np.ones((B, T), int), np.dtype(dtype))
    p, _ = fused._masked_softmax_dropout_forward_cuda(scores, bias, None)
    fused._softmax_dropout_backward_cuda(np.ones_like(p), p, None)
    assert set(made) == set(ROW_KERNELS)
    rows = {"residual_layer_norm_forward": B * T, "residual_layer_norm_backward": B * T,
            "masked_softmax_dropout_forward": B * A * T, "softmax_dropout_backward": B * A * T}
    for name, rec in made.items():
        assert [grid for grid, _, _ in rec.calls] == [(rows[name],)], name


def test_launch_args_refuses_a_name_the_signature_does_not_have():
    src = fused.SOFTMAX_DROPOUT_BACKWARD_CUDA
    with pytest.raises(ValueError, match="signature"):
        kernels.launch_args(src, "softmax_dropout_backward_TYPE", dp=1, p=2, mask=3, has_mask=4, T=5, extra=6)
    assert kernels.kernel_parameters(src, "softmax_dropout_backward_TYPE") == ["dp", "p", "mask", "has_mask", "T"]


# -- the sources, compiled and run on the CPU ------------------------------------------------------

@pytest.mark.skipif(not have_nvcc(), reason="nvcc (the CUDA compiler) is not installed here")
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_every_kernel_source_compiles_with_nvcc(ctype):
    for name, source in ROW_KERNELS.items():
        ptx = compile_ptx(source.replace("TYPE", ctype))
        assert f"{name}_{ctype}" in ptx
    for k in ELEMENTWISE:   # the body in a kernel of CuPy's shape: inputs by value, outputs by reference
        ins = [p.split()[-1] for p in k["in_params"].split(",")]
        outs = [p.split()[-1] for p in k["out_params"].split(",")]
        args = ", ".join(f"T* {n}_" for n in ins + outs)
        loads = "".join(f"const T {n} = {n}_[i];" for n in ins) + "".join(f"T& {n} = {n}_[i];" for n in outs)
        src = (f"typedef {ctype} T;\n" f'extern "C" __global__ void {k["name"]}({args}) {{\n'
               f"  const int i = blockIdx.x * blockDim.x + threadIdx.x; {loads}\n{k['body']}\n}}\n")
        assert k["name"] in compile_ptx(src)


def _data(a):
    """The NumPy data of a NumPy or strict stand-in array (the emulated kernels read memory)."""
    return a._data if isinstance(a, strict_xp.ndarray) else a


def _launch():
    strict_module._op("cuda kernel")        # one launch = one operation, when the stand-in is counting


@pytest.fixture
def emulated(monkeypatch):
    """The fused functions with their kernels run by the CPU emulation (cuda_emulation.py), on NumPy
    arrays and on the strict stand-in's (each launch counted as one operation there)."""
    if not have_gxx():
        pytest.skip("g++ is not installed here")

    def elementwise(**spec):
        def run(*arrays):
            _launch()
            data = [_data(a) for a in arrays]
            body = ElementwiseBody(**spec, ctype=CTYPES[data[0].dtype.type])
            body(*[np.ascontiguousarray(np.broadcast_to(a, a.shape)) if a.ndim == 1 else a for a in data])
        return run

    def row(src, name, dt):
        kernel = RowKernel(src, name, CTYPES[dt.type])

        def run(grid, block, args):
            _launch()
            kernel(grid, block, tuple(_data(a) for a in args))
        return run

    def reduction(**spec):
        def run(a, b, axis):
            _launch()
            out = np.einsum("nk,nk->k", _data(a), _data(b))
            return out if isinstance(a, np.ndarray) else strict_module.StrictArray(out)
        return run
    monkeypatch.setattr(fused, "fused_kernels_available", lambda a: True)
    monkeypatch.setattr(fused, "elementwise_kernel", elementwise)
    monkeypatch.setattr(fused, "row_kernel", row)
    monkeypatch.setattr(fused, "reduction_kernel", reduction)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_emulated_kernels_give_the_twins_numbers(dtype, p, emulated, monkeypatch):
    rng = np.random.default_rng(5)
    B, A, T, H = 2, 3, 7, 24
    tol = TOL[dtype]
    z, x, sub, dy = ((rng.normal(size=(B, T, H)) * 2).astype(dtype) for _ in range(4))
    bias, g, be = (rng.normal(size=H).astype(dtype) for _ in range(3))
    mask = dropout_mask((B, T, H), p, rng, np, np.dtype(dtype)) if p else None
    scores = (rng.normal(size=(B, A, T, T)) * 3).astype(dtype)
    dp = rng.normal(size=(B, A, T, T)).astype(dtype)
    am = np.ones((B, T), int)
    am[1, 4:] = 0
    mb = attention_mask_bias(am, np.dtype(dtype))
    smask = dropout_mask((B, A, T, T), p, rng, np, np.dtype(dtype)) if p else None

    def run():
        y, d = fused.bias_gelu_forward(z.copy(), bias)
        du, db = fused.bias_gelu_backward(dy.copy(), d)
        with no_grad():
            y_inf, _ = fused.bias_gelu_forward(z.copy(), bias)
        h, c = fused.residual_layer_norm_forward(x, sub, g, be, 1e-12, mask)
        dx, dsub, dg, dbe = fused.residual_layer_norm_backward(dy, c)
        probs, dropped = fused.masked_softmax_dropout_forward(scores.copy(), mb, smask)
        ds = fused.softmax_dropout_backward(dp.copy(), probs, smask)
        return dict(y=y, d=d, du=du, db=db, y_inf=y_inf, h=h, xhat=c.layer_norm.xhat, rstd=c.layer_norm.rstd,
                    dx=dx, dsub=dsub, dg=dg, dbe=dbe, probs=probs, dropped=dropped, ds=ds)

    got = run()
    monkeypatch.undo()                                         # the twins
    want = run()
    for k in want:
        assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
        np.testing.assert_allclose(got[k], want[k], err_msg=k, **tol)
    assert np.all(got["probs"][1, :, :, 4:] == 0)              # masked keys get no weight


def _bert_run(L, dtype=np.float32, training=True, measure=contextlib.nullcontext):
    """BertModel forward (+ backward when training) on a small batch with padding, inside `measure()`;
    outputs and gradients on the host."""
    from minibert.model.bert import BertModel
    from minibert.model.config import BertConfig
    cfg = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=L, num_attention_heads=2, intermediate_size=72)
    rng = np.random.default_rng(0)
    ids, am = rng.integers(1, 97, (4, 16)), np.ones((4, 16), int)
    am[1, 11:] = 0
    model = BertModel(cfg, seed=0, dtype=dtype)
    if not training:
        with model.inference(), measure():
            return backend.to_host(model.forward(ids, attention_mask=am)[0]), {}
    model.train()
    model.zero_grad()
    dout = backend.to_device(np.ones((4, 16, 32), dtype))
    with measure():
        out = model.forward(ids, attention_mask=am)[0]
        model.backward(d_last_hidden_state=dout)
    return backend.to_host(out), {k: backend.to_host(g) for k, g in model.grads.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_whole_model_runs_the_emulated_kernels_with_the_twins_numbers(dtype, emulated, monkeypatch):
    """BertModel training forward and backward, dropout on, with every fused op on its CUDA kernel (run on
    the CPU) against the twins: outputs and every gradient to float32 / float64 rounding."""
    out, grads = _bert_run(2, dtype)
    monkeypatch.undo()
    want_out, want_grads = _bert_run(2, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, want_out, **tol)
    for k in want_grads:
        np.testing.assert_allclose(grads[k], want_grads[k], err_msg=k, **tol)


def _ops_per_layer(training):
    counts = []
    for L in (2, 4):
        counts_of = []

        @contextlib.contextmanager
        def measure():
            with counting() as c:
                yield
            counts_of.append(c.ops.copy())
        with backend.using("strict"):
            _bert_run(L, training=training, measure=measure)
        ops = counts_of[0]
        ops.pop("ascontiguousarray", None)  # on CuPy a no-op for the contiguous arrays the kernels get
        counts.append(sum(ops.values()))
    return (counts[1] - counts[0]) / 2


def test_operations_per_layer_with_the_kernels(emulated):
    """Array operations per encoder layer (the strict stand-in's count, a proxy for kernel launches; a
    fused kernel counts one). Measured at this commit: training forward + backward 135 with the twins ->
    62 with the kernels (18 matmuls, 10 fused kernels, 21 adds of biases and into gradient buffers, 6 bias
    sums, ...); inference 64 -> 16. Training is 74 since the dropout masks are drawn on the device
    (r17-device: a draw, a compare, a cast and a scale for each of a layer's 3 masks, where a host-drawn
    mask was a copy, not an operation)."""
    assert _ops_per_layer(training=True) <= 74
    assert _ops_per_layer(training=False) <= 16
