"""Where the monitor's statistics are computed: a child process of the server, or (for tests
and tools that hand the watcher a :class:`~dockyard.monitoring.service.Monitor`) this
process's threads.

Every monitor pass refreshes every endpoint's gauges: it reads a window of the prediction
log with DuckDB and measures drift and performance with pandas and scipy, a few hundred
milliseconds of CPU per busy endpoint, most of it holding the GIL. Run on a thread of the
serving process, it took the GIL from the event loop in 5 ms turns (Python's switch
interval) for the whole pass, and the p99 of any minute holding a pass rose by half. The
console's monitoring reports (seconds of work over a million rows) did the same while a
page was open. In a child process the event loop keeps its GIL, the child runs only on CPU
time serving leaves over (:func:`~dockyard.server.priority.run_when_idle`), and the serving
process imports neither DuckDB nor scipy for them.

:class:`MonitorProcess` is that child: one process, spawned (never forked from a live server)
at the first pass, with its own registry and store, a sampled
:class:`~dockyard.monitoring.service.Monitor` for the gauges and a whole one for the
reports. What crosses between the processes is small: names and window texts in, figures
out. At idle priority, work waits while the cores are saturated (measured: 20 s for a 0.2 s
pass on one saturated core), so what decides does not run there: an alert rule's value, a
retraining export and a rollout step's statistics run in a second such child at the
server's own priority (``MonitorProcess(idle=False)``, started by the first rule or step:
on the server's threads a drift rule took the loop's GIL every pass and loaded pandas,
scipy and DuckDB into the serving process), and the decisions, with everything with state,
stay on the server's threads (:class:`InProcess`, ``Watcher``).

:class:`~dockyard.server.monitor_workers.Lead` picks one worker of a ``--workers N`` server
to compute the passes' statistics
(a file lock in the workers' shared metrics folder): the gauges are shared by the workers
("most recent" across processes) and every rule transition is claimed once anyway, so N
workers computing the same figures would only spend N times the CPU and memory. The other
workers' reads (console reports, the API's drift and performance) go to the lead's child
too, over a Unix socket (:class:`~dockyard.server.monitor_workers.Shared`), so a server has
one monitor process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import UnavailableError
from dockyard.server.monitor_workers import ANSWER_WAIT_S, Lead, Shared, answer_workers
from dockyard.server.priority import idle_initializer, idle_processes, pool_processes

if TYPE_CHECKING:
    from datetime import datetime

    from dockyard.deploy.controller import RolloutController
    from dockyard.deploy.rollout import VariantStats
    from dockyard.monitoring.alerts import AlertRule
    from dockyard.monitoring.service import Monitor
    from dockyard.settings import Settings
    from dockyard.windows import Window

log = logging.getLogger("dockyard.monitoring")

_CHILD: dict[str, Any] = {}
"""In the child process only: its two monitors, ``"sampled"`` and ``"whole"``."""


class Statistics:
    """What the watcher, the console and the API ask of the monitor's statistics, computed
    over the ``"sampled"`` monitor (the gauges) or the ``"whole"`` one (reports and reads)
    wherever the subclass computes them (:meth:`_compute`)."""

    def prepare(self) -> None:
        """Get ready for the first computation (where that costs time), without waiting."""

    async def close(self) -> None:
        """Stop whatever computes."""

    async def _compute(self, over: str, function: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    async def gauges(self, endpoint: str, window: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._compute("sampled", gauges, endpoint, window)
        return result

    async def report(self, endpoint: str, window: str, every: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._compute("whole", report, endpoint, window, every)
        return result

    async def drift(
        self,
        endpoint: str,
        window: Window,
        baseline: Window | None,
        version: str | None,
        every: str | None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._compute(
            "whole", drift, endpoint, window, baseline, version, every
        )
        return result

    async def performance(
        self, endpoint: str, window: Window, every: str | None, by: str | None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._compute(
            "whole", performance, endpoint, window, every, by
        )
        return result

    async def value(self, endpoint: str, rule: AlertRule, dropped: float) -> float | None:
        """An alert rule's value over its window, on the sampled monitor."""
        result: float | None = await self._compute("sampled", value, endpoint, rule, dropped)
        return result

    async def export(self, endpoint: str, rule: AlertRule, path: Path) -> None:
        """A retraining action's export: the rule's whole window (never a sample)."""
        await self._compute("whole", export, endpoint, rule, path)

    async def compact_log(self, writer: str, folders: list[str]) -> int:
        """Merge ``writer``'s log segments in the closed hours' ``folders`` (a server's
        hourly compaction: seconds of Parquet reading and writing on a busy server, work
        that waits for idle CPU as well as the gauges do)."""
        result: int = await self._compute("sampled", compact_log, writer, folders)
        return result

    async def rollout_stats(
        self, endpoint: str, baseline: str, candidate: str, since: datetime
    ) -> tuple[VariantStats, VariantStats]:
        """A rollout step's statistics of both variants (``RolloutController.measure``)."""
        result: tuple[VariantStats, VariantStats] = await self._compute(
            "whole", rollout_stats, endpoint, baseline, candidate, since
        )
        return result


