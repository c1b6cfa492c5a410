"""minibert/gradcheck.py itself: the checker fails on a wrong backward, and runs on the device.

The checks it runs (every op, the whole model, the heads) are in ops/test_ops.py, model/test_bert.py
and model/test_task_heads.py; `minibert gradcheck` (the command) in test_readme.py.
"""
import numpy as np
import pytest

from minibert import backend, gradcheck


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself must fail on a wrong gradient (a test that cannot fail is a defect)."""
    from minibert.ops import layer_norm_backward, layer_norm_forward

    def naive_backward(d, cache):     # forgets the mean terms of the LayerNorm Jacobian
        xhat, rstd, gamma = cache
        _, dg, db = layer_norm_backward(d, cache)
        return {"x": d * gamma * rstd, "g": dg, "b": db}

    rng = np.random.default_rng(2)
    inputs = dict(x=rng.normal(size=(3, 7, 36)), g=rng.normal(size=36), b=rng.normal(size=36))
    result = gradcheck.check_op("naive", lambda x, g, b: layer_norm_forward(x, g, b, 1e-12), naive_backward,
                                inputs, "xgb", rng)
    assert result.max_rel_error > 1e-2 and result.worst == "x"


def test_gradcheck_runs_under_strict_backend(xp):
    """Every op's gradient check under each backend: under the strict stand-in, any host/device mix
    in the ops or in the checker raises."""
    rng = np.random.default_rng(0)
    for name, fwd, bwd, inputs, wrt in gradcheck.op_checks(rng):
        assert gradcheck.check_op(name, fwd, bwd, inputs, wrt, rng, max_entries=8).passed, name


# -- on a real GPU (skipped here with the reason) -------------------------------------------

@pytest.mark.gpu
def test_gradcheck_on_cupy():
    with backend.using("cupy"):
        assert gradcheck.run("odd", stream=lambda *a: None)
