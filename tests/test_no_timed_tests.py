"""No test compares a measured time with a bound.

How long a test takes depends on the machine and on what else runs on it: a bound that holds on a
quiet machine fails on a busy one (notebook 05 once took 298 s against a 180 s budget) without
anything being wrong. Tests check behaviour; the times are measured and printed by the scripts in
benchmarks/ (`bench_notebooks.py` for the notebooks).

Read with `ast`, without running anything, like tests/test_architecture.py. A *clock* is a call of
`time.time`, `time.perf_counter`, `time.monotonic`, `time.process_time` (or their `_ns` forms),
`timeit`'s functions, `datetime.now`/`utcnow`, however imported. A name assigned from an expression
that holds a clock, or a name already counted (`start = time.perf_counter()`, `seconds = ... - start`,
`deadline = time.time() + 240`), is a *measured time*. Flagged:

- an ordering comparison (`<`, `<=`, `>`, `>=`) with a clock or a measured time on either side,
  wherever it stands: `assert seconds < 180`, `while time.time() < deadline`, `if elapsed > limit`;
- `pytest.mark.timeout(...)`, a whole test's time budget.

Measuring and printing a time is fine, and so is a hang guard handed to a tool (`timeout=` of
`subprocess.run` or of nbclient): it stops a test that would never end, it is not what is tested.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CLOCKS = {
    "time": {"time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "process_time",
             "process_time_ns", "thread_time", "thread_time_ns"},
    "timeit": {"default_timer", "timeit", "repeat"},
    "datetime": {"now", "utcnow", "today"},
}
ORDERINGS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _clock_aliases(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names bound to a clock module: `time`, `import time as t`, `datetime` the class too;
    names bound to a clock function: `from time import perf_counter as pc`)."""
    modules, functions = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in CLOCKS:
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module in CLOCKS:
            for alias in node.names:
                if alias.name in CLOCKS[node.module]:
                    functions.add(alias.asname or alias.name)
                elif node.module == "datetime" and alias.name == "datetime":
                    modules.add(alias.asname or alias.name)          # datetime.now()
    return modules, functions


def _is_clock(node: ast.AST, modules: set[str], functions: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id in functions
    if isinstance(func, ast.Attribute):
        base = func.value
        while isinstance(base, ast.Attribute):                       # datetime.datetime.now()
            base = base.value
        known = set().union(*CLOCKS.values())
        return isinstance(base, ast.Name) and base.id in modules and func.attr in known
    return False


def _measures(node: ast.AST, measured: set[str], modules: set[str], functions: set[str]) -> bool:
    """Whether the expression holds a clock call or a measured time."""
    return any(_is_clock(n, modules, functions) or (isinstance(n, ast.Name) and n.id in measured)
               for n in ast.walk(node))


def _targets(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
        targets = [node.target]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def timed_comparisons(source: str, filename: str = "<test>") -> list[str]:
    """`file:line: code` for each comparison of a measured time with a bound, and each timeout mark."""
    tree = ast.parse(source, filename)
    modules, functions = _clock_aliases(tree)
    measured: set[str] = set()
    assignments = [n for n in ast.walk(tree) if _targets(n) and getattr(n, "value", None) is not None]
    while True:                                   # names assigned from clocks, then from those names, ...
        grown = {name for n in assignments if _measures(n.value, measured, modules, functions)
                 for name in _targets(n)}
        if grown <= measured:
            break
        measured |= grown
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ORDERINGS) for op in node.ops):
            if _measures(node, measured, modules, functions):
                found.append(node)
        elif isinstance(node, ast.Attribute) and node.attr == "timeout" and ast.unparse(node.value) == "pytest.mark":
            found.append(node)
    return [f"{filename}:{n.lineno}: {ast.unparse(n)}" for n in sorted(found, key=lambda n: n.lineno)]


def test_no_test_compares_a_measured_time_with_a_bound():
    found = [line for path in sorted(TESTS.rglob("*.py"))
             for line in timed_comparisons(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent)))]
    assert not found, ("a test compares a measured time with a bound; check the behaviour instead and measure "
                       "the time in benchmarks/:\n" + "\n".join(found))


# -- the checker, tested to fail: planted examples ----------------------------------------------------

@pytest.mark.parametrize("source", [
    # the notebook budget this test replaces
    """
    import time
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    assert seconds < BUDGET_S, "over budget"
    """,
    # a deadline loop, another spelling of the import, a bound on the left
    """
    from time import monotonic as clock
    deadline = clock() + 240
    while clock() < deadline and proc.poll() is None:
        pass
    """,
    """
    import time as t
    def test_fast():
        t0 = t.time()
        run()
        elapsed = t.time() - t0
        total = elapsed
        assert 10 >= total
    """,
    """
    import timeit
    assert timeit.timeit(f, number=3) <= 1.0
    """,
    """
    from datetime import datetime
    began = datetime.now()
    assert (datetime.now() - began).total_seconds() < 5
    """,
    """
    import pytest
    @pytest.mark.timeout(60)
    def test_quick():
        pass
    """,
])
def test_the_checker_finds_a_planted_timed_assertion(source):
    assert timed_comparisons(textwrap.dedent(source)), "a planted timed assertion went unnoticed"


def test_the_checker_leaves_measuring_printing_and_hang_guards_alone():
    source = """
    import subprocess, sys, time
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "pass"], timeout=300)        # a hang guard
    seconds = time.perf_counter() - start
    print(f"took {seconds:.1f} s")
    assert r.returncode == 0 and len(r.stdout or "") < 1000                 # a comparison, but of no time
    times = {"a": 1}
    assert times["a"] >= 1
    """
    assert timed_comparisons(textwrap.dedent(source)) == []
