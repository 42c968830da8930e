"""The server's monitor process (``server/monitor_process.py``): the gauges' statistics run in
one child process at idle CPU priority, off the serving process (which then maps none of
DuckDB, scipy or scikit-learn), a killed one is replaced, it ends with a killed server, and
of a ``--workers 2`` server only one worker runs one."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from _server import ServerProcess, children, mapped_libraries
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.errors import NotFoundError, UnavailableError
from dockyard.registry import Registry
from dockyard.server.monitor_process import MonitorProcess
from dockyard.server.monitor_workers import MONITOR_KEY_ENV, Lead
from dockyard.server.services import open_monitor
from dockyard.settings import Settings
from dockyard.windows import Window

ENV = {"DOCKYARD_MONITOR_INTERVAL_S": "0.3", "DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2"}


@pytest.fixture
def deployed(sqlite_settings: Settings) -> tuple[Settings, list[dict[str, float]]]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    frame = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    label = (frame["a"] > 0).astype(int)
    with Registry.open(sqlite_settings) as registry:
        registry.register(LogisticRegression().fit(frame, label), "lr", sample=frame, y=label)
        spec = DeploymentSpec.parse({"routes": [{"model": "lr"}], "monitoring": {"log": True}})
        DeploymentStore(registry.db).put("lr", spec, actor="tester")
    return sqlite_settings, frame.head(40).to_dict("records")


def _monitor_processes(root: int) -> list[int]:
    """Descendants of ``root`` that map DuckDB: the monitor processes."""
    found, todo = [], [root]
    while todo:
        for pid in children(todo.pop()):
            todo.append(pid)
            try:
                if any("_duckdb" in path for path in mapped_libraries(pid)):
                    found.append(pid)
            except OSError:  # gone meanwhile
                continue
    return found


def _gauge(server: ServerProcess, name: str) -> float | None:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None


def _until(condition: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)
    return found


def _predict(server: ServerProcess, rows: list[dict[str, float]]) -> None:
    answer = httpx.post(f"{server.url}/v1/endpoints/lr/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text


def _serving(start: Any, settings: Settings, rows: Any, *args: str, **env: str) -> ServerProcess:
    """A server that answered ``rows`` and has refreshed its gauges once."""
    server: ServerProcess = start(settings.home, *args, env={**ENV, **env})
    server.wait_ready()
    _predict(server, rows)
    _until(lambda: _gauge(server, "dockyard_drift_share{") is not None)
    return server


def test_passes_run_in_an_idle_priority_child_and_a_killed_one_is_replaced(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    assert _gauge(server, "dockyard_monitor_pass_seconds") is not None
    serving = mapped_libraries(server.process.pid)
    assert any("onnxruntime" in path for path in serving)  # served by the ONNX twin
    assert not [path for path in serving if "_duckdb" in path or "/scipy/" in path]
    assert not [path for path in serving if "/sklearn/" in path]
    # the model's labels and external-data check read with onnx's message classes alone: the
    # onnx package (its C++ extension) stays out, ~12 MiB
    assert not [path for path in serving if "/onnx/" in path]
    # no rule posts a webhook, so httpx is not imported (it loads brotli, a C extension)
    assert importlib.util.find_spec("brotli") is not None
    assert not [path for path in serving if "_brotli" in path]
    (first,) = _until(lambda: _monitor_processes(server.process.pid))
    assert os.sched_getscheduler(first) == os.SCHED_IDLE
    # scikit-learn's metrics (17 MiB) once loaded with the pass's libraries for nothing
    assert not [path for path in mapped_libraries(first) if "/sklearn/" in path]
    report = httpx.get(f"{server.url}/api/monitoring/lr/report", timeout=60)
    assert report.status_code == 200, report.text
    assert "drift" in report.text.lower()
    assert not [p for p in mapped_libraries(server.process.pid) if "_duckdb" in p]  # the child's

    os.kill(first, signal.SIGKILL)
    (second,) = _until(
        lambda: [pid for pid in _monitor_processes(server.process.pid) if pid != first]
    )
    assert os.sched_getscheduler(second) == os.SCHED_IDLE
    assert "the monitor process stopped" in server.log.read_text()
    _predict(server, rows)  # serving never noticed


def test_alert_rules_are_computed_in_a_child_at_the_servers_priority(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    """A drift rule's value comes from a second child at the server's own priority (on the
    serving threads it took the loop's GIL every pass and loaded pandas, scipy and DuckDB
    into the serving process); the gauges' child stays idle."""
    settings, rows = deployed
    rule = {"name": "drifted", "metric": "drift_share", "threshold": 0.99, "window": "1h"}
    with Registry.open(settings) as registry:
        spec = {"routes": [{"model": "lr"}], "monitoring": {"log": True, "alerts": [rule]}}
        DeploymentStore(registry.db).put("lr", DeploymentSpec.parse(spec), actor="tester")
    server = _serving(start_server, settings, rows)

    def evaluated() -> list[dict[str, Any]]:
        answer = httpx.get(f"{server.url}/api/monitoring/alerts", params={"endpoint": "lr"})
        assert answer.status_code == 200, answer.text
        return [s for s in answer.json() if s["rule"] == "drifted" and s["value"] is not None]

    (state,) = _until(evaluated)
    assert state["status"] == "ok"
    both = _until(lambda: len(found := _monitor_processes(server.process.pid)) == 2 and found)
    policies = sorted(os.sched_getscheduler(pid) for pid in both)
    assert policies == sorted([os.SCHED_OTHER, os.SCHED_IDLE])
    serving = mapped_libraries(server.process.pid)
    assert not [path for path in serving if "_duckdb" in path or "/scipy/" in path]
    _predict(server, rows)


