"""``dockyard build --build``: hand the context to docker or podman, whichever is here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from dockyard.errors import UnavailableError

ENGINES = ("docker", "podman")


def build_image(folder: Path, tag: str, *, engines: tuple[str, ...] = ENGINES) -> str:
    """Build ``folder`` as ``tag`` with the first engine on the PATH; returns its name.
    Without one, or when it fails (a daemon not running), one line says so and how to
    build the context elsewhere; the context stays written."""
    found = next((engine for engine in engines if shutil.which(engine)), None)
    elsewhere = (
        f"The context is written: build it where an engine runs: docker build -t {tag} {folder}"
    )
    if found is None:
        raise UnavailableError(
            f"No container engine here ({' or '.join(engines)} not found on the PATH).",
            hint=elsewhere,
        )
    command = [found, "build", "-t", tag, str(folder)]
    if found == "podman":  # podman's default OCI format drops HEALTHCHECK
        command[2:2] = ["--format", "docker"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UnavailableError(f"{found} build failed: {last}", hint=elsewhere)
    return found