class InProcess(Statistics):
    """The monitor's computations on this process's threads, over a given monitor
    (``whole``, when given, for the reports and exports that read whole windows); its
    libraries are imported in a thread before the first computation that needs them."""

    def __init__(
        self,
        monitor: Monitor,
        rollouts: RolloutController | None = None,
        *,
        whole: Monitor | None = None,
    ) -> None:
        self.monitor = monitor
        self.whole = whole or monitor
        self.rollouts = rollouts
        self._loading: asyncio.Future[None] | None = None

    def prepare(self) -> None:
        """Import the statistics' libraries in a thread now, not in the first call."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(load_libraries))

    async def _call(self, function: Any, *args: Any) -> Any:
        self.prepare()
        assert self._loading is not None
        with contextlib.suppress(Exception):  # the call itself will say what is missing
            await self._loading
        return await asyncio.to_thread(function, *args)

    async def _compute(self, over: str, function: Callable[..., Any], *args: Any) -> Any:
        return await self._call(function, self.whole if over == "whole" else self.monitor, *args)

    async def advance_rollouts(self) -> None:
        """One rollout pass; it reads the log (and imports its libraries) only for an
        endpoint with a rollout plan, so none are loaded for it otherwise."""
        if self.rollouts is None:
            return
        await asyncio.to_thread(self.rollouts.tick)
        if self._loading is None and "duckdb" in sys.modules:  # a plan's read imported them
            self.prepare()  # so that they are frozen out of the collector's sight, as for rules


class MonitorProcess(Statistics):
    """The gauges' statistics, the console's reports and the API's reads in one child process
    that runs when the CPU is idle.

    Among ``--workers`` (a ``lead`` with a folder and ``MONITOR_KEY_ENV`` set), only the lead
    worker has the child; it also answers the other workers' reads (reports, drift,
    performance) on a Unix socket beside the lead's lock (:class:`Shared`), so a server runs
    one monitor process however many workers it has, and the lead starts it at once so that
    the others can reach it. A worker that takes the lead over (its holder died) starts its
    own.

    With ``idle=False`` it is the decisions' child instead: the alert rules' values, the
    retraining exports and the rollout steps' statistics, at the server's own priority, so
    that they are computed on time while serving saturates the cores (at idle priority
    they would wait as long as the load lasts, exactly when an error-rate or latency rule
    must fire), and yet hold the serving process's GIL no more than the gauges do, nor load
    its libraries into it (a drift rule had made the serving process ~160 MiB larger). No
    request waits on it, so every call may take up to ``stuck_s``; it serves no other
    worker (only the lead evaluates rules and rollouts); it starts with the first call."""

    def __init__(
        self,
        settings: Settings,
        *,
        sample_rows: int,
        lead: Lead | None = None,
        answer_s: float | None = None,
        stuck_s: float | None = None,
        idle: bool = True,
    ) -> None:
        self.settings = settings
        self.sample_rows = sample_rows
        self.answer_s = ANSWER_WAIT_S if answer_s is None else answer_s
        self.stuck_s = STUCK_S if stuck_s is None else stuck_s
        self.idle = idle
        self.lead = lead or Lead(None)
        self.shared = Shared.among_workers(self.lead) if idle else None
        self._executor: ProcessPoolExecutor | None = None

    def prepare(self) -> None:
        """Start the child now when other workers read through it; otherwise nothing: it
        starts with the first call (the first pass, one interval after the server starts),
        so a server that ends sooner never pays for its imports."""
        if self.shared is not None:
            executor = self._workers()
            executor.submit(os.getpid)  # spawns the child
            idle_processes(executor)

    def _workers(self) -> ProcessPoolExecutor:
        if self._executor is None:
            initializer: Callable[..., None] = _start_child
            initargs: tuple[Any, ...] = (self.settings, self.sample_rows, self.shared)
            if self.idle:
                initializer, initargs = idle_initializer(_start_child, *initargs)
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a live server
                initializer=initializer,
                initargs=initargs,
            )
        return self._executor

    async def _compute(self, over: str, function: Callable[..., Any], *args: Any) -> Any:
        """``function`` over the child's ``over`` monitor. A read over the whole monitor (the
        API's reads, the console's reports) is waited on for ``answer_s`` at most, as the
        other workers wait on the lead's child, then answered 503: a stuck child must not
        hold those requests forever. The gauges' refresh, which no request waits on and
        which the watcher never runs twice at once, waits as long as the child takes at
        idle priority (on a saturated core, minutes), up to ``stuck_s``: a child that has
        not answered it by then is taken for stuck (one call at a time: a computation that
        never ends holds every later one behind it), stopped, and the next call starts
        another. A child that stopped (killed, out of memory) is replaced the same way; the
        call it held is answered 503."""
        name = function.__name__  # the child runs its own copy, over its own monitor
        if self.shared is not None and not self.lead.held():  # the lead's child answers
            return await asyncio.to_thread(self.shared.call, over, name, args)
        executor = self._workers()
        read = over == "whole" and self.idle  # a read some request waits on
        waiting = self.answer_s if read else self.stuck_s
        try:
            loop = asyncio.get_running_loop()
            call = loop.run_in_executor(executor, _in_child, over, name, *args)
            if self.idle:
                idle_processes(executor)  # the child, if that call started it
            return await asyncio.wait_for(call, waiting)  # a queued call is dropped
        except TimeoutError:
            if not read:
                log.error(
                    "the monitor process answered nothing for %.0f s: stopped as stuck; "
                    "another starts with the next call",
                    waiting,
                )
                await self._stop(executor)
            raise UnavailableError(
                f"The server's monitor process did not answer within {waiting:.0f} s.",
                hint="Retry later (it computes at idle priority, slowly while the server is "
                "saturated).",
            ) from None
        except BrokenProcessPool:  # the child died (killed, out of memory): a new one next
            log.error("the monitor process stopped; another starts with the next call")
            await self._stop(executor)
            raise UnavailableError(
                "The server's monitor process stopped before it answered.",
                hint="Retry: another one starts with the next call.",
            ) from None

    async def close(self) -> None:
        """Stop the child at once: a computation in flight (at idle priority on a busy
        machine, seconds) is dropped rather than waited for; its figures are not needed."""
        if self._executor is not None:
            await self._stop(self._executor)

    async def _stop(self, executor: ProcessPoolExecutor) -> None:
        """Stop ``executor``'s child, and forget it if it is the current one."""
        if self._executor is executor:
            self._executor = None
        # the executor offers no way to stop a running task (terminate_workers is 3.14)
        for child in pool_processes(executor):
            child.terminate()
        await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


