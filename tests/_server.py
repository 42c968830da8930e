"""A real ``dockyard serve`` process on loopback, over a real registry folder (shared by the
end-to-end and the attack tests; ``tests/`` is on ``sys.path`` as the root conftest's folder)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m dockyard serve`` in a subprocess; stopped with SIGTERM."""

    def __init__(
        self,
        home: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        trust: ssl.SSLContext | None = None,
    ):
        """``trust``: the server speaks TLS (``args`` carry its certificate), and clients
        here verify it with this context."""
        self.home = home
        self.port = free_port()
        self.trust = trust
        self.url = f"{'https' if trust else 'http'}://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        self.env.update(
            DOCKYARD_HOME=str(home), DOCKYARD_USER="server", DOCKYARD_POLL_INTERVAL_S="0.2"
        )
        self.env.update(env or {})
        self.log = home / f"server-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dockyard", "serve", "--port", str(self.port), *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=1, verify=self.trust or True)
                if ready.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def mapped_libraries(pid: int) -> set[str]:
    """The shared libraries process ``pid`` has mapped (from ``/proc/PID/maps``)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {line.split()[-1] for line in maps.splitlines() if ".so" in line}
