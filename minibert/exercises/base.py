"""The grader's machinery: run a learner's function safely, compare its answer with minibert's, say what is wrong.

An exercise's `check(t)` is a list of named checks written against a `Tester`:

    with t.check("dx, dW, db for x (3, 5, 7), W (4, 7) and a bias"):
        dx, dW, db = t.unpack(t.call("linear_backward", dy, cache), "linear_backward", "dx, dW, db")
        t.compare("dW", dW, dW_ref, candidates=[(dW_ref.T, "transposed ...")])

- `t.call` runs the learner's function with a time limit; an exception becomes a one-line report
  ("linear_backward raised ValueError at line 41 of 02_linear_backward.py: `dx = dy @ w.T`"), a
  NotImplementedError becomes "not implemented yet";
- `t.compare` checks the type, the shape, NaN/inf and the values of one output or gradient against
  minibert's, and on a mismatch names it, gives both shapes, the largest error, where it is and how
  large, and one hint: the first *candidate* (an array computed the way a known mistake computes it)
  that the learner's answer matches, or else the check's general hint;
- `t.gradient` adds a float64 finite-difference check of a backward.

Only single numbers of the expected answer are ever printed (at the worst index), never an array
or minibert's code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import linecache
import os
import signal
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

import numpy

TOLERANCE = 1e-7          # max error relative to the largest expected entry, float64 vs float64
FD_TOLERANCE = 1e-6       # finite differences (gradcheck's bar)
FD_STEP = 1e-5
DEFAULT_TIMEOUT_S = 10.0


# -- results -----------------------------------------------------------------------------------

@dataclasses.dataclass
class CheckResult:
    """One named check: status is "pass", "fail" or "not implemented"."""
    title: str
    status: str
    message: str = ""
    hint: str = ""
    detail: str = ""            # a short note on a pass (the errors measured)


@dataclasses.dataclass
class ExerciseResult:
    """Every check of one exercise, and the verdict."""
    number: int
    name: str
    title: str
    checks: list[CheckResult]
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.status == "pass" for c in self.checks)

    @property
    def not_implemented(self) -> list[str]:
        return [c.title for c in self.checks if c.status == "not implemented"]

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        if any(c.status == "fail" for c in self.checks):
            return "fail"
        return "not implemented yet"

    def summary_line(self) -> str:
        counted = [c for c in self.checks if c.status != "not implemented"]
        done = sum(c.status == "pass" for c in counted)
        extra = f" ({done}/{len(counted)} checks)" if counted else ""
        return f"{self.number:02d} {self.name:<22} {self.verdict}{extra}"

    def format(self) -> str:
        """The report a learner reads: one line per check, the message and hint under each failure."""
        lines = [f"Exercise {self.number:02d}: {self.title}  [{self.name}]"]
        for note in self.notes:
            lines.append(f"  note: {note}")
        said = set()
        for c in self.checks:
            mark = {"pass": "pass", "fail": "FAIL", "not implemented": "TODO"}[c.status]
            title = f"{c.title}: not implemented yet" if c.status == "not implemented" else c.title
            lines.append(f"  {mark:<4}  {title}" + (f"   [{c.detail}]" if c.detail else ""))
            if c.status == "fail" and (c.message, c.hint) in said:
                lines.append(" " * 8 + "(the same as above)")
                continue
            said.add((c.message, c.hint))
            for text, prefix in ((c.message, ""), (c.hint, "Hint: ")):
                if text:
                    lines.extend(_indent(prefix + text, 8))
        failed = sum(c.status == "fail" for c in self.checks)
        todo = self.not_implemented
        if self.passed:
            lines.append(f"  => PASS: all {len(self.checks)} checks")
        elif failed:
            lines.append(f"  => FAIL: {failed} of {len(self.checks)} checks failed")
        else:
            lines.append(f"  => not implemented yet: {', '.join(todo)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExerciseResult {self.number:02d} {self.name}: {self.verdict}>"


def _indent(text: str, n: int, width: int = 100) -> list[str]:
    """Wrap `text` at `width` columns, indented by n spaces (keeps explicit newlines)."""
    import textwrap
    out = []
    for paragraph in text.split("\n"):
        out.extend(textwrap.wrap(paragraph, width=width - n, break_long_words=False,
                                 break_on_hyphens=False) or [""])
    return [" " * n + line for line in out]


# -- failures raised inside a check ------------------------------------------------------------

class CheckFailed(Exception):
    """Stops the current check with a message for the learner (and an optional hint)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


