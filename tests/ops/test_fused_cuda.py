"""gpu: every fused CUDA kernel of minibert/ops/fused.py against its NumPy twin, both run on the same CuPy
arrays (the twin with kernels.ENABLED = False), at BERT-like shapes and at odd ones (rows shorter and
longer than a block, H not a multiple of the threads).

Tolerances, float32: rtol 2e-5 / atol 2e-5 on values of order 1 (row sums added by a tree of threads
instead of NumPy's order, FMAs, CUDA's erff against erf.py's A&S polynomial with |error| <= 1.5e-7);
float64: 1e-10 (only the order of additions and erf's last bits differ). Skipped without CuPy and a GPU.
"""
import numpy as np
import pytest

from minibert import backend
from minibert.backend import kernels
from minibert.backend.grad_mode import no_grad
from minibert.ops import fused
from minibert.ops.attention import attention_mask_bias
from minibert.ops.dropout import dropout_mask

pytestmark = pytest.mark.gpu
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def _run_all(cp, host, enabled):
    """Every fused function on CuPy copies of the host inputs; results back on the host."""
    saved = kernels.ENABLED
    kernels.ENABLED = enabled
    try:
        d = {k: cp.asarray(v) if v is not None else None for k, v in host.items()}
        assert kernels.fused_kernels_available(d["z"]) == enabled
        y, dg = fused.bias_gelu_forward(d["z"].copy(), d["bias"])
        du, db = fused.bias_gelu_backward(d["dy"].copy(), dg)
        with no_grad():
            y_inf, none = fused.bias_gelu_forward(d["z"].copy(), d["bias"])
        assert none is None
        h, c = fused.residual_layer_norm_forward(d["x"], d["sub"], d["g"], d["be"], 1e-12, d["mask"])
        dx, dsub, dgam, dbe = fused.residual_layer_norm_backward(d["dy"], c)
        with no_grad():
            h_inf, c_inf = fused.residual_layer_norm_forward(d["x"], d["sub"], d["g"], d["be"], 1e-12, d["mask"])
        assert c_inf.layer_norm.xhat is None
        probs, dropped = fused.masked_softmax_dropout_forward(d["scores"].copy(), d["mb"], d["smask"])
        ds = fused.softmax_dropout_backward(d["dp"].copy(), probs, d["smask"])
        out = dict(y=y, dg=dg, du=du, db=db, y_inf=y_inf, h=h, xhat=c.layer_norm.xhat, rstd=c.layer_norm.rstd,
                   dx=dx, dsub=dsub, dgam=dgam, dbe=dbe, h_inf=h_inf, probs=probs, dropped=dropped, ds=ds)
        return {k: backend.to_host(v) for k, v in out.items()}
    finally:
        kernels.ENABLED = saved


@pytest.mark.parametrize("shape", [(2, 7, 3, 24), (4, 128, 12, 768), (3, 129, 2, 1031)],
                         ids=lambda s: "B{}T{}A{}H{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_every_fused_kernel_matches_its_twin_on_cupy(shape, dtype, p):
    with backend.using("cupy") as cp:
        B, T, A, H = shape
        rng = np.random.default_rng(7)
        f = lambda *s: (rng.normal(size=s) * 2).astype(dtype)          # noqa: E731
        am = np.ones((B, T), int)
        am[0, T // 2:] = 0
        host = dict(z=f(B, T, H), bias=f(H), dy=f(B, T, H), x=f(B, T, H), sub=f(B, T, H), g=f(H), be=f(H),
                    mask=dropout_mask((B, T, H), p, rng, np, np.dtype(dtype)) if p else None,
                    scores=f(B, A, T, T), dp=f(B, A, T, T), mb=attention_mask_bias(am, np.dtype(dtype)),
                    smask=dropout_mask((B, A, T, T), p, rng, np, np.dtype(dtype)) if p else None)
        got = _run_all(cp, host, enabled=True)
        want = _run_all(cp, host, enabled=False)
        for k in want:
            assert got[k].shape == want[k].shape and got[k].dtype == want[k].dtype, k
            scale = max(1.0, float(np.abs(want[k]).max()))
            np.testing.assert_allclose(got[k] / scale, want[k] / scale, err_msg=k, **TOL[dtype])
        assert np.all(got["probs"][0, :, :, T // 2:] == 0)


def test_the_kernels_cost_one_launch_each():
    """Timing-free check that the kernel path is the one taken: the kernel objects are built (cached)."""
    with backend.using("cupy") as cp:
        kernels.raw_kernel.cache_clear()
        x = cp.ones((4, 8, 32), dtype=cp.float32)
        fused.residual_layer_norm_forward(x, x, x[0, 0], x[0, 0], 1e-12)
        assert kernels.raw_kernel.cache_info().currsize == 1
