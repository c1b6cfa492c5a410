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
"""
from __future__ import annotations

import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

HOST_MIX = "strict_xp: a host numpy.ndarray was mixed with a device array in one operation ({})"
IMPLICIT = ("strict_xp: implicit conversion of a device array to a host NumPy array is not allowed; "
            "use backend.to_host(x) (CuPy: x.get())")


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
        raise TypeError(IMPLICIT)

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"strict_xp: numpy.{func.__name__} called on a device array; use the backend's xp")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"numpy.{ufunc.__name__}"
        args = _unwrap(inputs, where)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], where)
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    # -- what CuPy allows ----------------------------------------------------
    def get(self):
        """Explicit device -> host copy (as cupy.ndarray.get)."""
        return self._data.copy()

    def __getitem__(self, key):
        return _wrap(self._data[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        self._data[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __len__(self):
        return len(self._data)

    def __iter__(self):
        return (_wrap(v) for v in self._data)

    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def __bool__(self):
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
                return _wrap(value(*_unwrap(args, f".{name}()"), **_unwrap(kwargs, f".{name}()")))
            return method
        return _wrap(value)


def _module():
    """A module object with NumPy's API over StrictArrays (as cupy is to cupy.ndarray)."""
    mod = types.ModuleType("strict_xp")
    mod.ndarray = StrictArray

    def make(fn, name):
        def f(*args, **kwargs):
            return _wrap(fn(*_unwrap(args, f"xp.{name}"), **_unwrap(kwargs, f"xp.{name}")))
        f.__name__ = name
        return f

    def transfer(fn, name):
        # asarray / array accept host data: that is the explicit host -> device copy
        def f(obj, *args, **kwargs):
            if isinstance(obj, StrictArray):
                obj = obj._data
            return StrictArray(numpy.array(fn(obj, *args, **kwargs), copy=name == "array"))
        return f

    def scatter_add(target, indices, values):
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
    return mod


strict_xp = _module()
