"""minibert.exercises: the reference passes, blank starters say "not implemented yet", the learners' real
mistakes are caught with a message that names them, starters keep minibert's signatures and docstrings,
and `start` + `check` work end to end (command line and notebooks).

Each mutant below is a learner's mistake written out in full (a copy of the reference with the one
thing changed), graded with `Exercise.grade({name: mutant})`; the test asserts on the words of the
diagnosis, so a grader that still fails the mutant but for the wrong reason (or with a generic
message) fails the test.
"""
from __future__ import annotations

import inspect
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minibert import exercises
from minibert.exercises import EXERCISES, get
from minibert.ops.softmax import softmax_backward
from minibert.train.optim import adamw_step

from helpers import REPO, write  # noqa: E402


def failures(result) -> str:
    """Every failure message and hint of a result, one string (what the learner reads)."""
    return "\n".join(f"{c.message}\nHint: {c.hint}" for c in result.checks if c.status == "fail")


def grade(name, **functions):
    return get(name).grade(functions, timeout_s=5)


# -- the reference and the blank starters -------------------------------------------------------

def test_the_exercises_are_numbered_in_order():
    assert [ex.number for ex in EXERCISES] == list(range(1, len(EXERCISES) + 1))
    assert len(EXERCISES) >= 12 and len({ex.name for ex in EXERCISES}) == len(EXERCISES)
    for ex in EXERCISES:
        assert ex.statement.strip() and len(ex.hints) >= 2 and ex.minutes > 0 and ex.assesses
        for doc in ex.docs:
            assert (REPO / doc).is_file(), f"{ex.name}: {doc} does not exist"


@pytest.mark.parametrize("ex", EXERCISES, ids=[ex.name for ex in EXERCISES])
def test_reference_passes(ex):
    result = ex.grade()
    assert result.passed, result.format()
    assert len(result.checks) >= 2


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    done = exercises.start(root)
    assert len(done["written"]) == 1 + 2 * len(EXERCISES) and not done["kept"]
    return root


def test_blank_starters_fail_with_not_implemented_yet(workspace):
    for ex in EXERCISES:
        result = exercises.grade_file(ex.name, workspace)
        assert result.verdict == "not implemented yet", result.format()
        assert not result.passed
        text = result.format()
        assert "not implemented yet" in text and "Traceback" not in text
        assert set(result.not_implemented) == set(ex.function_names), text


def test_starters_keep_the_reference_signature_and_docstring(workspace):
    for ex in EXERCISES:
        module = exercises.load_student(ex.name, workspace)
        for ref in ex.functions:
            mine = getattr(module, ref.__name__)
            assert inspect.signature(mine) == inspect.signature(ref), ref.__name__
            assert mine.__doc__ == ex.contract(ref.__name__), ref.__name__
            assert mine is not ref and mine.__module__ != ref.__module__


def test_start_keeps_a_learners_work(workspace):
    path = workspace / "08_heads.py"
    path.write_text(path.read_text() + "\n# my notes\n")
    done = exercises.start(workspace)
    assert path in done["kept"] and path.read_text().endswith("# my notes\n")


def test_solution_write_ups_exist_and_stay_out_of_the_workspace(workspace):
    solutions = REPO / "docs" / "exercises" / "solutions"
    for ex in EXERCISES:
        doc = solutions / f"{ex.stem}.md"
        assert doc.is_file(), f"no solution write-up {doc}"
    heads = [(solutions / f"{ex.stem}.md").read_text().splitlines()[0] for ex in EXERCISES]
    for path in workspace.rglob("*"):
        assert "solution" not in path.name.lower()
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not any(head in text for head in heads), f"{path} holds a solution write-up"


def test_the_docs_name_every_exercise():
    teaching = (REPO / "docs" / "teaching.md").read_text()
    index = (REPO / "docs" / "index.md").read_text()
    for ex in EXERCISES:
        assert f"`{ex.name}`" in teaching and f"{ex.number:02d} `{ex.name}`" in index, ex.name


