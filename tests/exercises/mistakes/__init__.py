"""The catalogue of named learner mistakes: each one planted, graded, and expected to fail with its own diagnosis.

One module per exercise (ex04_layer_norm.py, ...) holds `MISTAKES`, a list of `Mistake`s:

    Mistake("layer_norm", "dgamma summed without xhat",
            '''
            def layer_norm_backward(dy, cache):
                ...the reference with the one thing changed...
            ''',
            diagnosis=r"dgamma .* the normalised input")

`source` is a learner's whole function (or functions), written out in full as a learner would write
it: it is compiled with the exercise's imports and graded in place of minibert's functions of the
same names. The test (tests/exercises/test_mistakes.py) asserts that the grade fails and that the
words the learner reads (messages and hints of the failed checks) match `diagnosis`, a regular
expression: a grader that still fails the mistake, but for the wrong reason or with a generic
message, fails the test. `forward_ok=True` says the mistake is in a backward only: then no check of
the forward may fail (a backward mistake is never blamed on the forward).

A module may also hold `CORRECT`: alternative *correct* forms (e.g. LayerNorm's textbook N-form),
`Mistake(exercise, name, source, diagnosis="")`; tests/exercises/test_correct_forms.py grades each
and asserts it passes.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import textwrap


@dataclasses.dataclass(frozen=True)
class Mistake:
    exercise: str            # the exercise's name ("layer_norm")
    name: str                # what the learner did wrong, in a few words (unique within the exercise)
    source: str              # the learner's function(s), in full
    diagnosis: str           # regex the failure's messages + hints must match
    forward_ok: bool = False  # True: a backward-only mistake; no forward check may fail

    @property
    def id(self) -> str:
        return f"{self.exercise}: {self.name}"

    def functions(self, imports: str) -> dict:
        """The learner's functions, compiled with the exercise's imports."""
        namespace: dict = {}
        code = "from __future__ import annotations\n" + imports + "\n\n" + textwrap.dedent(self.source)
        exec(compile(code, f"<mistake {self.id}>", "exec"), namespace)          # noqa: S102 - test code
        return namespace


def all_correct() -> list[Mistake]:
    """Every module's CORRECT: alternative correct forms (diagnosis ""), each must pass the grader."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "CORRECT", []))
    return found


def all_mistakes() -> list[Mistake]:
    """Every module's MISTAKES, in module order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "MISTAKES", []))
    return found
