"""A response leaves in one write (``connections.HeadHeld``): uvicorn writes a response's head
as soon as the app starts it, and its body next; the protocol holds the head until that next
write and sends both at once. At the transport: what is written, in what order, and when a
head no body follows in the same turn of the event loop leaves. Against a real ``dockyard
serve``: a ``HEAD`` request's answer (a head and nothing after it) arrives, and the
connection answers the next request; pipelined requests get their answers whole, in order.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from uvicorn.server import ServerState

from _server import ServerProcess
from dockyard.server.connections import ConnectionLimits, GuardedProtocol, HeadHeld, RefusalLog
from dockyard.server.http import Reply

HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
BODY = b'{"ok":true}'


class Socketless(asyncio.Transport):
    """A transport with no socket behind it: what was written to it, in order, and whether
    it was closed (the operating system's side of a connection, not ours)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.writes.append(b"<closed>")
        self.closed = True

    def pause_reading(self) -> None:  # the protocol's flow control, on pipelined requests
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def _in_a_loop(scenario: Any) -> list[bytes]:
    """Run ``scenario(held)`` in a fresh event loop, over a :class:`Socketless` transport; the
    writes it saw once the loop has turned again."""
    transport = Socketless()

    async def run() -> None:
        scenario(HeadHeld(transport, asyncio.get_running_loop()))
        await asyncio.sleep(0)  # the turn ends

    asyncio.run(run())
    return transport.writes


def test_a_head_and_its_body_leave_in_one_write() -> None:
    def answer(held: HeadHeld) -> None:
        held.write(HEAD)
        held.write(BODY)

    assert _in_a_loop(answer) == [HEAD + BODY]


def test_a_head_nothing_follows_leaves_at_the_end_of_the_turn() -> None:
    written: list[list[bytes]] = []

    def head_alone(held: HeadHeld) -> None:  # a HEAD request's answer
        held.write(HEAD)
        written.append(list(held._transport.writes))  # type: ignore[attr-defined]

    assert _in_a_loop(head_alone) == [HEAD]
    assert written == [[]]  # held while the turn lasted


def test_a_streamed_body_follows_its_head_in_order() -> None:
    def streamed(held: HeadHeld) -> None:
        held.write(HEAD)
        held.write(b"first")
        held.write(b"second")

    assert _in_a_loop(streamed) == [HEAD + b"first", b"second"]


def test_a_body_that_looks_like_a_head_keeps_its_place() -> None:
    looks = b"HTTP/1.1 is what this text is about\r\n\r\n"

    def answer(held: HeadHeld) -> None:
        held.write(HEAD)
        held.write(looks)  # the body: written with the head
        held.write(looks)  # held, then written at the end of the turn
        held.write(b"rest")  # after it, in one write

    assert _in_a_loop(answer) == [HEAD + looks, looks + b"rest"]


def test_closing_writes_a_held_head_first_and_nothing_after() -> None:
    def closed(held: HeadHeld) -> None:
        held.write(HEAD)
        held.close()

    assert _in_a_loop(closed) == [HEAD, b"<closed>"]


def test_a_head_held_when_the_connection_is_lost_is_dropped() -> None:
    def lost(held: HeadHeld) -> None:
        held.write(HEAD)
        held._transport.closed = True  # type: ignore[attr-defined]  # the peer went away

    assert _in_a_loop(lost) == []


def _served(app: Any, data: bytes, answers: int = 1) -> list[bytes]:
    """``GuardedProtocol`` (what ``dockyard serve`` runs uvicorn with) serving ``app`` over a
    transport with no socket: ``data`` in, then the writes once ``answers`` answers are out
    and the loop has turned once more."""

    async def run() -> list[bytes]:
        config = uvicorn.Config(app, date_header=False, server_header=False, log_level="error")
        limits = ConnectionLimits(header_timeout_s=5, body_timeout_s=5, max_connections=8)
        protocol = GuardedProtocol(
            config=config,
            server_state=ServerState(),
            app_state={},
            limits=limits,
            refusals=RefusalLog(),
        )
        transport = Socketless()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(data)
        for _ in range(100):  # the app's tasks run on the loop: a bound, not a timing
            if b"".join(transport.writes).count(b"HTTP/1.1 ") >= answers:
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # and the turn after it
        written = list(transport.writes)
        protocol.connection_lost(None)
        return written

    return asyncio.run(run())


def test_an_answer_leaves_the_servers_protocol_in_one_write() -> None:
    """An app that starts its answer and sends its body, as every answer of ours does."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})

    assert _served(app, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n") == [HEAD + BODY]


class Predictions:
    """An app with a prediction lane (``connections.PredictionApp``): ``/predict`` is its
    hot path. Through ASGI it answers ``asgi <method> <body>``, through the lane
    ``lane <body>``, so each answer says which way it went."""

    def route(self, path: str) -> str | None:
        return path if path == "/predict" else None

    async def predict(self, route: str, method: str, raw_headers: Any, receive: Any) -> Reply:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return Reply(200, b"lane " + body)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        answer = f"asgi {scope['method']} ".encode() + message.get("body", b"")
        length = str(len(answer)).encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
        )
        await send({"type": "http.response.body", "body": answer})


def _post(target: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (
        target.encode(),
        len(body),
        body,
    )


def test_a_prediction_takes_the_lane_and_anything_else_the_asgi_cycle() -> None:
    """The lane answers in one write, its head built as uvicorn builds one; a query, an
    escape, another method or another path goes to ASGI; pipelined answers keep their order."""
    pipelined = [
        _post("/predict", b"one"),
        _post("/predict?q=1", b"two"),
        _post("/%70redict", b"three"),
        b"PUT /predict HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nfour",
        _post("/other", b"five"),
        _post("/predict", b"six"),
    ]
    written = _served(Predictions(), b"".join(pipelined), answers=len(pipelined))

    def answer(body: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        return head + b"content-length: %d\r\n\r\n%s" % (len(body), body)

    assert written[0] == answer(b"lane one")
    bodies = [w.partition(b"\r\n\r\n")[2] for w in written]
    assert bodies == [
        b"lane one",
        b"asgi POST two",
        b"asgi POST three",
        b"asgi PUT four",
        b"asgi POST five",
        b"lane six",
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(Path(tmp_path_factory.mktemp("writes")))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_a_head_request_is_answered_and_its_connection_answers_the_next(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        head = client.head("/healthz")
        after = client.get("/healthz")

    assert head.content == b""
    assert int(head.headers["content-length"]) > 0  # the length a GET's body would have
    assert after.status_code == 200
    assert after.json()


@pytest.mark.slow
def test_pipelined_requests_get_their_answers_whole_and_in_order(server: ServerProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    missing = b"GET /v2/models/none HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30.0) as sock:
        sock.sendall(request + missing + request)
        received = b""
        while len(_answers(received)) < 3:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk

    answers = _answers(received)
    assert [status for status, _ in answers] == [200, 404, 200]
    assert answers[0][1] == answers[2][1]
    assert b'"code"' in answers[1][1]  # the one error shape


def _answers(received: bytes) -> list[tuple[int, bytes]]:
    """The whole answers at the start of ``received``: (status, body) each, by their
    content-length."""
    answers = []
    while (end := received.find(b"\r\n\r\n")) >= 0:
        lines = received[:end].split(b"\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in lines
            if line.lower().startswith(b"content-length:")
        )
        if len(received) < end + 4 + length:
            break
        answers.append((int(lines[0].split(b" ")[1]), received[end + 4 : end + 4 + length]))
        received = received[end + 4 + length :]
    return answers


def test_a_connections_predictions_share_one_task_that_ends_with_the_connection() -> None:
    """A kept-alive connection's predictions, each sent after the last answer, are answered
    by one task (the lane's, handed each request), not a task each; once the connection is
    lost that task ends, so a shutdown waiting on the server's tasks does not wait for it."""
    seen: list[asyncio.Task[Any] | None] = []

    class Recording(Predictions):
        async def predict(self, *args: Any) -> Reply:
            seen.append(asyncio.current_task())
            return await super().predict(*args)

    async def run() -> tuple[int, int, list[bytes]]:
        config = uvicorn.Config(
            Recording(), date_header=False, server_header=False, log_level="error"
        )
        state = ServerState()
        limits = ConnectionLimits(header_timeout_s=5, body_timeout_s=5, max_connections=8)
        protocol = GuardedProtocol(
            config=config, server_state=state, app_state={}, limits=limits, refusals=RefusalLog()
        )
        transport = Socketless()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        for answers, body in enumerate((b"one", b"two", b"three"), start=1):
            protocol.data_received(_post("/predict", body))
            for _ in range(100):  # a bound on the loop's turns, not a timing
                if b"".join(transport.writes).count(b"HTTP/1.1 ") >= answers:
                    break
                await asyncio.sleep(0)
        serving = len(state.tasks)
        protocol.connection_lost(None)
        for _ in range(100):
            if not state.tasks:
                break
            await asyncio.sleep(0)
        return serving, len(state.tasks), transport.writes

    serving, left, writes = asyncio.run(run())
    answered = [w.partition(b"\r\n\r\n")[2] for w in writes if w != b"<closed>"]
    assert answered == [b"lane one", b"lane two", b"lane three"]
    assert len(set(seen)) == 1
    assert None not in seen
    assert serving == 1
    assert left == 0
