"""The bottom layer: where arrays live and how the heavy loops run. Nothing here knows about BERT.

    xp.py          the array module `xp`: NumPy on the CPU, CuPy on a GPU, chosen at run time;
                   moving arrays (`to_device`, `to_host`); the only place CuPy is imported
    blocks.py      row-wise work in cache-sized blocks (NumPy): applied *around* an op's formula
    grad_mode.py   no_grad(): inside model.inference(), fused ops leave out backward-only work
    precision.py   every matmul of the model, in float32 or mixed precision (float16 operands); the
                   loss-scaling helpers that look at and rescale gradients on the device
    reductions.py  sum(g * g) and "all finite" of a gradient, left on the device (the training step's
                   gradient norm and overflow check; one kernel pass each on CuPy)
    kernels.py     CuPy kernel factories (cached) for the fused CUDA kernels of ops/fused.py

    from minibert import backend
    backend.use("cupy")              # or: MINIBERT_BACKEND=cupy python ...
    xp = backend.get_xp(some_array)  # the module that owns this array
"""
from minibert.backend.xp import (BackendError, cupy_erf, get_xp, gpu_available, name, register, resolve_dtype,
                                 scatter_add, to_device, to_host, use, using)

__all__ = ["BackendError", "use", "using", "name", "get_xp", "to_device", "to_host", "scatter_add", "cupy_erf",
           "gpu_available", "resolve_dtype", "register"]
