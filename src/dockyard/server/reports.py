"""The monitoring page's reports, computed off the request path and kept in this process.

A monitoring report reads its whole window of logged predictions (``Monitor.report_data``):
at a million rows that is seconds of work, too slow for a page. So a page asks
:class:`Reports` for the last report computed for its endpoint, window and step and gets it
at once, with the moment it was computed; a report older than the monitor interval (or
:data:`SHARE` times its own computation time, when that is longer) is recomputed in the
background (the page says it shows the report as of its time), and a
first visit starts the computation and answers "computing" (the page polls until it is
ready). The server's monitor pass (``background.Watcher``) recomputes every report viewed in
the last :data:`KEEP_S` seconds, so a page that stays open stays fresh, and forgets the
others. Reports are computed by the server's monitor process
(:mod:`dockyard.server.monitor_process`), at idle CPU priority and off the serving
process's GIL, one at a time per process. Each worker keeps its own reports, all computed
by the server's one monitor process (two workers showing the same page ask it twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.server.monitor_process import Statistics

log = logging.getLogger("dockyard.monitoring")

KEEP_S = 900.0
"""A report nobody viewed for this long is no longer recomputed, and is forgotten."""

MOST = 64
"""Reports kept at most (endpoint × window × step); the least recently viewed goes first."""

SHARE = 4
"""A report is recomputed no sooner than this many times its last computation's duration
after that computation started, so a viewed report keeps at most a quarter of one worker
thread busy, however slow it is."""

Key = tuple[str, str, str]


@dataclass
class Snapshot:
    """What a page gets: the last report (``None`` before the first is ready), when it was
    computed and how long that took, whether a newer one is being computed, and the error
    the last computation raised (``None`` when it succeeded)."""

    data: dict[str, Any] | None = None
    computed_at: float | None = None
    took_s: float | None = None
    error: Exception | None = None
    computing: bool = False
    viewed_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.data is not None or self.error is not None


class Reports:
    """Monitoring reports per (endpoint, window, step), recomputed every ``interval_s``."""

    def __init__(
        self,
        statistics: Statistics,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        keep_s: float = KEEP_S,
        most: int = MOST,
    ) -> None:
        self.statistics = statistics
        self.interval_s = interval_s
        self.clock = clock
        self.keep_s = keep_s
        self.most = most
        self.entries: dict[Key, Snapshot] = {}
        self._one_at_a_time = asyncio.Lock()

    def view(self, endpoint: str, window: str, every: str) -> Snapshot:
        """The report as it is now, never waiting for one: starts computing it when there is
        none yet or the last is older than the interval. Call on the event loop."""
        key = (endpoint, window, every)
        now = self.clock()
        entry = self.entries.pop(key, None) or Snapshot()
        entry.viewed_at = now
        self.entries[key] = entry  # most recently viewed last
        if self._stale(entry, now):
            self._start(key, entry)
        while len(self.entries) > self.most:
            del self.entries[next(iter(self.entries))]
        return entry

    def refresh(self) -> None:
        """Start recomputing every report viewed within ``keep_s`` and forget the others
        (the monitor pass calls this; it does not wait for them). Call on the event loop."""
        now = self.clock()
        for key, entry in list(self.entries.items()):
            if now - entry.viewed_at > self.keep_s:
                self.entries.pop(key, None)
            elif self._stale(entry, now):
                self._start(key, entry)

    async def close(self) -> None:
        for entry in self.entries.values():
            if entry.task is not None:
                entry.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.task

    def period(self, entry: Snapshot) -> float:
        """How often ``entry`` is recomputed while viewed: the monitor interval, or
        :data:`SHARE` times its last computation's duration when that is longer."""
        return max(self.interval_s, SHARE * (entry.took_s or 0.0))

    def _stale(self, entry: Snapshot, now: float) -> bool:
        if entry.computing:
            return False
        return entry.computed_at is None or now - entry.computed_at >= self.period(entry)

    def _start(self, key: Key, entry: Snapshot) -> None:
        entry.computing = True
        entry.task = asyncio.get_running_loop().create_task(self._compute(key, entry))

    async def _compute(self, key: Key, entry: Snapshot) -> None:
        endpoint, window, every = key
        try:
            async with self._one_at_a_time:
                started = time.perf_counter()
                at = self.clock()
                try:
                    data = await self.statistics.report(endpoint, window, every)
                except Exception as exc:  # shown on the page; a later view tries again
                    if not _expected(exc):
                        log.exception("monitoring report for %s could not be computed", endpoint)
                    entry.error, entry.computed_at = exc, at
                else:
                    entry.data, entry.error, entry.computed_at = data, None, at
                entry.took_s = time.perf_counter() - started
        finally:
            entry.computing = False
            entry.task = None


def _expected(exc: Exception) -> bool:
    from dockyard.errors import DockyardError

    return isinstance(exc, DockyardError)


__all__ = ["KEEP_S", "MOST", "SHARE", "Reports", "Snapshot"]
