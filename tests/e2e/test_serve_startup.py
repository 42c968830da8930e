"""How ``dockyard serve`` and the demo start (issue 13, item 20): the port is bound before
anything loads, so a busy one fails at once with one line naming it and how to choose
another, and the banner is printed only once the server answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Zoo

BANNER = "Dockyard serving 1 endpoint(s) on"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return env | {"DOCKYARD_HOME": str(home), "COLUMNS": "200"}


def test_a_busy_port_fails_before_any_model_loads(zoo: Zoo, tmp_path: Path, busy_port: int) -> None:
    home = zoo.deploy(tmp_path / "home", {"cancer": "cancer@1.0.0"}).home
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--port", str(busy_port)],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 7, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"Port {busy_port}" in lines[0]
    assert "--port" in lines[0]
    assert "startup" not in result.stdout + result.stderr  # the app (and its models): never
    assert BANNER not in result.stdout


def test_the_banner_follows_the_first_answer(zoo: Zoo, tmp_path: Path, start_server: Any) -> None:
    home = zoo.deploy(tmp_path / "home", {"cancer": "cancer@1.0.0"}).home
    server = start_server(home)
    deadline = time.monotonic() + 120
    while BANNER not in server.log.read_text():
        assert server.process.poll() is None, server.log.read_text()
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.05)
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # answering when announced
    log = server.log.read_text()
    assert log.index("Application startup complete") < log.index(BANNER)
    assert f"{server.url}/v1/endpoints/cancer/predict" in log


def test_the_demo_stops_at_a_busy_port_and_names_the_setting(
    tmp_path: Path, busy_port: int
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.demo"],
        env=_env(tmp_path / "demo") | {"DOCKYARD_DEMO_PORT": str(busy_port)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"Port {busy_port}" in result.stdout
    assert "DOCKYARD_DEMO_PORT=" in result.stdout
    assert "registered" not in result.stdout  # nothing was trained first
