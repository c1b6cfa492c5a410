"""Run minibert's CUDA kernel sources on the CPU, to test them where there is no GPU.

- `compile_ptx(source)`: nvcc -ptx (the CUDA compiler without a GPU): the source is valid CUDA C++, its
  types resolve (erf, exp, sqrt overloads for float and double). Needs nvcc; tests skip without it.
- `RowKernel(source, name)`: the same source compiled by g++ with CUDA's keywords defined away, run
  with ONE thread per block (blockDim.x = 1, threadIdx.x = 0) and the blocks one after the other.
  With one thread the block reductions have nothing to combine (the loop over `half` does not run,
  __syncthreads is a no-op), so what is tested is everything else: the formula, the offsets of each
  row, the bias row of each batch row, the mask and keep flags, the argument order. The tree
  reduction itself only runs on a GPU (tests/ops/test_fused_cuda.py).
- `ElementwiseBody(params...)`: an ElementwiseKernel body in a C++ loop over the elements, with the
  broadcast arguments indexed modulo their length (as CuPy broadcasts a (I,) bias over (..., I)).
"""
from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from minibert.backend.kernels import kernel_parameters

BUILD = Path(tempfile.gettempdir()) / "minibert_cuda_emulation"

CPU_PRELUDE = r"""
#include <cmath>
using std::erf; using std::exp; using std::sqrt;
struct minibert_dim3 { unsigned x; };
static minibert_dim3 blockIdx, threadIdx, blockDim;
#define __global__
#define __device__ static
#define __shared__ static
#define __syncthreads()
extern "C" void minibert_set_block(unsigned b) { blockIdx.x = b; threadIdx.x = 0; blockDim.x = 1; }
"""


def have_gxx() -> bool:
    return shutil.which("g++") is not None


def have_nvcc() -> bool:
    return shutil.which("nvcc") is not None


def _build(code: str, suffix: str, command) -> Path:
    BUILD.mkdir(exist_ok=True)
    key = hashlib.sha256((code + " ".join(command([""], "")[:3])).encode()).hexdigest()[:16]
    src = BUILD / f"{key}{suffix}"
    out = src.with_suffix(".out")
    if not out.exists():
        src.write_text(code)
        done = subprocess.run(command(src, out), capture_output=True, text=True, timeout=240)
        if done.returncode != 0:
            raise AssertionError(f"compilation failed:\n{done.stderr[-3000:]}")
    return out


def compile_ptx(source: str) -> str:
    """PTX of a CUDA source (nvcc -ptx); raises AssertionError with the compiler's message."""
    out = _build(source, ".cu", lambda s, o: ["nvcc", "-ptx", "-arch=sm_80", str(s), "-o", str(o)])
    return out.read_text()


def _ctype(decl: str):
    """The ctypes type of one C parameter declaration."""
    if "*" in decl:
        return ctypes.c_void_p
    words = decl.replace("const", "").split()[:-1]
    kind = " ".join(words)
    return {"int": ctypes.c_int, "long long": ctypes.c_longlong, "float": ctypes.c_float,
            "double": ctypes.c_double}[kind]


class RowKernel:
    """A row-wise RawKernel source (TYPE substituted) run on the CPU with one thread per block."""

    def __init__(self, source: str, name: str, ctype: str):
        code = CPU_PRELUDE + source.replace("TYPE", ctype)
        self.name = f"{name}_{ctype}"
        lib = ctypes.CDLL(str(_build(code, ".cpp", lambda s, o: ["g++", "-O1", "-shared", "-fPIC", str(s),
                                                                   "-o", str(o)])))
        self._set_block = lib.minibert_set_block
        self._fn = getattr(lib, self.name)
        decls = code.split(f"void {self.name}(", 1)[1].split(")", 1)[0].split(",")
        self._fn.argtypes = [_ctype(d) for d in decls]
        self.params = kernel_parameters(code, self.name)

    def __call__(self, grid, block, args):
        """As cupy.RawKernel: kernel((blocks,), (threads,), args); the threads are ignored (one per block)."""
        conv = [a.ctypes.data if isinstance(a, np.ndarray) else a.item() for a in args]
        for a in args:
            assert not isinstance(a, np.ndarray) or a.flags.c_contiguous, "a kernel reads C-contiguous memory"
        for b in range(grid[0]):
            self._set_block(b)
            self._fn(*conv)


class ElementwiseBody:
    """An ElementwiseKernel(in_params, out_params, body) run on the CPU: same-shaped arrays, and the
    arguments named in `broadcast` as vectors over the last axis."""

    def __init__(self, in_params: str, out_params: str, body: str, name: str, ctype: str, broadcast=("bias",)):
        self.ins = [p.split()[-1] for p in in_params.split(",")]
        self.outs = [p.split()[-1] for p in out_params.split(",")]
        args = ", ".join(f"T* {n}_" for n in self.ins + self.outs)
        loads = "".join(f"const T {n} = {n}_[i % {'last' if n in broadcast else 'n'}];" for n in self.ins)
        refs = "".join(f"T& {n} = {n}_[i];" for n in self.outs)
        code = (CPU_PRELUDE + f"typedef {ctype} T;\n"
                f'extern "C" void run(long n, long last, {args}) {{\n'
                f"  for (long i = 0; i < n; ++i) {{ {loads} {refs}\n {body}\n }}\n}}\n")
        lib = ctypes.CDLL(str(_build(code, ".cpp", lambda s, o: ["g++", "-O1", "-shared", "-fPIC", str(s),
                                                                   "-o", str(o)])))
        self._fn = lib.run

    def __call__(self, *arrays):
        n = arrays[0].size
        last = arrays[0].shape[-1]
        for a in arrays:
            assert a.flags.c_contiguous
        self._fn(ctypes.c_long(n), ctypes.c_long(last), *[ctypes.c_void_p(a.ctypes.data) for a in arrays])
        return arrays[len(self.ins):]
