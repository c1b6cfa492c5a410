"""A stand-in for CuPy that runs on the CPU and is as strict as CuPy towards host NumPy.

CI has no GPU, yet minibert must prove that its forward and backward never
leave the device. CuPy arrays refuse to become NumPy arrays implicitly
(`numpy.asarray(cupy_array)` raises TypeError) and refuse to be mixed with
NumPy arrays in one operation. `StrictArray` wraps a NumPy array and does the
same; the module object `strict_xp` offers NumPy's API over StrictArrays, as
CuPy does. Running the whole model under it (backend "strict") fails loudly
at the first line that would break on a GPU.

It is even a little stricter than CuPy: NumPy functions called directly on a
StrictArray (NEP-18 dispatch, which CuPy allows) raise too, because model code
must use the backend's `xp`.

It also counts what a GPU would pay for (`counting()`, issue 17):
- device -> host reads: every `float(a)`, `int(a)`, `bool(a)`, `operator.index(a)`, `a.item()`,
  `a.tolist()`, `a.get()` (each a synchronisation on a GPU), and every refused `__array__`;
- host -> device copies: every `xp.asarray` / `xp.array` of host data, with its bytes;
- array operations, a proxy for kernel launches: every ufunc, `xp.*` function and array method that
  computes (views such as reshape, transpose, swapaxes and basic slicing are free, as on CuPy).

    with strict_xp_counting() as counts:       # from strict_xp import counting
        model.forward(...)
    counts.d2h       # ['float', 'int', ...] one entry per read, with where it came from
    counts.h2d       # [(bytes, shape), ...]
    counts.ops       # collections.Counter: operation name -> calls; counts.total_ops()

`strict_xp.random.default_rng(seed)` is the device generator (CuPy's `cupy.random.default_rng`): its
draws are StrictArrays made on the "device", one counted operation each and no host -> device copy
(a NumPy Generator inside, so its numbers are NumPy's for that seed, not cuRAND's).
"""
from __future__ import annotations

import collections
import contextlib
import traceback
import types
from operator import index as operator_index

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

HOST_MIX = "strict_xp: a host numpy.ndarray was mixed with a device array in one operation ({})"
IMPLICIT = ("strict_xp: implicit conversion of a device array to a host NumPy array is not allowed; "
            "use backend.to_host(x) (CuPy: x.get())")


# -- counting (issue 17): what each step would cost on a GPU ---------------------------------------

# array methods and xp functions that only make a view, read metadata or allocate: no kernel on a GPU
FREE = frozenset({"reshape", "transpose", "swapaxes", "view", "squeeze", "expand_dims", "broadcast_to",
                  "moveaxis", "T", "shape", "ndim", "size", "dtype", "strides", "itemsize", "nbytes",
                  "finfo", "iinfo", "result_type", "promote_types", "float32", "float64", "float16",
                  "int64", "int32", "uint8", "bool_", "newaxis", "ndarray", "empty", "empty_like"})   # allocation: no kernel


class Counts:
    """What ran on the stand-in since counting() began (see the module docstring)."""

    def __init__(self):
        self.d2h: list[tuple[str, str]] = []        # (kind, the caller's file:line)
        self.h2d: list[tuple[int, tuple]] = []      # (bytes, shape)
        self.ops: collections.Counter = collections.Counter()

    def total_ops(self) -> int:
        return sum(self.ops.values())

    def h2d_bytes(self) -> int:
        return sum(b for b, _ in self.h2d)

    def __repr__(self):
        return (f"Counts(d2h={len(self.d2h)} {[k for k, _ in self.d2h]}, h2d={len(self.h2d)} "
                f"({self.h2d_bytes()} bytes), ops={self.total_ops()})")


_counts: Counts | None = None


@contextlib.contextmanager
def counting():
    """Count device->host reads, host->device copies and operations inside the block (not nested)."""
    global _counts
    saved, _counts = _counts, Counts()
    try:
        yield _counts
    finally:
        _counts = saved