class _NotImplementedYet(Exception):
    """The learner's function raised NotImplementedError (still the blank starter)."""

    def __init__(self, function: str, first: bool):
        super().__init__(function)
        self.function = function
        self.first = first


class _OptionalNotAttempted(Exception):
    """An optional part of an exercise raised NotImplementedError: fine, reported as not attempted."""


class _Timeout(BaseException):
    """Raised by the alarm inside the learner's code (BaseException: `except Exception` cannot eat it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise _Timeout in the block after `seconds` (main thread on Unix only; elsewhere no limit)."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- describing values -------------------------------------------------------------------------

def describe(value) -> str:
    """A short description of any value: its type, and its shape for arrays."""
    if value is None:
        return "None"
    if isinstance(value, numpy.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    if isinstance(value, (list, tuple)):
        kind = type(value).__name__
        return f"a {kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, (bool, int, float, numpy.generic)):
        return f"the number {value!r}" if not isinstance(value, numpy.generic) else f"the number {value.item()!r}"
    return f"a {type(value).__name__}"


def fmt_index(index) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def fmt(x: float) -> str:
    return f"{x:.6g}"


def _location(tb, files: set[str]):
    """(line number, file name, source line) of the deepest traceback frame in one of `files`."""
    found = None
    for frame in traceback.extract_tb(tb):
        if frame.filename in files:
            found = frame
    if found is None:
        return None
    source = (found.line or linecache.getline(found.filename, found.lineno)).strip()
    return found.lineno, Path(found.filename).name, source


_EXCEPTION_HINTS = (
    ("mismatch in its core dimension", "the inner sizes of a matrix product disagree: write the shape "
     "of each operand next to the line ((N, in) @ (in, out) -> (N, out)) and transpose the one that is wrong."),
    ("could not be broadcast", "two arrays of incompatible shapes meet in an elementwise operation: print "
     "their shapes; keepdims=True on a sum or mean keeps an axis of size 1 that broadcasts."),
    ("index", "an index is out of range or of the wrong type: check the shapes and the integer dtype."),
    ("takes", "the function's signature must stay exactly as in the starter (the grader calls it that way)."),
    ("positional argument", "the function's signature must stay exactly as in the starter (the grader calls "
     "it that way)."),
)


# -- the tester --------------------------------------------------------------------------------

class Tester:
    """Runs one exercise's checks against a set of functions (the learner's, or minibert's own)."""

    def __init__(self, functions: dict[str, Callable], reference: dict[str, Callable],
                 timeout_s: float | None = DEFAULT_TIMEOUT_S, seed: int = 0):
        self.functions = functions
        self.reference = reference
        self.timeout_s = timeout_s
        self.results: list[CheckResult] = []
        self.missing: set[str] = set()
        self.rng = numpy.random.default_rng(seed)
        self.files = {f.__code__.co_filename for f in functions.values() if hasattr(f, "__code__")}

    # running checks

    @contextlib.contextmanager
    def check(self, title: str):
        """A named check: its body passes unless it raises CheckFailed (or the learner's code fails)."""
        self._detail = []
        try:
            yield
        except CheckFailed as failure:
            self.results.append(CheckResult(title, "fail", failure.message, failure.hint))
        except _OptionalNotAttempted:
            self.results.append(CheckResult(title, "pass", detail="optional, not attempted"))
        except _NotImplementedYet as todo:
            if todo.first:
                self.results.append(CheckResult(todo.function, "not implemented",
                                                f"{todo.function} still raises NotImplementedError: write "
                                                f"its body in your file, then run the check again."))
        except Exception as err:        # what the learner returned broke a check: say so, do not crash
            where = traceback.extract_tb(err.__traceback__)[-1]
            self.results.append(CheckResult(
                title, "fail", f"the grader could not check this: {type(err).__name__}: {err} "
                f"(in {Path(where.filename).name}, line {where.lineno})",
                "is every value your function returns of the documented type and shape?"))
        else:
            self.results.append(CheckResult(title, "pass", detail="; ".join(self._detail)))

    def passed(self, title_start: str) -> bool:
        """Whether the check whose title starts with `title_start` passed."""
        return any(r.title.startswith(title_start) and r.status == "pass" for r in self.results)

    def forward_for_backward(self, name: str, *args, **kwargs):
        """(out, cache, forward, own) for a backward check: the learner's forward when it runs, else minibert's.

        A learner can so work on a backward before the forward is right; the cache then has the
        format minibert's docstring describes. `forward(*args)` recomputes the output (finite differences).
        """
        if name not in self.missing:
            try:
                result = self.call(name, *args, **kwargs)
                if isinstance(result, (tuple, list)) and len(result) == 2:
                    def forward(*a, **k):
                        return self.call(name, *a, **k)[0]
                    return result[0], result[1], forward, True
            except (CheckFailed, _NotImplementedYet):
                pass
        reference = self.reference[name]
        out, cache = reference(*args, **kwargs)
        return out, cache, (lambda *a, **k: reference(*a, **k)[0]), False

    def note(self, text: str) -> None:
        """A measured figure shown next to a passing check."""
        self._detail.append(text)

    def not_run(self, reason: str, *needs: str) -> None:
        """A check that cannot run because an earlier one failed (end the check's body after it).

        While one of the functions `needs` is still the blank starter the check records nothing (the
        exercise is "not implemented yet", never a pass); otherwise it passes with `reason` as its note
        (the failure was reported once, above).
        """
        missing = [name for name in needs if name in self.missing]
        if missing:
            raise _NotImplementedYet(missing[0], first=False)
        self.note(reason)

    def call(self, name: str, *args, optional: bool = False, **kwargs):
        """Call the function `name` under test; failures become CheckFailed with a short report.

        optional=True: a NotImplementedError means an optional part was not attempted (not a failure).
        """
        if name in self.missing:
            raise _NotImplementedYet(name, first=False)
        fn = self.functions[name]
        try:
            with time_limit(self.timeout_s), numpy.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")            # overflow warnings: the NaN check reports them
                return fn(*args, **kwargs)
        except _Timeout:
            raise CheckFailed(f"{name} did not finish within {self.timeout_s:g} s.",
                              "an endless loop? Check that every `while` loop moves towards its end "
                              "(the inputs here are tiny: a correct answer takes milliseconds).") from None
        except NotImplementedError:
            if optional:
                raise _OptionalNotAttempted() from None
            self.missing.add(name)
            raise _NotImplementedYet(name, first=True) from None
        except RecursionError:
            raise CheckFailed(f"{name} recursed without end (RecursionError).",
                              "does your function call itself?") from None
        except Exception as err:  # the learner's code may raise anything: report it, never crash
            raise CheckFailed(*self._explain(name, err)) from None

    def _explain(self, name: str, err: Exception) -> tuple[str, str]:
        where = _location(err.__traceback__, self.files)
        kind = type(err).__name__
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        said = f"{kind}: {text}" if text else kind
        if where:
            line, file, source = where
            message = f"your function {name} raised {said}\n  at line {line} of {file}: `{source}`"
        else:
            message = f"{name} raised {said} (not inside your file: check how you call it and what you return)"
        hint = next((h for key, h in _EXCEPTION_HINTS if key in text), "")
        return message, hint

    # checking answers

    def unpack(self, value, function: str, names: str):
        """Check that `function` returned a tuple with one item per name in "a, b, c"; return it."""
        expected = [n.strip() for n in names.split(",")]
        if value is None:
            raise CheckFailed(f"{function} returned None; it must return ({names}).",
                              "did you forget the `return` line?")
        if not isinstance(value, (tuple, list)) or len(value) != len(expected):
            raise CheckFailed(f"{function} returned {describe(value)}; it must return a tuple ({names}), "
                              f"{len(expected)} items.", "return them in that order, separated by commas.")
        return tuple(value)

    def array(self, label: str, value, function: str = "") -> numpy.ndarray:
        """`value` must be a NumPy array (or a number, for a 0-d result); returned as an array."""
        who = f" (from {function})" if function else ""
        if value is None:
            raise CheckFailed(f"{label}{who} is None; expected an array.",
                              "did you forget a `return`, or return before computing it?")
        if isinstance(value, (bool, str)) or not isinstance(value, (numpy.ndarray, numpy.generic, int, float)):
            raise CheckFailed(f"{label}{who} is {describe(value)}; expected a NumPy array.",
                              "build it with NumPy operations on the input arrays (np.array(...) turns a "
                              "list into an array).")
        return numpy.asarray(value)

    def compare(self, label: str, actual, expected, *, candidates=(), hint: str = "",
                shape_hint: str = "", nonfinite_hint: str = "", function: str = "",
                tolerance: float = TOLERANCE, scale_floor: float = 1e-3) -> float:
        """Fail unless `actual` equals `expected` (relative to the largest expected entry).

        candidates: (array or zero-argument function -> array, hint) pairs, each what a known mistake
        computes: the first one `actual` matches gives the hint. Returns the relative error.
        """
        expected = numpy.asarray(expected)
        a = self.array(label, actual, function)
        if a.shape != expected.shape:
            extra = shape_hint
            if not extra and a.ndim == 2 and a.shape == expected.shape[::-1]:
                extra = f"{label} looks transposed."
            raise CheckFailed(f"{label} has shape {a.shape}; expected {expected.shape}.",
                              extra or self._candidate_hint(a, candidates) or hint)
        if a.dtype.kind not in "fiub":
            raise CheckFailed(f"{label} has dtype {a.dtype}; expected numbers ({expected.dtype}).")
        bad = ~numpy.isfinite(a) & numpy.isfinite(expected)
        if bad.any():
            first = fmt_index(numpy.argwhere(bad)[0]) if a.ndim else ""
            raise CheckFailed(f"{label} has {int(bad.sum())} NaN/inf entr{'ies' if bad.sum() > 1 else 'y'}"
                              + (f" (the first at {first})" if first else "") + " where the expected values are finite.",
                              self._candidate_hint(a, candidates) or nonfinite_hint
                              or "an overflow (exp of a large number?) or a division by zero.")
        with numpy.errstate(invalid="ignore"):
            err = numpy.where(numpy.isinf(a) & (a == expected), 0.0, numpy.abs(a.astype(numpy.float64) - expected))
        scale = max(float(numpy.max(numpy.abs(expected), initial=0.0)), scale_floor)
        worst = float(numpy.max(err, initial=0.0))
        rel = worst / scale
        if rel <= tolerance:
            return rel
        index = numpy.unravel_index(int(numpy.argmax(err)), err.shape)
        off = int((err > tolerance * scale).sum())
        where = f" at {fmt_index(index)}" if a.ndim else ""
        message = (f"{label}: the shape {a.shape} is right, the values are not. Largest error "
                   f"{worst:.3g}{where} (yours {fmt(a[index])}, expected {fmt(expected[index])}), "
                   f"{rel:.2g} relative to the largest expected entry; {off} of {a.size} entries are off.")
        raise CheckFailed(message, self._candidate_hint(a, candidates) or self._dtype_hint(a, expected)
                          or self._pattern_hint(a, expected) or hint)

    @staticmethod
    def _dtype_hint(a, expected) -> str:
        if expected.dtype.kind == "f" and (a.dtype.kind != "f" or a.dtype.itemsize < expected.dtype.itemsize):
            return (f"your result has dtype {a.dtype}, the inputs are {expected.dtype}: build new arrays with "
                    f"the input's dtype (np.zeros(shape, dtype=x.dtype), np.zeros_like(x)).")
        return ""

    def _candidate_hint(self, a, candidates) -> str:
        with numpy.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._first_matching(a, candidates)

    @staticmethod
    def _first_matching(a, candidates) -> str:
        for candidate, text in candidates:
            try:
                c = candidate() if callable(candidate) else candidate
            except Exception:       # a candidate that cannot be built for these inputs does not apply
                continue
            if c is None:
                continue
            c = numpy.asarray(c)
            if c.shape == a.shape and numpy.all(numpy.isfinite(c) == numpy.isfinite(a)):
                fin = numpy.isfinite(c)
                scale = max(float(numpy.max(numpy.abs(c[fin]), initial=0.0)), 1e-3)
                if float(numpy.max(numpy.abs(a[fin] - c[fin]), initial=0.0)) <= 1e-6 * scale:
                    return text
        return ""

    @staticmethod
    def _pattern_hint(a, expected) -> str:
        """Two mistakes any output can have: a sign flip, a constant factor."""
        e = expected.astype(numpy.float64).ravel()
        x = a.astype(numpy.float64).ravel()
        if numpy.allclose(x, -e, rtol=1e-6, atol=1e-12):
            return "your answer is exactly minus the expected one: check a sign."
        denom = float(e @ e)
        if denom > 0:
            c = float(x @ e) / denom
            if abs(c) > 1e-12 and numpy.allclose(x, c * e, rtol=1e-6, atol=1e-12 * max(1.0, abs(c))):
                return (f"your answer is the expected one times {c:.6g}: a constant factor is missing or "
                        f"extra (a scale, a 1/n, or the upstream gradient).")
        return ""

    def consistent_with_own_forward(self, label: str, actual, loss, wrt, of: str = "forward") -> None:
        """When the learner's forward fails: only ask that `actual` (a backward's output) is the derivative of
        their own `loss` with respect to `wrt` (float64 finite differences at 12 entries), and note it."""
        a = self.array(label, actual)
        if a.shape != wrt.shape:
            raise CheckFailed(f"{label} has shape {a.shape}; expected {wrt.shape}.")
        idx = self._pick(a.size, 12)
        err = _rel_error(a.reshape(-1)[idx], self.finite_differences(loss, wrt, idx))
        if err >= FD_TOLERANCE:
            raise CheckFailed(f"{label} is not the derivative of your own {of} either (relative error {err:.2g}); "
                              f"your forward fails its checks above.",
                              "fix the forward first; the checks on minibert's cache grade the backward alone.")
        self.note(f"{label}: the derivative of your forward ({err:.0e})")

    def gradient(self, label: str, actual, expected, loss, wrt, *, candidates=(), hint: str = "",
                 shape_hint: str = "", forward_failed: bool = False, entries: int = 12) -> None:
        """A backward's output `actual` against minibert's `expected` and float64 finite differences.

        loss(): the scalar sum(forward(...) * dout) reading the array `wrt` (perturbed in place).
        If the comparison with minibert fails and the learner's forward is known to be wrong
        (forward_failed), a backward that matches the finite differences of that forward is told so.
        """
        a = self.array(label, actual)
        idx, numeric = None, None
        if a.shape == numpy.shape(expected) and numpy.all(numpy.isfinite(a)):
            idx = self._pick(a.size, entries)
            numeric = self.finite_differences(loss, wrt, idx)
        try:
            rel = self.compare(label, a, expected, candidates=candidates, hint=hint, shape_hint=shape_hint)
        except CheckFailed as failure:
            if forward_failed and numeric is not None and _rel_error(a.reshape(-1)[idx], numeric) < FD_TOLERANCE:
                raise CheckFailed(failure.message, "your backward is the exact derivative of *your* forward, "
                                  "which is not BERT's yet: fix the forward first, this will follow.") from None
            raise
        fd = _rel_error(a.reshape(-1)[idx], numeric) if numeric is not None else float("nan")
        if fd >= FD_TOLERANCE:
            raise CheckFailed(f"{label} agrees with minibert but not with finite differences of the forward "
                              f"(relative error {fd:.2g})", "fix the forward: the backward must differentiate it.")
        self.note(f"{label}: {rel:.0e} vs minibert, {fd:.0e} vs finite differences")

    def _pick(self, size: int, entries: int):
        return numpy.arange(size) if size <= entries else numpy.sort(self.rng.choice(size, entries, replace=False))

    def finite_differences(self, loss, x, indices, h: float = FD_STEP):
        """Central differences (L(x + h e_i) - L(x - h e_i)) / 2h at flat `indices` of x (in place)."""
        flat = x.reshape(-1)
        if not numpy.shares_memory(flat, x):
            raise ValueError("finite_differences needs a contiguous array")
        out = numpy.empty(len(indices))
        for n, i in enumerate(indices):
            old = float(flat[i])
            flat[i] = old + h
            plus = self._loss(loss)
            flat[i] = old - h
            minus = self._loss(loss)
            flat[i] = old
            out[n] = (plus - minus) / (2 * h)
        return out

    def _loss(self, loss) -> float:
        try:
            return float(loss())
        except (CheckFailed, _NotImplementedYet):
            raise
        except Exception:
            return float("nan")


