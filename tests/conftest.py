"""Real services for the test session: a throwaway PostgreSQL cluster and an S3-compatible
server (moto in server mode), each started once, on loopback, and torn down at the end.

Nothing here is skipped when a service is missing: the test fails and says how to get it
(``make test`` installs PostgreSQL; moto comes with the dev extra).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _server import ServerProcess
from dockyard.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(f"PostgreSQL's {name} is not installed; run `make test` (it installs it).")
    return found[-1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster of our own; yields a base URL without a database name."""
    root = Path(tempfile.mkdtemp(prefix="dockyard-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run(
        [
            *as_user,
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for one test (which must carry the ``postgres`` marker, so
    ``-m "not postgres"`` leaves it out)."""
    import sqlalchemy as sa

    if request.node.get_closest_marker("postgres") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL without the postgres marker")

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return f"{postgres_server}/{name}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3-compatible server on loopback; yields its endpoint URL."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, object]]:
    """A fresh bucket; returns (s3 URL, fsspec storage options)."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    options: dict[str, object] = {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": s3_server, "region_name": "us-east-1"},
    }
    return f"s3://{bucket}/artifacts", options


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", user="tester")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Registry settings on each metadata backend, with a real artifact folder (the
    PostgreSQL case carries the ``postgres`` marker)."""
    if request.param == "sqlite":
        return Settings(home=tmp_path / "home", user="tester")
    url = request.getfixturevalue("postgres_url")
    return Settings(home=tmp_path / "home", database_url=url, user="tester")


# Markers from the services a test uses, so ``-m "not postgres"`` deselects every test that
# would start the PostgreSQL cluster and ``-m "not s3"`` every one that would start moto,
# without each test remembering to say so. End-to-end tests (``tests/e2e``: ``dockyard
# serve`` and CLI processes) and any test starting a server with ``start_server`` are
# ``slow``: ``-m "not postgres and not slow"`` is the inner loop (README, Development).
_SERVICE_MARKERS = {"postgres_server": "postgres", "s3_server": "s3", "start_server": "slow"}
_END_TO_END = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = getattr(item, "fixturenames", ())
        wanted = {marker for fixture, marker in _SERVICE_MARKERS.items() if fixture in used}
        if item.path.is_relative_to(_END_TO_END):
            wanted.add("slow")
        for marker in wanted:
            if item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Dockyard settings or home folder."""
    for key in list(os.environ):
        if key.startswith("DOCKYARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path / "default-home"))


# --- a real ``dockyard serve`` process on loopback (end-to-end and attack tests) ----------


@pytest.fixture
def start_server() -> Iterator[Any]:
    """Start ``dockyard serve`` processes; every one is stopped when the test ends."""
    started: list[ServerProcess] = []

    def start(home: Path, *args: str, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(home, args=args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
