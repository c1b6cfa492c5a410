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
Randomness for data is drawn on the host with a seeded NumPy Generator, so a run
reads the same data in the same order on both backends. Dropout masks are drawn
where the activations live: on the host with that Generator under NumPy, on the
device with a generator seeded once from it (`device_generator`) under CuPy.
"""
from __future__ import annotations

import contextlib
import functools
import os

import numpy

from minibert.errors import MinibertError

__all__ = [
    "BackendError", "use", "using", "name", "get_xp", "to_device", "to_host",
    "scatter_add", "sorted_segment_add", "cupy_erf", "gpu_available", "resolve_dtype", "register",
    "device_generator", "is_host_generator", "host_ints", "is_cupy", "elementwise_kernel",
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


def host_ints(*scalars) -> list[int]:
    """Integer scalars (0-d arrays, host or device, or Python ints) as Python ints, with at most ONE
    device -> host copy for all of them.

    Each `int(x)` of a device scalar is a synchronisation (the GPU finishes its queue, then a tiny
    copy); a check that needs six numbers would pay six. Here the device scalars are stacked into one
    small device array (int64) and copied once; host scalars are read directly.
        lo, hi = host_ints(ids.min(), ids.max())          # one read, not two
    """
    on_host = [isinstance(s, (int, numpy.ndarray, numpy.generic)) for s in scalars]
    device = [s for s, host in zip(scalars, on_host) if not host]
    read = []
    if device:
        xp = get_xp(device[0])
        read = to_host(xp.stack([s.astype(numpy.int64) for s in device])).tolist()   # the one copy
    read = iter(read)
    return [int(s) if host else next(read) for s, host in zip(scalars, on_host)]


def is_host_generator(rng) -> bool:
    """True for a NumPy random Generator (draws on the host), False for a device one (CuPy's)."""
    return isinstance(rng, numpy.random.Generator)


def device_generator(host_rng: numpy.random.Generator, xp=None):
    """A random generator of `xp`'s device (default: the selected backend), seeded from `host_rng`.

    NumPy: `host_rng` itself (the host is the device). CuPy: `cupy.random.default_rng(seed)` (cuRAND's
    XORWOW), with seed = one draw `host_rng.integers(2**63)`: the device stream is fixed by the host
    generator's seed, and the masks it draws never cross the bus. Call it once and keep the result
    (BertModel does): every call takes a new seed from `host_rng` and builds a new generator.
    """
    xp = _selected() if xp is None else xp
    if xp is numpy:
        return host_rng
    return xp.random.default_rng(int(host_rng.integers(2 ** 63)))


# The embedding gradient on CuPy, deterministic by default: cupyx.scatter_add adds with atomics, in an
# order that changes from run to run, so the word-embedding gradient (a token id seen k times: k adds
# into one row) would differ in its last bits between two identical runs and from NumPy's.
# MINIBERT_DETERMINISTIC_SCATTER=0 (or scatter_add(..., deterministic=False)) takes the atomics back.
DETERMINISTIC_SCATTER = os.environ.get("MINIBERT_DETERMINISTIC_SCATTER", "1") != "0"


def scatter_add(target, indices, values, deterministic: bool | None = None) -> None:
    """target[indices[i]] += values[i], adding (not assigning) when an index repeats.

    This is the embedding backward: a token id that appears twice must receive
    both gradients. indices: (...) integers; values: indices.shape + target.shape[1:].
    - NumPy: `numpy.add.at`, which adds the occurrences of an index in the order they come (deterministic).
    - CuPy, deterministic (the default, DETERMINISTIC_SCATTER): the sorted-segment kernel below, which adds
      in that same order and so gives numpy.add.at's numbers bit for bit, run after run.
    - CuPy with deterministic=False: `cupyx.scatter_add` (atomics: faster, the order varies).
    - the strict stand-in: its own scatter_add (NumPy's add.at inside).
    """
    xp = get_xp(target)
    deterministic = DETERMINISTIC_SCATTER if deterministic is None else deterministic
    if xp is numpy:
        numpy.add.at(target, indices, values)
    elif xp is _modules.get("cupy") and deterministic:
        _sorted_segment_add_cuda(xp, target, indices, values)
    elif hasattr(xp, "scatter_add"):
        xp.scatter_add(target, indices, values)
    else:  # real CuPy keeps it in cupyx
        import cupyx
        cupyx.scatter_add(target, indices, values)


def sorted_segment_add(target, indices, values) -> None:
    """The deterministic scatter-add's algorithm written with array operations (the CUDA kernel's NumPy twin).

    Sort the ids, stably: the occurrences of one id become one segment, in the order they came. Round r
    then adds the r-th occurrence of every id (no id twice in a round, so a plain fancy-index `+=` is
    right), rounds in order. Each row of the target thus receives target + v_first + v_second + ...,
    added left to right, exactly the additions of numpy.add.at in the same order: the same bits
    (tests/backend/test_scatter_add.py). A segment sum added at the end, target + (v1 + v2 + ...) (what
    reduceat or a one-hot matmul would give), is another association: equal only to a float32 rounding
    per addition. NumPy arrays (the rounds are a host loop, as many as the most frequent id's count).
    """
    xp = get_xp(target)
    ids = indices.reshape(-1)
    if ids.size == 0:
        return
    rows = values.reshape(ids.size, -1)
    order = xp.argsort(ids, kind="stable")                      # (N,) positions, id by id, in occurrence order
    sorted_ids = ids[order]
    n = xp.arange(ids.size)
    first = xp.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1]))   # a segment starts here
    rank = n - xp.maximum.accumulate(xp.where(first, n, 0))    # the occurrence number within its segment
    flat_target = _rows_view(target)
    for r in range(int(rank.max()) + 1):
        take = rank == r
        flat_target[sorted_ids[take]] += rows[order[take]]     # the r-th occurrence of every id


