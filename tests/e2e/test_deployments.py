"""Deployments end to end: weighted splits, sticky callers, shadows compared and never
returned, revision history and rollback under load, and every bad input refused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from _server import mapped_libraries
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings

FEATURES = ["a", "b", "c"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Three versions of a classifier; endpoint 'clf' splits 80/20 and shadows the third."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=FEATURES)
    y = (X["a"] > 0).astype(int)
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "clf", sample=X, y=y)
        registry.register(LogisticRegression(C=0.05).fit(X, y), "clf", sample=X, y=y)
        registry.register(DecisionTreeClassifier(max_depth=2).fit(X, y), "clf", sample=X, y=y)
        spec = {
            "routes": [{"model": "clf@1.0.0", "weight": 80}, {"model": "clf@1.0.1", "weight": 20}],
            "shadows": [{"model": "clf@1.0.2"}],
        }
        DeploymentStore(registry.db).put("clf", DeploymentSpec.parse(spec), actor="tester")
    return home


def _row(rng: np.random.Generator) -> dict[str, float]:
    return dict(zip(FEATURES, rng.normal(size=3).tolist(), strict=True))


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "DOCKYARD_USER": "tester"},
    )


def test_split_stickiness_and_shadows(home: Path, start_server: Any) -> None:
    server = start_server(home, env={"DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2"})
    server.wait_ready()
    rng = np.random.default_rng(0)
    served: Counter[str] = Counter()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(1000):
            answer = client.post("/v1/endpoints/clf/predict", json={"instances": [_row(rng)]})
            assert answer.status_code == 200, answer.text
            served[answer.json()["version"]] += 1
        # weighted random: 20% ± 4.5 standard deviations (sqrt(1000 * 0.2 * 0.8) = 12.6)
        assert set(served) == {"1.0.0", "1.0.1"}  # never the shadow
        assert abs(served["1.0.1"] - 200) < 57

        by_key: dict[str, set[str]] = {}
        for user in range(60):
            for _ in range(4):
                answer = client.post(
                    "/v1/endpoints/clf/predict",
                    json={"instances": [_row(rng)]},
                    headers={"x-dockyard-key": f"user-{user}"},
                )
                by_key.setdefault(f"user-{user}", set()).add(answer.json()["version"])
        assert all(len(versions) == 1 for versions in by_key.values())  # sticky
        assert 0 < sum(v == {"1.0.1"} for v in by_key.values()) < 60

        v2 = client.post(
            "/v2/models/clf/infer",
            json={
                "inputs": [
                    {"name": name, "shape": [1], "datatype": "FP64", "data": [0.5]}
                    for name in FEATURES
                ]
            },
            headers={"x-dockyard-key": "user-7"},
        )
        assert v2.json()["model_version"] == next(iter(by_key["user-7"]))

        def all_logged() -> dict[str, Any] | None:
            """The comparison once every answer and every shadow's is in the log (the shadows
            answer in the background, the log flushes every 0.2 s)."""
            found = client.get("/api/deployments/clf/compare", params={"window": "1h"}).json()
            answered = sum(variant["requests"] for variant in found["variants"])
            shadowed = sum(shadow["requests"] for shadow in found["shadows"])
            return found if answered >= 1241 and shadowed >= 1241 else None

        compared = _until(all_logged)
    variants = {v["version"]: v for v in compared["variants"]}
    assert variants["1.0.0"]["requests"] + variants["1.0.1"]["requests"] == 1241
    assert variants["1.0.0"]["errors"] == 0
    (shadow,) = compared["shadows"]
    assert shadow["version"] == "1.0.2"
    assert shadow["requests"] == 1241  # every request mirrored
    assert shadow["errors"] == 0
    assert 0.8 < shadow["agreement"] <= 1.0  # a depth-2 tree agrees with the regressions mostly
    assert shadow["mean_abs_difference"] is not None

    result = _cli(home, "deployments", "compare", "clf", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["shadows"][0]["version"] == "1.0.2"

    # what the caller sees with the shadow on, then with it off: the same answers (what the
    # shadow costs the caller in latency is measured by benchmarks/shadow.py)
    rows = [_row(rng) for _ in range(150)]
    with_shadow = _answers(server.url, rows)
    unshadowed = {
        "routes": [{"model": "clf@1.0.0", "weight": 80}, {"model": "clf@1.0.1", "weight": 20}]
    }
    spec = home / "no-shadow.yaml"
    spec.write_text(json.dumps(unshadowed))
    assert _cli(home, "deploy", "clf", "-f", str(spec)).returncode == 0
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/api/deployments/clf").json()["shadowing"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    without = _answers(server.url, rows)
    assert with_shadow == without  # sticky keys: the same answers


def _answers(url: str, rows: list[dict[str, float]]) -> list[tuple[str, Any]]:
    """(version, predictions) for each row, each sent with its own sticky key."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, row in enumerate(rows):
            answer = client.post(
                "/v1/endpoints/clf/predict",
                json={"instances": [row]},
                headers={"x-dockyard-key": f"caller-{i}"},
            ).json()
            out.append((answer["version"], answer["predictions"]))
    return out


