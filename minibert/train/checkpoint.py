"""Training checkpoints: everything a run needs to resume exactly, written atomically.

Checkpoints are folders `RUN_DIR/checkpoints/step-00000123/` holding
model.safetensors, optimizer.safetensors and state.json (step, optimizer step
count, random-generator states, config; the data position follows from the
step). The whole folder is written under a temporary name and renamed into
place, so a crash or a kill leaves either the old checkpoint or the new one.
The newest K are kept. The file formats (safetensors and JSON, never pickle)
and the atomic single-file writes are in minibert/model/io.py.

A checkpoint can still be damaged after it was written (a disk error, a file
deleted or cut short by hand): `load_checkpoint` then raises CheckpointError
saying which file and why, and the training loop falls back to the one before
(train/loop.py, `TrainingLoop.resume`), after moving the damaged folder aside
with `set_aside` (it is renamed, never deleted).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from minibert.model.io import CheckpointError, _fsync_dir, load_arrays, read_json, save_arrays, write_json

STEP_FOLDER = re.compile(r"step-(\d{8})")           # checkpoints/step-00000123: the checkpoint of step 123


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
    complete = list_checkpoints(run_dir)
    kept = complete[-keep:] if keep > 0 else complete
    for old in checkpoint_folders(run_dir):     # older ones beyond `keep`, and any that a run killed while
        if old not in kept and folder_step(old) < step:      # pruning left half deleted (no state.json)
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_folders(run_dir) -> list[Path]:
    """Every checkpoints/step-N folder, oldest first, complete or not (temporary folders excluded)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and STEP_FOLDER.fullmatch(p.name))


def list_checkpoints(run_dir) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of an interrupted write are ignored)."""
    return [p for p in checkpoint_folders(run_dir) if (p / "state.json").is_file()]


def folder_step(path) -> int:
    """The step a checkpoint folder is named after: step-00000123 -> 123."""
    return int(STEP_FOLDER.fullmatch(Path(path).name).group(1))


def load_checkpoint(path) -> tuple[dict, dict, dict]:
    """(params, optimizer_state, state) from a checkpoint folder, all on the host.

    A missing or unreadable file, a state.json without its step counts or naming another step than
    the folder does: CheckpointError, naming the file. (Whether the arrays fit the model is for the
    one who loads them into it: TrainingLoop.resume.)
    """
    path = Path(path)
    state = read_json(path / "state.json")                     # CheckpointError: missing, or not JSON
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in ("step", "optimizer_t")):
        raise CheckpointError(f"{path / 'state.json'} lacks its step counts (step, optimizer_t)")
    if STEP_FOLDER.fullmatch(path.name) and state["step"] != folder_step(path):
        raise CheckpointError(f"{path / 'state.json'} says step {state['step']}, the folder's name another")
    params = load_arrays(path / "model.safetensors")            # CheckpointError: missing, truncated
    opt = load_arrays(path / "optimizer.safetensors")
    opt["t"] = state["optimizer_t"]
    return params, opt, state


def set_aside(path) -> Path:
    """Rename a damaged checkpoint folder step-N to damaged-step-N (damaged-step-N.2, ... if taken):
    kept for a look, no longer among the checkpoints (so never resumed from, never counted by --keep)."""
    path = Path(path)
    target, n = path.with_name(f"damaged-{path.name}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"damaged-{path.name}.{n}")
    os.replace(path, target)
    return target


def remove_unfinished(run_dir) -> list[Path]:
    """Delete the temporary folders (.tmp-step-N) of checkpoint writes a kill interrupted; return them.
    Only for a run being resumed: the writer that made them is gone (the run folder is its alone)."""
    root = checkpoint_dir(run_dir)
    unfinished = sorted(root.glob(".tmp-step-*")) if root.is_dir() else []
    for tmp in unfinished:
        shutil.rmtree(tmp, ignore_errors=True)
    return unfinished
