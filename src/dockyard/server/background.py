"""The server's monitor loop: alert rules, monitoring gauges and log retention.

Every ``DOCKYARD_MONITOR_INTERVAL_S`` the watcher moves automatic rollouts along (see
``deploy.controller``), then walks the deployments and, per endpoint:
merges this process's log segments of closed hours (``MonitoringStore.compact``), refreshes
the drift/performance gauges over ``monitoring.window``, evaluates each alert rule
(value from :class:`~dockyard.monitoring.service.Monitor`, next state from the pure
:func:`~dockyard.monitoring.alerts.evaluate`), and deletes log segments older than
``monitoring.retention_days``. Last, it starts recomputing the console's monitoring reports
viewed lately (:class:`~dockyard.server.reports.Reports`), without waiting for them.

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
    from dockyard.deploy.controller import RolloutController
    from dockyard.deploy.service import Deployments
    from dockyard.deploy.spec import Deployment
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.webhooks import WebhookSender
    from dockyard.server.metrics import Metrics
    from dockyard.server.reports import Reports
    from dockyard.settings import Settings

log = logging.getLogger("dockyard.monitoring")
ACTOR = "dockyard-monitor"


class Watcher:
    """Moves rollouts along, evaluates alert rules and refreshes monitoring gauges,
    periodically (the rollouts are ``deployments``' own: none when it was built without
    the prediction log's store)."""

    def __init__(
        self,
        monitor: Monitor,
        deployments: Deployments,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        prediction_log: PredictionLog | None = None,
        reports: Reports | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from dockyard.monitoring.webhooks import WebhookSender

        self.monitor = monitor
        self.deployments = deployments
        self.settings = settings
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.reports = reports
        self.rollouts: RolloutController | None = deployments.rollouts
        self.clock = clock
        self.db = monitor.registry.db
        self.alerts = AlertStates(self.db)
        self.sender: WebhookSender = WebhookSender(
            secret=settings.webhook_secret, allow_private=settings.webhook_allow_private
        )
        self.background: set[asyncio.Task[Any]] = set()
        self._libraries: asyncio.Future[None] | None = None
        self._dropped: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # the monitor's libraries load in a thread once the server answers, not before
        self._libraries = asyncio.ensure_future(asyncio.to_thread(_load_libraries))
        self._task = asyncio.create_task(self._loop(), name="dockyard-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.background:
            await asyncio.wait(self.background, timeout=10)
        await self.sender.aclose()

    async def _loop(self) -> None:
        if self._libraries is not None:
            with contextlib.suppress(Exception):  # a pass will say what is missing
                await self._libraries
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
        if self.rollouts is not None:
            await asyncio.to_thread(self.rollouts.tick)
        deployments = await asyncio.to_thread(self.deployments.list)
        for deployment in deployments:
            settings = deployment.spec.monitoring
            cutoff = datetime.fromtimestamp(now, UTC) - timedelta(days=settings.retention_days)
            await asyncio.to_thread(self.monitor.store.delete_before, deployment.name, cutoff)
            hour = datetime.fromtimestamp(now, UTC).replace(minute=0, second=0, microsecond=0)
            await asyncio.to_thread(self.monitor.store.compact, deployment.name, before=hour)
            if self.metrics is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._refresh_gauges, deployment)
            for rule in settings.alerts:
                try:
                    transition = await self._evaluate(deployment.name, rule, now)
                except Exception:
                    log.exception("alert %s/%s could not be evaluated", deployment.name, rule.name)
                    continue
                if transition is not None:
                    claimed.append((deployment.name, transition))
        if self.reports is not None:  # the console's reports viewed lately, off this pass
            self.reports.refresh()
        return claimed

    # --- gauges ----------------------------------------------------------------------------

    def _refresh_gauges(self, deployment: Deployment) -> None:
        assert self.metrics is not None
        window = self.monitor.window(deployment.spec.monitoring.window)
        drift = self.monitor.drift(deployment.name, window)
        report = drift.get("report")
        figures: dict[str, float | None] = {}
        if report is not None:
            figures["drift_share"] = report["drift_share"]
            for feature in report["features"]:
                if feature["effect_size"] is not None:
                    self.metrics.set_feature_drift(
                        deployment.name, feature["feature"], feature["effect_size"]
                    )
        performance = self.monitor.performance(deployment.name, window)
        versions = list(performance["versions"].values())
        labelled = sum(p.get("labelled") or 0 for p in versions)
        rows = sum(p.get("rows") or 0 for p in versions)
        if rows:
            figures["label_coverage"] = labelled / rows
        accuracies = [
            (p["accuracy"], p["labelled"]) for p in versions if p.get("accuracy") is not None
        ]
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
        self.metrics.set_monitoring(deployment.name, figures)

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
        value = await asyncio.to_thread(self.monitor.value, endpoint, rule, dropped=dropped)
        state = await asyncio.to_thread(self.alerts.get, endpoint, rule.name)
        following, transition = evaluate(rule, value, state, now)
        won = await asyncio.to_thread(self.alerts.claim, endpoint, rule.name, state, following, now)
        if self.metrics is not None:
            self.metrics.set_alert(endpoint, rule.name, following.status == "firing")
        if transition is None or not won:
            return None
        payload = alert_payload(endpoint, rule, transition)
        await asyncio.to_thread(self._record, f"alert.{transition.kind}", endpoint, payload)
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
        path = await asyncio.to_thread(self._export, endpoint, rule)
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

    def _export(self, endpoint: str, rule: AlertRule) -> Path:
        frame = self.monitor.frame(endpoint, self.monitor.window(rule.window), with_feedback=True)
        folder = self.settings.home / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        path = folder / f"{endpoint}-{rule.name}-{stamp}.parquet"
        frame.to_parquet(path, index=False)
        return path


def _load_libraries() -> None:
    """Import what the monitor passes use, in a thread started with the watcher, so the
    first pass (30 s into serving) does not stop the loop for them. The server does not wait
    for it to be ready: scipy and DuckDB take over a second to import, a third of a small
    server's start, and a request answered meanwhile only shares the GIL with the import
    thread for that moment; the first pass waits for it. (Nothing a pass runs needs
    scikit-learn: its metrics, 17 MiB, load only where a model card's fairness table is
    computed.)"""
    import gc

    import duckdb  # noqa: F401

    import dockyard.monitoring.drift
    import dockyard.monitoring.performance  # noqa: F401

    # As at start (``Server.start``): what these imports made lives as long as the process,
    # out of the cyclic collector's sight. Left in it (about 100,000 objects), every full
    # collection scanned them all and stalled the loop 15-55 ms.
    gc.freeze()
