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
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dockyard.errors import DockyardError, RequestTimeoutError, UnavailableError
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

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
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
