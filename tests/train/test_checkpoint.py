"""minibert/train/checkpoint.py: checkpoint folders, the newest kept, half-written ones ignored; a damaged one
named with its file and reason, set aside under a new name."""

import numpy as np
import pytest

from minibert.model.io import CheckpointError
from minibert.train.checkpoint import (checkpoint_folders, folder_step, list_checkpoints, load_checkpoint,
                                       remove_unfinished, save_checkpoint, set_aside)


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


def test_a_damaged_checkpoint_says_which_file_and_why(tmp_path):
    params = {"w": np.ones(3)}
    opt = {"t": 5, "m.w": np.zeros(3), "v.w": np.zeros(3)}
    damage = {
        r"state\.json.*no file|no file.*state\.json": lambda c: (c / "state.json").unlink(),
        r"state\.json is not valid JSON": lambda c: (c / "state.json").write_text('{"step": 7, "opt'),
        r"state\.json lacks its step counts": lambda c: (c / "state.json").write_text('{"step": 7}'),
        r"state\.json says step 9, the folder's name another": lambda c: (c / "state.json").write_text(
            '{"step": 9, "optimizer_t": 5}'),
        r"model\.safetensors is not a readable safetensors file": lambda c: (c / "model.safetensors").write_bytes(
            (c / "model.safetensors").read_bytes()[:40]),
        r"no weights file at .*optimizer\.safetensors": lambda c: (c / "optimizer.safetensors").unlink(),
    }
    for n, (message, spoil) in enumerate(damage.items()):
        run = tmp_path / f"run{n}"
        spoil(save_checkpoint(run, 7, params, opt, {}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(checkpoint_folders(run)[-1])


def test_set_aside_renames_and_never_overwrites(tmp_path):
    params, opt = {"w": np.ones(3)}, {"t": 1, "m.w": np.zeros(3), "v.w": np.zeros(3)}
    first = set_aside(save_checkpoint(tmp_path, 8, params, opt, {}))
    second = set_aside(save_checkpoint(tmp_path, 8, params, opt, {}))
    assert (first.name, second.name) == ("damaged-step-00000008", "damaged-step-00000008.2")
    assert (second / "model.safetensors").is_file() and list_checkpoints(tmp_path) == []
    assert folder_step(tmp_path / "checkpoints" / "step-00000123") == 123


def test_unfinished_writes_are_removed_and_incomplete_folders_listed(tmp_path):
    save_checkpoint(tmp_path, 4, {"w": np.ones(1)}, {"t": 1, "m.w": np.zeros(1), "v.w": np.zeros(1)}, {})
    (tmp_path / "checkpoints" / ".tmp-step-00000008").mkdir()
    (tmp_path / "checkpoints" / "step-00000012").mkdir()                 # no state.json
    assert [p.name for p in checkpoint_folders(tmp_path)] == ["step-00000004", "step-00000012"]
    assert [p.name for p in remove_unfinished(tmp_path)] == [".tmp-step-00000008"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-00000004", "step-00000012"]