def test_the_serving_process_of_a_model_taking_arrays_never_imports_pandas(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    """pandas (~45 MiB) stays out of it: every input shape, a refused request, the prediction
    log's Arrow encoding and flush, and the passes (their pandas is the monitor process's)."""
    import pyarrow.parquet as pq

    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    url = f"{server.url}/v1/endpoints/lr/predict"
    tensor = {"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [0.1, 0.2, 0.3]}
    sent = [
        (url, {"instances": [[0.1, 0.2, 0.3]]}),
        (url, {"inputs": {"a": [0.1], "b": [0.2], "c": [0.3]}}),
        (f"{server.url}/v2/models/lr/infer", {"inputs": [tensor]}),
    ]
    for address, body in sent:
        assert httpx.post(address, json=body).status_code == 200
    refused = httpx.post(url, json={"instances": [{"a": "text", "b": None, "c": 0.3}]})
    assert refused.status_code == 400, refused.text
    logged = settings.home / "monitoring" / "predictions" / "lr"
    _until(
        lambda: (
            sum(pq.read_metadata(path).num_rows for path in logged.rglob("*.parquet"))
            >= len(rows) + len(sent) + 1
        )
    )
    assert not [path for path in mapped_libraries(server.process.pid) if "/pandas/" in path]


def test_the_serving_process_imports_no_websocket_library_where_one_is_installed(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    """Dockyard serves no websocket; uvicorn imports ``websockets`` wherever it is
    installed unless told there are none. The test environment installs it."""
    import importlib.util

    assert importlib.util.find_spec("websockets") is not None
    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    upgrade = {"connection": "upgrade", "upgrade": "websocket", "sec-websocket-version": "13"}
    upgrade["sec-websocket-key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    assert httpx.get(f"{server.url}/v1/endpoints/lr", headers=upgrade).status_code != 101
    assert not [p for p in mapped_libraries(server.process.pid) if "/websockets/" in p]


@pytest.mark.parametrize(("given", "used"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_arrow_allocates_from_the_system_allocator_unless_the_operator_chose(
    deployed: tuple[Settings, list[dict[str, float]]],
    start_server: Any,
    given: str | None,
    used: str,
) -> None:
    """pyarrow's default (jemalloc) keeps freed pages: ~6 MiB more in a steady serving
    process for the log's small chunks. ``serve`` sets the system allocator for the processes
    it starts (the monitor process shows the environment they inherit), but an operator's own
    ``ARROW_DEFAULT_MEMORY_POOL`` stays."""
    settings, rows = deployed
    env = {} if given is None else {"ARROW_DEFAULT_MEMORY_POOL": given}
    server = _serving(start_server, settings, rows, **env)
    (child,) = _until(lambda: _monitor_processes(server.process.pid))
    environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")

    assert f"ARROW_DEFAULT_MEMORY_POOL={used}".encode() in environment


def test_the_apis_drift_and_performance_reads_are_computed_in_the_monitor_process(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    url = f"{server.url}/api/monitoring/lr"
    drift = httpx.get(f"{url}/drift", params={"window": "all", "every": "hour"}, timeout=60)
    assert drift.status_code == 200, drift.text
    performance = httpx.get(f"{url}/performance", params={"window": "all"}, timeout=60)
    assert performance.status_code == 200, performance.text
    by = httpx.get(f"{url}/performance", params={"window": "all", "by": "a"}, timeout=60)
    assert by.status_code == 200, by.text
    assert not [p for p in mapped_libraries(server.process.pid) if "_duckdb" in p or "/scipy/" in p]
    # the same figures as this process computes over the same log
    with open_monitor(settings) as monitor:
        window = monitor.window("all")
        expected = monitor.drift("lr", window)
        expected_performance = monitor.performance("lr", window)
    report = drift.json()["report"]
    assert report["drift_share"] == expected["report"]["drift_share"]
    assert [f["effect_size"] for f in report["features"]] == [
        f["effect_size"] for f in expected["report"]["features"]
    ]
    assert drift.json()["over_time"]
    assert performance.json()["versions"].keys() == expected_performance["versions"].keys()
    # what the child refuses comes back as the caller's error, in the one error shape
    unknown = httpx.get(f"{server.url}/api/monitoring/nope/drift", timeout=60)
    assert unknown.status_code == 404, unknown.text
    assert "nope" in unknown.json()["error"]
    every = httpx.get(f"{url}/drift", params={"every": "fortnight"}, timeout=60)
    assert every.status_code == 400, every.text
    assert "fortnight" in every.json()["error"]
    column = httpx.get(f"{url}/performance", params={"by": "nope"}, timeout=60)
    assert column.status_code == 400, column.text


def test_the_monitor_process_merges_a_servers_closed_hours(sqlite_settings: Settings) -> None:
    """The hourly compaction of a server's log runs in its idle monitor process: merging
    an hour of a busy server's segments took seconds of a serving thread."""
    from datetime import UTC, datetime, timedelta

    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.records import Batch, ModelCall, Source
    from dockyard.monitoring.store import MonitoringStore

    source = Source("lr", 1, "lr", "1.0.0", ("a", "b"), None, None)
    store = MonitoringStore(sqlite_settings.resolved_monitoring_url)  # the server's
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    for segment in range(3):
        batch = Batch(source)
        batch.add(f"r{segment}", hour.timestamp(), 0.001, ModelCall(np.ones((2, 2)), [1.0, 2.0]))
        store.write_predictions("lr", to_table(batch), hour)
    due = store.take_due("lr", before=hour + timedelta(hours=1))
    assert len(due) == 1
    process = MonitorProcess(sqlite_settings, sample_rows=100)

    async def merge() -> int:
        try:
            return await process.compact_log(store.writer, due)
        finally:
            await process.close()

    assert asyncio.run(merge()) == 3
    (merged,) = store.prediction_segments("lr")
    assert merged.endswith("-merged.parquet")
    assert len(store.predictions("lr", Window(), only_ok=False)) == 6


def test_one_worker_of_several_runs_the_monitor_process_and_answers_the_others_reads(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows, "--workers", "2")
    workers = children(server.process.pid)
    assert len(workers) >= 2
    assert len(_monitor_processes(server.process.pid)) == 1
    # reads on fresh connections land on either worker; every one is answered by the one child
    shares = set()
    for _ in range(12):
        answer = httpx.get(f"{server.url}/api/monitoring/lr/drift?window=all", timeout=60)
        assert answer.status_code == 200, answer.text
        shares.add(answer.json()["report"]["drift_share"])
        report = httpx.get(f"{server.url}/api/monitoring/lr/report?window=1h", timeout=60)
        assert report.status_code == 200, report.text
    assert len(shares) == 1
    assert len(_monitor_processes(server.process.pid)) == 1
    for worker in workers:
        assert not [p for p in mapped_libraries(worker) if "_duckdb" in p or "/scipy/" in p]


def test_when_the_lead_worker_dies_another_takes_the_lead_and_its_reads(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows, "--workers", "2")
    (child,) = _until(lambda: _monitor_processes(server.process.pid))
    lead = next(pid for pid in children(server.process.pid) if child in children(pid))
    os.kill(lead, signal.SIGKILL)

    def answered() -> bool:
        read = httpx.get(f"{server.url}/api/monitoring/lr/drift?window=all", timeout=60)
        assert read.status_code in (200, 503), read.text  # 503: the new child is starting
        return read.status_code == 200

    for _ in range(6):  # on fresh connections: whichever worker answers, it is answered
        _until(answered)
    (successor,) = _until(lambda: _monitor_processes(server.process.pid))
    assert successor != child
    # reaped (and replaced) on the supervisor's own schedule: a zombie is a child until then
    _until(lambda: lead not in children(server.process.pid))


def test_a_worker_that_does_not_lead_reads_through_the_leads_monitor_process(
    deployed: tuple[Settings, list[dict[str, float]]],
    start_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers' views in this process: the first holds the lead (and its child), the
    second cannot take the lock and reads through the first's child over its socket."""
    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    server.stop()  # the log is written; the two monitor processes below read it
    monkeypatch.setenv(MONITOR_KEY_ENV, "k" * 64)
    folder = tmp_path / "workers"
    folder.mkdir()
    leader = MonitorProcess(settings, sample_rows=1000, lead=Lead(str(folder)))
    other = MonitorProcess(settings, sample_rows=1000, lead=Lead(str(folder)))

    async def reads() -> list[Any]:
        assert leader.lead.held()
        assert not other.lead.held()
        leader.prepare()  # the lead starts its child at once, for the others
        try:
            window = Window()
            mine = await leader.drift("lr", window, None, None, None)
            theirs = await _retried(lambda: other.drift("lr", window, None, None, "hour"))
            performance = await other.performance("lr", window, None, None)
            try:
                await other.drift("nope", window, None, None, None)
            except NotFoundError as exc:
                missing: Exception = exc
            return [mine, theirs, performance, missing]
        finally:
            await other.close()
            await leader.close()
            leader.lead.close()
            other.lead.close()

    mine, theirs, performance, missing = asyncio.run(reads())
    assert other._executor is None  # the second never started a child of its own
    assert theirs["report"]["drift_share"] == mine["report"]["drift_share"]
    assert theirs["over_time"]
    assert "lr" in str(performance)
    assert "nope" in str(missing)


async def _retried(read: Any) -> Any:
    """``read()`` once the lead's child listens (it binds after its imports)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await read()
        except UnavailableError:
            assert time.monotonic() < deadline, "the lead's monitor process never listened"
            await asyncio.sleep(0.2)


def test_without_a_monitor_process_the_server_computes_on_its_own_threads(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows, DOCKYARD_MONITOR_PROCESS="false")
    assert not _monitor_processes(server.process.pid)
    assert any("_duckdb" in path for path in mapped_libraries(server.process.pid))


def test_the_monitor_process_ends_with_a_killed_server(
    deployed: tuple[Settings, list[dict[str, float]]], start_server: Any
) -> None:
    settings, rows = deployed
    server = _serving(start_server, settings, rows)
    (child,) = _until(lambda: _monitor_processes(server.process.pid))
    server.process.kill()
    server.process.wait()
    _until(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), timeout=15)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
