"""The package keeps its layer order and has no import circles (docs/architecture.md).

The contracts live in pyproject.toml (``[tool.importlinter]``); this runs them the way
``lint-imports`` does, so a module that imports upward fails the suite, not only the linter.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_imports_keep_the_layer_order_and_have_no_circles() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--no-logo",
            str(ROOT / "pyproject.toml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module",
    [
        "dockyard.windows",
        "dockyard.stats",
        "dockyard.schema",
        "dockyard.schema.labels",
        "dockyard.runtimes",
        "dockyard.monitoring.records",
    ],
)
def test_the_lower_layers_are_cheap_to_import(module: str) -> None:
    """Every layer above may use the pure pieces (and serving the log's record types) without
    loading numpy, pandas or pyarrow."""
    heavy = ["numpy", "pandas", "pyarrow", "sqlalchemy", "duckdb", "scipy", "sklearn"]
    probe = (
        f"import sys, json, {module}\nprint(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


MAX_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    package = ROOT / "src" / "dockyard"
    long = {
        path.relative_to(package).as_posix(): lines
        for path in package.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
