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
        "import numpy as np\nfrom scipy.special import erf\n\n"        # the contract's cache: GELU'(x)
        "def gelu_forward(x):\n    cdf = 0.5 * (1 + erf(x / np.sqrt(2)))\n"
        "    return x * cdf, cdf + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)\n\n"
        "def gelu_backward(dy, cache):\n    return dy * cache\n")
    out = run_cells(path, capsys)
    assert "sanity check done" in out and "=> PASS: all" in out, out
    (tmp_path / f"{ex.stem}.py").write_text(
        "import numpy as np\n\ndef gelu_forward(x):\n    return x + 1, x\n\n"
        "def gelu_backward(dy, x):\n    return dy\n")
    with pytest.raises(AssertionError):
        run_cells(path, capsys)


@pytest.mark.parametrize("ex", [ex for ex in EXERCISES if ex.sanity], ids=[ex.name for ex in EXERCISES if ex.sanity])
def test_sanity_cells_call_the_learners_functions_through_mine(ex):
    """A sanity cell runs inside `with sanity(NAME) as mine:`: it calls the learner's functions as `mine.NAME`
    (a bare NAME is undefined in the notebook), never loads the file itself nor rebinds `mine`."""
    import re
    for markdown, code in ex.sanity:
        compile(code, ex.name, "exec")
        assert "mine." in code and "load_student" not in code, (ex.name, code)
        assert not re.search(r"\bmine\s*=[^=]", code), (ex.name, "rebinds mine", code)
        bare = [f for f in ex.function_names if re.search(rf"(?<![.\w]){f}\(", code)]
        assert not bare, (ex.name, f"calls {bare} without mine.", code)


def test_a_blank_workspace_reports_only_not_implemented(tmp_path):
    """Blank starters pass no check of any exercise (a check that cannot run says nothing, never 'pass')."""
    from minibert.exercises.workspace import grade_file
    exercises.start(tmp_path)
    for ex in EXERCISES:
        result = grade_file(ex.name, tmp_path)
        assert {c.status for c in result.checks} == {"not implemented"}, result.format()
        assert result.verdict == "not implemented yet"


# -- check --format json|gradescope, report ----------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd, env=None):
    import subprocess
    import sys
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "minibert.exercises", *args], cwd=cwd, capture_output=True,
                          text=True, env=environment, timeout=300)


def solve(workspace, ex):
    """Fill a starter with minibert's own functions (what a correct solution computes)."""
    modules = sorted({f.__module__ for f in ex.functions})
    lines = [f"from {m} import {', '.join(f.__name__ for f in ex.functions if f.__module__ == m)}" for m in modules]
    (workspace / f"{ex.stem}.py").write_text("\n".join(lines) + "\n")


