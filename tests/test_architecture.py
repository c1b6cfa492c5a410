"""The whole package's rules, read from its source: every import goes down the layer order, no import cycle,
no function-local import of a minibert module (ast), and no pickle anywhere.

    backend <- ops <- model <- data, tokenization <- train <- apps, viz <- cli

A module may import from its own layer or any layer below it. `minibert/errors.py`, `minibert/checks.py` and
`minibert/files.py` sit at the bottom with the backend (every layer raises its errors, declares its settings' ranges
and writes its files atomically); a `__main__.py` (an entry point) is in the cli layer; the
package's own `__init__.py`, the public face that re-exports from every layer, is outside the order.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers import REPO

PACKAGE = REPO / "minibert"
LAYERS = {
    "backend": 0, "errors": 0, "checks": 0, "files": 0,
    "ops": 1,
    "model": 2,
    "data": 3, "tokenization": 3, "pretraining": 3,      # pretraining/: the old path of data/pretraining
    "train": 4,
    "apps": 5, "viz": 5, "gradcheck": 5, "exercises": 5,
    "cli": 6, "__main__": 6,
}
ORDER = "backend <- ops <- model <- data/tokenization <- train <- apps/viz <- cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str):
    """The layer of a minibert module (None for the package itself)."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return LAYERS["cli"]                          # `python -m minibert.exercises`: an entry point, as cli/
    return LAYERS[parts[1]] if len(parts) > 1 else None


def resolve(module: str, names=()) -> list[str]:
    """The minibert modules an import statement loads: `from minibert import backend` loads minibert.backend."""
    found = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES]
    return found if found and len(found) == len(names) else [module] + found


def imports(path: Path, local_only=False) -> list[tuple[int, str]]:
    """(line, minibert module) of every import in a file; local_only: only those inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] if local_only \
        else [tree]
    seen = set()
    out = []
    for scope in scopes:
        for node in ast.walk(scope):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ast.Import):
                out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "minibert"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "minibert":
                out += [(node.lineno, m) for m in resolve(node.module, [a.name for a in node.names])]
    return out


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "minibert" and m.split(".")[1] not in LAYERS] == []


def test_imports_follow_the_layer_order():
    wrong = []
    for module, path in MODULES.items():
        here = layer(module)
        if here is None:
            continue                                   # minibert/__init__.py: the public face
        for line, target in imports(path):
            there = layer(target)
            if there is None:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports the package face `minibert` "
                             f"(import the module that defines the name)")
            elif there > here:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({module.split('.')[1]}) imports {target} "
                             f"({target.split('.')[1]}), a higher layer")
    assert wrong == [], f"the layer order is {ORDER}:\n" + "\n".join(wrong)


def test_no_import_cycle():
    graph = {m: {t for _, t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    for m in graph:                                   # a package's __init__ re-exporting its own modules
        graph[m] = {t for t in graph[m] if not (m.count(".") < t.count(".") and t.startswith(m + "."))}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


def test_no_function_local_import_of_minibert():
    local = [f"{p.relative_to(REPO)}:{line} imports {target} inside a function"
             for p in MODULES.values() for line, target in imports(p, local_only=True)]
    assert local == [], "imports go at the top of the module:\n" + "\n".join(local)


@pytest.mark.parametrize("source, expected", [
    ("from minibert.train.loop import TrainingLoop\n", ["minibert.train.loop"]),
    ("from minibert import backend\n", ["minibert.backend"]),
    ("def f():\n    from minibert.viz import plot_run\n", ["minibert.viz"]),
])
def test_the_reader_sees_imports(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert [t for _, t in imports(path)] == expected
    assert [t for _, t in imports(path, local_only=True)] == (expected if source.startswith("def") else [])


def test_no_pickle_anywhere_in_the_library():
    """No pickle is ever loaded from a file: no pickle module, no torch.load, and every np.load
    says allow_pickle=False."""
    bad = []
    for path in (REPO / "minibert").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"import pickle|from pickle|torch\.load|allow_pickle=True", line) or \
                    (re.search(r"\bn(p|umpy)\.load\(", line) and "allow_pickle=False" not in line):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bad, bad
