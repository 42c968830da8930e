"""HAProxy (Debian's package; ``scripts/ensure-haproxy.sh``) on loopback in front of
``dockyard serve`` replicas, with a configuration written for the test: round robin, an
active health check on ``/readyz``, retries on another replica when one refuses or drops
a connection, and an ``x-replica`` response header naming the replica that answered (``r0``,
``r1``, ... in the order of the backends). Shared by the replica tests and
``benchmarks/replicas.py``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-keep-alive
    option http-buffer-request
frontend dockyard
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
    http-response set-header x-replica %[srv_name]
{servers}
"""


def _haproxy() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise RuntimeError("HAProxy is not installed; run `make test` (scripts/ensure-haproxy.sh).")
    return found


class Balancer:
    """One HAProxy process; ``stop()`` ends it."""

    def __init__(self, folder: Path, port: int, backends: Sequence[int]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        servers = "\n".join(
            f"    server r{i} 127.0.0.1:{backend} check" for i, backend in enumerate(backends)
        )
        self.config = folder / "haproxy.cfg"
        self.config.write_text(CONFIG.format(port=port, servers=servers))
        self.log = folder / "haproxy.log"
        subprocess.run([_haproxy(), "-c", "-q", "-f", str(self.config)], check=True)
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [_haproxy(), "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log.read_text()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy does not listen:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
