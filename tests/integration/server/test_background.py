"""The server's background loop (server/background.py) against a real registry, real log
segments and a real command: alert rules on error rate and latency, one claim per transition
across processes, retraining."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.deploy.service import Deployments
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.monitoring.alert_store import AlertStates
from dockyard.monitoring.encoding import to_table
from dockyard.monitoring.predictions import PredictionLog
from dockyard.monitoring.records import Batch, ModelCall, Source
from dockyard.monitoring.service import Monitor
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.server.background import Watcher
from dockyard.server.monitor_process import MonitorProcess
from dockyard.server.monitor_workers import MONITOR_KEY_ENV, Lead
from dockyard.server.services import WATCH_SAMPLE_ROWS, Server
from dockyard.settings import Settings

SOURCE = Source("scores", 1, "scores", "1.0.0", ("a", "b"), None, None)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    from sklearn.linear_model import LinearRegression

    home = tmp_path / "home"
    marker = tmp_path / "retrained.json"
    script = (
        "import json, sys, pandas; "
        f"json.dump({{'rows': len(pandas.read_parquet(sys.argv[1]))}}, open({str(marker)!r}, 'w'))"
    )
    settings = Settings(
        home=home,
        user="tester",
        retrain_commands={"retrain": [sys.executable, "-c", script, "{data}"]},
    )
    registry = Registry.open(settings)
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 2)), columns=["a", "b"])
    registry.register(LinearRegression().fit(X, X["a"] * 2), "scores", sample=X)
    rules = [
        {"name": "errors", "metric": "error_rate", "threshold": 0.2, "window": "1h",
         "cooldown_s": 0, "min_rows": 10, "action": {"command": "retrain"}},
        {"name": "slow", "metric": "p99_latency_ms", "threshold": 50, "window": "last:100",
         "min_rows": 10},
    ]  # fmt: skip
    spec = {"routes": [{"model": "scores@1.0.0"}], "monitoring": {"alerts": rules}}
    DeploymentStore(registry.db).put("scores", DeploymentSpec.parse(spec), actor="tester")
    store = MonitoringStore(settings.resolved_monitoring_url)
    yield settings, registry, store, marker
    registry.close()


def _traffic(store: MonitoringStore, *, ok: int, failed: int, latency_s: float) -> None:
    log = PredictionLog(store)
    for i in range(ok):
        log.record(SOURCE, f"ok{i}", 200, latency_s, ModelCall(np.ones((1, 2)), np.array([2.0])))
    for i in range(failed):
        log.record(SOURCE, f"bad{i}", 500, latency_s)
    log.flush()


def _watcher(registry: Registry, store: MonitoringStore, settings: Settings) -> Watcher:
    deployments = Deployments(registry, monitoring=store)
    return Watcher(Monitor(registry, store, policies=deployments), deployments, settings)


def test_rules_fire_once_across_watchers_and_retraining_gets_the_window(world: Any) -> None:
    settings, registry, store, marker = world
    _traffic(store, ok=60, failed=40, latency_s=0.120)
    first = _watcher(registry, store, settings)
    second = _watcher(registry, store, settings)

    async def both() -> tuple[Any, Any]:
        claimed = await asyncio.gather(first.tick(), second.tick())
        for watcher in (first, second):
            await watcher.stop()  # waits for notifications and actions, closes the client
        return claimed[0], claimed[1]

    one, other = asyncio.run(both())
    fired = sorted((transition.rule, transition.kind) for _, transition in [*one, *other])
    assert fired == [("errors", "firing"), ("slow", "firing")]  # one claim each, not two
    states = {s["rule"]: s for s in AlertStates(registry.db).list("scores")}
    assert states["errors"]["status"] == "firing"
    assert states["errors"]["value"] == pytest.approx(0.4)
    assert states["slow"]["value"] == pytest.approx(120, rel=1e-3)
    events = registry.events(action="alert.firing", limit=10)
    assert sorted(e.details["rule"] for e in events) == ["errors", "slow"]
    actions = registry.events(action="alert.action", limit=10)
    assert len(actions) == 1
    assert actions[0].details["ok"] is True
    assert json.loads(marker.read_text()) == {"rows": 60}  # the window's answered predictions
    assert Path(actions[0].details["data"]).is_relative_to(settings.home / "exports")


def test_a_retraining_export_holds_the_whole_window_though_the_rules_read_a_sample(
    world: Any,
) -> None:
    """The server's rules read a sample of their window (``WATCH_SAMPLE_ROWS``); the export
    a retraining action gets is the whole window (it was that sample)."""
    settings, registry, store, marker = world
    answered = WATCH_SAMPLE_ROWS + 50
    _traffic(store, ok=answered, failed=answered // 3, latency_s=0.001)
    server = Server(settings.model_copy(update={"monitor_process": False}), registry)

    async def once() -> None:
        await server.watcher.tick()
        await server.watcher.stop()

    asyncio.run(once())
    assert json.loads(marker.read_text()) == {"rows": answered}


def test_a_pass_compacts_this_processs_closed_hours_beside_it(world: Any) -> None:
    settings, registry, store, _ = world
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for segment in range(3):  # three flushes into a closed hour, by this process's store
        batch = Batch(SOURCE)
        batch.add(f"s{segment}", hour.timestamp(), 0.001, ModelCall(np.ones((1, 2)), [2.0]))
        store.write_predictions("scores", to_table(batch), hour)
    assert len(store.prediction_segments("scores")) == 3
    watcher = _watcher(registry, store, settings)

    async def pass_then_merge() -> None:
        await watcher.tick()
        deadline = time.monotonic() + 30
        while len(store.prediction_segments("scores")) != 1:  # merged beside the pass
            assert time.monotonic() < deadline, "the closed hour was not compacted"
            await asyncio.sleep(0.05)
        await watcher.stop()

    asyncio.run(pass_then_merge())
    (merged,) = store.prediction_segments("scores")
    assert merged.endswith("-merged.parquet")
    assert store.take_due("scores", before=datetime.now(UTC)) == []


def test_a_worker_that_does_not_lead_merges_its_own_closed_hours(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead worker's monitor process answers the other workers' reads only: a worker
    that does not lead merges its closed hours itself."""
    settings, registry, store, _ = world
    monkeypatch.setenv(MONITOR_KEY_ENV, "0123456789abcdef" * 4)
    leader, follower = Lead(str(tmp_path)), Lead(str(tmp_path))
    assert leader.held()
    assert not follower.held()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for segment in range(3):
        batch = Batch(SOURCE)
        batch.add(f"s{segment}", hour.timestamp(), 0.001, ModelCall(np.ones((1, 2)), [2.0]))
        store.write_predictions("scores", to_table(batch), hour)
    deployments = Deployments(registry, monitoring=store)
    watcher = Watcher(
        Monitor(registry, store, policies=deployments),
        deployments,
        settings,
        statistics=MonitorProcess(settings, sample_rows=10, lead=follower),
        lead=follower,
    )

    async def pass_then_merge() -> None:
        await watcher.tick()
        deadline = time.monotonic() + 30
        while len(store.prediction_segments("scores")) != 1:
            assert time.monotonic() < deadline, "the closed hour was not compacted"
            await asyncio.sleep(0.05)
        await watcher.stop()

    try:
        asyncio.run(pass_then_merge())
    finally:
        leader.close()
    (merged,) = store.prediction_segments("scores")
    assert merged.endswith("-merged.parquet")


