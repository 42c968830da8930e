"""The rollout controller on a real SQLite registry: a step's claim, the revision it routes
and its audit event commit together. The fault is the database's own: a trigger that refuses
new revisions, as a full disk or a lost connection would part-way through a decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from dockyard.deploy.service import Deployments
from dockyard.deploy.spec import DeploymentSpec
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.registry import tables as t
from dockyard.settings import Settings

STEPS = [  # no wait at either step: each pass decides
    {"weight": 25, "min_duration_s": 0, "min_requests": 0},
    {"weight": 100, "min_duration_s": 0, "min_requests": 0},
]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Deployments]:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    labels = pd.Series([0, 0, 1, 1])
    settings = Settings(home=tmp_path, user="tester")
    with Registry.open(settings) as registry:
        for c in (1.0, 0.5):  # m@1.0.0, m@1.0.1
            model = LogisticRegression(C=c).fit(frame, labels)
            registry.register(model, "m", sample=frame, y=labels, accelerate=False)
        monitoring = MonitoringStore(settings.resolved_monitoring_url)
        service = Deployments(registry, monitoring=monitoring)
        spec = {
            "routes": [{"model": "m@1.0.0"}],
            "rollout": {"candidate": "m@1.0.1", "steps": STEPS, "checks": {}},
        }
        service.store.put("ep", DeploymentSpec.parse(spec), actor="tester")
        yield service


def _refuse_revisions(service: Deployments, refuse: bool) -> None:
    with service.registry.db.write() as conn:
        if refuse:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON deployment_revisions "
                "BEGIN SELECT RAISE(ABORT, 'injected: no space left'); END"
            )
        else:
            conn.exec_driver_sql("DROP TRIGGER refuse")


def _seen(service: Deployments) -> tuple[Any, int, list[str], list[int]]:
    """The rollout row's (generation, step), the revision, the rollout events and the
    weights served."""
    with service.registry.db.read() as conn:
        row = conn.execute(sa.select(t.rollouts).where(t.rollouts.c.endpoint == "ep")).first()
    progress = None if row is None else (row.generation, row.state["step"], row.state["status"])
    deployment = service.get("ep")
    events = [e.action for e in service.registry.events(limit=50)]
    events = [action for action in events if action.startswith("rollout.")]
    return progress, deployment.revision, events, [r.weight for r in deployment.spec.routes]


def test_a_step_that_cannot_write_its_revision_changes_nothing(service: Deployments) -> None:
    controller = service.rollouts
    assert controller is not None
    nothing = _seen(service)
    assert nothing == (None, 1, [], [100])

    _refuse_revisions(service, True)
    assert controller.tick() == []  # the start failed: logged, retried at the next pass
    assert _seen(service) == nothing
    _refuse_revisions(service, False)
    controller.tick()
    started = _seen(service)
    assert started == ((1, 0, "running"), 2, ["rollout.started"], [75, 25])

    _refuse_revisions(service, True)
    assert controller.tick() == []  # the advance failed: the step stays where it was
    assert _seen(service) == started
    _refuse_revisions(service, False)
    [(_, decision)] = controller.tick()
    assert decision.action == "advance"
    assert _seen(service) == (
        (2, 1, "running"),
        3,
        ["rollout.advanced", "rollout.started"],
        [0, 100],
    )


def test_an_abort_that_cannot_write_its_revision_changes_nothing(service: Deployments) -> None:
    controller = service.rollouts
    assert controller is not None
    controller.tick()
    started = _seen(service)
    _refuse_revisions(service, True)
    with pytest.raises(sa.exc.IntegrityError, match="injected"):
        service.abort("ep", actor="tester", reason="bad numbers")
    assert _seen(service) == started  # still running, still split, no rollout.abort event
    _refuse_revisions(service, False)
    service.abort("ep", actor="tester", reason="bad numbers")
    progress, revision, events, weights = _seen(service)
    assert progress == (2, 0, "aborted")
    assert (revision, events[0], weights) == (3, "rollout.abort", [100])


FROZEN = """
import asyncio, gc, sys, time
from dockyard.deploy.service import Deployments
from dockyard.monitoring.service import Monitor
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.server.monitor_process import InProcess
from dockyard.settings import Settings

settings = Settings(home=sys.argv[1], user="tester")
with Registry.open(settings) as registry:
    store = MonitoringStore(settings.resolved_monitoring_url)
    service = Deployments(registry, monitoring=store)
    statistics = InProcess(Monitor(registry, store, policies=service), service.rollouts)

    async def main() -> None:
        print("before", "duckdb" in sys.modules, gc.get_freeze_count())
        await statistics.advance_rollouts()
        deadline = time.monotonic() + 60
        while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        print("after", "duckdb" in sys.modules, gc.get_freeze_count())

    asyncio.run(main())
"""


def test_the_libraries_a_rollout_loads_are_frozen_out_of_the_collectors_sight(
    service: Deployments, tmp_path: Path
) -> None:
    """A plan's first check imports DuckDB and pandas on a server thread; left in the cyclic
    collector's sight, every full collection would scan them and stall the event loop."""
    import subprocess
    import sys

    assert service.rollouts is not None
    service.rollouts.tick()  # the start; the child's tick is a step, which reads the log
    result = subprocess.run(
        [sys.executable, "-c", FROZEN, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    assert before == "before False 0"
    loaded, frozen = after.split()[1:]
    assert loaded == "True", result.stdout
    assert int(frozen) > 10_000, result.stdout
