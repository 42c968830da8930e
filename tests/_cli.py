"""The ``dockyard`` command as a user runs it: a fresh process over a registry folder, none of
the caller's ``DOCKYARD_*`` settings, a wide terminal (shared by the end-to-end tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


class CLI:
    """``dockyard`` over ``home`` as ``user``; ``env`` may be extended (cloud credentials)."""

    def __init__(self, home: Path, user: str = "cli-user") -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        self.env.update(DOCKYARD_HOME=str(home), DOCKYARD_USER=user, COLUMNS="200")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dockyard", *args]

    def __call__(
        self, *args: str, code: int = 0, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """Run ``dockyard ARGS``; assert its exit code is ``code`` and that it printed no
        traceback."""
        result = subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str, code: int) -> str:
        """Run a failing command; return its one error line."""
        result = self(*args, code=code)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: "), result.stderr
        return lines[0]


def run(
    home: Path, *args: str, code: int = 0, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard ARGS`` with ``home`` as its folder, as user ``tester``."""
    return CLI(home, "tester")(*args, code=code, timeout=timeout)
