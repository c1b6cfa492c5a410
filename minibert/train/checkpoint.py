"""Training checkpoints: everything a run needs to resume exactly, written atomically.

Checkpoints are folders `RUN_DIR/checkpoints/step-00000123/` holding
model.safetensors, optimizer.safetensors and state.json (step, optimizer step
count, random-generator states, config; the data position follows from the
step). The whole folder is written under a temporary name and renamed into
place, so a crash or a kill leaves either the old checkpoint or the new one.
The newest K are kept. The file formats (safetensors and JSON, never pickle)
and the atomic single-file writes are in minibert/model/io.py.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from minibert.model.io import _fsync_dir, load_arrays, read_json, save_arrays, write_json

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