STUCK_S = 900.0
"""How long the gauges' refresh waits for the monitor process before it is taken for stuck
and stopped: a pass takes seconds at idle priority, tens of seconds while the server
saturates its cores, so a call unanswered this long is one that will not end (a hung
read, a computation that never finishes), and every later call waits behind it."""


# --- the computations, on a monitor wherever it runs ----------------------------------------


def gauges(monitor: Monitor, endpoint: str, window_text: str) -> dict[str, Any]:
    """The endpoint's monitoring gauges over ``window_text``: ``figures`` (drift share,
    label coverage, accuracy, estimated accuracy, where known) and ``features`` (each
    feature's drift effect size)."""
    window = monitor.window(window_text)
    drift = monitor.drift(endpoint, window)
    report = drift.get("report")
    figures: dict[str, float | None] = {}
    features: dict[str, float] = {}
    if report is not None:
        figures["drift_share"] = report["drift_share"]
        for feature in report["features"]:
            if feature["effect_size"] is not None:
                features[feature["feature"]] = feature["effect_size"]
    performance = monitor.performance(endpoint, window)
    versions = list(performance["versions"].values())
    labelled = sum(p.get("labelled") or 0 for p in versions)
    rows = sum(p.get("rows") or 0 for p in versions)
    if rows:
        figures["label_coverage"] = labelled / rows
    accuracies = [(p["accuracy"], p["labelled"]) for p in versions if p.get("accuracy") is not None]
    if labelled and accuracies:
        figures["accuracy"] = sum(a * n for a, n in accuracies) / labelled
    estimates = [
        e for e in performance["estimated"].values() if e.get("estimated_accuracy") is not None
    ]
    estimated_rows = sum(e["rows"] for e in estimates)
    if estimated_rows:
        figures["estimated_accuracy"] = (
            sum(e["estimated_accuracy"] * e["rows"] for e in estimates) / estimated_rows
        )
    return {"figures": figures, "features": features}


