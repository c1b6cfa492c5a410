"""CuPy is imported in one place: minibert/backend/ (every other module asks the backend)."""
import ast

from helpers import REPO

PACKAGE = REPO / "minibert"


def _imported_modules(path):
    """Every module name an import statement in this file names, function-local imports included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_no_module_outside_backend_imports_cupy():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = [m for m in _imported_modules(path) if m.split(".")[0] in ("cupy", "cupyx")]
        if names:
            found[str(path.relative_to(PACKAGE))] = names
    assert found, "the scan found no CuPy import at all: it looks in the wrong place"
    outside = {p: names for p, names in found.items() if not p.startswith("backend/")}
    assert not outside, f"CuPy imported outside minibert/backend/: {outside}"
