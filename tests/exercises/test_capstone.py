"""The capstone (`python -m minibert.exercises capstone WS`): the learner's functions as a BERT.

With the solution write-ups' code (docs/exercises/solutions/, a learner's own code) the two loss curves
agree to float32 round-off: that code adds and multiplies in another order than minibert's (no blocking,
`a @ b` in place of `matmul`), so the last bits differ and training carries them on. With minibert's own
functions in the workspace they are equal bit for bit. A planted bug is named: the step where the curves
part and the first function whose output differs from minibert's on the same inputs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from helpers import REPO
from minibert.exercises import EXERCISES, capstone, start
from minibert.model.ops_table import REFERENCE_OPS, Ops

# small enough for a test: 6 steps of 8 sequences of 32 tokens, a 400-token vocabulary
SMALL = capstone.Recipe(steps=6, batch_size=8, seq_len=32, vocab_size=400, eval_batches=2)


@pytest.fixture(scope="module")
def data():
    return capstone.prepare_data(SMALL)


def solution_workspace(folder):
    """A workspace holding the code of every solution write-up (as test_the_solution_write_ups_code_passes)."""
    folder.mkdir(parents=True, exist_ok=True)
    for ex in EXERCISES:
        doc = (REPO / "docs" / "exercises" / "solutions" / f"{ex.stem}.md").read_text()
        code = "\n\n".join(re.findall(r"```python\n(.*?)```", doc, re.S))
        (folder / f"{ex.stem}.py").write_text(f"from __future__ import annotations\n{ex.imports}\n\n{code}")
    return folder


def replace_function(path, name, source):
    """Replace the function `name` in a learner's file by `source` (a planted mistake)."""
    text = path.read_text()
    start_at = text.index(f"def {name}(")
    end_at = text.find("\ndef ", start_at + 1)
    path.write_text(text[:start_at] + source.strip() + "\n" + ("" if end_at < 0 else text[end_at:]))


def run_capstone(ws, data):
    lines = []
    summary = capstone.run(ws, SMALL, stream=lines.append, data=data)
    return summary, "\n".join(lines)


def test_the_solution_write_ups_train_as_minibert(tmp_path, data):
    summary, report = run_capstone(solution_workspace(tmp_path / "ws"), data)
    assert summary["gradcheck_passed"], report
    assert summary["parted_at"] is None and summary["first_differing_op"] is None, report
    assert summary["max_loss_difference"] < 1e-5, report            # float32 round-off, not a difference
    assert len(summary["losses_yours"]) == SMALL.steps
    assert "your attention calls your softmax_forward, softmax_backward" in report
    assert "scaled_dot_product_attention_forward" in summary["yours"] and "adamw_step" in summary["yours"]
    assert (tmp_path / "ws" / "capstone" / "curves.png").stat().st_size > 1000
    assert "your BERT learns, and its curve is minibert's" in report


def test_minibert_s_own_functions_give_the_same_curve_bit_for_bit(tmp_path, data):
    ws = tmp_path / "ws"
    ws.mkdir()
    for ex in EXERCISES:              # each file imports minibert's functions: the same code, the same numbers
        modules = sorted({f.__module__ for f in ex.functions})
        (ws / f"{ex.stem}.py").write_text("".join(
            f"from {m} import {', '.join(f.__name__ for f in ex.functions if f.__module__ == m)}\n" for m in modules))
    summary, report = run_capstone(ws, data)
    assert summary["max_loss_difference"] == 0.0, report
    assert summary["losses_yours"] == summary["losses_minibert"]


def test_a_layer_norm_backward_without_its_second_mean_term_is_found(tmp_path, data):
    ws = solution_workspace(tmp_path / "ws")
    replace_function(ws / "04_layer_norm.py", "layer_norm_backward", '''
def layer_norm_backward(dy, cache):
    xhat, rstd, gamma = cache
    H = xhat.shape[-1]
    dxhat = dy * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))      # the xhat * mean(dxhat * xhat) term forgotten
    return dx, (dy * xhat).reshape(-1, H).sum(axis=0), dy.reshape(-1, H).sum(axis=0)
''')
    summary, report = run_capstone(ws, data)
    assert not summary["gradcheck_passed"], report
    parted = summary["parted_at"]
    assert parted is not None and parted >= 1, report     # step 0's loss comes before any update: the same
    assert summary["first_differing_op"] == "layer_norm_backward", report
    assert f"the curves part at step {parted}" in report
    assert "the first output that differs from minibert's: layer_norm_backward (exercise 04_layer_norm)" in report


def test_gelu_s_tanh_form_in_place_of_erf_is_named_even_where_the_curves_agree(tmp_path, data):
    """A consistent forward and backward of the wrong function: the gradient check passes (it checks the
    backward against the learner's own forward), the curves stay within round-off of each other over a
    few steps, and the op comparison names GELU."""
    ws = solution_workspace(tmp_path / "ws")
    replace_function(ws / "05_gelu.py", "gelu_forward", '''
def gelu_forward(x):
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
    return 0.5 * x * (1 + t), slope
''')
    summary, report = run_capstone(ws, data)
    assert summary["gradcheck_passed"], report
    assert summary["first_differing_op"] == "gelu_forward", report
    assert "gelu_forward (exercise 05_gelu)" in report


def test_an_exercise_not_written_yet_falls_back_to_minibert_s_with_a_line(tmp_path):
    start(tmp_path / "ws")
    pieces = capstone.load_pieces(tmp_path / "ws")
    assert pieces.learner == {}
    assert all(getattr(pieces.ops, n) is getattr(REFERENCE_OPS, n) for n in Ops.names())
    assert "04_layer_norm: minibert's layer_norm_forward, layer_norm_backward (yours is not written yet)" in pieces.lines
    (tmp_path / "ws" / "02_linear_backward.py").unlink()
    lines = capstone.load_pieces(tmp_path / "ws").lines
    assert any(line.startswith("02_linear_backward: minibert's linear_backward (no file") for line in lines), lines


@pytest.mark.slow
def test_the_default_run_on_the_solution_write_ups(tmp_path):
    """What a learner runs: `python -m minibert exercises capstone WS` (300 steps, a few minutes of CPU).
    The curves coincide, and both BERTs beat the guess that ignores the context."""
    ws = solution_workspace(tmp_path / "ws")
    r = subprocess.run([sys.executable, "-m", "minibert", "exercises", "capstone", str(ws)], capture_output=True,
                       text=True, timeout=3600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((ws / "capstone" / "capstone.json").read_text())
    assert summary["parted_at"] is None and summary["max_loss_difference"] < 1e-3, r.stdout
    assert abs(summary["accuracy_yours"] - summary["accuracy_minibert"]) < 0.01
    assert summary["accuracy_minibert"] > 2 * summary["accuracy_unigram"], r.stdout
    assert "your BERT learns, and its curve is minibert's." in r.stdout
