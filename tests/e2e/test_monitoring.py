"""Monitoring end to end: real traffic through a real server, the prediction log on disk,
late labels, drift injected in known amounts, an alert delivered to a webhook on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dockyard.cli.app import app
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.monitoring.store import MonitoringStore
from dockyard.monitoring.webhooks import verify
from dockyard.registry import Registry
from dockyard.settings import Settings
from dockyard.windows import Window

FEATURES = [f"f{i}" for i in range(6)]
SECRET = "webhook-secret-for-tests"


class Receiver:
    """A webhook receiver on loopback that keeps every delivery."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def _rows(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> np.ndarray:
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, :3] += shift  # drift in half the features
    return X


@pytest.fixture
def monitored(tmp_path: Path, receiver: Receiver) -> tuple[Path, Any]:
    """A binary classifier deployed with an alert on drift share, posting to the receiver."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    X = pd.DataFrame(_rows(rng, 3000), columns=FEATURES)
    y = (X["f0"] + X["f1"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "clf", sample=X, y=y)
        spec = {
            "routes": [{"model": "clf@1.0.0"}],
            "monitoring": {
                "window": "1h",
                "alerts": [
                    {
                        "name": "inputs-drifted",
                        "metric": "drift_share",
                        "threshold": 0.3,
                        "window": "last:400",
                        "cooldown_s": 0,
                        "min_rows": 100,
                        "webhook": receiver.url,
                    }
                ],
            },
        }
        DeploymentStore(registry.db).put("clf", DeploymentSpec.parse(spec), actor="tester")
    return home, rng


def _server_env() -> dict[str, str]:
    return {
        "DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2",
        "DOCKYARD_MONITOR_INTERVAL_S": "0.5",
        "DOCKYARD_WEBHOOK_SECRET": SECRET,
        "DOCKYARD_WEBHOOK_ALLOW_PRIVATE": "true",
    }


def _predict(url: str, X: np.ndarray) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for row in X:
            answer = client.post(
                "/v1/endpoints/clf/predict",
                json={"instances": [dict(zip(FEATURES, row.tolist(), strict=True))]},
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["request_id"])
    return ids


def _wait(condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _evaluated_after(url: str, rule: str, moment: float) -> dict[str, Any] | None:
    """The rule's stored state once a monitor pass that began after ``moment`` (a Unix
    time) evaluated it; ``None`` before."""
    states = httpx.get(f"{url}/api/monitoring/alerts", params={"endpoint": "clf"}).json()
    for state in states:
        evaluated = state["evaluated_at"]
        # stored to the second, rounded down: later than ``moment`` means it began after
        if (
            state["rule"] == rule
            and evaluated is not None
            and datetime.fromisoformat(evaluated).timestamp() > moment
        ):
            return dict(state)
    return None


def test_logged_traffic_drift_feedback_and_alert_end_to_end(
    monitored: tuple[Path, Any], start_server: Any, receiver: Receiver
) -> None:
    home, rng = monitored
    server = start_server(home, env=_server_env())
    server.wait_ready()
    url = server.url

    # nothing logged yet: empty series and a report, not an error
    for what in ("drift", "performance"):
        empty = httpx.get(f"{url}/api/monitoring/clf/{what}", params={"every": "hour"})
        assert empty.status_code == 200, empty.text
        assert empty.json()["over_time"] == []
    report = httpx.get(f"{url}/api/monitoring/clf/report")
    assert report.status_code == 200, report.text
    assert report.text.startswith("<!DOCTYPE html>")

    # undrifted traffic: logged, no drift, no alert
    calm = _rows(rng, 400)
    ids = _predict(url, calm)
    store = MonitoringStore(str(home / "monitoring"))
    logged = _wait(lambda: len(store.predictions("clf", Window())) >= 400 or None)
    frame = store.predictions("clf", Window())
    assert logged
    assert set(frame["request_id"]) == set(ids)
    assert set(frame["version"]) == {"1.0.0"}
    assert np.allclose(frame.sort_values("request_id")["input.f0"].to_numpy(), _by_id(ids, calm))
    drift = httpx.get(f"{url}/api/monitoring/clf/drift", params={"window": "1h"}).json()
    assert drift["report"]["rows"] == 400
    assert not drift["report"]["dataset_drifted"], drift["report"]["features"]
    # a monitor pass that began after the 400 rows were logged: the rule holds, nothing sent
    logged_at = time.time()
    state = _wait(lambda: _evaluated_after(url, "inputs-drifted", logged_at))
    assert state["status"] != "firing", state
    assert receiver.received == []

    # late labels, some for requests nobody made
    labels = [
        {"request_id": i, "label": int(r[0] + r[1] > 0)} for i, r in zip(ids, calm, strict=True)
    ]
    answer = httpx.post(
        f"{url}/v1/endpoints/clf/feedback",
        json=[*labels[:300], {"request_id": "made-up", "label": 1}],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 300, "unknown_request_ids": ["made-up"]}
    performance = httpx.get(f"{url}/api/monitoring/clf/performance", params={"window": "1h"})
    figures = performance.json()["versions"]["1.0.0"]
    assert figures["labelled"] == 300
    assert figures["coverage"] == pytest.approx(0.75)
    assert figures["accuracy"] > 0.8
    estimate = performance.json()["estimated"]["1.0.0"]
    assert estimate["estimate"] is True
    assert abs(estimate["estimated_accuracy"] - 0.85) < 0.1

    # drift injected in half the features: detected, the alert fires once, signed
    _predict(url, _rows(rng, 400, shift=1.5))
    delivered = _wait(lambda: receiver.received)
    headers, body = delivered[0]
    payload = json.loads(body)
    assert payload["status"] == "firing"
    assert payload["rule"] == "inputs-drifted"
    assert payload["value"] >= 0.3
    assert verify(
        body, SECRET, int(headers["x-dockyard-timestamp"]), headers["x-dockyard-signature"]
    )
    # the alert can fire before the log holds all 400 drifted rows; read the window once it
    # does, so that it is those rows exactly (a mix of calm and drifted rows may flag another
    # feature by chance: seen once in a full run)
    _wait(lambda: len(store.predictions("clf", Window())) >= 800 or None)
    drift = httpx.get(f"{url}/api/monitoring/clf/drift", params={"window": "last:400"}).json()
    drifted = {f["feature"] for f in drift["report"]["features"] if f["drifted"]}
    assert drifted == {"f0", "f1", "f2"}
    importance = {f["feature"]: f["importance"] for f in drift["report"]["features"]}
    assert importance["f0"] > importance["f4"]  # the model's |coef_|, kept at registration
    against_earlier = httpx.get(
        f"{url}/api/monitoring/clf/drift", params={"window": "last:400", "baseline": "last:800"}
    ).json()
    assert against_earlier["baseline"].startswith("window")
    alerts = httpx.get(f"{url}/api/monitoring/alerts").json()
    assert [(a["rule"], a["status"]) for a in alerts] == [("inputs-drifted", "firing")]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'dockyard_alerts_firing{endpoint="clf",rule="inputs-drifted"} 1.0' in metrics
    assert "dockyard_prediction_log_records_total" in metrics
    assert 'dockyard_drift_share{endpoint="clf"}' in metrics
    assert 'dockyard_feature_drift{endpoint="clf",feature="f0"}' in metrics
    assert 'dockyard_estimated_accuracy{endpoint="clf"}' in metrics

    # back to normal: resolved and sent too
    _predict(url, _rows(rng, 400))
    resolved = _wait(lambda: [d for d in receiver.received if b'"resolved"' in d[1]])
    assert json.loads(resolved[0][1])["status"] == "resolved"
    server.stop()

    runner = CliRunner()
    events = runner.invoke(app, ["--home", str(home), "events", "--action", "alert.firing"])
    assert events.exit_code == 0
    assert "alert.firing" in events.output


def _by_id(ids: list[str], X: np.ndarray) -> np.ndarray:
    order = np.argsort(np.asarray(ids))
    return X[order, 0]


def test_sigterm_flushes_every_buffered_record(
    monitored: tuple[Path, Any], start_server: Any
) -> None:
    home, rng = monitored
    # Only shutdown may flush: the log's own interval is long, and so is the monitor pass's
    # (the watcher flushes the log before each pass, so its alerts read every answered row;
    # at _server_env's 0.5 s it wrote part of the 50 rows whenever they took longer to send)
    env = {
        **_server_env(),
        "DOCKYARD_LOG_FLUSH_INTERVAL_S": "60",
        "DOCKYARD_MONITOR_INTERVAL_S": "3600",
    }
    server = start_server(home, env=env)
    server.wait_ready()
    ids = _predict(server.url, _rows(rng, 50))
    store = MonitoringStore(str(home / "monitoring"))
    assert store.predictions("clf", Window()).empty
    assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after shutdown
    assert set(store.predictions("clf", Window())["request_id"]) == set(ids)


def test_sigkill_loses_at_most_the_unflushed_interval(
    monitored: tuple[Path, Any], start_server: Any
) -> None:
    home, rng = monitored
    server = start_server(home, env=_server_env())  # flushed every 0.2 s
    server.wait_ready()
    ids = _predict(server.url, _rows(rng, 50))
    store = MonitoringStore(str(home / "monitoring"))
    _wait(lambda: set(store.predictions("clf", Window())["request_id"]) == set(ids))
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    assert set(store.predictions("clf", Window())["request_id"]) == set(ids)


def test_cli_reports_drift_performance_and_writes_an_offline_report(
    monitored: tuple[Path, Any], start_server: Any, tmp_path: Path
) -> None:
    home, rng = monitored
    server = start_server(home, env=_server_env())
    server.wait_ready()
    calm = _rows(rng, 200)
    ids = _predict(server.url, calm)
    server.stop()
    labels = tmp_path / "labels.csv"
    lines = ["request_id,label"] + [
        f"{i},{int(r[0] + r[1] > 0)}" for i, r in zip(ids, calm, strict=True)
    ]
    labels.write_text("\n".join([*lines, "nobody,1"]) + "\n")

    runner = CliRunner()
    base = ["--home", str(home)]
    result = runner.invoke(app, [*base, "monitor", "feedback", "clf", str(labels)])
    assert result.exit_code == 1
    assert "1 unknown request id" in result.output
    assert "Recorded 200 label(s)" in result.output
    result = runner.invoke(app, [*base, "monitor", "performance", "clf", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["versions"]["1.0.0"]["labelled"] == 200
    result = runner.invoke(app, [*base, "monitor", "drift", "clf", "--window", "1h"])
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    assert "f0" in result.output
    report = tmp_path / "report.html"
    result = runner.invoke(app, [*base, "monitor", "report", "clf", "--out", str(report)])
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "clf" in html
    assert "<script src=" not in html
    missing = subprocess.run(
        [sys.executable, "-m", "dockyard", *base, "monitor", "drift", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 4
    assert "No endpoint named 'nope'" in missing.stderr