# CUDA: one thread per (sorted position n, column h). The thread at the first occurrence of an id in
# the sorted ids walks that id's segment and adds its rows into the target's row, starting from the
# target's value, in occurrence order (the sort is stable): the twin's additions, one thread per row
# element, no atomics. The other threads do nothing. Shapes are fixed (N*H threads): nothing about the
# data is read on the host.
SORTED_SEGMENT_ADD_CUDA = dict(
    in_params="raw I sorted_ids, raw J order, raw T values, int64 N, int64 H",
    out_params="raw T target",
    body="""
    const long long n = i / H, h = i % H;                    // i: the element's index (CuPy's)
    const I id = sorted_ids[n];
    if (n == 0 || sorted_ids[n - 1] != id) {                 // the first occurrence of id: its segment is ours
        T acc = target[id * H + h];
        for (long long m = n; m < N && sorted_ids[m] == id; ++m) {
            acc += values[order[m] * H + h];                 // occurrence order, as numpy.add.at
        }
        target[id * H + h] = acc;
    }
    """,
    name="minibert_sorted_segment_add")


@functools.lru_cache(maxsize=None)
def _sorted_segment_add_cuda(cupy, target, indices, values) -> None:
    """scatter_add on CuPy, deterministic: a stable sort of the ids (cupy.argsort is stable), then
    SORTED_SEGMENT_ADD_CUDA over the (N, H) values."""
    ids = indices.reshape(-1)
    if ids.size == 0:
        return
    order = cupy.argsort(ids)
    sorted_ids = ids[order]
    flat_target = _rows_view(target)
    H = flat_target.shape[1]
    k = SORTED_SEGMENT_ADD_CUDA
    kernel = elementwise_kernel(k["in_params"], k["out_params"], k["body"], k["name"])
    kernel(sorted_ids, order, values.reshape(ids.size, H), ids.size, H, flat_target, size=ids.size * H)


def _rows_view(target):
    """target as (rows, row size), a view (the additions must land in target itself)."""
    if target.ndim == 2:
        return target
    if not target.flags.c_contiguous:
        raise ValueError("scatter_add: a target of more than 2 axes must be C-contiguous (it is written through a view)")
    return target.reshape(target.shape[0], -1)


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
