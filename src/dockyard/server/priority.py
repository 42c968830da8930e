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

NICENESS = 10
"""The fallback where ``SCHED_IDLE`` is not available."""


def run_when_idle() -> None:
    """Lower this process's CPU priority as far as it goes (call in the helper itself)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


__all__ = ["NICENESS", "run_when_idle"]
