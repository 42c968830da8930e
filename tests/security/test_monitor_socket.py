"""The lead worker's monitor process answers the other workers on a Unix socket
(``server/monitor_workers.py``, :class:`Shared`): what arrives there is unpickled, so only a
peer holding the workers' key may send anything. A wrong key and a peer that skips the
handshake are refused before anything is unpickled, one that stalls in the handshake holds
up no one and is dropped after a while, a flood of connections past the bound is closed at
once, and the socket still answers its workers afterwards; a read outside the shared ones is
refused even with the key; a worker waiting on a child that never answers gives up after a
bound, and a child that answers nothing for long, or dies, is replaced."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import socket
import struct
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path
from typing import Any

import pytest
from _edge import read_all

from dockyard.errors import NotFoundError, UnavailableError
from dockyard.server.monitor_process import STUCK_S, MonitorProcess
from dockyard.server.monitor_workers import MONITOR_KEY_ENV, Lead, Shared
from dockyard.settings import Settings
from dockyard.windows import Window

KEY = "0123456789abcdef" * 4


class _Touch:
    """A pickle that creates ``path`` when it is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (Path.touch, (self.path,))


def _wait_listening(shared: Shared) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            shared.call("whole", "drift", ("nope", Window(), None, None, None))
        except NotFoundError:
            return
        except UnavailableError:
            assert time.monotonic() < deadline, "the monitor process never listened"
            time.sleep(0.2)


def _holding_a_slot(shared: Shared) -> socket.socket:
    """A connection the child has taken on (it sent its challenge) and that never answers;
    polled, as the thread of the previous read may not have ended yet."""
    deadline = time.monotonic() + 30
    while True:
        peer = socket.socket(socket.AF_UNIX)
        peer.settimeout(30)
        peer.connect(shared.address)
        if b"#CHALLENGE#" in peer.recv(1024):
            return peer
        peer.close()
        assert time.monotonic() < deadline, "the child never took a connection on"
        time.sleep(0.05)


def test_only_a_peer_with_the_workers_key_is_answered(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MONITOR_KEY_ENV, KEY)
    folder = tmp_path / "workers"
    folder.mkdir()
    leader = MonitorProcess(sqlite_settings, sample_rows=100, lead=Lead(str(folder)))
    assert leader.shared is not None
    assert leader.lead.held()
    shared = leader.shared
    shared.wait_s = 2.0  # how long the child waits on a stalled peer (10 s in a server)
    shared.peers = 3  # connections answered at once (32 in a server)
    marker = tmp_path / "unpickled"

    async def run() -> None:
        leader.prepare()
        try:
            await asyncio.to_thread(_wait_listening, shared)
            # a wrong key fails the handshake
            with pytest.raises(AuthenticationError):
                Client(shared.address, family="AF_UNIX", authkey=b"not the key")
            # a peer that skips the handshake and sends a pickle straight away
            payload = pickle.dumps(("whole", "drift", (_Touch(marker),)))
            with socket.socket(socket.AF_UNIX) as raw:
                raw.connect(shared.address)
                raw.settimeout(10)
                raw.sendall(struct.pack("!i", len(payload)) + payload)
                received = read_all(raw)
            assert b"#CHALLENGE#" in received  # the handshake asked for, then the end
            assert b"WELCOME" not in received
            # a peer that connects and never answers the challenge holds up no one, and is
            # dropped once the child has waited wait_s for it
            with socket.socket(socket.AF_UNIX) as stalled:
                stalled.connect(shared.address)
                with pytest.raises(NotFoundError):
                    shared.call("whole", "drift", ("nope", Window(), None, None, None))
                stalled.settimeout(30)
                assert b"#CHALLENGE#" in read_all(stalled)  # then closed, not held
            # past `peers` connections at once a further one is closed straight away (the
            # worker answers 503, retry), and answered again once the stalled ones are dropped
            flood = [_holding_a_slot(shared) for _ in range(shared.peers)]
            with pytest.raises(UnavailableError):
                shared.call("whole", "drift", ("nope", Window(), None, None, None))
            for peer in flood:
                read_all(peer)  # closed once the child has waited wait_s for it
                peer.close()
            with pytest.raises(NotFoundError):
                shared.call("whole", "drift", ("nope", Window(), None, None, None))
            # a read that is not shared, even with the key
            with pytest.raises(ValueError, match="not a read"):
                shared.call("sampled", "gauges", ("lr", "1h"))
            # and the workers are still answered
            with pytest.raises(NotFoundError):
                shared.call("whole", "drift", ("nope", Window(), None, None, None))
        finally:
            await leader.close()
            leader.lead.close()

    asyncio.run(run())
    assert not marker.exists()