def _rel_error(a, b) -> float:
    """max|a - b| / max(max|a|, max|b|, 1e-2): gradcheck's measure."""
    a = numpy.asarray(a, dtype=numpy.float64)
    b = numpy.asarray(b, dtype=numpy.float64)
    if not (numpy.all(numpy.isfinite(a)) and numpy.all(numpy.isfinite(b))):
        return float("inf")
    scale = max(float(numpy.max(numpy.abs(a), initial=0.0)), float(numpy.max(numpy.abs(b), initial=0.0)), 1e-2)
    return float(numpy.max(numpy.abs(a - b), initial=0.0) / scale)


# -- exercises ---------------------------------------------------------------------------------

GRADER_SEED_VARIABLE = "MINIBERT_GRADER_SEED"     # an instructor's seed: every random case changes with it


def grader_seed(seed: int | None = None) -> int:
    """The seed of the grader's random cases: `seed`, else $MINIBERT_GRADER_SEED, else 0."""
    if seed is not None:
        return int(seed)
    text = os.environ.get(GRADER_SEED_VARIABLE, "").strip()
    try:
        return int(text) if text else 0
    except ValueError:
        raise ValueError(f"${GRADER_SEED_VARIABLE} must be an integer, got {text!r}") from None


@dataclasses.dataclass(frozen=True)
class Question:
    """A written question of an exercise: `prompt` (markdown) is in the learner's notebook, followed by
    an answer cell; `answer` (markdown) is what a good answer says, for the solution page and the
    instructor, never in the workspace."""
    prompt: str
    answer: str


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One exercise: what to implement (minibert's own functions), how it is explained and checked.

    functions: minibert's functions the learner rewrites; their signatures and docstrings become the
        starter (one source of truth), and they are the reference the grader compares with.
    imports: lines at the top of the starter (what the learner may use).
    statement: markdown: what the function computes (the forward's definition), never the result to derive.
    hints: from a nudge to a pointer into the docs; they diagnose (which term, which axis, which symptom)
        and never hold code or the formula.
    check: check(t: Tester) -> None, the checks, written with the Tester's helpers.
    contracts: (function name, docstring) pairs: the docstring the learner's starter gets instead of
        minibert's own (which, as library documentation, states the result): the contract (inputs,
        outputs, shapes, what the cache holds) and the question to derive. A function without one
        keeps minibert's docstring.
    derivation: markdown: the derivation guided step by step (scalar case, then vectorised, then the
        shapes), ending in questions the learner answers on paper; the result itself is only on the
        solution page (docs/exercises/solutions/STEM.md).
    questions: written questions (Question), each with an answer cell in the notebook and in the
        `report` a learner hands in.
    sanity: (markdown, code) pairs: sanity-check cells of the notebook (e.g. the loss at initialisation
        against ln V, overfitting one batch) run on the learner's own functions.
    """
    number: int
    name: str
    title: str
    functions: tuple
    imports: str
    minutes: int
    assesses: str
    statement: str
    hints: tuple[str, ...]
    check: Callable
    docs: tuple[str, ...] = ()
    notebooks: tuple[str, ...] = ()
    contracts: tuple[tuple[str, str], ...] = ()
    derivation: str = ""
    questions: tuple[Question, ...] = ()
    sanity: tuple[tuple[str, str], ...] = ()

    def contract(self, name: str) -> str:
        """The docstring of the learner's starter for function `name` (see `contracts`)."""
        own = dict(self.contracts)
        if name in own:
            return own[name]
        return self.reference()[name].__doc__

    @property
    def stem(self) -> str:
        """File name stem in the workspace: 02_linear_backward."""
        return f"{self.number:02d}_{self.name}"

    @property
    def function_names(self) -> tuple[str, ...]:
        return tuple(f.__name__ for f in self.functions)

    def reference(self) -> dict[str, Callable]:
        return {f.__name__: f for f in self.functions}

    def grade(self, functions: dict[str, Callable] | None = None, *, timeout_s: float | None = DEFAULT_TIMEOUT_S,
              seed: int | None = None) -> ExerciseResult:
        """Run every check on `functions` (name -> callable); names not given are minibert's own.
        seed: of every random case (default: $MINIBERT_GRADER_SEED, else 0)."""
        seed = grader_seed(seed)
        reference = self.reference()
        given = dict(functions or {})
        unknown = set(given) - set(reference)
        if unknown:
            raise KeyError(f"exercise {self.name} has no function {sorted(unknown)}; it has {sorted(reference)}")
        chosen = {**reference, **given}
        t = Tester(chosen, reference, timeout_s=timeout_s, seed=seed)
        start = time.perf_counter()
        self.check(t)
        result = ExerciseResult(self.number, self.name, self.title, t.results, seconds=time.perf_counter() - start)
        own = [n for n, f in given.items() if f is reference[n]]
        if own:
            result.notes.append(f"{', '.join(own)} is minibert's own function, imported, not yours: "
                                f"this grade says nothing about your work.")
        return result
