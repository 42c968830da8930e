"""Every service Dockyard runs, built once from settings and in one place: the set one
server process runs (:class:`Server`, which ``app.py`` composes into the ASGI app) and the
pieces a command needs (:func:`monitoring_store`, :func:`open_monitor`), so the CLI
(``cli/context.py``) and the server build them the same way.

Services are built, never module globals: nothing here runs at import time, and each
builder imports its libraries when it is called. Every command that reads monitoring data
imports this module, so the server's libraries (prometheus_client, the model manager, the
web framework) load only when a server is built.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.deploy.service import Deployments
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry
    from dockyard.server.background import Watcher
    from dockyard.server.metrics import Metrics
    from dockyard.settings import Settings

log = logging.getLogger("dockyard.server")

WATCH_SAMPLE_ROWS = 20_000
"""Rows per window, at most, that the server's monitor loop reads for gauges and alerts."""


def monitoring_store(settings: Settings, *, threads: int | None = None) -> MonitoringStore:
    """The prediction log's store at ``DOCKYARD_MONITORING_URL`` (``threads`` caps DuckDB's
    worker threads; default: every core)."""
    from dockyard.monitoring.store import MonitoringStore

    return MonitoringStore(
        settings.resolved_monitoring_url, settings.monitoring_options, threads=threads
    )


@contextmanager
def open_monitor(settings: Settings) -> Iterator[Monitor]:
    """The configured registry and a :class:`~dockyard.monitoring.service.Monitor` over the
    prediction log, for one command; the registry closes on exit."""
    from dockyard.deploy.service import Deployments
    from dockyard.monitoring.service import Monitor
    from dockyard.registry import Registry

    with Registry.open(settings) as registry:
        policies = Deployments.from_settings(registry, settings)
        yield Monitor(registry, monitoring_store(settings), policies=policies)


class Server:
    """The services one server process runs, built once from settings."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        from dockyard.deploy.service import Deployments
        from dockyard.registry import Registry
        from dockyard.server.access import Authenticator
        from dockyard.server.inference import InferencePlane
        from dockyard.server.metrics import Metrics
        from dockyard.serving.manager import ModelManager

        self.settings = settings
        self.registry = registry or Registry.open(settings)
        self.metrics = Metrics()
        store = monitoring_store(settings, threads=1)
        self.deployments = Deployments.from_settings(self.registry, settings, monitoring=store)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.compute_threads, thread_name_prefix="dockyard-compute"
        )
        self.manager = ModelManager(
            self.registry,
            self.deployments.store,
            executor=self.executor,
            poll_interval_s=settings.poll_interval_s,
            on_batch=self.metrics.observe_batch,
            on_load=self.metrics.observe_load,
            model_threads=settings.model_threads,
            inline_budget_s=settings.inline_compute_us / 1e6,
        )
        self.monitor, self.prediction_log, self.watcher = _monitoring(
            settings, self.registry, store, self.metrics, self.deployments
        )
        from dockyard.server.reports import Reports

        self.reports = Reports(self.watcher.statistics, interval_s=settings.monitor_interval_s)
        self.watcher.reports = self.reports
        self.inference = InferencePlane(
            self.manager,
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            log=self.prediction_log,
        )
        self.auth = Authenticator(self.registry, enabled=settings.auth)
        self._converting: asyncio.Task[None] | None = None
        self.max_body_bytes = settings.max_body_bytes

    async def start(self) -> None:
        self.prediction_log.start(converting=True)
        await self.manager.start()
        await self.watcher.start()
        self._converting = asyncio.create_task(self._convert_log(), name="dockyard-log-convert")
        # Everything alive now (libraries, models) lives as long as the server: out of the
        # cyclic collector's sight, a full collection scans only what serving allocates
        # (with it in sight, each one stalled the loop ~100 ms, the p99 at 64 connections).
        gc.collect()
        gc.freeze()

    async def _convert_log(self) -> None:
        """Convert buffered predictions to Arrow in short slices on the loop (see
        ``PredictionLog.convert``)."""
        from dockyard.monitoring.predictions import CONVERT_INTERVAL_S

        while True:
            await asyncio.sleep(CONVERT_INTERVAL_S)
            try:
                self.prediction_log.convert()
            except Exception:  # never let logging take the server down
                log.exception("could not convert prediction records")

    async def stop(self) -> None:
        """Graceful: drain the endpoints, then flush the prediction log."""
        if self._converting is not None:
            self._converting.cancel()
        await self.watcher.stop()
        await self.reports.close()
        await self.manager.stop()
        self.executor.shutdown(wait=True)
        await asyncio.to_thread(self.prediction_log.close)
        self.registry.close()


def _monitoring(
    settings: Settings,
    registry: Registry,
    store: MonitoringStore,
    metrics: Metrics,
    deployments: Deployments,
) -> tuple[Monitor, PredictionLog, Watcher]:
    """The prediction log, the monitoring service over it, and the periodic watcher."""
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.server.background import Watcher
    from dockyard.server.monitor_process import InProcess, MonitorProcess, Statistics
    from dockyard.server.monitor_workers import Lead

    prediction_log = PredictionLog(
        store,
        buffer_rows=settings.log_buffer_rows,
        flush_interval_s=settings.log_flush_interval_s,
        on_flush=metrics.observe_log,
    )
    monitor = Monitor(registry, store, policies=deployments)
    # the periodic checks read a bounded sample of each window, so a busy endpoint's hour of
    # traffic costs a bounded amount of work; the gauges' share of it in a child process
    # (server/monitor_process.py)
    sampled = Monitor(registry, store, policies=deployments, max_rows=WATCH_SAMPLE_ROWS)
    lead = Lead(metrics.multiprocess_dir)
    statistics: Statistics
    deciding: Statistics
    if settings.monitor_process:
        statistics = MonitorProcess(settings, sample_rows=WATCH_SAMPLE_ROWS, lead=lead)
        deciding = MonitorProcess(settings, sample_rows=WATCH_SAMPLE_ROWS, idle=False)
    else:
        statistics = deciding = InProcess(sampled, whole=monitor)
    watcher = Watcher(
        sampled,
        deployments,
        settings,
        metrics=metrics,
        prediction_log=prediction_log,
        statistics=statistics,
        deciding=deciding,
        lead=lead,
    )
    return monitor, prediction_log, watcher


__all__ = ["WATCH_SAMPLE_ROWS", "Server", "monitoring_store", "open_monitor"]
