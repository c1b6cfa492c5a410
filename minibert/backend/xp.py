"""The array backend: NumPy on the CPU, CuPy on a GPU, chosen at run time.

Every line of model code computes with an *array module* `xp` that has NumPy's
API. On the CPU `xp` is `numpy`; on a GPU it is `cupy`, and the same code runs
there unchanged. This file is the only place CuPy is imported.

    from minibert import backend
    backend.use("cupy")              # or: MINIBERT_BACKEND=cupy python ...
    xp = backend.get_xp()            # the module new arrays are made with
    xp = backend.get_xp(some_array)  # the module that owns this array

Rules the rest of minibert follows (they are what make the GPU path work):
- model arrays are made with `xp` and never converted with `numpy.asarray`;
- data is prepared on the host with NumPy, then moved once with `to_device`;
- numbers leave the device only for logging: `float(x)` / `to_host(x)`.
Randomness for data and dropout masks is drawn on the host with a seeded NumPy
Generator, so a run gives the same numbers on both backends.
"""
from __future__ import annotations

import contextlib
import functools
import os

import numpy

from minibert.errors import MinibertError

__all__ = [
    "BackendError", "use", "using", "name", "get_xp", "to_device", "to_host",
    "scatter_add", "cupy_erf", "gpu_available", "resolve_dtype", "register", "is_cupy", "elementwise_kernel",
]


class BackendError(MinibertError, RuntimeError):
    """Raised when a backend is asked for and cannot be used (says why)."""


# name -> array module. "numpy" is always there; "cupy" is imported on demand;
# tests register a strict stand-in for CuPy (see tests/strict_xp.py).
_modules: dict[str, object] = {"numpy": numpy}

# The selected backend. The environment variable picks it, so scripts and notebooks run on a GPU with
# no code change (MINIBERT_BACKEND=cupy). It is only read here: CuPy is imported when the first array
# is made (`_selected`), so `import minibert` never fails, and the command line checks it before a
# command runs, so a missing CuPy or GPU is one error line there rather than a traceback.
_current: str = os.environ.get("MINIBERT_BACKEND") or "numpy"


def register(backend_name: str, module) -> None:
    """Make `module` (NumPy-compatible, with an `ndarray` type) selectable by name."""
    _modules[backend_name] = module


def _import_cupy():
    """Import CuPy and check a CUDA device is usable; raise BackendError saying which part fails."""
    try:
        import cupy  # the one place CuPy is imported
    except ImportError as err:
        raise BackendError(
            "backend 'cupy' was asked for but CuPy is not installed "
            f"({err}). Install it with `pip install cupy-cuda12x` on a machine with an NVIDIA GPU."
        ) from None
    try:
        usable = cupy.is_available()
    except Exception as err:  # a broken driver can raise instead of returning False
        raise BackendError(f"backend 'cupy': CuPy is installed but CUDA failed to start: {err}") from None
    if not usable:
        raise BackendError(
            "backend 'cupy': CuPy is installed but no CUDA device is available "
            "(cupy.is_available() is False). Run on a machine with an NVIDIA GPU, or use the 'numpy' backend."
        )
    return cupy


