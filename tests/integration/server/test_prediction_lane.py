"""The prediction lane (``connections.LaneRequest``): under ``dockyard serve`` a prediction is
answered by the HTTP protocol itself, with no ASGI cycle, and every other request by uvicorn's
ASGI cycle. A prediction whose target has a query string goes through ASGI too, so each
answer here is compared with that path's, on a real server: the same status, headers and
body, for answers and refusals alike. Then what a protocol owes a client, over raw sockets:
pipelined requests answered whole and in order whichever way each goes, HTTP/1.0 and
``Connection: close`` closed after their answer, ``Expect: 100-continue`` answered before the
body is sent, a body in pieces or in chunks.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from _server import ServerProcess
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings

pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)

ROW = [0.5, -1.0, 2.0]
V1 = json.dumps({"instances": [ROW]}).encode()
V2 = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]}
).encode()
REQUEST_ID = {"x-request-id": "lane-test"}  # both paths echo it: their bodies compare whole


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A logistic regression of three features (with a signature) deployed as ``lr``."""
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("lane")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "lr", sample=X, y=y, accelerate=False)
        spec = DeploymentSpec.parse({"routes": [{"model": "lr@1.0.0"}]})
        DeploymentStore(registry.db).put("lr", spec, actor="tester")
    process = ServerProcess(home)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


CASES = {
    "v1 answer": ("/v1/endpoints/lr/predict", V1),
    "v2 answer": ("/v2/models/lr/infer", V2),
    "v2 by version": ("/v2/models/lr/versions/1.0.0/infer", V2),
    "v1 not JSON": ("/v1/endpoints/lr/predict", b"{not json"),
    "v1 wrong width": ("/v1/endpoints/lr/predict", json.dumps({"instances": [[1.0]]}).encode()),
    "v2 no inputs": ("/v2/models/lr/infer", b'{"inputs": []}'),
    "v1 unknown endpoint": ("/v1/endpoints/none/predict", V1),
    "v2 unknown version": ("/v2/models/lr/versions/9.9.9/infer", V2),
}


@pytest.mark.parametrize("case", CASES)
def test_the_lane_answers_as_the_asgi_path_does(server: ServerProcess, case: str) -> None:
    path, body = CASES[case]
    with httpx.Client(base_url=server.url, timeout=30.0, headers=REQUEST_ID) as client:
        lane = client.post(path, content=body)
        asgi = client.post(path, content=body, params={"via": "asgi"})

    assert lane.status_code == asgi.status_code, (lane.text, asgi.text)
    assert lane.content == asgi.content
    assert lane.headers.multi_items() == asgi.headers.multi_items()
    if lane.status_code >= 400:
        assert {"error", "code", "details", "request_id"} <= lane.json().keys()


def _request(path: str, body: bytes, version: str = "1.1", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _answers(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` whole answers read from ``sock``: (head, body) each, by content-length."""
    received, answers = b"", []
    while len(answers) < count:
        end = received.find(b"\r\n\r\n")
        if end >= 0:
            head = received[:end]
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(received) >= end + 4 + length:
                answers.append((head, received[end + 4 : end + 4 + length]))
                received = received[end + 4 + length :]
                continue
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(answers)} answers: {received[:300]!r}"
        received += chunk
    return answers


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _closed(sock: socket.socket) -> bool:
    """Whether the server closes the connection (it sends nothing more)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_pipelined_requests_are_answered_in_order_whichever_way_each_goes(
    server: ServerProcess,
) -> None:
    requests = [
        _request("/v1/endpoints/lr/predict", V1),  # the lane
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",  # ASGI
        _request("/v2/models/lr/infer", V2),  # the lane, behind an ASGI answer
        _request("/v2/models/lr/infer?via=asgi", V2),  # ASGI, behind the lane
        _request("/v1/endpoints/lr/predict", b"{not json"),  # the lane's 400
        _request("/v1/endpoints/lr/predict", V1),
    ]
    with _connect(server) as sock:
        sock.sendall(b"".join(requests))
        answers = _answers(sock, len(requests))

    assert [_status(head) for head, _ in answers] == [200, 200, 200, 200, 400, 200]
    assert "predictions" in json.loads(answers[0][1])
    assert json.loads(answers[1][1]) == {"live": True}
    lane, asgi = (json.loads(body) for _, body in answers[2:4])
    assert lane["outputs"] == asgi["outputs"]
    assert json.loads(answers[4][1])["code"] == "invalid_request"
    assert json.loads(answers[5][1])["predictions"] == json.loads(answers[0][1])["predictions"]


@pytest.mark.parametrize(
    ("version", "extra"), [("1.0", ""), ("1.1", "Connection: close\r\n")], ids=["1.0", "close"]
)
def test_a_prediction_that_asks_to_close_is_answered_then_closed(
    server: ServerProcess, version: str, extra: str
) -> None:
    with _connect(server) as sock:
        sock.sendall(_request("/v1/endpoints/lr/predict", V1, version, extra))
        [(head, body)] = _answers(sock, 1)
        assert _closed(sock)

    assert _status(head) == 200
    assert b"connection: close" in head.lower()
    assert "predictions" in json.loads(body)


def test_a_kept_alive_prediction_keeps_its_connection(server: ServerProcess) -> None:
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(_request("/v2/models/lr/infer", V2))
            [(head, _)] = _answers(sock, 1)
            assert _status(head) == 200
            assert b"connection: close" not in head.lower()


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: ServerProcess) -> None:
    request = _request("/v1/endpoints/lr/predict", V1, extra="Expect: 100-continue\r\n")
    head, body = request[: -len(V1)], V1
    with _connect(server) as sock:
        sock.sendall(head)
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            assert chunk, interim
            interim += chunk
        sock.sendall(body)
        [(final, answer)] = _answers(sock, 1)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert _status(final) == 200
    assert "predictions" in json.loads(answer)


def test_a_body_in_pieces_or_in_chunks_is_read_whole(server: ServerProcess) -> None:
    request = _request("/v2/models/lr/infer", V2)
    chunked = (
        b"POST /v2/models/lr/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (V2[:10], V2[10:]))
        + b"0\r\n\r\n"
    )
    with _connect(server) as sock:
        for cut in (len(request) - len(V2) - 2, len(request) - 5):  # in the headers, the body
            sock.sendall(request[:cut])
            sock.sendall(request[cut:])
            [(head, body)] = _answers(sock, 1)
            assert _status(head) == 200, body
        sock.sendall(chunked)
        [(head, body)] = _answers(sock, 1)

    assert _status(head) == 200, body
    assert json.loads(body)["outputs"]
