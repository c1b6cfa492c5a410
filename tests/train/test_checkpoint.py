"""minibert/train/checkpoint.py: checkpoint folders, the newest kept, half-written ones ignored."""

import numpy as np

from minibert.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint


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
