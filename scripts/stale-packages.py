"""Warn about packages in this environment that the constraints file no longer lists.

``pip install -c constraints.txt`` adds and upgrades, but never removes: a package an
earlier ``constraints.txt`` brought in stays in ``.venv`` after the file drops it, and can
change what the code does (uvicorn imports ``websockets`` and ``watchfiles`` whenever they
are installed: memory in every server process, which ``benchmarks/start.py`` measures).
A package something installs that the file does not pin shows here too. Run by ``make``
after each install; it only warns (a package the user added on purpose is theirs to keep)
and always exits 0.

Run:  .venv/bin/python scripts/stale-packages.py constraints.txt
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

KEPT = frozenset({"dockyard", "pip", "setuptools", "wheel", "torch"})
"""Installed outside the constraints on purpose: the project itself (editable), the
installer, and the CPU build of PyTorch (``make test``'s own pin)."""


def normalized(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def stale(constraints: str, installed: dict[str, str]) -> list[str]:
    """``name version`` of each installed distribution that ``constraints`` (the file's
    text) does not list and that is not :data:`KEPT`, by name."""
    listed = {
        normalized(re.split(r"[=<>!~ ;\[]", line.strip(), maxsplit=1)[0])
        for line in constraints.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    return [
        f"{name} {installed[name]}"
        for name in sorted(installed)
        if name not in listed and name not in KEPT
    ]


def main(path: str) -> None:
    installed = {normalized(d.metadata["Name"]): d.version for d in distributions()}
    found = stale(Path(path).read_text(), installed)
    if found:
        print(
            f"make: {sys.prefix} has packages {path} no longer lists: {', '.join(found)}. "
            f"They may change what runs (uvicorn imports websockets when present); remove "
            f"them with {sys.prefix}/bin/pip uninstall, or start over with make clean.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main(sys.argv[1])
