"""The backend (minibert/backend/xp.py): device-cleanliness without a GPU (the strict CuPy stand-in, through the
`xp` fixture), CuPy errors, dtypes, and real-GPU checks."""
import functools
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from minibert import BertModel, backend, gradcheck
from minibert.backend import BackendError
from helpers import REPO, padded_batch, perturbed
from reference import hf_model, rel_diff
from strict_xp import StrictArray, strict_xp


def test_strict_stand_in_is_as_strict_as_cupy():
    """The stand-in must itself refuse what CuPy refuses, or the next test proves nothing."""
    a = strict_xp.ones((2, 3))
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="mixed"):
        a + np.ones((2, 3))
    with pytest.raises(TypeError, match="mixed"):
        np.ones((2, 3)) * a
    with pytest.raises(TypeError, match="mixed"):
        a[np.array([0])] = 1.0
    with pytest.raises(TypeError, match="numpy.sum called on a device array"):
        np.sum(a)
    b = a * 2.0 + strict_xp.asarray(np.arange(3.0))         # host -> device is explicit: allowed
    assert isinstance(b, StrictArray) and float(b.sum()) == 18.0
    assert backend.to_host(b).tolist() == [[2.0, 3.0, 4.0]] * 2


def test_whole_model_forward_backward_stays_on_device(xp):
    """Forward and backward of the full model under each backend (under the strict one, any host/device
    mix or implicit conversion in minibert raises), dropout on and off. With dropout off the numbers
    must equal the NumPy run exactly; with dropout on the strict run draws its masks on the device
    (another generator than NumPy's: tests/backend/test_device_resident.py checks those masks), so
    it is compared with itself: the same seed, the same numbers."""
    cfg = gradcheck.odd_config()
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 99, (3, 7))
    mask = np.ones((3, 7), dtype=np.int64)
    mask[2, 4:] = 0
    types = rng.integers(0, 2, (3, 7))
    d_seq, d_pool = rng.normal(size=(3, 7, 36)), rng.normal(size=(3, 36))

    def run(dropout):
        model = BertModel(cfg, seed=0, dtype="float64")
        model.train() if dropout else model.eval()            # eval: dropout off, the backward still runs
        xp = backend.get_xp()
        seq, pooled = model.forward(ids, types, mask)
        model.zero_grad()
        model.backward(xp.asarray(d_seq), xp.asarray(d_pool))
        return backend.to_host(seq), {k: backend.to_host(g) for k, g in model.grads.items()}

    seq_dev, grads_dev = run(dropout=False)
    dropped, dropped_grads = run(dropout=True)
    assert isinstance(BertModel(cfg).params["pooler.dense.weight"], xp.ndarray)
    with backend.using("numpy"):
        seq_host, grads_host = run(dropout=False)
    assert np.array_equal(seq_dev, seq_host)
    for k in grads_host:
        assert np.array_equal(grads_dev[k], grads_host[k]), k
    again, again_grads = run(dropout=True)
    assert not np.array_equal(dropped, seq_dev)             # dropout did something
    assert np.array_equal(dropped, again)
    for k in again_grads:
        assert np.array_equal(dropped_grads[k], again_grads[k]), k


