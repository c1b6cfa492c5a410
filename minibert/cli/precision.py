"""`--precision fp32|tf32|fp16` of `minibert pretrain` and `minibert finetune` (docs/mixed_precision.md).

The flag is a setting of the device, not of the run: it is not written to run.json, and a resumed run
may take another. `--fp16` (finetune) stays, as another spelling of `--precision fp16`.
"""
from __future__ import annotations

from dataclasses import field

from minibert.backend.precision import PRECISIONS, PrecisionError, using_precision

__all__ = ["precision_field", "chosen_precision", "using_precision", "PrecisionError"]


def precision_field():
    """The dataclass field behind --precision (default None: tf32 on CuPy, fp32 on NumPy)."""
    return field(default=None, metadata={
        "choices": list(PRECISIONS),
        "help": "what the matmuls compute: fp32 (full float32), tf32 (CuPy on an Ampere-or-later GPU: tensor "
                "cores, 10-bit mantissa operands, float32 sums), fp16 (float16 matmuls with loss scaling) "
                "(default: tf32 with --backend cupy, fp32 on NumPy; NumPy has no tf32)"})


def chosen_precision(precision: str | None, fp16: bool = False) -> str | None:
    """The precision asked for by --precision and the older --fp16 together (None: the backend's default);
    the two contradicting each other is an error."""
    if fp16 and precision not in (None, "fp16"):
        raise PrecisionError(f"--fp16 and --precision {precision} contradict each other (--fp16 is --precision fp16)")
    return "fp16" if fp16 else precision
