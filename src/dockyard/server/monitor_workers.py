"""The monitor process among ``dockyard serve --workers N``: which worker computes the
statistics (:class:`Lead`), and how the other workers reach that worker's monitor process
(:class:`Shared`, a Unix socket; :func:`answer_workers` is the child's side of it). A
single-process server has a :class:`Lead` that always holds, and no socket. The monitor
process itself is :class:`~dockyard.server.monitor_process.MonitorProcess`."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dockyard.errors import UnavailableError

log = logging.getLogger("dockyard.monitoring")


class Lead:
    """Whether this process computes the monitor passes' statistics: always when it is the
    server's only process; among ``--workers``, the one holding ``folder/monitor.lock``
    (taken without waiting; the kernel frees it when its holder exits, and another worker
    takes it at its next pass)."""

    def __init__(self, folder: str | None) -> None:
        self.path = None if folder is None else Path(folder) / "monitor.lock"
        self._handle: IO[bytes] | None = None

    def held(self) -> bool:
        if self.path is None or self._handle is not None:
            return True
        import fcntl

        handle = self.path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def close(self) -> None:
        """Let the lead go (at the server's stop; another worker takes it at its next pass or
        read)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


PEER_WAIT_S = 10.0
"""How long the lead's child waits on a connected peer (its handshake, its request) before
it closes the connection: a worker sends at once, so only a stalled peer ever waits that
long, and it holds a thread no longer."""
ANSWER_WAIT_S = 120.0
"""How long a read waits for the monitor process's answer (a worker's, sent to the lead's
child; the lead's own): the reads take seconds at most, so only a stuck child (a computation
that never ends) is ever waited on that long, and the read then gets a 503 rather than
being held for good."""
PEERS = 32
"""How many connections the lead's child answers at once (a thread each): a worker holds one
per read in flight, so more means a stalled or flooding peer, and a further connection is
closed at once (the worker answers 503, retry)."""


class Shared:
    """The lead worker's monitor process as the other workers reach it: a Unix socket in the
    workers' private folder (``monitor.sock`` beside the lead's lock), each connection
    authenticated with the key the server gave its workers (``MONITOR_KEY_ENV``:
    :mod:`multiprocessing.connection`'s HMAC challenge, before anything is unpickled). Only
    the reads in :data:`SHARED_READS` are answered; a failure comes back as the exception
    the lead's child raised (a 404 for an unknown endpoint stays a 404)."""

    def __init__(
        self,
        address: str,
        key: bytes,
        *,
        wait_s: float = PEER_WAIT_S,
        peers: int = PEERS,
        answer_s: float = ANSWER_WAIT_S,
    ) -> None:
        self.address = address
        self.key = key
        self.wait_s = wait_s
        self.peers = peers
        self.answer_s = answer_s

    @classmethod
    def among_workers(cls, lead: Lead) -> Shared | None:
        """The socket of ``lead``'s worker folder, or ``None``: a single-process server, or
        a key-less one (workers started by something other than ``dockyard serve``)."""
        key = os.environ.get(MONITOR_KEY_ENV)
        if lead.path is None or not key:
            return None
        address = str(lead.path.with_name("monitor.sock"))
        if len(address.encode()) > _UNIX_PATH_MAX:  # too long to bind: each worker its own
            return None
        return cls(address, key.encode())

    def call(self, over: str, name: str, args: tuple[Any, ...]) -> Any:
        """Run the computation ``name(monitor, *args)`` over the lead's child's ``over``
        monitor and return its result (blocking, for ``answer_s`` at most)."""
        from multiprocessing.connection import Client

        try:
            connection = Client(self.address, family="AF_UNIX", authkey=self.key)
            with connection:
                connection.send((over, name, args))
                if not connection.poll(self.answer_s):
                    raise UnavailableError(
                        f"The server's monitor process did not answer within "
                        f"{self.answer_s:.0f} s.",
                        hint="Retry later; if it persists, restart the server (the lead "
                        "worker's monitor process may be stuck).",
                    )
                answered, value = connection.recv()
        except (FileNotFoundError, ConnectionError, EOFError):  # not up yet, or it stopped
            raise UnavailableError(
                "The server's monitor process is not running.",
                hint="Retry in a few seconds: the lead worker starts it (again).",
            ) from None
        if not answered:
            raise value
        return value


