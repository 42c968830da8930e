"""A 500 said "it has been logged" and was logged nowhere; and three inputs that were a
user's mistake answered 500: a bad value to a model without a signature, an
``Inference-Header-Content-Length`` of 5,000 digits or with a non-ASCII byte, and drift for a
version with no data (``IndexError``, and the keep-alive connection dropped).

Each of those inputs now gets its 4xx; every 500 is logged once, with its request id and the
traceback, on one JSON line with ``--log-format json``; and the reply's request id is the
log line's.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from _server import ServerProcess
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings

ROW = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.01}
BUG = "the model's own bug"


@dataclass
class Failing:
    server: ServerProcess
    home: Path


def _registry(home: Path) -> None:
    """``diabetes`` (a signature), ``plain`` (the same model, no signature) and ``crash`` (a
    trusted model whose ``predict`` always raises), each deployed under its name."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    class Crashing:  # defined here: pickled by value, so the server can load it
        def predict(self, X: Any) -> Any:
            raise RuntimeError(BUG)

    data = load_diabetes(as_frame=True)
    model = Ridge().fit(data.data, data.target)
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "diabetes", sample=data.data, accelerate=False)
        registry.register(model, "plain", accelerate=False)
        registry.register(Crashing(), "crash", trusted=True)
        store = DeploymentStore(registry.db)
        for name in ("diabetes", "plain", "crash"):
            spec = DeploymentSpec.parse({"routes": [{"model": f"{name}@1.0.0"}]})
            store.put(name, spec, actor="tester")


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("errors") / "registry"
    _registry(home)
    return home


@pytest.fixture(scope="module")
def failing(registry_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failing]:
    home = tmp_path_factory.mktemp("errors-json") / "home"
    shutil.copytree(registry_home, home)
    server = ServerProcess(
        home, args=("--log-format", "json"), env={"DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.1"}
    )
    try:
        server.wait_ready()
        yield Failing(server, home)
    finally:
        server.stop()


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["error"], str)
    return body


def _v2(data: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, len(data)], "datatype": datatype, "data": data}]}


def test_a_bad_value_to_a_model_without_a_signature_is_a_400(failing: Failing) -> None:
    url = failing.server.url
    bad = [
        ("/v1/endpoints/plain/predict", {"instances": [{**ROW, "age": "abc"}]}),
        ("/v1/endpoints/plain/predict", {"inputs": {"age": [1.0, 2.0], "sex": [1.0]}}),
        ("/v1/endpoints/plain/predict", {"instances": [{"age": 1.0}]}),
        ("/v2/models/plain/infer", _v2(["abc"] * 10, "BYTES")),
    ]
    for path, payload in bad:
        body = _assert_error(httpx.post(f"{url}{path}", json=payload), 400, "invalid_request")
        assert "plain@1.0.0" in body["error"], body
        assert "no signature" in body["error"], body
    good = httpx.post(f"{url}/v1/endpoints/plain/predict", json={"instances": [ROW]})
    assert good.status_code == 200, good.text


@pytest.mark.parametrize(
    "value",
    [b"9" * 5000, b"1\xb2", "\u00b2".encode("latin-1"), b"-1", b"12 34", b"0x10"],
    ids=["5000 digits", "non-ascii byte", "superscript two", "negative", "space", "hex"],
)
def test_a_malformed_binary_header_length_is_a_400(failing: Failing, value: bytes) -> None:
    response = httpx.post(
        f"{failing.server.url}/v2/models/diabetes/infer",
        content=orjson.dumps(_v2([*ROW.values()])),
        headers={"inference-header-content-length": value},
    )
    body = _assert_error(response, 400, "invalid_request")
    assert "Inference-Header-Content-Length" in body["error"]


def _wait_for_logged(url: str, rows: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/api/monitoring/log").json()["written"] >= rows:
            return
        time.sleep(0.1)
    raise AssertionError("the prediction log never wrote the rows")


def test_drift_for_a_version_with_no_data_is_a_404_on_a_live_connection(
    failing: Failing,
) -> None:
    url = failing.server.url
    for _ in range(5):
        httpx.post(f"{url}/v1/endpoints/diabetes/predict", json={"instances": [ROW]})
    _wait_for_logged(url, 5)
    # the log's count includes earlier tests' rows: wait for this endpoint's own
    deadline = time.monotonic() + 30
    drift = f"{url}/api/monitoring/diabetes/drift"
    while httpx.get(drift).json()["window"]["rows"] < 5:
        assert time.monotonic() < deadline, "the diabetes rows never reached the log"
        time.sleep(0.1)
    response = httpx.get(f"{url}/api/monitoring/diabetes/drift", params={"version": "9.9.9"})
    body = _assert_error(response, 404, "not_found")
    assert "9.9.9" in body["error"]
    assert "1.0.0" in body["error"]  # the versions it did log
    # the same connection answers the next request
    requests = (
        b"GET /api/monitoring/diabetes/drift?version=9.9.9 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", failing.server.port), timeout=30) as sock:
        sock.sendall(requests)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b'{"live":true}'):
            chunk = sock.recv(65536)
            assert chunk, f"the connection was closed: {received!r}"
            received += chunk
    assert received.startswith(b"HTTP/1.1 404")


def _log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """The JSON lines of the server's output (its stdout, the banner, shares the file); no
    traceback spills over lines."""
    lines = []
    for line in server.log.read_text().splitlines():
        assert not line.startswith(("Traceback", "  File ")), line
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _logged(server: ServerProcess, request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [line for line in _log_lines(server) if line.get("request_id") == request_id]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} was never logged:\n{server.log.read_text()}")


@pytest.mark.parametrize(
    ("path", "payload", "sent_id"),
    [
        ("/v1/endpoints/crash/predict", {"instances": [ROW]}, None),
        ("/v1/endpoints/crash/predict", {"instances": [ROW]}, "trace-me-0001"),
        ("/v2/models/crash/infer", _v2([*ROW.values()]), None),
    ],
    ids=["v1", "v1 with a request id", "v2"],
)
def test_a_crash_is_logged_once_with_the_request_id_of_its_reply(
    failing: Failing, path: str, payload: dict[str, Any], sent_id: str | None
) -> None:
    headers = {"x-request-id": sent_id} if sent_id else {}
    response = httpx.post(f"{failing.server.url}{path}", json=payload, headers=headers)
    body = _assert_error(response, 500, "internal")
    request_id = body["request_id"]
    assert request_id == (sent_id or request_id)
    assert response.headers["x-request-id"] == request_id
    assert BUG not in response.text
    assert "Traceback" not in response.text
    (line,) = _logged(failing.server, request_id)  # once: not again by uvicorn
    assert line["level"] == "error"
    assert request_id in line["message"]
    assert "Traceback" in line["exception"]
    assert f"RuntimeError: {BUG}" in line["exception"]


def test_the_text_log_has_the_crash_and_its_request_id(
    registry_home: Path, tmp_path: Path, start_server: Any
) -> None:
    home = tmp_path / "home"
    shutil.copytree(registry_home, home)
    server = start_server(home)
    server.wait_ready()
    response = httpx.post(f"{server.url}/v1/endpoints/crash/predict", json={"instances": [ROW]})
    request_id = _assert_error(response, 500, "internal")["request_id"]
    deadline = time.monotonic() + 30
    while f"request {request_id} failed" not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.1)
    log = server.log.read_text()
    assert f"RuntimeError: {BUG}" in log
    assert log.count(request_id) == 1
