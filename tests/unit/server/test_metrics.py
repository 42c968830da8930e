"""Prometheus metrics: names and labels, per-app registries, bounded series, and
multiprocess mode with real worker processes (and the import-order trap BentoML fell into)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.server.metrics import MULTIPROC_ENV, Metrics, mark_process_dead


def value(text: bytes, name: str, **labels: str) -> float | None:
    """The value of one sample in a text exposition, or None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def families(text: bytes) -> dict[str, str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


@pytest.fixture
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh multiprocess folder, set in the environment; prometheus_client's value class
    is put back afterwards so later tests in this process are unaffected."""
    from prometheus_client import values

    folder = tmp_path / "prom"
    folder.mkdir()
    saved = values.ValueClass
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    yield folder
    values.close_all_multiprocess_files()  # type: ignore[no-untyped-call]
    values.ValueClass = saved


def test_every_metric_is_named_and_typed_by_convention(single_process: None) -> None:
    metrics = Metrics()
    metrics.observe_request("fraud", "1.4.0", 200, 0.0042)
    metrics.observe_batch("fraud", 17)
    metrics.set_queue("fraud", 3)
    metrics.request_started()
    metrics.observe_load("fraud", 1.5, ok=True)
    metrics.observe_load("fraud", None, ok=False)
    metrics.set_models_loaded(2)
    metrics.observe_log(10, 1)
    metrics.observe_out_of_range("fraud", 2)
    metrics.set_monitoring("fraud", {"drift_share": 0.25, "accuracy": 0.9, "label_coverage": 0.5})
    metrics.set_monitoring("fraud", {"estimated_accuracy": 0.88})
    metrics.set_feature_drift("fraud", "amount", 0.31)
    metrics.set_alert("fraud", "drifted", True)
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    ours = {
        name: kind
        for name, kind in families(body).items()
        if name.startswith("dockyard_") and not name.endswith("_created")
    }
    assert ours == {
        "dockyard_requests": "counter",
        "dockyard_request_duration_seconds": "histogram",
        "dockyard_batch_rows": "histogram",
        "dockyard_queue_rows": "gauge",
        "dockyard_requests_in_flight": "gauge",
        "dockyard_model_load_seconds": "histogram",
        "dockyard_model_load_failures": "counter",
        "dockyard_models_loaded": "gauge",
        "dockyard_prediction_log_records": "counter",
        "dockyard_prediction_log_dropped": "counter",
        "dockyard_out_of_range_rows": "counter",
        "dockyard_drift_share": "gauge",
        "dockyard_feature_drift": "gauge",
        "dockyard_accuracy": "gauge",
        "dockyard_estimated_accuracy": "gauge",
        "dockyard_label_coverage": "gauge",
        "dockyard_alerts_firing": "gauge",
        "dockyard_monitor_pass_seconds": "gauge",
    }
    labels = {"endpoint": "fraud", "version": "1.4.0", "status": "200"}
    assert value(body, "dockyard_requests_total", **labels) == 1
    served = {"endpoint": "fraud", "version": "1.4.0"}
    assert value(body, "dockyard_request_duration_seconds_count", **served) == 1
    assert value(body, "dockyard_request_duration_seconds_sum", **served) == 0.0042
    assert value(body, "dockyard_request_duration_seconds_bucket", **served, le="0.005")
    assert value(body, "dockyard_batch_rows_sum", endpoint="fraud") == 17
    assert value(body, "dockyard_out_of_range_rows_total", endpoint="fraud") == 2
    assert value(body, "dockyard_batch_rows_bucket", endpoint="fraud", le="16.0") == 0
    assert value(body, "dockyard_batch_rows_bucket", endpoint="fraud", le="32.0") == 1
    assert value(body, "dockyard_queue_rows", endpoint="fraud") == 3
    assert value(body, "dockyard_requests_in_flight") == 1
    assert value(body, "dockyard_model_load_seconds_count", endpoint="fraud") == 1
    assert value(body, "dockyard_model_load_failures_total", endpoint="fraud") == 1
    assert value(body, "dockyard_models_loaded") == 2
    assert b"process_cpu_seconds_total" in body  # process metrics in single-process mode


def test_latency_buckets_span_a_tenth_of_a_millisecond_to_ten_seconds(
    single_process: None,
) -> None:
    metrics = Metrics()
    for seconds in (0.00005, 0.0001, 9.0, 11.0):
        metrics.observe_request("fraud", "1.0.0", 200, seconds)
    body, _ = metrics.render()
    bucket = "dockyard_request_duration_seconds_bucket"
    served = {"endpoint": "fraud", "version": "1.0.0"}
    assert value(body, bucket, **served, le="0.0001") == 2
    assert value(body, bucket, **served, le="10.0") == 3
    assert value(body, bucket, **served, le="+Inf") == 4


def test_requests_count_by_endpoint_version_and_status(single_process: None) -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_request("fraud", "1.4.0", 200, 0.001)
    metrics.observe_request("fraud", "1.5.0", 200, 0.001)
    metrics.observe_request("fraud", "", 400, 0.0002)
    metrics.observe_request("churn", "2.0.0", 200, 0.001)
    body, _ = metrics.render()
    count = "dockyard_requests_total"
    assert value(body, count, endpoint="fraud", version="1.4.0", status="200") == 3
    assert value(body, count, endpoint="fraud", version="1.5.0", status="200") == 1
    assert value(body, count, endpoint="fraud", version="", status="400") == 1
    assert value(body, count, endpoint="churn", version="2.0.0", status="200") == 1
    duration = "dockyard_request_duration_seconds_count"  # per variant: its own latency
    assert value(body, duration, endpoint="fraud", version="1.4.0") == 3
    assert value(body, duration, endpoint="fraud", version="1.5.0") == 1
    assert value(body, duration, endpoint="fraud", version="") == 1
    assert value(body, duration, endpoint="fraud") is None  # no endpoint-only series


def test_collecting_reads_the_counts_without_resetting_them(single_process: None) -> None:
    # in one process the loop counts in plain numbers that collection reads: a second
    # scrape sees the same totals, plus what came since
    metrics = Metrics()
    metrics.observe_request("fraud", "1.0.0", 200, 0.003)
    ours = [line for line in metrics.render()[0].splitlines() if b"dockyard_request" in line]
    again = [line for line in metrics.render()[0].splitlines() if b"dockyard_request" in line]
    assert again == ours
    assert len(ours) > 20
    metrics.observe_request("fraud", "1.0.0", 200, 0.0005)
    metrics.observe_request("fraud", "1.0.0", 503, 0.0005)
    body, _ = metrics.render()
    served = {"endpoint": "fraud", "version": "1.0.0"}
    assert value(body, "dockyard_requests_total", **served, status="200") == 2
    assert value(body, "dockyard_requests_total", **served, status="503") == 1
    bucket = "dockyard_request_duration_seconds_bucket"
    assert value(body, bucket, **served, le="0.0005") == 2
    assert value(body, bucket, **served, le="0.0025") == 2
    assert value(body, bucket, **served, le="+Inf") == 3
    assert value(body, "dockyard_request_duration_seconds_sum", **served) == pytest.approx(0.004)


def test_two_apps_in_one_process_do_not_share_metrics(single_process: None) -> None:
    first, second = Metrics(), Metrics()  # the same names twice: no "Duplicated timeseries"
    first.observe_request("fraud", "1.0.0", 200, 0.001)
    first.observe_request("fraud", "1.0.0", 200, 0.001)
    second.observe_request("fraud", "1.0.0", 200, 0.001)
    labels = {"endpoint": "fraud", "version": "1.0.0", "status": "200"}
    assert value(first.render()[0], "dockyard_requests_total", **labels) == 2
    assert value(second.render()[0], "dockyard_requests_total", **labels) == 1
    from prometheus_client import REGISTRY

    assert "dockyard_requests" not in {m.name for m in REGISTRY.collect()}


def test_series_beyond_the_cap_are_counted_as_other(single_process: None) -> None:
    metrics = Metrics(max_series=3)
    for i in range(10):
        metrics.observe_request(f"e{i}", "1.0.0", 200, 0.001)
    metrics.observe_request("e0", "1.0.0", 200, 0.001)  # an existing series still counts
    body, _ = metrics.render()
    count = "dockyard_requests_total"
    assert value(body, count, endpoint="e0", version="1.0.0", status="200") == 2
    assert value(body, count, endpoint="e3", version="1.0.0", status="200") is None
    assert value(body, count, endpoint="other", version="other", status="200") == 7
    assert len(metrics._request_series) == 3


def test_in_flight_goes_up_and_down(single_process: None) -> None:
    metrics = Metrics()
    metrics.request_started()
    metrics.request_started()
    metrics.request_finished()
    assert value(metrics.render()[0], "dockyard_requests_in_flight") == 1


def test_importing_the_module_does_not_import_prometheus_client() -> None:
    probe = "import sys\nimport dockyard.server.metrics\nprint('prometheus_client' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_missing_multiprocess_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="is not a directory"):
        Metrics()


# --- several processes ---------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    from dockyard.server.metrics import Metrics

    n = int(sys.argv[1])
    metrics = Metrics()
    for _ in range(n):
        metrics.observe_request("fraud", "1.0.0", 200, 0.002)
    metrics.observe_request("fraud", "1.0.0", 500, 0.5)
    metrics.observe_batch("fraud", n)
    metrics.set_queue("fraud", n)
    metrics.request_started()
    metrics.observe_load("fraud", 0.25, ok=True)
    metrics.set_models_loaded(2)
    print("ready", flush=True)
    sys.stdin.readline()  # stay alive (live gauges count) until told to exit
    """
)