def _caller() -> str:
    """file:line of the first frame outside this file (where a read happened)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.endswith("strict_xp.py"):
            return f"{frame.filename.rsplit('/', 2)[-2]}/{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


def _read(kind):
    if _counts is not None:
        _counts.d2h.append((kind, _caller()))


def _op(name):
    if _counts is not None and name not in FREE:
        _counts.ops[name] += 1


def _copy_in(data):
    if _counts is not None:
        _counts.h2d.append((int(data.nbytes), tuple(data.shape)))


def _is_basic(key) -> bool:
    """A basic index (ints, slices, None, Ellipsis): a view, no kernel."""
    key = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (int, slice, numpy.integer)) for k in key)


def _unwrap(x, where):
    """Device array -> its data; host ndarray -> error; containers recursively; scalars as they are."""
    if isinstance(x, StrictArray):
        return x._data
    if isinstance(x, numpy.ndarray):
        raise TypeError(HOST_MIX.format(where))
    if isinstance(x, tuple):
        return tuple(_unwrap(v, where) for v in x)
    if isinstance(x, list):
        return [_unwrap(v, where) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v, where) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, (numpy.ndarray, numpy.generic)) and not isinstance(x, numpy.dtype):
        return StrictArray(numpy.asarray(x) if isinstance(x, numpy.generic) else x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class StrictArray(NDArrayOperatorsMixin):
    """A 'device' array: NumPy data inside, no implicit way out."""

    __slots__ = ("_data",)

    def __init__(self, data):
        object.__setattr__(self, "_data", data)

    # -- what CuPy refuses ---------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        _read("__array__ (refused)")
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"strict_xp: numpy.{func.__name__} called on a device array; use the backend's xp")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"numpy.{ufunc.__name__}"
        _op(ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")
        args = _unwrap(inputs, where)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = _unwrap(out, where)
        result = _wrap(getattr(ufunc, method)(*args, **kwargs))
        if isinstance(out, tuple) and len(out) == 1 and isinstance(out[0], StrictArray):
            return out[0]         # as CuPy: `a += b` gives back `a` itself (a dict entry stays the same object)
        return result

    # -- what CuPy allows ----------------------------------------------------
    def get(self):
        """Explicit device -> host copy (as cupy.ndarray.get)."""
        _read("get")
        return self._data.copy()

    def __getitem__(self, key):
        if not _is_basic(key):
            _op("getitem (gather)")
        return _wrap(self._data[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        _op("setitem")
        self._data[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (_wrap(v) for v in self._data)

    def __float__(self):
        _read("float")
        return float(self._data)

    def __int__(self):
        _read("int")
        return int(self._data)

    def __index__(self):
        _read("index")
        return operator_index(self._data)

    def __bool__(self):
        _read("bool")
        return bool(self._data)

    def __repr__(self):
        return f"StrictArray({self._data!r})"

    @property
    def T(self):
        return StrictArray(self._data.T)

    def __getattr__(self, name):
        if name.startswith("__"):   # no __array_interface__ / __array_struct__: NumPy must not see the data
            raise AttributeError(name)
        value = getattr(self._data, name)
        if callable(value):
            def method(*args, **kwargs):
                if name in ("item", "tolist"):
                    _read(name)
                else:
                    _op(name)
                return _wrap(value(*_unwrap(args, f".{name}()"), **_unwrap(kwargs, f".{name}()")))
            return method
        return _wrap(value)


class StrictGenerator:
    """The device random generator of the stand-in (as cupy.random.Generator): draws are device arrays."""

    def __init__(self, seed):
        self._rng = numpy.random.default_rng(seed)

    def _draw(self, name, *args, **kwargs):
        _op(f"random.{name}")                        # one kernel on a GPU; nothing crosses the bus
        return StrictArray(numpy.asarray(getattr(self._rng, name)(*args, **kwargs)))

    def random(self, size=None, dtype=numpy.float64):
        return self._draw("random", size, dtype=dtype)

    def standard_normal(self, size=None, dtype=numpy.float64):
        return self._draw("standard_normal", size, dtype=dtype)

    def integers(self, low, high=None, size=None, dtype=numpy.int64):
        return self._draw("integers", low, high, size, dtype=dtype)


def _module():
    """A module object with NumPy's API over StrictArrays (as cupy is to cupy.ndarray)."""
    mod = types.ModuleType("strict_xp")
    mod.ndarray = StrictArray

    def make(fn, name):
        def f(*args, **kwargs):
            _op(name)
            return _wrap(fn(*_unwrap(args, f"xp.{name}"), **_unwrap(kwargs, f"xp.{name}")))
        f.__name__ = name
        return f

    def transfer(fn, name):
        # asarray / array accept host data: that is the explicit host -> device copy
        def f(obj, *args, **kwargs):
            on_device = isinstance(obj, StrictArray)
            if on_device:
                obj = obj._data
            data = numpy.array(fn(obj, *args, **kwargs), copy=name == "array")
            if on_device:
                if name == "array" or data.dtype != obj.dtype:
                    _op(f"{name} (device copy)")
            else:
                _copy_in(data)                  # host data: the host -> device copy
            return StrictArray(data)
        return f

    def scatter_add(target, indices, values):
        _op("scatter_add")
        numpy.add.at(target._data, _unwrap(indices, "scatter_add"), _unwrap(values, "scatter_add"))

    def getattr_(name):
        if name in ("asarray", "array"):
            return transfer(getattr(numpy, name), name)
        value = getattr(numpy, name)
        if isinstance(value, (numpy.ufunc,)) or (callable(value) and not isinstance(value, type)):
            return make(value, name)
        return value

    mod.__getattr__ = getattr_
    mod.scatter_add = scatter_add
    mod.random = types.SimpleNamespace(default_rng=StrictGenerator, Generator=StrictGenerator)
    return mod


strict_xp = _module()
strict_xp.counting = counting