def test_asking_for_cupy_without_a_gpu_says_why(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    monkeypatch.delitem(backend.xp._modules, "cupy", raising=False)
    with pytest.raises(BackendError, match="CuPy is not installed"):
        backend.use("cupy")
    assert backend.name() == "numpy"


def test_cupy_installed_without_device_says_why(monkeypatch):
    import sys
    import types
    fake = types.ModuleType("cupy")
    fake.is_available = lambda: False
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delitem(backend.xp._modules, "cupy", raising=False)
    with pytest.raises(BackendError, match="no CUDA device is available"):
        backend.use("cupy")
    assert not backend.gpu_available()


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        backend.use("tpu")


@pytest.mark.parametrize("value,says", [("cupy", "CuPy is not installed|no CUDA device|CUDA failed"),
                                        ("tpu", "unknown backend 'tpu'")])
def test_an_unusable_env_backend_is_one_error_line(value, says):
    """MINIBERT_BACKEND names the backend; `import minibert` never fails on it. The command line says in one
    line (no traceback) that it cannot be used, and library code raises BackendError on the first array."""
    if value == "cupy" and backend.gpu_available():
        pytest.skip("CuPy and a GPU are here: MINIBERT_BACKEND=cupy works")
    env = {**os.environ, "MINIBERT_BACKEND": value}
    run = functools.partial(subprocess.run, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    r = run([sys.executable, "-c", "import minibert, minibert.cli; print(minibert.backend.name())"])
    assert r.returncode == 0 and r.stdout.strip() == value, r.stderr
    r = run([sys.executable, "-m", "minibert", "gradcheck", "--config", "odd"])
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert re.fullmatch(rf"error: MINIBERT_BACKEND={value}: .*({says}).*\n", r.stderr), r.stderr
    r = run([sys.executable, "-c", "import minibert\nfrom minibert.gradcheck import odd_config\n"
                                   "try:\n    minibert.BertModel(odd_config())\n"
                                   "except minibert.backend.BackendError as err:\n    print('raised:', err)"])
    assert r.returncode == 0 and r.stdout.startswith(f"raised: MINIBERT_BACKEND={value}: "), r.stdout + r.stderr
    r = run([sys.executable, "-m", "minibert", "--backend", "numpy", "gradcheck", "--config", "odd"])
    assert r.returncode == 0, r.stderr                                     # --backend wins over the variable


def test_dtype_selection():
    assert BertModel(gradcheck.odd_config(), dtype="float64").params["pooler.dense.bias"].dtype == np.float64
    assert BertModel(gradcheck.odd_config()).params["pooler.dense.bias"].dtype == np.float32
    with pytest.raises(ValueError, match="unknown dtype 'float8'"):
        BertModel(gradcheck.odd_config(), dtype="float8")


# -- on a real GPU (skipped here with the reason) -------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
def test_parity_with_transformers_on_cupy(dtype, tol):
    import torch
    cfg = gradcheck.odd_config()
    host_model = perturbed(BertModel, cfg, dtype, noise_seed=100)
    ref = hf_model(host_model).eval()
    ids, types, mask = padded_batch(cfg)
    with backend.using("cupy") as cp:
        model = BertModel(cfg, dtype=dtype, params={k: cp.asarray(v) for k, v in host_model.params.items()}).eval()
        seq, pooled = model.forward(ids, types, mask)
        d_seq = np.random.default_rng(0).normal(size=seq.shape).astype(dtype)
        model.zero_grad()
        model.backward(cp.asarray(d_seq))
        out = ref(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types), attention_mask=torch.tensor(mask))
        (out.last_hidden_state * torch.tensor(d_seq)).sum().backward()
        assert rel_diff(backend.to_host(seq), out.last_hidden_state.detach().numpy()) <= tol
        for k, p in ref.named_parameters():
            if p.grad is not None:
                assert rel_diff(backend.to_host(model.grads[k]), p.grad.numpy()) <= tol, k


def test_strict_stand_in_counts_reads_copies_and_operations():
    """The counters issue 17's tests rely on: each kind of read, copy and operation is seen (and views are free)."""
    from strict_xp import counting, strict_xp as sx
    with counting() as c:
        a = sx.asarray(np.arange(6, dtype=np.float32))         # host -> device, 24 bytes
        b = (a * 2.0).reshape(2, 3).T                           # one multiply; reshape and .T are views
        s = b.sum()                                             # one reduction
        float(s), int(s), bool(s), s.item(), b.get()            # five reads
        b[0, 1]                                                 # basic index: a view
        b[sx.asarray(np.array([0, 1]))]                         # gather: an operation (and a copy of the index)
    assert c.h2d == [(24, (6,)), (16, (2,))]
    assert [k for k, _ in c.d2h] == ["float", "int", "bool", "item", "get"]
    assert c.d2h[0][1].endswith(".py:" + c.d2h[0][1].rsplit(":", 1)[1]) and "test_backend.py" in c.d2h[0][1]
    assert c.ops == {"multiply": 1, "sum": 1, "getitem (gather)": 1}
    with counting() as c:
        with pytest.raises(TypeError):
            np.asarray(a)
    assert [k for k, _ in c.d2h] == ["__array__ (refused)"]
