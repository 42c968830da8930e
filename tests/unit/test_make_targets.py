"""`make demo` installs the runtime and the demo's extra only; `make test` the CPU torch."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _dry_run(target: str, tmp_path: Path) -> str:
    """What ``make`` would run for ``target`` on a machine without the virtualenv."""
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_make_demo_installs_the_runtime_and_the_demo_extra_only(tmp_path: Path) -> None:
    commands = _dry_run("demo", tmp_path)
    installs = [line for line in commands.splitlines() if "pip install" in line]
    assert any('-e ".[demo]"' in line for line in installs), installs
    assert "[dev]" not in commands
    assert "torch" not in commands


def test_make_test_pins_the_cpu_build_of_torch(tmp_path: Path) -> None:
    commands = _dry_run("test", tmp_path)
    assert re.search(r'"torch==[\d.]+\+cpu"', commands), commands
    assert '-e ".[dev]"' in commands


def _distribution(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_demo_extra_covers_every_package_the_demo_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_distribution(r) for r in project["dependencies"]}
    for requirement in project["optional-dependencies"]["demo"]:
        name = _distribution(requirement)
        if name == "dockyard":  # dockyard[lightgbm]: that extra's requirements
            extras = re.findall(r"\[(.*)\]", requirement)[0].split(",")
            for extra in extras:
                declared |= {_distribution(r) for r in project["optional-dependencies"][extra]}
        else:
            declared.add(name)
    tree = ast.parse((ROOT / "src/dockyard/demo.py").read_text())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    owners = packages_distributions()
    for module in sorted(modules - {"dockyard", "__future__"}):
        if module not in owners:  # the standard library
            continue
        assert any(d.lower().replace("_", "-") in declared for d in owners[module]), module