def _until(condition: Any, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout} s")


def test_history_and_rollback_under_load_drop_no_request(home: Path, start_server: Any) -> None:
    assert _cli(home, "deploy", "clf", "clf@1.0.2", "--reason", "promote the tree").returncode == 0
    server = start_server(home)
    server.wait_ready()
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        rng = np.random.default_rng(1)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                answer = client.post("/v1/endpoints/clf/predict", json={"instances": [_row(rng)]})
                if answer.status_code != 200:
                    failures.append(answer.text)
                else:
                    versions.append(answer.json()["version"])

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        _until(lambda: len(versions) >= 20 or failures)  # under load before the rollback
        rolled = _cli(home, "rollback", "clf")
        assert rolled.returncode == 0, rolled.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "1.0.1" not in versions[-20:]:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert versions[0] == "1.0.2"
    assert {"1.0.0", "1.0.1"} & set(versions[-20:])  # revision 1's split is back

    history = _cli(home, "deployments", "history", "clf", "--json")
    revisions = json.loads(history.stdout)
    assert [r["revision"] for r in revisions] == [3, 2, 1]
    assert revisions[0]["reason"] == "rollback to revision 1"
    assert revisions[1]["reason"] == "promote the tree"
    assert any("routes[0].model: clf@1.0.2 → clf@1.0.0" in c for c in revisions[0]["changes"])
    events = _cli(home, "events", "--action", "deployment.rollback", "--json")
    assert len(json.loads(events.stdout)) == 1


def test_bad_specs_and_rollbacks_are_refused_and_change_nothing(home: Path, tmp_path: Path) -> None:
    def revision() -> int:
        return int(json.loads(_cli(home, "deployments", "--json").stdout)[0]["revision"])

    before = revision()
    spec = tmp_path / "clf.yaml"
    spec.write_text("routes:\n  - {model: clf@1.0.0, weight: 100}\ncolour: blue\n")
    result = _cli(home, "deploy", "clf", "-f", str(spec))
    assert result.returncode == 2
    assert "colour" in result.stderr
    spec.write_text(
        "routes:\n  - {model: clf@1.0.0, weight: 70}\n  - {model: clf@1.0.1, weight: 20}\n"
    )
    result = _cli(home, "deploy", "clf", "-f", str(spec))
    assert result.returncode == 2
    assert "sum to 100, not 90" in result.stderr
    spec.write_text("routes:\n  - {model: clf@9.9.9, weight: 100}\n")
    result = _cli(home, "deploy", "clf", "-f", str(spec))
    assert result.returncode == 4
    spec.write_text("routes: [[[\n")
    assert _cli(home, "deploy", "clf", "-f", str(spec)).returncode == 2
    result = _cli(home, "rollback", "clf")
    assert result.returncode == 2
    assert "only one revision" in result.stderr
    result = _cli(home, "rollback", "clf", "--to", "7")  # no such revision: not found
    assert result.returncode == 4
    assert "no revision 7" in result.stderr
    assert _cli(home, "rollback", "nope").returncode == 4
    assert revision() == before

    spec.write_text(
        "routes:\n  - {model: clf@1.0.0, weight: 90}\n  - {model: clf@1.0.1, weight: 10}\n"
        "traffic: {sticky_header: x-user}\nmonitoring: {sample_rate: 0.5}\n"
    )
    result = _cli(home, "deploy", "clf", "-f", str(spec), "--reason", "canary 10%")
    assert result.returncode == 0, result.stderr
    assert "clf@1.0.1 10%" in result.stdout
    assert revision() == before + 1


def _rollout_home(tmp_path: Path, candidate: Any, checks: dict[str, Any], steps: list[Any]) -> Path:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=FEATURES)
    y = (X["a"] > 0).astype(int)
    home = tmp_path / "rollout-home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "clf", sample=X, y=y, accelerate=False)
        registry.register(candidate.fit(X, y), "clf", sample=X, y=y, accelerate=False)
        spec = {
            "routes": [{"model": "clf@1.0.0"}],
            "accelerate": False,
            "rollout": {"candidate": "clf@1.0.1", "steps": steps, "checks": checks},
        }
        DeploymentStore(registry.db).put("clf", DeploymentSpec.parse(spec), actor="tester")
    return home


def _drive_until(server: Any, home: Path, done: Any, timeout: float = 90) -> list[str]:
    """Send traffic until the rollout status satisfies ``done``; returns failed answers."""
    failures: list[str] = []
    rng = np.random.default_rng(2)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while time.monotonic() < deadline:
            for _ in range(20):
                answer = client.post("/v1/endpoints/clf/predict", json={"instances": [_row(rng)]})
                if answer.status_code != 200:
                    failures.append(answer.text)
            status = client.get("/api/deployments/clf/rollout").json()
            if done(status):
                return failures
    raise AssertionError(f"rollout did not finish: {status}")


