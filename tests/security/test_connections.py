"""Slow and idle connections against a real ``dockyard serve`` with small configured limits
(issue 13, item 7): a slowloris trickling its headers, a client trickling its body, a client
that connects and says nothing, an idle kept-alive connection, and a flood past the
connection cap. Each is closed (with a 408 or 503 in the one error shape where a request was
begun), and ``/healthz`` answers once the flood ends. Tens of sockets, not thousands: the
limits are configured small.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _edge import read_all

from _server import ServerProcess

TIMEOUTS = {
    "DOCKYARD_HEADER_TIMEOUT_S": "1.5",
    "DOCKYARD_BODY_TIMEOUT_S": "1.5",
    "DOCKYARD_KEEP_ALIVE_TIMEOUT_S": "1",
}
Connect = Callable[[ServerProcess], socket.socket]
BOUND_S = 30.0  # how long a test waits for the server to act, at most (a bound, not a timing)


pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with 1.5 s header and body deadlines and a 1 s keep-alive."""
    server = ServerProcess(tmp_path_factory.mktemp("timed"), env=TIMEOUTS)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def connect() -> Iterator[Callable[[ServerProcess], socket.socket]]:
    """Open a socket to a server; every one is closed when the test ends."""
    opened: list[socket.socket] = []

    def open_one(server: ServerProcess) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def _trickle(socks: list[socket.socket], pieces: Iterator[bytes]) -> dict[int, bytes]:
    """Send the next piece to every socket still open, every 0.2 s, until the server has
    closed them all or the pieces run out; return what each closed one received."""
    answers: dict[int, bytes] = {}
    for piece in pieces:
        for i, sock in enumerate(socks):
            if i in answers:
                continue
            if select.select([sock], [], [], 0)[0]:  # the server spoke: its answer, then EOF
                answers[i] = read_all(sock)
                continue
            try:
                sock.sendall(piece)
            except OSError:  # the server has closed it
                answers[i] = read_all(sock)
        if len(answers) == len(socks):
            break
        time.sleep(0.2)  # the trickle's pace, not a wait for the server
    return answers


def _one_answer(sock: socket.socket) -> bytes:
    """One response on a kept-alive connection: its head and a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _error(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"connection: close" in head.lower()
    return status, json.loads(body)


def test_slowloris_headers_are_cut_off_at_the_deadline(
    timed: ServerProcess, connect: Connect
) -> None:
    socks = [connect(timed) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # one more header line every 0.2 s, for up to 60 s: far past the 1.5 s deadline
    answers = _trickle(socks, (f"X-Slow-{i}: a\r\n".encode() for i in range(300)))
    assert len(answers) == len(socks), "slow-header connections were left open"
    for answer in answers.values():
        status, body = _error(answer)
        assert status == 408
        assert body["code"] == "request_timeout"
        assert set(body) == {"error", "code", "details"}


def test_slow_body_is_cut_off_at_the_deadline(timed: ServerProcess, connect: Connect) -> None:
    socks = [connect(timed) for _ in range(10)]
    for sock in socks:
        sock.sendall(
            b"POST /v1/endpoints/none/predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
    answers = _trickle(socks, (b" " for _ in range(300)))
    assert len(answers) == len(socks), "slow-body connections were left open"
    for answer in answers.values():
        status, body = _error(answer)
        assert status == 408
        assert body["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(timed: ServerProcess, connect: Connect) -> None:
    socks = [connect(timed) for _ in range(20)]
    for sock in socks:
        assert read_all(sock) == b""  # closed without an answer: no request was begun


def test_an_idle_kept_alive_connection_is_closed(timed: ServerProcess, connect: Connect) -> None:
    sock = connect(timed)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    response = b""
    while not response.endswith(b"}"):  # /healthz's small JSON body
        response += sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 200")
    assert b"connection: close" not in response.lower()  # kept alive...
    assert read_all(sock) == b""  # ...until idle too long


def test_a_connection_used_more_often_than_its_keep_alive_stays_open(
    timed: ServerProcess, connect: Connect
) -> None:
    """A request every 0.3 s for 2.4 s against a 1 s keep-alive: the timer armed after the
    first answer finds the connection used since, and waits again rather than closing it."""
    sock = connect(timed)
    for _ in range(8):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = _one_answer(sock)
        assert response.startswith(b"HTTP/1.1 200"), response
        time.sleep(0.3)  # the client's pace, not a wait for the server
    assert read_all(sock) == b""  # then idle: closed


def test_requests_in_one_piece_are_not_disturbed(timed: ServerProcess) -> None:
    with httpx.Client(base_url=timed.url, timeout=BOUND_S) as client:
        for _ in range(50):
            assert client.get("/healthz").status_code == 200


def test_workers_keep_the_deadlines(tmp_path: Path, start_server: Any, connect: Connect) -> None:
    server = start_server(tmp_path, "--workers", "2", env=TIMEOUTS)
    server.wait_ready()
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    status, body = _error(read_all(sock))
    assert status == 408
    assert body["code"] == "request_timeout"


def test_past_the_cap_connections_are_refused_and_health_returns(
    tmp_path: Path, start_server: Any, connect: Connect
) -> None:
    cap = 8
    server = start_server(
        tmp_path,
        env={
            "DOCKYARD_MAX_CONNECTIONS": str(cap),
            "DOCKYARD_HEADER_TIMEOUT_S": "120",
            "DOCKYARD_KEEP_ALIVE_TIMEOUT_S": "120",
        },
    )
    server.wait_ready()
    # Each held connection has been answered once, so it holds a place; one opened while
    # another client's connection (the readiness poll's, the banner's probe) was still
    # counted gets the 503 and is replaced, where counting it as held made the test flaky.
    held: list[socket.socket] = []
    deadline = time.monotonic() + BOUND_S
    while len(held) < cap:
        assert time.monotonic() < deadline, f"only {len(held)} connections were accepted"
        sock = connect(server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if _one_answer(sock).startswith(b"HTTP/1.1 200"):
            held.append(sock)  # kept alive, idle from now on
    refusals: list[bytes] = []
    others: list[bytes] = []
    deadline = time.monotonic() + BOUND_S
    while len(refusals) < 10 and time.monotonic() < deadline:
        sock = connect(server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
        sock.close()
        if answer.startswith(b"HTTP/1.1 503"):
            refusals.append(answer)
        else:  # the held connections were not all accepted yet: try again
            others.append(answer[:12])
    assert server.process.poll() is None, server.log.read_text()  # ours answered, not a peer
    assert len(refusals) == 10, f"connections past the cap were served: {others[-5:]}"
    for answer in refusals:
        status, body = _error(answer)
        assert status == 503
        assert body["code"] == "unavailable"
        assert "DOCKYARD_MAX_CONNECTIONS" in body["error"]
    for sock in held:
        sock.close()
    deadline = time.monotonic() + BOUND_S
    while True:  # the flood is over: health answers again
        try:
            if httpx.get(f"{server.url}/healthz", timeout=BOUND_S).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "/healthz did not come back after the flood"
        time.sleep(0.05)