def test_a_rule_resolves_when_the_metric_recovers(world: Any) -> None:
    settings, registry, store, _ = world
    _traffic(store, ok=60, failed=40, latency_s=0.001)
    watcher = _watcher(registry, store, settings)

    async def twice() -> Any:
        await watcher.tick()
        await asyncio.to_thread(_traffic, store, ok=900, failed=0, latency_s=0.001)
        claimed = await watcher.tick()
        await watcher.stop()
        return claimed

    claimed = asyncio.run(twice())
    assert [(t.rule, t.kind) for _, t in claimed] == [("errors", "resolved")]
    assert registry.events(action="alert.resolved", limit=5)[0].details["rule"] == "errors"


def test_a_won_claim_and_its_event_are_one_write_a_lost_one_writes_neither(world: Any) -> None:
    from dockyard.monitoring.alerts import AlertState

    _, registry, _, _ = world
    alerts = AlertStates(registry.db)
    ok, firing = AlertState(), AlertState(status="firing", since=100.0, value=0.5)
    event = ("dockyard-monitor", "alert.firing", {"rule": "errors", "endpoint": "scores"})
    assert alerts.claim("scores", "errors", ok, firing, 100.0, event=event)
    # a second process that read "ok" too loses the claim: no second event
    assert not alerts.claim("scores", "errors", ok, firing, 101.0, event=event)
    events = registry.events(action="alert.firing", limit=10)
    assert [e.details["rule"] for e in events] == ["errors"]
    assert alerts.get("scores", "errors").status == "firing"
