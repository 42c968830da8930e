"""Connection limits for ``dockyard serve``: deadlines for a request's headers and body and a
cap on open connections, kept by the HTTP protocol itself; and its answers written in one
``send`` each (see Writes, below). uvicorn closes a connection idle
between requests (``timeout_keep_alive``) but has nothing for a client that sends its request
slowly, or never, and its ``limit_concurrency`` answers only once a request's headers are in.

The policy, per server process:

* **Headers.** A request's line and headers must arrive within ``header_timeout_s`` of the
  connection's opening (on a kept-alive connection, of the next request's first byte). A
  client that sent part of a request is answered 408 and closed; one that sent nothing is
  closed without a word (it may be a browser's idle preconnection).
* **Body.** The whole body must arrive within ``body_timeout_s`` of the end of its headers:
  408 and closed, or only closed if the response has started.
* **Idle.** Between requests, uvicorn's keep-alive timeout closes the connection.
* **Cap.** A connection opened while ``max_connections`` are open is answered 503 at once,
  without reading its request, and closed: when the client closes, or a second later. Its
  input is discarded meanwhile, so the answer is not lost to a reset. Refused connections do
  not count toward the cap.

Deadlines, not inactivity timers: trickling a byte a second buys a client nothing. Answers
use the one JSON error shape and ``connection: close``.

Writes: uvicorn writes a response's head (status line and headers) as soon as the app
starts the response, and its body with the next message, each in a ``send`` of its own:
two system calls and two TCP segments for every small response. The protocol holds the head
until the next write (the body's, in the same turn of the event loop for every answer of
ours) and writes both at once (:class:`HeadHeld`); a head nothing follows in that turn (a
``HEAD`` request's, a body still awaited) leaves at the end of it.

The prediction lane: a prediction (``POST`` to a hot path, ``app.hot_route``, with a plain
target) is answered by the protocol itself (:class:`LaneRequest`): no ASGI scope is read, no
messages are built, the app's ``predict`` is awaited for a ``Reply`` and the response is
written whole. uvicorn's ASGI cycle costs more per request than the rest of a small
prediction's HTTP handling (``benchmarks/RESULTS.md``). Everything else, and a prediction
whose target has a query, an escape or a fragment, goes through the ASGI cycle, where
``DockyardApp`` answers it with the same ``predict``: the two ways answer alike. The lane
keeps what the cycle does for a client: the token checked before the body is read,
``100 Continue``, flow control, pipelined requests answered in order (uvicorn's queue holds
both kinds), keep-alive or ``connection: close``, the deadlines. A connection's predictions
are answered by one task, which waits between them for the next (handed over by a future),
rather than by a task each; it ends when the connection does.

The hot path pays a call and a comparison per read: the timer is touched only when a read
ends in a different phase than the one timed, so a request that arrives in one read on a
kept-alive connection arms nothing (a connection's first request cancels the deadline armed
when it opened).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from dockyard.errors import DockyardError, RequestTimeoutError, UnavailableError
from dockyard.server.http import Message, Reply
from dockyard.settings import Settings

log = logging.getLogger("dockyard.server")

REFUSAL_LINGER_S = 1.0
"""How long a refused connection is kept, discarding input, for its 503 to be read."""

FD_RESERVE = 256
"""File descriptors kept for the server's own files (models, databases, log segments)."""

_WARN_EVERY_S = 10.0

_HEADERS, _BODY = "headers", "body"


def _answer(error: DockyardError) -> bytes:
    status = HTTPStatus(error.status)
    body = json.dumps(error.to_dict()).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_TIMED_OUT = {
    _HEADERS: _answer(
        RequestTimeoutError(
            "The request's headers did not arrive in time.",
            hint="Send the whole request at once; see DOCKYARD_HEADER_TIMEOUT_S.",
        )
    ),
    _BODY: _answer(
        RequestTimeoutError(
            "The request's body did not arrive in time.",
            hint="Send the body at once; see DOCKYARD_BODY_TIMEOUT_S.",
        )
    ),
}
_TOO_MANY = _answer(
    UnavailableError(
        "This server has too many open connections.",
        hint="Retry shortly, or reuse connections; see DOCKYARD_MAX_CONNECTIONS.",
    )
)


