"""CPU priority for the server's helper processes (explanations, monitor statistics).

A helper does work nobody waits for on the prediction path, so it runs only on CPU time
that serving leaves over: ``SCHED_IDLE`` on Linux. The kernel still gives an idle-class
process a small share of a busy core, so its work finishes under full load, slowly (a
0.2 s monitor computation took about 20 s on one saturated core, measured). Elsewhere, or
where the policy is refused, nice 10.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable
from typing import Any

NICENESS = 10
"""The fallback where ``SCHED_IDLE`` is not available."""


def run_when_idle() -> None:
    """Lower this process's CPU priority as far as it goes (call in the helper itself)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


def idle_processes(executor: Any) -> None:
    """Lower the priority of a process pool's processes from the outside, as soon as they
    exist (call right after ``submit``, which starts them): a process runs at the server's
    priority until its initializer lowers it, its interpreter's start included (tens of ms
    of CPU, ``benchmarks/helper_start.py``); this leaves it only the moments between its
    start and this call. Best effort: a process already gone, or a platform without
    ``SCHED_IDLE``, is left to its initializer."""
    for process in pool_processes(executor):
        if process.pid is None:
            continue
        try:
            os.sched_setscheduler(process.pid, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, process.pid, NICENESS)


def pool_processes(executor: Any) -> list[Any]:
    """A process pool's processes as they are now (``ProcessPoolExecutor`` offers no public
    way to reach them; none once it is shut down)."""
    return list((getattr(executor, "_processes", None) or {}).values())


def idle_initializer(
    initializer: Callable[..., object], *args: Any
) -> tuple[Callable[[bytes], None], tuple[bytes]]:
    """A process pool's ``initializer`` and ``initargs`` that lower the worker's priority
    before anything else: ``args`` travel pickled as bytes and are unpickled, and
    ``initializer`` run, only once the worker is idle. Unpickling them imports what they are
    made of (the settings: pydantic, ~0.13 s of CPU, measured), which would otherwise run at
    the server's own priority, on the cores it serves from, each time a worker starts."""
    return _idle_then, (pickle.dumps((initializer, args)),)


def _idle_then(payload: bytes) -> None:
    run_when_idle()
    initializer, args = pickle.loads(payload)  # the parent's own pickle, as multiprocessing's
    initializer(*args)


__all__ = ["NICENESS", "idle_initializer", "idle_processes", "pool_processes", "run_when_idle"]