def gpu_available() -> bool:
    """True when CuPy is installed and sees a CUDA device."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


def use(backend_name: str) -> None:
    """Select the backend by name: "numpy" (default) or "cupy"."""
    global _current
    if backend_name not in _modules:
        if backend_name != "cupy":
            known = sorted(set(_modules) | {"cupy"})
            raise BackendError(f"unknown backend {backend_name!r}; choose one of {known}")
        _modules["cupy"] = _import_cupy()
    _current = backend_name


@contextlib.contextmanager
def using(backend_name: str):
    """`with backend.using("cupy"): ...` selects a backend for a block, then restores the old one."""
    global _current
    previous = _current
    use(backend_name)
    try:
        yield _modules[backend_name]
    finally:
        _current = previous           # as it was (MINIBERT_BACKEND's, perhaps not imported yet)


def _selected():
    """The selected backend's array module. MINIBERT_BACKEND's backend is made usable at the first call
    (CuPy imported, the device checked), with a BackendError that says what is missing."""
    if _current not in _modules:
        try:
            use(_current)
        except BackendError as err:
            raise BackendError(f"MINIBERT_BACKEND={_current}: {err}") from None
    return _modules[_current]


def name() -> str:
    """The name of the selected backend."""
    return _current


def get_xp(*arrays):
    """The array module for these arrays, or the selected backend's module when none is given.

    With arrays, the module is read off the arrays themselves (Chainer's
    `get_array_module`), so an op works on whichever device its inputs live on.
    """
    for a in arrays:
        if a is None or isinstance(a, (numpy.ndarray, numpy.generic)):
            continue
        for module in _modules.values():
            if module is not numpy and isinstance(a, module.ndarray):
                return module
    if arrays and any(isinstance(a, numpy.ndarray) for a in arrays):
        return numpy
    return _selected()


def to_device(array, dtype=None):
    """Copy a host array (or list) to the selected backend's device, optionally casting."""
    xp = _selected()
    return xp.asarray(array, dtype=dtype)


def to_host(array) -> numpy.ndarray:
    """Copy an array back to host NumPy (a no-op for NumPy arrays)."""
    if isinstance(array, (numpy.ndarray, numpy.generic)):
        return numpy.asarray(array)
    if hasattr(array, "get"):  # cupy.ndarray.get() copies device -> host
        return array.get()
    return numpy.asarray(array)


def scatter_add(target, indices, values) -> None:
    """target[indices[i]] += values[i], adding (not assigning) when an index repeats.

    This is the embedding backward: a token id that appears twice must receive
    both gradients. NumPy spells it `np.add.at`; CuPy `cupyx.scatter_add`.
    """
    xp = get_xp(target)
    if xp is numpy:
        numpy.add.at(target, indices, values)
    elif hasattr(xp, "scatter_add"):
        xp.scatter_add(target, indices, values)
    else:  # real CuPy keeps it in cupyx
        import cupyx
        cupyx.scatter_add(target, indices, values)


def cupy_erf(x):
    """erf(x) elementwise for a CuPy array: CuPy's CUDA kernel, `cupyx.scipy.special.erf`.

    NumPy has no erf; minibert's own (for NumPy arrays) is in minibert/ops/erf.py, which calls
    this one for CuPy arrays so that CuPy stays imported only here.
    """
    import cupyx.scipy.special  # CuPy's SciPy part, only when a CuPy array is given (CuPy is optional)
    return cupyx.scipy.special.erf(x)


def is_cupy(array) -> bool:
    """Whether `array` is a CuPy array, on which a fused CUDA kernel can run (False for NumPy arrays and
    for the strict stand-in's, which take the fused kernel's readable NumPy twin instead)."""
    module = _modules.get("cupy")
    return module is not None and isinstance(array, module.ndarray)


@functools.lru_cache(maxsize=None)
def elementwise_kernel(in_params: str, out_params: str, body: str, name: str, options: tuple = ()):
    """A `cupy.ElementwiseKernel`: `body` (CUDA C++) run once per element, in one launch.

    in_params / out_params: CuPy's argument lists ("T g, T lr", "T p, T m"); `T` takes the
    arrays' dtype and Python numbers passed for a `T` are cast to it, as NumPy casts a Python
    float against a float32 array. Output arrays passed in are updated in place and can be read
    in the body. `options`: NVRTC flags (e.g. "--fmad=false", so a*b + c rounds twice as NumPy's
    two operations do). Made once per argument set (cached); CuPy compiles it at the first call.
    """
    import cupy  # only here and in _import_cupy: a kernel is asked for by code that holds CuPy arrays
    return cupy.ElementwiseKernel(in_params, out_params, body, name, options=options)


_DTYPES = {"float32": numpy.float32, "float64": numpy.float64, "float16": numpy.float16}


def resolve_dtype(dtype) -> numpy.dtype:
    """Turn "float32" / "float64" / numpy dtype into a numpy dtype, with a clear error."""
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        return numpy.dtype(_DTYPES[dtype])
    dt = numpy.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"minibert computes in floating point; got dtype {dt}")
    return dt