def _start_worker(n: int, folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(n)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    line = worker.stdout.readline()
    assert line.strip() == "ready", worker.stderr.read() if worker.stderr else line
    return worker


def _stop(worker: subprocess.Popen[str]) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    assert worker.wait(timeout=30) == 0
    for stream in (worker.stdout, worker.stderr):
        if stream is not None:
            stream.close()


def test_render_sums_real_worker_processes(multiproc_dir: Path) -> None:
    workers = [_start_worker(3, multiproc_dir), _start_worker(5, multiproc_dir)]
    try:
        metrics = Metrics()  # the scraping process, like a worker answering /metrics
        assert metrics.multiprocess_dir == str(multiproc_dir)
        body, content_type = metrics.render()
        assert content_type.startswith("text/plain")
        count = "dockyard_requests_total"
        assert value(body, count, endpoint="fraud", version="1.0.0", status="200") == 8
        assert value(body, count, endpoint="fraud", version="1.0.0", status="500") == 2
        duration = "dockyard_request_duration_seconds"
        served = {"endpoint": "fraud", "version": "1.0.0"}
        assert value(body, f"{duration}_count", **served) == 10
        assert value(body, f"{duration}_sum", **served) == pytest.approx(8 * 0.002 + 1)
        assert value(body, f"{duration}_bucket", **served, le="0.0025") == 8
        assert value(body, "dockyard_batch_rows_sum", endpoint="fraud") == 8
        assert value(body, "dockyard_queue_rows", endpoint="fraud") == 8  # livesum
        assert value(body, "dockyard_requests_in_flight") == 2  # livesum
        assert value(body, "dockyard_models_loaded") == 2  # livemax: same models everywhere
        assert value(body, "dockyard_model_load_seconds_count", endpoint="fraud") == 2
        assert b"process_cpu_seconds_total" not in body
    finally:
        pids = [w.pid for w in workers]
        for worker in workers:
            _stop(worker)
    for pid in pids:
        mark_process_dead(pid)
    body, _ = metrics.render()
    # counters and histograms keep what exited workers did; their live gauges are gone
    assert value(body, "dockyard_requests_total", endpoint="fraud", version="1.0.0", status="200")
    assert value(body, "dockyard_requests_in_flight") == 0  # only this process is left
    assert value(body, "dockyard_queue_rows", endpoint="fraud") is None


def test_prometheus_client_imported_before_the_directory_is_set_still_aggregates(
    tmp_path: Path,
) -> None:
    """The BentoML regression (bentoml/BentoML#5056): prometheus_client imported by the
    parent before PROMETHEUS_MULTIPROC_DIR is set must not leave metrics in memory."""
    folder = tmp_path / "prom"
    folder.mkdir()
    probe = textwrap.dedent(
        f"""
        import json, os
        import prometheus_client  # too early: the directory is not set yet
        os.environ[{MULTIPROC_ENV!r}] = {str(folder)!r}
        from dockyard.server.metrics import Metrics

        metrics = Metrics()
        metrics.observe_request("fraud", "1.0.0", 200, 0.001)
        print(json.dumps(sorted(os.listdir({str(folder)!r}))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    files = json.loads(result.stdout.strip().splitlines()[-1])
    assert any(name.startswith("counter_") for name in files), files

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(folder))  # type: ignore[no-untyped-call]
    body = generate_latest(merged)
    count = "dockyard_requests_total"
    assert value(body, count, endpoint="fraud", version="1.0.0", status="200") == 1


def test_switching_back_to_single_process_mode_works(
    multiproc_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Metrics().observe_request("fraud", "1.0.0", 200, 0.001)
    assert any(multiproc_dir.iterdir())
    monkeypatch.delenv(MULTIPROC_ENV)
    metrics = Metrics()
    metrics.observe_request("fraud", "1.0.0", 200, 0.001)
    body, _ = metrics.render()
    assert value(body, "dockyard_requests_total", endpoint="fraud", version="1.0.0", status="200")
    assert metrics.multiprocess_dir is None
