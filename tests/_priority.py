"""What a pool worker's scheduling policy was when its initializer's arguments were unpickled
and when its initializer ran (``tests/`` is on ``sys.path``, so a spawned worker imports
this module by name)."""

from __future__ import annotations

import os
from typing import Any

SEEN: dict[str, int] = {}


def _unpickled() -> Policy:
    SEEN["unpickled"] = os.sched_getscheduler(0)
    return Policy()


class Policy:
    """An argument that notes the worker's policy when it is unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _unpickled, ()


def started(_: Policy) -> None:
    SEEN["started"] = os.sched_getscheduler(0)


def seen() -> dict[str, int]:
    return dict(SEEN)
