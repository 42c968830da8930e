"""``scripts/stale-packages.py``, which ``make`` runs after each install: packages in the
environment that ``constraints.txt`` no longer lists are named in a warning (pip's ``-c``
never removes them), and nothing is said of an environment that matches the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stale-packages.py"


def _warning(constraints: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(constraints)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_packages_the_constraints_dropped_are_named(tmp_path: Path) -> None:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    dropped = [line for line in lines if line.startswith(("anyio==", "attrs=="))]
    assert len(dropped) == 2  # both are installed by make test
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(line for line in lines if line not in dropped) + "\n")

    done = _warning(constraints)

    assert done.returncode == 0  # a warning, never a failed install
    assert "no longer lists: anyio " in done.stderr
    assert ", attrs " in done.stderr
    assert "pip uninstall" in done.stderr


def test_an_environment_the_constraints_describe_gets_no_warning() -> None:
    done = _warning(ROOT / "constraints.txt")

    assert done.returncode == 0
    assert done.stderr == ""
