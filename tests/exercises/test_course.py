"""The course around the exercises: notebooks that render every field of an exercise (contract, derivation,
solution pointer, hints, questions with answer cells, sanity checks), `report`, `check --format json|gradescope`,
and the grader's seed."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from minibert import exercises
from minibert.exercises import EXERCISES, get
from minibert.exercises.base import Question
from minibert.exercises.notebook import ANSWER_PLACEHOLDER, answers, exercise_notebook
from minibert.exercises.starters import starter_source


def with_course_fields(name="gelu"):
    """An exercise with every new field filled (the derive/new helpers fill them for real)."""
    ex = get(name)
    return dataclasses.replace(
        ex,
        contracts=tuple((f, f"CONTRACT of {f}: shapes in, shapes out; derive d{f}.") for f in ex.function_names),
        derivation="DERIVATION: first the scalar case, then vectorise, then check shapes.",
        questions=(Question("Q-ONE: why?", "because"), Question("Q-TWO: and why not?", "because not")),
        sanity=(("SANITY-MD: the output at zero is zero.",
                 "y, _ = mine.gelu_forward(np.zeros(3))\nassert np.all(y == 0), y"),))


def run_cells(path: Path, capsys) -> str:
    """Run a notebook's code cells in this process, from the notebook's folder (as Jupyter does)."""
    nb = json.loads(path.read_text())
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


def test_the_notebook_renders_contract_derivation_solution_hints_questions_sanity_and_grading(tmp_path, capsys):
    ex = with_course_fields()
    nb = exercise_notebook(ex)
    text = [("".join(c["source"])) for c in nb["cells"]]
    joined = "\n".join(text)
    order = ["CONTRACT of gelu_forward", "CONTRACT of gelu_backward", "## What is computed", "## Derive it",
             "DERIVATION", "docs/exercises/solutions/05_gelu.md", "## Hints", "<details>", "Q-ONE", "Q-TWO",
             "SANITY-MD", "with sanity(", "result = grade("]
    positions = [joined.find(s) for s in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), list(zip(order, positions))
    assert "minibert's own and give every shape" not in joined and "the contract" in text[0]
    keys = [c["metadata"]["minibert"]["answer"] for c in nb["cells"] if c["metadata"].get("minibert")]
    assert keys == ["q1", "q2"]
    for i, c in enumerate(nb["cells"]):                 # each question is followed by its answer cell
        if c["source"].startswith("**Question"):
            assert nb["cells"][i + 1]["metadata"]["minibert"]["answer"] and \
                nb["cells"][i + 1]["source"] == ANSWER_PLACEHOLDER
    assert answers(nb) == {}
    nb["cells"][[c["metadata"].get("minibert", {}).get("answer") for c in nb["cells"]].index("q2")]["source"] = \
        ["Because ", "the scale."]
    assert answers(nb) == {"q2": "Because the scale."}
    header = " ".join(starter_source(ex).split('"""')[1].split())
    assert "docstrings are minibert's own" not in header and "the docstrings are the contract" in header
    plain = dataclasses.replace(ex, contracts=())
    assert "docstrings are minibert's own" in " ".join(starter_source(plain).split('"""')[1].split())

    # the sanity and grading cells run: blank (not implemented yet, no traceback), then solved
    exercises.start(tmp_path)
    path = tmp_path / "notebooks" / "exercises" / f"{ex.stem}.ipynb"
    path.write_text(json.dumps(nb))
    out = run_cells(path, capsys)
    assert out.count("not implemented yet") >= 2 and "sanity check done" not in out, out
    (tmp_path / f"{ex.stem}.py").write_text(
        "import numpy as np\nfrom scipy.special import erf\n\n"
        "def gelu_forward(x):\n    return 0.5 * x * (1 + erf(x / np.sqrt(2))), x\n\n"
        "def gelu_backward(dy, x):\n    cdf = 0.5 * (1 + erf(x / np.sqrt(2)))\n"
        "    return dy * (cdf + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi))\n")
    out = run_cells(path, capsys)
    assert "sanity check done" in out and "=> PASS: all" in out, out
    (tmp_path / f"{ex.stem}.py").write_text(
        "import numpy as np\n\ndef gelu_forward(x):\n    return x + 1, x\n\n"
        "def gelu_backward(dy, x):\n    return dy\n")
    with pytest.raises(AssertionError):
        run_cells(path, capsys)