@dataclass(frozen=True)
class ConnectionLimits:
    """The deadlines and the cap (see the module docstring)."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_connections=settings.max_connections,
        )


class RefusalLog:
    """Warns about refused connections at most every ten seconds, with the count since.

    One per server process (uvicorn's workers each unpickle their own copy)."""

    def __init__(self) -> None:
        self.refused = 0
        self.warned_at = float("-inf")

    def note(self, cap: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.warned_at >= _WARN_EVERY_S:
            log.warning(
                "refused %d connection(s) with 503: %d are open, the cap "
                "(DOCKYARD_MAX_CONNECTIONS)",
                self.refused,
                cap,
            )
            self.warned_at, self.refused = now, 0


class HeadHeld:
    """A connection's transport as uvicorn's protocol sees it, which holds a response's head
    until the next write and writes the two at once (see the module docstring). A write that
    starts ``HTTP/`` and ends with the blank line is taken for a head; one that is not, but
    looks so (a body), is only held until the end of the loop's turn, so the bytes always
    leave in order and within that turn. Anything but writing and closing is the
    transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[-4:] == b"\r\n\r\n" and data[:5] == b"HTTP/":
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write a head still held (at the end of the turn it was written in)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class PredictionApp(Protocol):
    """What the prediction lane needs of the app (``app.DockyardApp``): which hot path a
    path names, and that path's answer for a method, the headers and an ASGI ``receive``."""

    def route(self, path: str) -> Any | None: ...

    def predict(
        self,
        route: Any,
        method: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        receive: Callable[[], Awaitable[Message]],
    ) -> Awaitable[Reply]: ...


def prediction_app(app: Any) -> PredictionApp | None:
    """The app under uvicorn's wrappers (its proxy-headers middleware) if it answers
    predictions, else ``None`` (the protocol then serves every request through ASGI)."""
    for _ in range(4):
        if hasattr(app, "route") and hasattr(app, "predict"):
            return app  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
    return None


class LaneRequest:
    """One prediction request in the protocol's lane: what uvicorn's ``RequestResponseCycle``
    is for an ASGI request, without the ASGI messages. The protocol stores it as its
    ``cycle``, so uvicorn's pipelining, shutdown and disconnect handling and the deadlines
    above treat it as one: it has the attributes they read (``scope``, ``more_body``,
    ``disconnected``, ``keep_alive``, ``response_started``, ``response_complete``,
    ``message_event.set()``) and ``run_asgi``, which answers it.

    The body is taken as uvicorn takes it: buffered as it arrives, reading paused past
    uvicorn's high-water mark until the app asks for more (the app checks the token before it
    does), and ``100 Continue`` sent when the app first asks."""

    __slots__ = (
        "app",
        "buffered",
        "chunks",
        "disconnected",
        "expect_100_continue",
        "keep_alive",
        "more_body",
        "protocol",
        "raw_headers",
        "response_complete",
        "response_started",
        "route",
        "scope",
        "waiter",
    )

    def __init__(
        self,
        protocol: GuardedProtocol,
        app: PredictionApp,
        route: Any,
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.app = app
        self.route = route
        self.scope = protocol.scope
        self.raw_headers = protocol.headers
        self.expect_100_continue = protocol.expect_100_continue
        self.keep_alive = keep_alive
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.waiter: asyncio.Future[None] | None = None

    @property
    def message_event(self) -> LaneRequest:
        return self  # uvicorn sets the cycle's event on disconnect: wake the reader

    def set(self) -> None:
        """Wake :meth:`receive` if it waits for the body."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, body: bytes) -> None:
        """A part of the body, as the parser hands it over."""
        if self.response_complete:  # answered early (a 401, a 413): the rest is discarded
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER_LIMIT:
            self.protocol.flow.pause_reading()
        self.set()

    def complete(self) -> None:
        """The body's end."""
        self.more_body = False
        self.set()

    async def receive(self) -> Message:
        """The body so far, as an ASGI ``http.request`` message (what ``read_body`` reads)."""
        transport = self.protocol.transport
        if self.expect_100_continue and not transport.is_closing():
            transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.expect_100_continue = False
        if self.more_body and not self.chunks and not self.disconnected:
            self.protocol.flow.resume_reading()
            self.waiter = self.protocol.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected:
            return {"type": "http.disconnect"}
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks, self.buffered = [], 0
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def run_asgi(self, _: Any) -> None:
        """Answer the request (uvicorn starts a cycle with this name, pipelined ones too)."""
        try:
            reply = await self.app.predict(self.route, "POST", self.raw_headers, self.receive)
        except BaseException:
            # predict answers every Exception itself (a logged 500): this is a cancellation
            self.protocol.transport.close()
            raise
        self.write(reply)

    def write(self, reply: Reply) -> None:
        """The whole response in one write, then the connection kept or closed as uvicorn
        does (its default headers, ``connection: close`` where it will close)."""
        if self.disconnected:
            return
        protocol = self.protocol
        head = [STATUS_LINE[reply.status]]
        for name, value in protocol.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        for name, value in reply.headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"content-length: ", str(len(reply.body)).encode(), b"\r\n")
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", reply.body)
        self.response_started = self.response_complete = True
        protocol.transport.write(b"".join(head))
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the cap. Built by uvicorn through
    ``functools.partial(GuardedProtocol, limits=..., refusals=...)`` (see ``serve``).

    The phase is read from uvicorn's own state after each read, not tracked in the parser's
    callbacks (which would cost three more calls per request): a request has begun when
    ``scope`` is new, its headers are in once a ``cycle`` is built for that scope, and its
    body while that cycle expects more."""

    def __init__(
        self, *args: Any, limits: ConnectionLimits, refusals: RefusalLog, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.refusals = refusals
        self.timed: str | None = None  # what the armed deadline is for: headers, body, none
        self.deadline: asyncio.TimerHandle | None = None
        self.refused = False
        self.lane = prediction_app(self.app) if not self.root_path else None
        self.lane_idle: asyncio.Future[LaneRequest | None] | None = None  # lane task waits
        self.idle_since: float | None = None  # when the last answer left an idle connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(HeadHeld(transport, self.loop))  # type: ignore[arg-type]
        self._time(_HEADERS)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:
            waiting = _BODY if cycle.more_body else None
        else:
            waiting = _HEADERS
        if waiting is not self.timed:
            self._time(waiting)

    def on_headers_complete(self) -> None:
        """A prediction goes to the lane (:class:`LaneRequest`); any other request, and a
        prediction whose target has a query, an escape or a fragment, to uvicorn's ASGI
        cycle (both answer it alike)."""
        lane, url = self.lane, self.url
        if (
            lane is not None
            and url[:1] == b"/"
            and url.isascii()
            and not (b"?" in url or b"%" in url or b"#" in url)
            and self.parser.get_method() == b"POST"
            and self.limit_concurrency is None
            and not self.parser.should_upgrade()
        ):
            route = lane.route(url.decode("ascii"))
            if route is not None:
                keep_alive = self.parser.should_keep_alive()
                if self.parser.get_http_version() == "1.0":
                    keep_alive = False
                request = LaneRequest(self, lane, route, keep_alive)
                previous, self.cycle = self.cycle, request  # type: ignore[assignment]
                if previous is None or previous.response_complete:
                    self._answer(request)
                else:  # pipelined behind an answer still on its way: uvicorn's queue
                    self.flow.pause_reading()
                    self.pipeline.appendleft((request, self.app))  # type: ignore[arg-type]
                return
        super().on_headers_complete()

    def _answer(self, request: LaneRequest) -> None:
        """Answer ``request`` on the connection's lane task: one task a connection, handed
        each request by a future while it waits, rather than uvicorn's task a request (whose
        creation, entry in asyncio's registry of tasks and done callback cost more than the
        future). A request pipelined behind another takes uvicorn's way, a task of its own."""
        idle, self.lane_idle = self.lane_idle, None
        if idle is not None and not idle.done():  # done: its task was cancelled
            idle.set_result(request)
            return
        task = self.loop.create_task(self._serve_lane(request))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _serve_lane(self, request: LaneRequest) -> None:
        """The lane task: answer, then wait for the connection's next prediction; it ends
        when the connection closes (``connection_lost`` hands it ``None``)."""
        next_request: LaneRequest | None = request
        while next_request is not None:
            await next_request.run_asgi(None)
            if self.transport.is_closing():
                return
            idle = self.lane_idle = self.loop.create_future()
            next_request = await idle

    def on_body(self, body: bytes) -> None:
        cycle: Any = self.cycle
        if type(cycle) is LaneRequest:
            cycle.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: Any = self.cycle
        if type(cycle) is LaneRequest:
            cycle.complete()
        else:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, but for the keep-alive timer: armed when an answer leaves an idle
        connection and none is armed, and left armed while the connection is used; it
        checks when it fires (:meth:`_idle_check`). uvicorn arms a timer after every answer
        and cancels it at the next request's first bytes, a timer made and cancelled per
        request; the connection closes after the same idle time either way."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._idle_check
            )

    def _unset_keepalive_if_required(self) -> None:
        """Bytes came in (uvicorn calls this from ``data_received``): busy, not idle."""
        self.idle_since = None

    def _idle_check(self) -> None:
        """Close the connection if it has been idle for the keep-alive time since its last
        answer; wait the rest if it was used since; leave the timer unarmed if it is busy
        now (its next answer arms it)."""
        self.timeout_keep_alive_task = None
        if self.idle_since is None:
            return
        left = self.idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._idle_check)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        idle, self.lane_idle = self.lane_idle, None
        if idle is not None and not idle.done():
            idle.set_result(None)  # the lane task waits for a request that cannot come
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        if not self.refused:
            super().connection_lost(exc)

    def _time(self, waiting: str | None) -> None:
        """Arm the deadline for what the client owes now (or none)."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.timed = waiting
        if waiting is _HEADERS:
            self.deadline = self.loop.call_later(self.limits.header_timeout_s, self._expire)
        elif waiting is _BODY:
            self.deadline = self.loop.call_later(self.limits.body_timeout_s, self._expire)

    def _expire(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.timed is _BODY:  # answer unless the app has begun its own
            answer = cycle is not None and not cycle.response_started
        else:  # answer if a request was begun (its scope has no cycle yet)
            answer = self.scope is not None and (cycle is None or cycle.scope is not self.scope)
        if answer and self.timed is not None:
            self.transport.write(_TIMED_OUT[self.timed])
        self.transport.close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused = True
        self.transport = transport
        transport.write(_TOO_MANY)
        if transport.can_write_eof():
            transport.write_eof()  # the client reads the answer, then its end of file
        self.deadline = self.loop.call_later(REFUSAL_LINGER_S, transport.close)
        self.refusals.note(self.limits.max_connections)


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket on ``host:port``, bound before anything loads so that a busy port
    fails at once; inheritable, for uvicorn's workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UnavailableError(
                f"Port {port} on {host} is already in use.",
                hint="Stop what listens there, or choose another port with --port N.",
            ) from None
        raise UnavailableError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def raise_fd_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit (inherited by workers);
    return the limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some platforms cap below the hard limit
            pass
    return int(soft)


def fitted_cap(max_connections: int, fd_limit: int) -> int:
    """The connection cap, lowered to leave :data:`FD_RESERVE` descriptors for the server's
    own files if the open-file limit is too small for it."""
    return max(1, min(max_connections, fd_limit - FD_RESERVE))


__all__ = [
    "ConnectionLimits",
    "GuardedProtocol",
    "HeadHeld",
    "RefusalLog",
    "fitted_cap",
    "listen",
    "raise_fd_limit",
]
