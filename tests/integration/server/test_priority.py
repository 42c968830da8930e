"""Helper processes (the monitor process, explanation workers) are idle from their start:
their initializer's arguments are unpickled, and so what they import is imported, at
``SCHED_IDLE``, not at the server's own priority on the cores it serves from."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _priority import Policy, seen, started
from dockyard.server.priority import idle_initializer, idle_processes


def _policies(initializer: Callable[..., object], initargs: tuple[Any, ...]) -> dict[str, int]:
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    ) as pool:
        return pool.submit(seen).result(timeout=120)


def test_a_workers_arguments_are_unpickled_once_it_is_idle() -> None:
    initializer, initargs = idle_initializer(started, Policy())
    assert _policies(initializer, initargs) == {
        "unpickled": os.SCHED_IDLE,
        "started": os.SCHED_IDLE,
    }
    # a plain initializer's arguments are unpickled before it can lower anything
    assert _policies(started, (Policy(),))["unpickled"] == os.SCHED_OTHER


def test_a_pools_processes_are_made_idle_from_outside_once_started() -> None:
    """The server lowers a helper as soon as ``submit`` has started it, before its own
    initializer can: its interpreter's start runs idle too."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        answer = pool.submit(os.getpid)
        (process,) = pool._processes.values()
        assert os.sched_getscheduler(process.pid) == os.SCHED_OTHER  # as started
        idle_processes(pool)
        assert os.sched_getscheduler(process.pid) == os.SCHED_IDLE
        assert answer.result(timeout=120) == process.pid
