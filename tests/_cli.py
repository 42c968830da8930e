"""The ``dockyard`` command as a user runs it: a fresh process over a registry folder, none of
the caller's ``DOCKYARD_*`` settings, a wide terminal (shared by the end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard ARGS`` with ``home`` as its folder; assert its exit code is ``code`` and
    that it printed no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_USER="tester", COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result
