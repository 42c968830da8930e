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
from dockyard.server.priority import idle_initializer


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