def test_the_solution_write_ups_code_passes(tmp_path):
    """The code in each solution write-up, put in a starter's place, passes its exercise."""
    for ex in EXERCISES:
        doc = (REPO / "docs" / "exercises" / "solutions" / f"{ex.stem}.md").read_text()
        code = "\n\n".join(re.findall(r"```python\n(.*?)```", doc, re.S))
        assert code, f"{ex.stem}.md has no python block"
        (tmp_path / f"{ex.stem}.py").write_text(f"from __future__ import annotations\n{ex.imports}\n\n{code}")
        result = exercises.grade_file(ex.name, tmp_path)
        assert result.passed, result.format()
        assert not result.notes                      # the learner's own code, not minibert's functions


# -- what the grader says about broken files and functions -----------------------------------

def write_solution(workspace, stem, body):
    """A learner's file for exercise `stem` in the workspace, holding `body` (dedented)."""
    ex = get(stem)
    write(workspace / f"{ex.stem}.py", textwrap.dedent(body))
    return ex


def test_a_function_that_raises_is_reported_with_its_line(tmp_path):
    write_solution(tmp_path, "linear_backward", """\
        import numpy as np

        def linear_backward(dy, cache, need_dx=True):
            x, weight, has_bias = cache
            dx = dy @ weight.T
            return dx, None, None
        """)
    text = exercises.grade_file("linear_backward", tmp_path).format()
    assert "raised ValueError" in text and "line 5 of 02_linear_backward.py" in text
    assert "dx = dy @ weight.T" in text and "Traceback" not in text


def test_none_wrong_shape_nan_and_a_hang(tmp_path):
    write_solution(tmp_path, "softmax", """\
        import numpy as np

        def softmax_forward(x, inplace=False):
            p = np.exp(x - x.max(-1, keepdims=True))
            p = p / p.sum(-1, keepdims=True)
            return p[..., :-1], p          # wrong shape

        def softmax_backward(dp, cache):
            pass                           # forgot the return
        """)
    text = exercises.grade_file("softmax", tmp_path).format()
    assert "p has shape (3, 4, 5); expected (3, 4, 6)" in text
    assert "did you forget the `return`" in text or "did you forget a `return`" in text
    write_solution(tmp_path, "gelu", """\
        import numpy as np

        def gelu_forward(x):
            return x * np.nan, None

        def gelu_backward(dy, cache):
            while True:
                pass
        """)
    result = exercises.grade_file("gelu", tmp_path, timeout_s=0.5)
    text = result.format()
    assert "NaN/inf" in text and "did not finish within 0.5 s" in text


def test_a_file_that_does_not_compile_or_lacks_a_function(tmp_path):
    write_solution(tmp_path, "heads", "def split_heads(x, num_heads)\n    return x\n")
    text = exercises.grade_file("heads", tmp_path).format()
    assert "does not compile" in text and "line 1" in text
    write_solution(tmp_path, "heads", "def split_heads(x, num_heads):\n    return x\n")
    assert "has no function merge_heads" in exercises.grade_file("heads", tmp_path).format()
    assert "no file 08_heads.py" in exercises.grade_file("heads", tmp_path / "nowhere").format()


# -- the mistakes learners really make ---------------------------------------------------------

# (the mistakes themselves are in the catalogue: tests/exercises/mistakes/, tests/exercises/test_mistakes.py)


def test_the_mutants_are_otherwise_correct():
    """The mutants differ from the reference only in their mistake: with it switched off they pass."""
    assert adamw_step is get("adamw").functions[0]
    assert softmax_backward is get("softmax").functions[1]


def test_the_grader_never_prints_a_whole_expected_array():
    def off_by_two(dy, cache, need_dx=True):
        x, w, has_bias = cache
        x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        return (2 * dy2 @ w).reshape(x.shape), dy2.T @ x2, dy2.sum(0) if has_bias else None
    result = grade("linear_backward", linear_backward=off_by_two)
    text = result.format()
    assert "times 2" in text and "Largest error" in text and "at [" in text
    assert "[[" not in text and "array(" not in text