MONITOR_KEY_ENV = "DOCKYARD_MONITOR_KEY"
"""Set by ``dockyard serve --workers N`` for its workers: the key of :class:`Shared`."""
_UNIX_PATH_MAX = 107
SHARED_READS = frozenset({"report", "drift", "performance"})
"""What the lead's child computes for the other workers (:class:`Shared`)."""


# --- in the lead's monitor process ---------------------------------------------------------------


def answer_workers(shared: Shared, compute: Callable[..., Any]) -> None:
    """Accept the other workers' connections on ``shared``'s socket (a stale one, left by a
    lead that died, is replaced), each authenticated and answered on a thread of its own, so
    that a peer stalling in the handshake holds up no one else (and its thread for at most
    ``shared.wait_s``); past ``shared.peers`` connections at once, a new one is closed.
    ``compute(over, name, *args)`` answers a read."""
    from multiprocessing.connection import Listener

    with contextlib.suppress(FileNotFoundError):
        os.unlink(shared.address)
    slots = threading.BoundedSemaphore(shared.peers)
    with Listener(shared.address, family="AF_UNIX") as listener:  # the key: per connection
        while True:
            try:
                connection = listener.accept()
            except OSError:
                continue
            if not slots.acquire(blocking=False):
                log.warning("refused a connection to the monitor process: %d open", shared.peers)
                connection.close()
                continue
            threading.Thread(
                target=_answer, args=(connection, shared, slots, compute), daemon=True
            ).start()


def _wait_at_most(connection: Any, seconds: float) -> None:
    """Make every blocking read on ``connection`` give up after ``seconds`` (``SO_RCVTIMEO``
    on its socket: the read then fails with an ``OSError``, which closes the connection)."""
    whole = int(seconds)
    limit = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    with socket.socket(fileno=os.dup(connection.fileno())) as view:  # the same socket
        view.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)


def _answer(
    connection: Any,
    shared: Shared,
    slots: threading.BoundedSemaphore,
    compute: Callable[..., Any],
) -> None:
    """Answer one worker's reads until it closes the connection, once it has shown it holds
    the key (the challenge both ways, before anything it sends is unpickled)."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import answer_challenge, deliver_challenge

    with connection, _releasing(slots):
        try:
            _wait_at_most(connection, shared.wait_s)
            deliver_challenge(connection, shared.key)
            answer_challenge(connection, shared.key)
        except (AuthenticationError, EOFError, OSError) as exc:
            log.warning("refused a connection to the monitor process: %s", exc)
            return
        while True:
            try:
                over, name, args = connection.recv()
            except (EOFError, OSError, ValueError):  # a message of another shape
                return
            try:
                if over != "whole" or name not in SHARED_READS:
                    raise ValueError(f"{name!r} is not a read the monitor process answers")
                answer: tuple[bool, Any] = (True, compute(over, name, *args))
            except Exception as exc:  # the caller's error to raise (a 404 stays a 404)
                answer = (False, exc)
            try:
                connection.send(answer)
            except Exception as exc:  # an exception that does not pickle: its text
                connection.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


@contextlib.contextmanager
def _releasing(slots: threading.BoundedSemaphore) -> Iterator[None]:
    try:
        yield
    finally:
        slots.release()


__all__ = [
    "ANSWER_WAIT_S",
    "MONITOR_KEY_ENV",
    "PEERS",
    "PEER_WAIT_S",
    "SHARED_READS",
    "Lead",
    "Shared",
    "answer_workers",
]