def test_without_the_workers_key_nothing_is_shared(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MONITOR_KEY_ENV, raising=False)
    process = MonitorProcess(sqlite_settings, sample_rows=100, lead=Lead(str(tmp_path)))
    assert process.shared is None


def test_a_worker_waits_for_a_stuck_child_only_so_long(tmp_path: Path) -> None:
    """A lead's child that takes a read and never answers (a computation that never ends)
    frees the asking worker's thread after ``answer_s`` with a 503, not never."""
    import threading
    from multiprocessing.connection import Listener

    address = str(tmp_path / "monitor.sock")
    release = threading.Event()
    received: list[Any] = []

    with Listener(address, family="AF_UNIX", authkey=KEY.encode()) as listener:

        def stuck() -> None:
            with listener.accept() as connection:  # the handshake, as the child does it
                received.append(connection.recv())
                release.wait(60)

        child = threading.Thread(target=stuck, daemon=True)
        child.start()
        shared = Shared(address, KEY.encode(), answer_s=0.5)
        try:
            with pytest.raises(UnavailableError, match="did not answer within"):
                shared.call("whole", "drift", ("lr", Window(), None, None, None))
        finally:
            release.set()
            child.join(10)
    assert received
    assert received[0][:2] == ("whole", "drift")


def test_the_lead_waits_for_its_own_child_only_so_long(sqlite_settings: Settings) -> None:
    """The lead's own reads (the API's, the console's reports) get a 503 once the child has
    not answered within ``answer_s``, as a worker's do; the child is left to finish, and
    answers the next read. The gauges' refresh waits as long as the child takes."""
    process = MonitorProcess(sqlite_settings, sample_rows=100, answer_s=0.001)

    async def run() -> None:
        try:
            with pytest.raises(UnavailableError, match="did not answer within"):
                await process.drift("nope", Window(), None, None, None)  # it is starting
            with pytest.raises(NotFoundError):  # no bound: the child's own answer
                await process.gauges("nope", "1h")
            process.answer_s = 120.0
            with pytest.raises(NotFoundError):
                await process.drift("nope", Window(), None, None, None)
        finally:
            await process.close()

    asyncio.run(run())


def _children_since(before: set[Any]) -> set[Any]:
    return set(multiprocessing.active_children()) - before


def test_a_child_that_does_not_answer_the_gauges_in_time_is_stopped_and_replaced(
    sqlite_settings: Settings,
) -> None:
    """The gauges' refresh waits for the child up to ``stuck_s``; a child that has not
    answered by then is taken for stuck (every later call would wait behind it): it is
    stopped, the refresh gets a 503, and the next call starts another child that answers."""
    before = set(multiprocessing.active_children())
    process = MonitorProcess(sqlite_settings, sample_rows=100, stuck_s=0.001)

    async def run() -> None:
        try:
            with pytest.raises(UnavailableError, match="did not answer within"):
                await process.gauges("nope", "1h")  # it is starting
            assert _children_since(before) == set()  # stopped, not left running
            process.stuck_s = STUCK_S
            with pytest.raises(NotFoundError):  # another child's own answer
                await process.gauges("nope", "1h")
            assert len(_children_since(before)) == 1
        finally:
            await process.close()

    asyncio.run(run())


def test_a_child_that_dies_answers_503_and_the_next_call_starts_another(
    sqlite_settings: Settings,
) -> None:
    """A child killed (out of memory, by an operator) fails the read it held with a 503
    that says so, not a 500, and the next read is answered by a new child."""
    before = set(multiprocessing.active_children())
    process = MonitorProcess(sqlite_settings, sample_rows=100)

    async def run() -> None:
        try:
            with pytest.raises(NotFoundError):
                await process.drift("nope", Window(), None, None, None)
            (child,) = _children_since(before)
            child.kill()
            child.join(30)
            with pytest.raises(UnavailableError, match="stopped before it answered"):
                await process.drift("nope", Window(), None, None, None)
            with pytest.raises(NotFoundError):
                await process.drift("nope", Window(), None, None, None)
            (other,) = _children_since(before)
            assert other.pid != child.pid
        finally:
            await process.close()

    asyncio.run(run())
