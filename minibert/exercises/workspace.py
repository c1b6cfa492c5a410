"""The student workspace: writing it (`start`), loading a learner's file and grading it (`check`).

    DIR/
      README.md                               how to work through the exercises
      01_wordpiece.py ... 12_adamw.py         starters: minibert's signatures and docstrings, no bodies
      notebooks/exercises/01_wordpiece.ipynb ...
                                              statement, math, hints, and a cell that grades the file

A learner's file is imported by its path (importlib, a fresh module at every call, so an edit is
seen without restarting anything); nothing is unpickled. The solution write-ups in minibert's
docs/exercises/solutions/ are never copied here: a teacher releases them after the deadline.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import traceback
from pathlib import Path

from minibert.errors import MinibertError
from minibert.exercises.base import DEFAULT_TIMEOUT_S, CheckResult, ExerciseResult
from minibert.exercises.catalog import EXERCISES, get
from minibert.exercises.notebook import exercise_notebook
from minibert.exercises.starters import starter_source
from minibert.files import ABSENT, EMPTY, OutPathError, contents, write_text

__all__ = ["start", "load_student", "grade", "check_workspace", "grade_reference", "StudentFileError"]

_counter = itertools.count()


class StudentFileError(MinibertError):
    """The learner's file is missing or does not import; the message says which and where."""


def _exercises():
    return EXERCISES


def _get(name):
    return get(name)


def start(directory, force: bool = False) -> dict[str, list[Path]]:
    """Write a student workspace in `directory`. Existing files are kept unless force=True.

    The folder must be new, empty, or a workspace already (its README.md or a starter file is there):
    anything else is refused (files.OutPathError), even with force, so a mistyped folder never
    receives a dozen files. Returns {"written": [...], "kept": [...]} (paths).
    """
    root = Path(directory)
    found = contents(root)
    if found.kind not in (ABSENT, EMPTY) and not is_workspace(root):
        raise OutPathError(f"{root} holds {found.words}, not an exercises workspace: give a new or empty folder")
    (root / "notebooks" / "exercises").mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    files = {root / "README.md": _workspace_readme()}
    for ex in _exercises():
        files[root / f"{ex.stem}.py"] = starter_source(ex)
        files[root / "notebooks" / "exercises" / f"{ex.stem}.ipynb"] = json.dumps(
            exercise_notebook(ex), indent=1, ensure_ascii=False) + "\n"
    for path, text in files.items():
        if path.exists() and not force:
            kept.append(path)
            continue
        write_text(path, text)
        written.append(path)
    return {"written": written, "kept": kept}


def is_workspace(directory) -> bool:
    """Whether `directory` holds a workspace that `start` wrote: its README.md, or a starter file."""
    root = Path(directory)
    readme = root / "README.md"
    if readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith("# minibert exercises"):
        return True
    return any((root / f"{ex.stem}.py").is_file() for ex in _exercises())


def _workspace_readme() -> str:
    rows = "\n".join(f"| {ex.number:02d} | `{ex.stem}.py` | {ex.title} | {ex.minutes} min |" for ex in _exercises())
    return f"""# minibert exercises

Each exercise is one file here: minibert's real function with its signature and docstring (the
shapes), and the body removed. Write the body; the grader runs your function against minibert's on
odd shapes and edge cases, checks gradients with float64 finite differences, and tells you what is
wrong and where, without showing the answer.

    python -m minibert.exercises check .                    # grade everything
    python -m minibert.exercises check . layer_norm         # one exercise (name or number)

Or open `notebooks/exercises/NN_name.ipynb` (statement, math to derive, hints) and run its last
cell: it grades your file, reloaded at every run. Keep the signatures and docstrings as they are.

| # | file | what you implement | time |
|---|---|---|---|
{rows}

The numbers follow minibert's learning path (its README and docs/index.md), which also says which
docs page and notebook to read before each exercise. Stuck? The hints in each notebook go from
gentle to specific, and the docs page it names derives the math.
"""


def workspace_file(directory, exercise) -> Path:
    return Path(directory) / f"{exercise.stem}.py"


def load_student(name, workspace="."):
    """Import the learner's file of exercise `name` from `workspace` (a fresh module every call)."""
    ex = _get(name)
    path = workspace_file(workspace, ex).resolve()
    if not path.is_file():
        raise StudentFileError(f"no file {path.name} in {Path(workspace).resolve()}: create the workspace with "
                               f"`python -m minibert.exercises start {workspace}`")
    module_name = f"minibert_student_{ex.name}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module       # dataclasses and friends look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise StudentFileError(f"{path.name} does not compile: {err.msg} at line {err.lineno}"
                               + (f": `{err.text.strip()}`" if err.text else "")) from None
    except Exception as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
        where = f" at line {frames[-1].lineno}: `{(frames[-1].line or '').strip()}`" if frames else ""
        raise StudentFileError(f"{path.name} raised {type(err).__name__}: {err} while being imported{where}") from None
    finally:
        sys.modules.pop(module_name, None)
    return module


def _file_failure(ex, title: str, message: str, hint: str = "") -> ExerciseResult:
    return ExerciseResult(ex.number, ex.name, ex.title, [CheckResult(title, "fail", message, hint)])


def grade_file(name, workspace=".", timeout_s: float | None = DEFAULT_TIMEOUT_S) -> ExerciseResult:
    """Grade the learner's file of one exercise; a missing or broken file is a failed check, not a crash."""
    ex = _get(name)
    try:
        module = load_student(ex, workspace)
    except StudentFileError as err:
        return _file_failure(ex, "your file loads", str(err))
    functions, missing = {}, []
    for fname in ex.function_names:
        fn = getattr(module, fname, None)
        if callable(fn):
            functions[fname] = fn
        else:
            missing.append(fname)
    if missing:
        return _file_failure(ex, "your file defines the functions",
                             f"{workspace_file(workspace, ex).name} has no function {', '.join(missing)}.",
                             "keep the names of the starter (the grader looks them up by name).")
    return ex.grade(functions, timeout_s=timeout_s)


def grade(name, workspace=".", timeout_s: float | None = DEFAULT_TIMEOUT_S, quiet: bool = False) -> ExerciseResult:
    """Grade one exercise of a workspace and print the report (the notebooks' grading cell)."""
    result = grade_file(name, workspace, timeout_s)
    if not quiet:
        print(result.format())
    return result


def check_workspace(workspace=".", names=(), timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[ExerciseResult]:
    """Grade the chosen exercises (all by default) of a workspace."""
    chosen = [_get(n) for n in names] if names else list(_exercises())
    return [grade_file(ex, workspace, timeout_s) for ex in chosen]


def grade_reference(names=(), timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[ExerciseResult]:
    """Grade minibert's own functions (every exercise must pass: the grader's self-test)."""
    chosen = [_get(n) for n in names] if names else list(_exercises())
    return [ex.grade(timeout_s=timeout_s) for ex in chosen]