def test_check_json_and_gradescope_formats(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "gradescope_results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    exercises.start(tmp_path / "ws")
    solve(tmp_path / "ws", get("heads"))
    r = run_cli("check", "ws", "heads", "gelu", "--format", "json", "--seed", "5", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["seed"] == 5 and data["passed"] == 1 and data["total"] == 2
    heads, gelu = data["exercises"]
    assert heads["name"] == "heads" and heads["passed"] and heads["score"] == 1.0 and heads["verdict"] == "pass"
    assert all(c["status"] == "pass" for c in heads["checks"]) and len(heads["checks"]) >= 2
    assert gelu["score"] == 0.0 and {c["status"] for c in gelu["checks"]} == {"not implemented"}
    assert "still raises NotImplementedError" in gelu["checks"][0]["message"]

    out = tmp_path / "results" / "results.json"
    out.parent.mkdir()
    r = run_cli("check", "ws", "heads", "gelu", "--format", "gradescope", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 1 and "written to" in r.stdout, r.stdout + r.stderr
    results = json.loads(out.read_text())
    jsonschema.validate(results, schema)
    assert [t["status"] for t in results["tests"]] == ["passed", "failed"]
    assert results["score"] == 1.0 and sum(t["max_score"] for t in results["tests"]) == 2.0
    assert "=> PASS" in results["tests"][0]["output"] and "not implemented yet" in results["tests"][1]["output"]
    assert not list(out.parent.glob(".*"))                        # atomic: no temporary left behind
    bad = dict(results, tests=[dict(results["tests"][0], status="ok")])
    with pytest.raises(jsonschema.ValidationError):                # the schema can fail
        jsonschema.validate(bad, schema)
    r = run_cli("check", "ws", "heads", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2 and "--out is for --format json or gradescope" in r.stderr


def test_report_holds_results_and_answers(tmp_path):
    from minibert.exercises.report import NOT_ANSWERED, write_report
    ex = with_course_fields("gelu")
    exercises.start(tmp_path)
    nb = exercise_notebook(ex)
    for cell in nb["cells"]:
        if cell["metadata"].get("minibert", {}).get("answer") == "q1":
            cell["source"] = "Because <the> Gaussian's CDF & density."
    (tmp_path / "notebooks" / "exercises" / f"{ex.stem}.ipynb").write_text(json.dumps(nb))
    heads = get("heads")
    solve(tmp_path, heads)                       # solved, its questions left unanswered
    done = write_report(tmp_path, exercises=(heads, ex), timeout_s=10, seed=2)
    unanswered = 1 + len(heads.questions)
    assert done["passed"] == 1 and done["total"] == 2
    assert (done["answered"], done["questions"]) == (1, 2 + len(heads.questions))
    md = (tmp_path / "report.md").read_text()
    assert "1 of 2 exercises pass (grader seed 2)" in md
    assert "| 08 | `heads` | pass |" in md and "| 05 | `gelu` | not implemented yet |" in md
    assert "Q-ONE: why?" in md and "> Because <the> Gaussian's CDF & density." in md
    assert md.count(NOT_ANSWERED) == unanswered and "still raises NotImplementedError" in md
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Because &lt;the&gt; Gaussian&#x27;s CDF &amp; density." in page
    assert "<script" not in page and "src=" not in page and "href=" not in page      # self-contained
    r = run_cli("report", ".", cwd=tmp_path)
    assert r.returncode == 0 and "wrote" in r.stdout and "report.html" in r.stdout, r.stdout + r.stderr


# -- every exercise notebook runs, blank and solved ----------------------------------------------------

def solve_from_solution_page(workspace, ex):
    """The learner's file holding the solution page's python blocks (docs/exercises/solutions/STEM.md)."""
    import re
    doc = (REPO / "docs" / "exercises" / "solutions" / f"{ex.stem}.md").read_text()
    code = "\n\n".join(re.findall(r"```python\n(.*?)```", doc, re.S))
    (workspace / f"{ex.stem}.py").write_text(f"from __future__ import annotations\n{ex.imports}\n\n{code}")


def code_outputs(nb) -> list[str]:
    """The text each code cell printed (stream and result outputs), one string per code cell."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            out.append("".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", ""))
                               for o in cell.outputs))
    return out


@pytest.mark.slow
def test_every_exercise_notebook_runs_blank_and_solved_in_a_kernel(tmp_path):
    """nbclient, a real kernel per run: blank, the grading cell says "not implemented yet" and nothing raises
    (sanity cells say so too); with the solution page's code in the file, the grading cell says PASS and every
    sanity cell ends "sanity check done". About 2 s per notebook run here (a kernel start each)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    exercises.start(tmp_path)
    for ex in EXERCISES:
        path = tmp_path / "notebooks" / "exercises" / f"{ex.stem}.ipynb"
        for state in ("blank", "solved"):
            if state == "solved":
                solve_from_solution_page(tmp_path, ex)
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
            nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                    resources={"metadata": {"path": str(path.parent)}}).execute()
            outputs = code_outputs(nb)
            grading = outputs[-1]
            sanity = [o for o, c in zip(outputs, [c for c in nb.cells if c.cell_type == "code"])
                      if c.source.startswith("with sanity(")]
            assert len(sanity) == len(ex.sanity)
            if state == "blank":
                assert "not implemented yet" in grading and "Traceback" not in grading, (ex.name, grading)
                assert all("not implemented yet" in o for o in sanity), (ex.name, sanity)
            else:
                assert "=> PASS: all" in grading, (ex.name, grading)
                assert all(o.rstrip().endswith("sanity check done") for o in sanity), (ex.name, sanity)
