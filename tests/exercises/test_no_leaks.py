"""No text a learner reads before deriving holds a line of the solution (issue 15: hints diagnose, never give the line).

The rule, for every exercise:

- the *solution lines* are the code lines of the reference functions (`Exercise.functions`, their source
  without docstrings and comments) and the python lines of the solution page
  docs/exercises/solutions/STEM.md, each normalised by removing all whitespace; trivial lines are
  ignored: shorter than MIN_CHARS normalised characters, `def`/`class` lines, `import`/`from` lines,
  `return NAME[, NAME...]`, `raise NotImplementedError...`, decorators;
- the *learner's texts* are: every hint (`Exercise.hints`), the statement, the derivation (the whole of
  it: the notebook adds the solution pointer after it), each starter contract (`Exercise.contract(name)`,
  minibert's docstring where the exercise has none), and every hint the grader can print: the `hint`,
  `shape_hint`, `nonfinite_hint` and candidate texts handed to `Tester.compare`/`Tester.gradient`, and
  the hint of every `CheckFailed`, recorded while grading the reference and each planted mistake of the
  catalogue (tests/exercises/mistakes/);
- a text leaks if its normalised form contains a normalised solution line, or matches one of
  FORBIDDEN_CODE (code that computes an answer under another variable name).

Messages are not checked: they may quote the *learner's* own line ("raised ValueError at line 5: `...`").
Every exercise is derivation-first now: none is exempt.
"""
from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from minibert.exercises import EXERCISES
from minibert.exercises import base

sys.path.insert(0, str(Path(__file__).parent))             # the catalogue: tests/exercises/mistakes/
from mistakes import all_mistakes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MIN_CHARS = 12
FORBIDDEN_CODE = (
    (r"add\.at\([^()]*,", "a scatter-add call with its arguments"),
    (r"sorted\(chosen\)", "the sorted positions of the masking solution"),
)
TRIVIAL = re.compile(r"^(def |class |async def |import |from |@|raise NotImplementedError|return[\w,()\[\]. ]*$)")



def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def code_lines(source: str) -> list[str]:
    """The normalised, non-trivial code lines of Python source (docstrings and comments removed)."""
    source = textwrap.dedent(source)
    skip: set[int] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                    isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    out = []
    for n, line in enumerate(source.splitlines(), 1):
        if n in skip:
            continue
        text = "".join(_strip_comment(line).split())
        if len(text) < MIN_CHARS or TRIVIAL.match(_strip_comment(line).strip()):
            continue
        out.append(text)
    return out


def solution_lines(ex) -> set[str]:
    lines = set()
    for fn in ex.functions:
        lines.update(code_lines(inspect.getsource(fn)))
    page = REPO / "docs" / "exercises" / "solutions" / f"{ex.stem}.md"
    if page.is_file():
        for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            lines.update(code_lines(block))
    return lines


def grader_hints(ex) -> list[str]:
    """Every hint text the grader hands to compare/gradient or raises, grading the reference and the mistakes."""
    seen: list[str] = []
    originals = {name: getattr(base.Tester, name) for name in ("compare", "gradient")}

    def recording(name):
        def wrapper(self, label, actual, expected, *args, candidates=(), hint="", shape_hint="", **kwargs):
            seen.extend([hint, shape_hint, kwargs.get("nonfinite_hint", "")] + [text for _, text in candidates])
            return originals[name](self, label, actual, expected, *args, candidates=candidates, hint=hint,
                                   shape_hint=shape_hint, **kwargs)
        return wrapper

    original_init = base.CheckFailed.__init__

    def failed(self, message, hint=""):
        seen.append(hint)
        original_init(self, message, hint)

    patch = pytest.MonkeyPatch()
    try:
        for name in originals:
            patch.setattr(base.Tester, name, recording(name))
        patch.setattr(base.CheckFailed, "__init__", failed)
        ex.grade(timeout_s=10)
        for mistake in all_mistakes():
            if mistake.exercise == ex.name:
                functions = {k: v for k, v in mistake.functions(ex.imports).items() if k in ex.function_names}
                ex.grade(functions, timeout_s=10)
    finally:
        patch.undo()
    return [s for s in seen if s]


def learner_texts(ex) -> list[tuple[str, str]]:
    texts = [(f"hint {i}", h) for i, h in enumerate(ex.hints, 1)]
    texts += [("statement", ex.statement), ("derivation", ex.derivation)]
    texts += [(f"contract of {name}", ex.contract(name) or "") for name in ex.function_names]
    texts += [("a hint the grader prints", h) for h in grader_hints(ex)]
    return texts


def leaks(ex) -> list[str]:
    lines = solution_lines(ex)
    found = []
    for where, text in learner_texts(ex):
        flat = "".join(text.split())
        for line in sorted(lines):
            if line in flat:
                found.append(f"{where} holds the solution line `{line}`")
        for pattern, what in FORBIDDEN_CODE:
            if re.search(pattern, flat):
                found.append(f"{where} holds {what}: {re.search(pattern, flat).group(0)}")
    return sorted(set(found))


def test_the_rule_finds_a_planted_leak():
    ex = next(e for e in EXERCISES if e.name == "linear_backward")
    lines = solution_lines(ex)
    assert lines and all(len(s) >= MIN_CHARS for s in lines)
    line = sorted(lines, key=len)[-1]
    import dataclasses
    leaky = dataclasses.replace(ex, hints=ex.hints + (f"Try:   {line}",))
    assert any("hint" in f and line in f for f in leaks(leaky))
    assert code_lines('def f(x):\n    """dx = dy @ weight.T is the answer"""\n    return x\n') == []
    assert code_lines("    total = numpy.zeros(shape)   # (N, d)\n") == ["total=numpy.zeros(shape)"]


@pytest.mark.parametrize("ex", EXERCISES, ids=[ex.name for ex in EXERCISES])
def test_no_learner_text_holds_a_line_of_the_solution(ex):
    found = leaks(ex)
    assert not found, f"exercise {ex.number:02d} {ex.name}:\n  " + "\n  ".join(found)