def value(monitor: Monitor, endpoint: str, rule: AlertRule, dropped: float) -> float | None:
    """The rule's metric over its window (``dropped``: rows this server's log dropped in it)."""
    return monitor.value(endpoint, rule, dropped=dropped)


def export(monitor: Monitor, endpoint: str, rule: AlertRule, path: Path) -> None:
    """Write the rule's window of predictions, with any feedback labels, to ``path``."""
    frame = monitor.frame(endpoint, monitor.window(rule.window), with_feedback=True)
    frame.to_parquet(path, index=False)


def compact_log(monitor: Monitor, writer: str, folders: list[str]) -> int:
    """Merge ``writer``'s segments in each closed hour's folder of ``folders``."""
    return monitor.store.merge(folders, writer)


def rollout_stats(
    monitor: Monitor, endpoint: str, baseline: str, candidate: str, since: datetime
) -> tuple[VariantStats, VariantStats]:
    """A rollout step's statistics of both variants since ``since``."""
    from dockyard.deploy.controller import variant_stats

    return variant_stats(monitor.registry, monitor.store, endpoint, baseline, candidate, since)


def report(monitor: Monitor, endpoint: str, window: str, every: str) -> dict[str, Any]:
    """The console's monitoring report (``Monitor.report_data``) over ``window``."""
    return monitor.report_data(endpoint, monitor.window(window), every=every)


def drift(
    monitor: Monitor,
    endpoint: str,
    window: Window,
    baseline: Window | None,
    version: str | None,
    every: str | None,
) -> dict[str, Any]:
    """The API's drift read: the window against the reference (or ``baseline``), and with
    ``every`` the drift share per tumbling hour or day as ``over_time``."""
    result = monitor.drift(endpoint, window, baseline=baseline, version=version)
    if every is not None:
        result["over_time"] = monitor.drift_over_time(endpoint, window, every=every)
    return result


def performance(
    monitor: Monitor, endpoint: str, window: Window, every: str | None, by: str | None
) -> dict[str, Any]:
    """The API's performance read: per version (a series with ``every``), or per group of
    the input column ``by``."""
    if by is not None:
        return monitor.performance_by(endpoint, window, by)
    return monitor.performance(endpoint, window, every=every)


# --- in the child ------------------------------------------------------------------------------


def _start_child(settings: Settings, sample_rows: int, shared: Shared | None = None) -> None:
    """The child's start (the statistics' child at idle priority already:
    :func:`idle_initializer`): one numeric thread, its own services, the other workers'
    socket (``shared``), and the libraries the statistics use imported now rather than in
    the first call."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    from dockyard.deploy.service import Deployments
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry

    registry = Registry.open(settings)
    url, options = settings.resolved_monitoring_url, settings.monitoring_options
    store = MonitoringStore(url, options, threads=1)  # as the server's own
    deployments = Deployments.from_settings(registry, settings, monitoring=store)
    _CHILD["sampled"] = Monitor(registry, store, policies=deployments, max_rows=sample_rows)
    _CHILD["whole"] = Monitor(registry, store, policies=deployments)
    load_libraries()
    if shared is not None:
        threading.Thread(target=answer_workers, args=(shared, _in_child), daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this child once its server is gone, however it ended (SIGKILL included): the
    child would otherwise outlive it, adopted by init, holding its memory."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def load_libraries() -> None:
    """Import what the statistics use (scipy and DuckDB take over a second), then take every
    object alive out of the cyclic collector's sight: the imports live as long as the
    process, and left in sight (about 100,000 objects) every full collection scanned them
    all, which in a serving process stalled the event loop 15-55 ms."""
    import gc

    import duckdb  # noqa: F401

    import dockyard.monitoring.drift
    import dockyard.monitoring.performance  # noqa: F401

    gc.freeze()


COMPUTATIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (gauges, report, drift, performance, value, export, rollout_stats, compact_log)
}
"""What the child computes, by name (a function is sent by name, the child's monitor used)."""


def _in_child(over: str, name: str, *args: Any) -> Any:
    """``name(monitor, *args)`` over the child's ``over`` monitor (``"sampled"``,
    ``"whole"``)."""
    return COMPUTATIONS[name](_CHILD[over], *args)


__all__ = [
    "STUCK_S",
    "InProcess",
    "MonitorProcess",
    "Statistics",
    "compact_log",
    "drift",
    "export",
    "gauges",
    "load_libraries",
    "performance",
    "report",
    "rollout_stats",
    "value",
]
