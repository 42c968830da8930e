"""The package's public surface and its purity (no I/O or model libraries imported)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import dockyard.schema

PACKAGE = Path(dockyard.schema.__file__).parent
ALLOWED_ROOTS = {
    *("__future__", "collections", "dataclasses", "datetime", "hashlib", "json", "math"),
    *("pathlib", "typing", "warnings", "numpy", "pandas", "dockyard"),
}


def test_all_lists_exactly_the_public_names() -> None:
    exported = {
        name
        for name, value in vars(dockyard.schema).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert set(dockyard.schema.__all__) == exported
    assert len(dockyard.schema.__all__) == len(exported)


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
    assert set(roots) <= ALLOWED_ROOTS, {r: m for r, m in roots.items() if r not in ALLOWED_ROOTS}
    dockyard_modules = {
        node.module
        for module in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dockyard")
    }
    assert {m for m in dockyard_modules if not m.startswith("dockyard.schema")} == {
        "dockyard.errors",
        "dockyard.runtimes.base",
    }
