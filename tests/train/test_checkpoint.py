"""safetensors + JSON files: atomic writes, clear errors on broken files, no pickle anywhere."""
import re

import numpy as np
import pytest

from helpers import REPO
from minibert.model.io import CheckpointError, load_arrays, read_json, save_arrays
from minibert.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint


def test_arrays_round_trip(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5], dtype=np.float64)}
    path = save_arrays(tmp_path / "w.safetensors", arrays, metadata={"step": 3})
    back = load_arrays(path)
    assert set(back) == {"a", "b"} and np.array_equal(back["a"], arrays["a"]) and back["b"].dtype == np.float64
    assert not list(tmp_path.glob("*.tmp"))


def test_broken_files_raise_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file at"):
        load_arrays(tmp_path / "missing.safetensors")
    path = save_arrays(tmp_path / "w.safetensors", {"a": np.ones((100, 100), dtype=np.float32)})
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_arrays(tmp_path / "trunc.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_arrays(tmp_path / "garbage.safetensors")
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_json(tmp_path / "s.json")


def test_checkpoints_keep_the_newest_and_ignore_half_written_ones(tmp_path):
    params = {"w": np.ones(3)}
    opt = {"t": 5, "m.w": np.zeros(3), "v.w": np.zeros(3)}
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, params, opt, {"rng": [1, 2]}, keep=2)
    (tmp_path / "checkpoints" / ".tmp-step-00000050").mkdir()        # a write killed half-way
    (tmp_path / "checkpoints" / "step-00000060").mkdir()             # no state.json: incomplete
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000030", "step-00000040"]
    p, o, s = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert s["step"] == 40 and o["t"] == 5 and np.array_equal(p["w"], params["w"]) and s["rng"] == [1, 2]


def test_no_pickle_anywhere_in_the_library():
    """No pickle is ever loaded from a file: no pickle module, no torch.load, and every np.load
    says allow_pickle=False."""
    bad = []
    for path in (REPO / "minibert").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"import pickle|from pickle|torch\.load|allow_pickle=True", line) or \
                    (re.search(r"\bn(p|umpy)\.load\(", line) and "allow_pickle=False" not in line):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bad, bad
