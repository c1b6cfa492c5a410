"""Files on disk: safetensors for arrays, JSON for everything else. No pickle, ever.

A pickle file can run arbitrary code when loaded, so minibert never writes or
reads one. Arrays go to `.safetensors` (a JSON header plus raw bytes, read with
the `safetensors` package's NumPy API), numbers and states to `.json`.

Every write is atomic: the file (or a whole checkpoint folder) is written under
a temporary name and renamed into place, so a crash or a kill leaves either
the old version or the new one, never half a file.

Training checkpoints are folders `RUN_DIR/checkpoints/step-00000123/` holding
model.safetensors, optimizer.safetensors and state.json (step, optimizer step
count, random-generator states, config; the data position follows from the
step). The newest K are kept.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy

from minibert import backend


class CheckpointError(RuntimeError):
    """A weights or checkpoint file that is missing, truncated, corrupted or does not fit."""


def save_arrays(path, arrays: dict, metadata: dict | None = None) -> Path:
    """Write {name: array} (host or device arrays) to a .safetensors file, atomically."""
    from safetensors.numpy import save_file

    path = Path(path)
    host = {k: numpy.ascontiguousarray(backend.to_host(v)) for k, v in arrays.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(host, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)
    return path


def load_arrays(path) -> dict:
    """Read a .safetensors file into {name: host numpy array}, with a clear error if it is broken."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointError(f"{path} is not a readable safetensors file ({size} bytes; "
                              f"truncated or corrupted?): {err}") from None


def write_json(path, obj) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


# -- training checkpoints ----------------------------------------------------------------

def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step: int, params: dict, optimizer_state: dict, state: dict, keep: int = 3) -> Path:
    """Write checkpoints/step-XXXXXXXX/ atomically (a temporary folder renamed into place);
    keep the newest `keep` checkpoints."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_arrays(tmp / "model.safetensors", params)
    arrays = {k: v for k, v in optimizer_state.items() if k != "t"}
    save_arrays(tmp / "optimizer.safetensors", arrays)
    write_json(tmp / "state.json", {**state, "step": step, "optimizer_t": int(optimizer_state["t"])})
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted write are ignored)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and (p / "state.json").is_file())


def load_checkpoint(path) -> tuple[dict, dict, dict]:
    """(params, optimizer_state, state) from a checkpoint folder, all on the host."""
    path = Path(path)
    state = read_json(path / "state.json")
    params = load_arrays(path / "model.safetensors")
    opt = load_arrays(path / "optimizer.safetensors")
    opt["t"] = state["optimizer_t"]
    return params, opt, state


def _fsync_dir(path: Path) -> None:
    """Make the renames durable (best effort: not every OS lets one fsync a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def assign_params(params: dict, arrays: dict, where: str = "checkpoint", allow_missing=()) -> None:
    """Copy host arrays into a model's parameter arrays in place (on the model's device and dtype).

    Everything is checked before anything is written, so a bad file leaves the
    model untouched: names missing from the file, names the model does not have,
    and shape mismatches (naming the key and both shapes) all raise CheckpointError.
    """
    missing = [k for k in params if k not in arrays and k not in allow_missing]
    unexpected = [k for k in arrays if k not in params]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights: {', '.join(unexpected[:6])}"
                        f"{' ...' if len(unexpected) > 6 else ''}")
    for k, v in arrays.items():
        if k in params and tuple(v.shape) != tuple(params[k].shape):
            problems.append(f"{k} has shape {tuple(v.shape)} in the {where} but {tuple(params[k].shape)} in the model")
    if problems:
        raise CheckpointError(f"{where} does not fit the model: " + "; ".join(problems))
    for k, v in arrays.items():
        target = params[k]
        target[...] = backend.get_xp(target).asarray(v, dtype=target.dtype)
