"""CPU a helper process (the monitor process, an explanation worker) spends at the server's
own priority before it turns idle.

A helper is spawned with an initializer that lowers its priority (``SCHED_IDLE``). Its
interpreter's start comes before that whatever the initializer does; so, before
``priority.idle_initializer``, did unpickling the initializer's arguments (the settings:
importing pydantic and the settings module). This script spawns a helper both ways, with
the monitor process's own arguments, and reads the child's CPU time (user + system) at the
moment it turns idle: ``before`` lowers the priority first thing in the initializer, as
``_start_child`` did; ``idle_initializer`` through the wrapper; and with
``idle_processes`` as well, the server lowering the child from outside right after it
starts it (what the server does now; the figure is then the child's CPU when that call
returned, from ``/proc/PID/schedstat``). That
CPU runs at normal priority on the cores the server serves from, once per helper start (the
first monitor pass, each replacement, each explanation worker).

Run:  .venv/bin/python benchmarks/helper_start.py [--starts 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_SEEN: dict[str, float] = {}


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1e3


def _before(*_: Any) -> None:
    """The initializer as it was: the arguments are unpickled by now; it turns idle."""
    from dockyard.server.priority import run_when_idle

    _SEEN["idle_at_ms"] = _cpu_ms()
    run_when_idle()


def _wrapped(payload: bytes) -> None:
    """``idle_initializer``'s wrapper, with the CPU read just before it turns idle."""
    from dockyard.server.priority import _idle_then

    _SEEN["idle_at_ms"] = _cpu_ms()
    _idle_then(payload)


def _nothing(*_: Any) -> None:
    pass


def _seen() -> float:
    return _SEEN["idle_at_ms"]


def _start(initializer: Any, initargs: tuple[Any, ...], *, outside: bool = False) -> float:
    """The child's CPU ms when it turned idle: read by its initializer, or, ``outside``,
    from ``/proc`` right after the server's ``idle_processes`` lowered it (its CPU time
    in ns, ``schedstat``), whichever came first."""
    from dockyard.server.priority import idle_processes

    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=initializer,
        initargs=initargs,
    ) as pool:
        answer = pool.submit(_seen)
        if not outside:
            return float(answer.result(timeout=120))
        idle_processes(pool)
        (pid,) = (process.pid for process in pool._processes.values())
        with open(f"/proc/{pid}/schedstat") as stat:
            at_switch = int(stat.read().split()[0]) / 1e6
        return min(at_switch, float(answer.result(timeout=120)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=5, help="Helper starts per way.")
    args = parser.parse_args()

    import dockyard.server.monitor_process  # noqa: F401  (as a server has it imported)
    from dockyard.server.priority import idle_initializer
    from dockyard.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home)
        monitor_args = (settings, 1000, None)  # what MonitorProcess passes _start_child
        _, wrapped_args = idle_initializer(_nothing, *monitor_args)
        figures: dict[str, list[float]] = {
            "before": [],
            "idle_initializer": [],
            "idle_initializer + idle_processes": [],
        }
        for _ in range(args.starts):  # interleaved: all see the machine alike
            figures["before"].append(_start(_before, monitor_args))
            figures["idle_initializer"].append(_start(_wrapped, wrapped_args))
            figures["idle_initializer + idle_processes"].append(
                _start(_wrapped, wrapped_args, outside=True)
            )
    print(f"machine: {os.cpu_count()} CPUs; {args.starts} starts each, spawn")
    print()
    print("| way | child CPU ms at normal priority (median) | range |")
    print("|---|---|---|")
    for way, values in figures.items():
        print(f"| {way} | {statistics.median(values):.0f} | {min(values):.0f}–{max(values):.0f} |")


if __name__ == "__main__":
    main()
