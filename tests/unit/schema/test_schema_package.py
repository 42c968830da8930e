"""The package's public surface and its purity (no I/O or model libraries imported)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import dockyard.schema

PACKAGE = Path(dockyard.schema.__file__).parent
ALLOWED_ROOTS = {
    *("__future__", "collections", "dataclasses", "datetime", "hashlib", "json", "math"),
    *("importlib", "itertools", "operator", "pathlib", "sys", "types", "typing", "warnings"),
    *("numpy", "pandas", "dockyard"),
}


def test_all_lists_exactly_the_public_names() -> None:
    """Each name resolves: the package loads its modules on first use."""
    assert sorted(dir(dockyard.schema)) == sorted(set(dockyard.schema.__all__))
    for name in dockyard.schema.__all__:
        value = getattr(dockyard.schema, name)
        assert not isinstance(value, ModuleType), name


def test_schema_imports_no_io_or_model_library() -> None:
    roots: dict[str, set[str]] = {}
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                roots.setdefault(name.split(".")[0], set()).add(module.name)
    # a calibration is fitted with scikit-learn's isotonic regression, imported in the fit
    assert roots.pop("sklearn", set()) <= {"calibration.py"}
    assert set(roots) <= ALLOWED_ROOTS, {r: m for r, m in roots.items() if r not in ALLOWED_ROOTS}
    dockyard_modules = {
        node.module
        for module in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dockyard")
    }
    assert {m for m in dockyard_modules if not m.startswith("dockyard.schema")} == {
        "dockyard.errors",
    }
