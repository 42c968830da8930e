"""The console's monitoring reports (``server/reports.py``) over a real registry, prediction
log store and ``Monitor``: a view never waits, a report is recomputed only once it is older
than the interval (or four times its own duration), the monitor pass refreshes what was
viewed and forgets the rest, and at most ``most`` reports are kept. The clock is a plain
number the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.errors import NotFoundError
from dockyard.monitoring.service import Monitor
from dockyard.registry import Registry
from dockyard.server.monitor_process import InProcess
from dockyard.server.reports import SHARE, Reports
from dockyard.server.services import open_monitor
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitor]:
    from sklearn.linear_model import LogisticRegression

    home: Path = tmp_path_factory.mktemp("reports")
    settings = Settings(home=home, user="tester")
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    with Registry.open(settings) as registry:
        registry.register(LogisticRegression().fit(X, y), "clf", sample=X, y=y, accelerate=False)
        spec = DeploymentSpec.parse({"routes": [{"model": "clf@1.0.0"}]})
        DeploymentStore(registry.db).put("plain", spec, actor="tester")
    with open_monitor(settings) as found:
        yield found


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def _settled(reports: Reports) -> None:
    tasks = [e.task for e in reports.entries.values() if e.task is not None]
    if tasks:
        await asyncio.wait(tasks)


def test_a_view_never_waits_and_recomputes_only_when_stale(monitor: Monitor) -> None:
    async def scenario() -> None:
        clock = Clock()
        reports = Reports(InProcess(monitor), interval_s=30, clock=clock)
        first = reports.view("plain", "1d", "hour")
        assert (first.ready, first.computing) == (False, True)  # answered before computing
        await _settled(reports)
        assert first.data is not None
        assert first.data["endpoint"] == "plain"
        assert first.computed_at == clock.now
        assert first.took_s is not None

        clock.now += 29
        again = reports.view("plain", "1d", "hour")
        assert again is first
        assert not again.computing  # within the interval: the same report

        first.took_s = 20.0  # a slow report: recomputed no sooner than SHARE × its duration
        assert reports.period(first) == SHARE * 20.0
        clock.now = first.computed_at + 31
        assert not reports.view("plain", "1d", "hour").computing
        clock.now = first.computed_at + SHARE * 20.0
        assert reports.view("plain", "1d", "hour").computing
        await _settled(reports)
        assert first.computed_at == clock.now

    asyncio.run(scenario())


def test_errors_are_kept_like_reports(monitor: Monitor) -> None:
    async def scenario() -> None:
        reports = Reports(InProcess(monitor), interval_s=30, clock=Clock())
        reports.view("nowhere", "1d", "hour")
        await _settled(reports)
        failed = reports.view("nowhere", "1d", "hour")
        assert failed.ready
        assert failed.data is None
        assert isinstance(failed.error, NotFoundError)
        assert not failed.computing

    asyncio.run(scenario())


def test_the_monitor_pass_refreshes_what_was_viewed_and_forgets_the_rest(
    monitor: Monitor,
) -> None:
    async def scenario() -> None:
        clock = Clock()
        reports = Reports(InProcess(monitor), interval_s=30, clock=clock, keep_s=900, most=2)
        for window in ("1d", "2d", "3d"):  # the least recently viewed goes past ``most``
            reports.view("plain", window, "hour")
        await _settled(reports)
        assert sorted(w for _, w, _ in reports.entries) == ["2d", "3d"]

        clock.now += 10
        reports.refresh()  # nothing stale yet
        assert not any(e.computing for e in reports.entries.values())

        clock.now += 600
        reports.view("plain", "3d", "hour")  # viewed lately; 2d was viewed 610 s ago
        await _settled(reports)
        clock.now += 400  # 2d unseen for 1,010 s, 3d for 400 s
        reports.refresh()
        assert list(reports.entries) == [("plain", "3d", "hour")]
        assert reports.entries[("plain", "3d", "hour")].computing
        await _settled(reports)
        await reports.close()

    asyncio.run(scenario())