# -- end to end: the command line and the notebooks -------------------------------------------

def run_cli(*args, cwd):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minibert.exercises", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def solve(workspace, ex):
    """Fill a starter with minibert's own functions (what a correct solution computes)."""
    modules = sorted({f.__module__ for f in ex.functions})
    lines = [f"from {m} import {', '.join(f.__name__ for f in ex.functions if f.__module__ == m)}" for m in modules]
    (workspace / f"{ex.stem}.py").write_text("\n".join(lines) + "\n")


def test_start_then_check_from_the_command_line(tmp_path):
    r = run_cli("start", "ws", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ws = tmp_path / "ws"
    assert (ws / "notebooks" / "exercises" / "07_attention.ipynb").is_file()
    r = run_cli("check", "ws", "linear_backward", "4", cwd=tmp_path)
    assert r.returncode == 1 and "not implemented yet" in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert "0 of 2 exercises pass" in r.stdout
    for name in ("linear_backward", "layer_norm"):
        solve(ws, get(name))
    r = run_cli("check", ".", "02", "layer_norm", cwd=ws)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 of 2 exercises pass" in r.stdout and "minibert's own function" in r.stdout
    r = run_cli("check", "--reference", cwd=tmp_path)
    assert r.returncode == 0 and f"{len(EXERCISES)} of {len(EXERCISES)} exercises pass" in r.stdout, r.stdout
    r = run_cli("check", "ws", "no_such_exercise", cwd=tmp_path)
    assert r.returncode == 2 and "no exercise 'no_such_exercise'" in r.stderr


def test_the_workspace_defaults_to_runs_exercises(tmp_path):
    """Without a folder, `start` writes runs/exercises/ (git ignores runs/), not into the repository's root,
    and `check` grades it; with no workspace there, `check` says how to make one (one line)."""
    r = run_cli("check", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.strip() == (
        "error: no workspace at runs/exercises: create one with `python -m minibert.exercises start runs/exercises`")
    r = run_cli("start", cwd=tmp_path)
    assert r.returncode == 0 and [p.name for p in tmp_path.iterdir()] == ["runs"], r.stderr
    assert (tmp_path / "runs" / "exercises" / "07_attention.py").is_file() and "runs/exercises" in r.stdout
    r = run_cli("check", cwd=tmp_path)
    assert r.returncode == 1 and f"0 of {len(EXERCISES)} exercises pass" in r.stdout, r.stdout + r.stderr


def run_notebook_in_process(path: Path, capsys) -> str:
    """Run a notebook's code cells in this process, from the notebook's folder (as Jupyter does)."""
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4 and any(c["cell_type"] == "markdown" for c in nb["cells"])
    old = Path.cwd()
    os.chdir(path.parent)
    try:
        namespace: dict = {}
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                exec(compile(cell["source"], str(path), "exec"), namespace)
    finally:
        os.chdir(old)
    return capsys.readouterr().out


def test_every_exercise_notebook_runs_blank_and_solved(tmp_path, capsys):
    exercises.start(tmp_path)
    notebooks = sorted((tmp_path / "notebooks" / "exercises").glob("*.ipynb"))
    assert [p.stem for p in notebooks] == [ex.stem for ex in EXERCISES]
    for path, ex in zip(notebooks, EXERCISES):
        out = run_notebook_in_process(path, capsys)
        assert "not implemented yet" in out and "Traceback" not in out, out
        solve(tmp_path, ex)
        out = run_notebook_in_process(path, capsys)
        assert "=> PASS: all" in out, out


def test_an_exercise_notebook_runs_in_a_real_kernel(tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    exercises.start(tmp_path)
    solve(tmp_path, get("heads"))
    path = tmp_path / "notebooks" / "exercises" / "08_heads.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    out = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert re.search(r"=> PASS: all \d+ checks", out), out


def test_masking_checks_use_their_own_rng():
    """The grader draws its inputs from its own seeded generators: the global random state is untouched."""
    random.seed(123)
    before = random.random()
    random.seed(123)
    grade("masking")
    assert random.random() == before