ROLLOUT_ENV = {"DOCKYARD_MONITOR_INTERVAL_S": "0.3", "DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2"}


def test_an_automatic_rollout_that_passes_moves_all_traffic(
    tmp_path: Path, start_server: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    steps = [
        {"weight": 30, "min_duration_s": 1, "min_requests": 20},
        {"weight": 100, "min_duration_s": 0, "min_requests": 0},
    ]
    home = _rollout_home(tmp_path, LogisticRegression(C=0.5), {"max_p99_latency_ratio": 20}, steps)
    server = start_server(home, env=ROLLOUT_ENV)
    server.wait_ready()

    def finished(status: dict[str, Any]) -> bool:
        progress = status["rollout"]
        return progress is not None and progress["state"]["status"] == "succeeded"

    assert _drive_until(server, home, finished) == []
    status = httpx.get(f"{server.url}/api/deployments/clf/rollout").json()
    assert status["routes"] == [{"model": "clf@1.0.1", "weight": 100}]
    assert status["plan"] is None  # the finished plan leaves the spec
    events = json.loads(_cli(home, "events", "--limit", "50", "--json").stdout)
    actions = [e["action"] for e in events if e["action"].startswith("rollout.")]
    assert actions[::-1] == ["rollout.started", "rollout.advanced", "rollout.completed"]
    history = json.loads(_cli(home, "deployments", "history", "clf", "--json").stdout)
    weights = [[r["weight"] for r in h["spec"]["routes"]] for h in history[::-1]]
    assert weights == [[100], [70, 30], [0, 100], [100]]
    # the steps' statistics were read in the monitor process: no DuckDB in the server's
    assert not [path for path in mapped_libraries(server.process.pid) if "_duckdb" in path]


def test_a_failing_rollout_rolls_back_by_itself(tmp_path: Path, start_server: Any) -> None:
    from sklearn.ensemble import RandomForestClassifier

    steps = [
        {"weight": 50, "min_duration_s": 60, "min_requests": 10_000},
        {"weight": 100, "min_duration_s": 0, "min_requests": 0},
    ]
    slow = RandomForestClassifier(n_estimators=300, random_state=0)  # native: ~10x the latency
    home = _rollout_home(tmp_path, slow, {"max_p99_latency_ratio": 1.5}, steps)
    server = start_server(home, env=ROLLOUT_ENV)
    server.wait_ready()

    def rolled_back(status: dict[str, Any]) -> bool:
        progress = status["rollout"]
        return progress is not None and progress["state"]["status"] == "rolled_back"

    assert _drive_until(server, home, rolled_back) == []
    status = json.loads(_cli(home, "deployments", "status", "clf", "--json").stdout)
    assert status["routes"] == [{"model": "clf@1.0.0", "weight": 100}]
    assert "p99_latency" in status["rollout"]["state"]["reason"]
    shown = _cli(home, "deployments", "status", "clf")
    assert "rolled_back" in shown.stdout
    events = json.loads(_cli(home, "events", "--action", "rollout.rolled_back", "--json").stdout)
    assert len(events) == 1
    assert _cli(home, "deployments", "pause", "clf").returncode == 4  # nothing left to pause


def test_a_protected_alias_moves_through_the_api_only_with_a_passing_gate(
    home: Path, start_server: Any, tmp_path: Path
) -> None:
    import pandas as pd

    rng = np.random.default_rng(11)
    holdout = pd.DataFrame(rng.normal(size=(300, 3)), columns=FEATURES)
    holdout["label"] = (holdout["a"] > 0).astype(int)
    data = tmp_path / "holdout.parquet"
    holdout.to_parquet(data)
    gate = _cli(
        home, "gate", "clf@1.0.1", "--data", str(data), "--target", "label",
        "--require", "accuracy >= 0.8", "--json",
    )  # fmt: skip
    assert gate.returncode == 0, gate.stdout + gate.stderr
    result = json.loads(gate.stdout)
    server = start_server(home)
    server.wait_ready()
    url = f"{server.url}/api/models/clf/aliases/production"
    refused = httpx.put(url, json={"version": "1.0.1"})
    assert refused.status_code == 400
    assert "protected" in refused.json()["error"]
    wrong = httpx.put(url, json={"version": "1.0.0", "gate": result})  # gated another version
    assert wrong.status_code == 400
    moved = httpx.put(url, json={"version": "1.0.1", "gate": result})
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == "1.0.1"
    events = json.loads(_cli(home, "events", "--action", "alias.set", "--json").stdout)
    assert events[0]["details"]["gate"]["passed"] is True
    staging = httpx.put(f"{server.url}/api/models/clf/aliases/staging", json={"version": "1.0.0"})
    assert staging.status_code == 200
