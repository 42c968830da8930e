"""The server's monitor loop: alert rules, monitoring gauges and log retention.

Every ``DOCKYARD_MONITOR_INTERVAL_S`` the watcher moves automatic rollouts along (see
``deploy.controller``), then walks the deployments and, per endpoint:
hands this process's closed hours of log segments to be merged where the statistics compute,
beside the pass (``MonitoringStore.take_due``, ``Statistics.compact_log``), refreshes
the drift/performance gauges over ``monitoring.window``, evaluates each alert rule
(value from :class:`~dockyard.monitoring.service.Monitor`, next state from the pure
:func:`~dockyard.monitoring.alerts.evaluate`), and deletes log segments older than
``monitoring.retention_days``. Last, it starts recomputing the console's monitoring reports
viewed lately (:class:`~dockyard.server.reports.Reports`), without waiting for them.

The gauges' statistics (and the console's reports) are computed where ``statistics`` says
(:mod:`dockyard.server.monitor_process`): in a server, a child process at idle CPU
priority, so the pass every endpoint pays never holds the event loop's GIL; given only a
monitor, on this process's threads. The alert rules' values and a retraining action's
export, and a rollout step's statistics (``RolloutController.measure``), are computed
where ``deciding`` says: in a server, a second child at the server's own priority (they
must not wait for idle CPU: an error-rate rule must fire, a canary must move, while the
load saturates the cores), started by the first of them; otherwise on this process's
threads. The rollouts' decisions stay on this process's threads (``decisions``), beside
the rollouts' state. Of a ``--workers N`` server's processes, only the one holding the lead
(``Lead``) computes any of these; every process flushes and retains its own log, has its
closed hours merged, and refreshes its own console reports.

Rule state lives in the registry's database
(:class:`~dockyard.monitoring.alert_store.AlertStates`), so every process and replica sees the
same state, and a transition is claimed with a compare-and-set: when several processes
evaluate the same rule at once, exactly one wins and notifies — one audit event
(``alert.firing`` / ``alert.resolved``), one webhook, one retraining action. The others only
refresh their gauges.

A retraining action exports the rule's window of predictions (with any feedback labels) to a
Parquet file under ``DOCKYARD_HOME/exports`` and then posts ``{..., "data": path}`` to its
webhook or runs the named command from ``DOCKYARD_RETRAIN_COMMANDS`` with ``{data}`` replaced
by the path. Its outcome is an ``alert.action`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.monitoring.alert_store import AlertStates
from dockyard.monitoring.alerts import AlertRule, Transition, alert_payload, evaluate
from dockyard.registry.events import record_event

if TYPE_CHECKING:
    from dockyard.deploy.rollout import VariantStats
    from dockyard.deploy.service import Deployments
    from dockyard.deploy.spec import Deployment
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.monitoring.webhooks import WebhookSender
    from dockyard.server.metrics import Metrics
    from dockyard.server.monitor_process import Statistics
    from dockyard.server.monitor_workers import Lead
    from dockyard.server.reports import Reports
    from dockyard.settings import Settings

log = logging.getLogger("dockyard.monitoring")
ACTOR = "dockyard-monitor"


class Watcher:
    """Moves rollouts along, evaluates alert rules and refreshes monitoring gauges,
    periodically. ``deployments``' own rollouts (none when it was built without the
    prediction log's store) compute on this process's threads over ``monitor``, and so do
    the gauges without ``statistics`` and the rules' values and exports without
    ``deciding``; ``monitor`` also gives the store that compaction and retention work on,
    and the registry the rule states live in."""

    def __init__(
        self,
        monitor: Monitor,
        deployments: Deployments,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        prediction_log: PredictionLog | None = None,
        reports: Reports | None = None,
        statistics: Statistics | None = None,
        deciding: Statistics | None = None,
        lead: Lead | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from dockyard.server.monitor_process import InProcess
        from dockyard.server.monitor_workers import Lead

        self.monitor = monitor
        self.deployments = deployments
        self.settings = settings
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.reports = reports
        self.decisions = InProcess(monitor, deployments.rollouts)
        self.statistics = statistics or self.decisions
        self.deciding = deciding or self.decisions
        self.lead = lead or Lead(None)
        self.clock = clock
        self.db = monitor.registry.db
        self.alerts = AlertStates(self.db)
        self._sender: WebhookSender | None = None
        self.background: set[asyncio.Task[Any]] = set()
        self._dropped: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        self._gauging: asyncio.Task[None] | None = None
        self._compacting: asyncio.Task[None] | None = None

    @property
    def sender(self) -> WebhookSender:
        """The webhook client, made for the first alert to deliver: a server whose rules post
        nothing never imports httpx (~6 MiB of the serving process)."""
        if self._sender is None:
            from dockyard.monitoring.webhooks import WebhookSender

            self._sender = WebhookSender(
                secret=self.settings.webhook_secret,
                allow_private=self.settings.webhook_allow_private,
            )
        return self._sender

    async def start(self) -> None:
        if self.lead.held():
            self.statistics.prepare()
        from dockyard.server.monitor_process import MonitorProcess

        rollouts = self.deployments.rollouts
        if rollouts is not None and isinstance(self.deciding, MonitorProcess):
            rollouts.measure = functools.partial(self._measure, asyncio.get_running_loop())
        self._task = asyncio.create_task(self._loop(), name="dockyard-monitor")

    async def stop(self) -> None:
        for task in (self._task, self._gauging, self._compacting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.background:
            await asyncio.wait(self.background, timeout=10)
        if self._sender is not None:
            await self._sender.aclose()
        computing = (self.statistics, self.deciding, self.decisions)
        for each in {id(c): c for c in computing}.values():  # each once (they may be one)
            await each.close()
        self.lead.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.monitor_interval_s)
            try:
                await self.tick()
            except Exception:  # storage or database briefly away: try again next time
                log.exception("monitor pass failed")

    async def tick(self) -> list[tuple[str, Transition]]:
        """One pass over every deployment; returns the transitions this process claimed."""
        now = self.clock()
        if self.prediction_log is not None:
            self._dropped.append((now, self.prediction_log.dropped))
            self._dropped = [(at, n) for at, n in self._dropped if now - at <= 7 * 86_400]
            await asyncio.to_thread(self.prediction_log.flush)
        claimed: list[tuple[str, Transition]] = []
        leading = self.lead.held()
        if leading:
            await self.decisions.advance_rollouts()
        deployments = await asyncio.to_thread(self.deployments.list)
        for deployment in deployments:
            settings = deployment.spec.monitoring
            cutoff = datetime.fromtimestamp(now, UTC) - timedelta(days=settings.retention_days)
            await asyncio.to_thread(self.monitor.store.delete_before, deployment.name, cutoff)
            hour = datetime.fromtimestamp(now, UTC).replace(minute=0, second=0, microsecond=0)
            self._compact(deployment.name, before=hour)
            if not leading:
                continue
            for rule in settings.alerts:
                try:
                    transition = await self._evaluate(deployment.name, rule, now)
                except Exception:
                    log.exception("alert %s/%s could not be evaluated", deployment.name, rule.name)
                    continue
                if transition is not None:
                    claimed.append((deployment.name, transition))
        if leading and self.metrics is not None and not self._refreshing():
            self._gauging = asyncio.create_task(self._refresh_gauges(deployments))
        if self.reports is not None:  # the console's reports viewed lately, off this pass
            self.reports.refresh()
        return claimed

    def _measure(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: str,
        baseline: str,
        candidate: str,
        since: datetime,
    ) -> tuple[VariantStats, VariantStats]:
        """A rollout step's statistics, computed where the rules' values are (``deciding``),
        for the controller's pass on a thread: it waits for them there."""
        work = self.deciding.rollout_stats(endpoint, baseline, candidate, since)
        return asyncio.run_coroutine_threadsafe(work, loop).result()

    # --- compaction ------------------------------------------------------------------------

    def _compact(self, endpoint: str, *, before: datetime) -> None:
        """Start merging the endpoint's closed hours of this process's log where the
        statistics compute (the idle monitor process; see :meth:`_merge`), beside the pass:
        on a busy server an hour is thousands of segments, seconds of CPU to merge, which on
        a serving thread took the loop's core and GIL once an hour. One merge at a time;
        hours not taken now wait in the store for a later pass, and a merge that fails
        gives its back."""
        if self._compacting is not None and not self._compacting.done():
            return
        store = self.monitor.store
        due = store.take_due(endpoint, before)
        if due:
            self._compacting = asyncio.create_task(self._merge(store, due))

    async def _merge(self, store: MonitoringStore, due: list[str]) -> None:
        """Merge ``due`` in the statistics' process when this process leads (its own child,
        or this process's threads); a worker that does not lead merges on a thread of its
        own (the lead's child answers other workers' reads only)."""
        try:
            if self.lead.held():
                await self.statistics.compact_log(store.writer, due)
            else:
                await asyncio.to_thread(store.merge, due, store.writer)
        except BaseException as exc:  # storage away, the child stuck, a shutdown: later
            store.give_back(due)
            if not isinstance(exc, Exception):
                raise
            log.warning("the log's closed hours could not be compacted yet: %s", exc)

    # --- gauges ----------------------------------------------------------------------------

    def _refreshing(self) -> bool:
        return self._gauging is not None and not self._gauging.done()

    async def _refresh_gauges(self, deployments: list[Deployment]) -> None:
        """Refresh every endpoint's gauges, apart from the pass: at idle priority on a busy
        machine they take a while, and the rollouts and rules must not wait for them (the
        next pass starts no other refresh while this one runs)."""
        assert self.metrics is not None
        started = self.clock()
        for deployment in deployments:
            name = deployment.name
            try:
                gauges = await self.statistics.gauges(name, deployment.spec.monitoring.window)
            except Exception:  # no log yet, storage briefly away: the next pass tries again
                continue
            for feature, size in gauges["features"].items():
                self.metrics.set_feature_drift(name, feature, size)
            self.metrics.set_monitoring(name, gauges["figures"])
        self.metrics.set_monitor_pass(self.clock() - started)

    # --- rules -----------------------------------------------------------------------------

    def dropped_in(self, seconds: float, now: float) -> float:
        """Rows this process's log dropped over the last ``seconds`` (counted from the oldest
        pass inside the window; passes are remembered for a week)."""
        if self.prediction_log is None:
            return 0.0
        oldest = next((n for at, n in self._dropped if now - at <= seconds), None)
        return 0.0 if oldest is None else float(self.prediction_log.dropped - oldest)

    async def _evaluate(self, endpoint: str, rule: AlertRule, now: float) -> Transition | None:
        window = self.monitor.window(rule.window)
        seconds = (
            (window.until - window.since).total_seconds()
            if window.since is not None and window.until is not None
            else 3600.0
        )
        dropped = self.dropped_in(seconds, now)
        value = await self.deciding.value(endpoint, rule, dropped)
        state = await asyncio.to_thread(self.alerts.get, endpoint, rule.name)
        following, transition = evaluate(rule, value, state, now)
        payload = event = None
        if transition is not None:  # its event is written in the claim's transaction
            payload = alert_payload(endpoint, rule, transition)
            event = (ACTOR, f"alert.{transition.kind}", {**payload, "endpoint": endpoint})
        won = await asyncio.to_thread(
            self.alerts.claim, endpoint, rule.name, state, following, now, event=event
        )
        if self.metrics is not None:
            self.metrics.set_alert(endpoint, rule.name, following.status == "firing")
        if transition is None or payload is None or not won:
            return None
        log.warning("alert %s on %s: %s (value %s)", rule.name, endpoint, transition.kind, value)
        if rule.webhook is not None:
            self._spawn(self._notify(endpoint, rule.webhook, payload))
        if transition.kind == "firing" and rule.action is not None:
            self._spawn(self._act(endpoint, rule, payload))
        return transition

    def states(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every rule's stored state (for the control plane and CLI)."""
        return self.alerts.list(endpoint)

    def _record(self, action: str, endpoint: str, details: dict[str, Any]) -> None:
        with self.db.write() as conn:
            record_event(conn, ACTOR, action, None, None, details={**details, "endpoint": endpoint})

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _notify(self, endpoint: str, url: str, payload: dict[str, Any]) -> None:
        delivery = await self.sender.send(url, payload)
        if not delivery.ok:
            log.error("alert webhook for %s failed: %s", endpoint, delivery.error)
            await asyncio.to_thread(
                self._record,
                "alert.webhook_failed",
                endpoint,
                {"rule": payload["rule"], "error": delivery.error, "attempts": delivery.attempts},
            )

    async def _act(self, endpoint: str, rule: AlertRule, payload: dict[str, Any]) -> None:
        """Export the rule's window and hand it to the retraining webhook or command."""
        from dockyard.monitoring.webhooks import resolve_command, run_command

        assert rule.action is not None
        path = await self._export(endpoint, rule)
        outcome: dict[str, Any] = {"rule": rule.name, "data": str(path)}
        try:
            if rule.action.webhook is not None:
                delivery = await self.sender.send(
                    rule.action.webhook, {**payload, "data": str(path)}
                )
                outcome.update(ok=delivery.ok, error=delivery.error)
            elif rule.action.command is not None:
                argv = resolve_command(rule.action.command, self.settings.retrain_commands)
                code, output = await run_command(argv, data_path=str(path))
                outcome.update(ok=code == 0, exit_code=code, output=output[-500:])
        except Exception as exc:
            outcome.update(ok=False, error=str(exc))
        await asyncio.to_thread(self._record, "alert.action", endpoint, outcome)

    async def _export(self, endpoint: str, rule: AlertRule) -> Path:
        folder = self.settings.home / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{endpoint}-{rule.name}-{stamp}.parquet"
        await self.deciding.export(endpoint, rule, path)
        return path
