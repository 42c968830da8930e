"""Live performance per group of an input column, from logged predictions and feedback,
through the API and ``Monitor.performance_by``: counts, accuracy, coverage and the gap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_app_inprocess import assert_error, running

from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``credit``: a pipeline over ``income`` and ``region``, deployed and logging."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"income": rng.normal(size=300)})
    X["region"] = rng.choice(["north", "south"], size=len(X))
    y = (X.income > 0).astype(int)
    columns = ColumnTransformer(
        [("num", "passthrough", ["income"]), ("cat", OneHotEncoder(), ["region"])]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(X, y)
    home = tmp_path_factory.mktemp("groups") / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "credit", sample=X, y=y, accelerate=False)
    settings = Settings(home=home, user="tester", poll_interval_s=0.05)
    with running(settings) as app:
        answer = app.put("/api/deployments/credit", json={"model": "credit@1.0.0"})
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while app.get("/v2/models/credit/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield app, home


def test_performance_by_a_column_counts_each_group(served: Any) -> None:
    app, _ = served
    rows = [
        {"income": 2.0, "region": "north"},  # predicted 1
        {"income": -2.0, "region": "north"},  # predicted 0
        {"income": 2.0, "region": "south"},  # predicted 1
        {"income": 1.5, "region": "south"},  # predicted 1
        {"income": -1.0, "region": "south"},  # predicted 0, left unlabelled
    ]
    answer = app.post("/v1/endpoints/credit/predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    request_id = answer.json()["request_id"]
    labels = [1, 0, 0, 1]  # north right twice; south wrong once, right once
    feedback = [{"request_id": request_id, "row": i, "label": v} for i, v in enumerate(labels)]
    deadline = time.monotonic() + 30
    while True:  # poll: the labels are kept once the log has the predictions
        stored = app.post("/v1/endpoints/credit/feedback", json=feedback)
        assert stored.status_code == 200, stored.text
        if stored.json()["accepted"] == len(labels):
            break
        assert time.monotonic() < deadline, stored.text
        time.sleep(0.05)
    found = app.get("/api/monitoring/credit/performance", params={"window": "1h", "by": "region"})
    assert found.status_code == 200, found.text
    body = found.json()
    groups = body["versions"]["1.0.0"]["groups"]
    assert set(groups) == {"north", "south"}
    assert (groups["north"]["rows"], groups["north"]["labelled"]) == (2, 2)
    assert (groups["south"]["rows"], groups["south"]["labelled"]) == (3, 2)
    assert groups["north"]["accuracy"] == 1.0
    assert groups["south"]["accuracy"] == 0.5
    assert np.isclose(groups["south"]["coverage"], 2 / 3)
    assert groups["north"]["accuracy_ci"] is not None
    gap = body["versions"]["1.0.0"]["gap"]
    assert gap == {"metric": "accuracy", "gap": 0.5, "highest": "north", "lowest": "south"}


def test_an_unknown_column_is_a_client_error(served: Any) -> None:
    app, _ = served
    app.post("/v1/endpoints/credit/predict", json={"instances": [{"income": 1.0, "region": "x"}]})
    found = app.get("/api/monitoring/credit/performance", params={"window": "1h", "by": "age"})
    assert_error(found, 400, "invalid_request")


def test_the_command_prints_one_table_per_version(served: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _, home = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), COLUMNS="200")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "monitor",
            "performance",
            "credit",
            "--window",
            "1h",
            "--by",
            "region",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "credit 1.0.0 by region" in result.stdout
    assert "accuracy gap 0.5: north highest, south lowest" in result.stdout


def test_the_gap_between_groups_fires_an_alert_from_the_monitor_pass(tmp_path: Path) -> None:
    """A ``group_accuracy_gap`` rule by ``region``, evaluated by the server's own background
    pass: north right every time, south wrong half the time -> firing with the gap 0.5."""
    from dockyard.deploy.service import Deployments
    from dockyard.monitoring.alerts import AlertRule
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.windows import Window

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"income": rng.normal(size=200)})
    X["region"] = rng.choice(["north", "south"], size=len(X))
    y = (X.income > 0).astype(int)
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [("num", "passthrough", ["income"]), ("cat", OneHotEncoder(), ["region"])]
    )
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        model = make_pipeline(columns, LogisticRegression()).fit(X, y)
        registry.register(model, "credit", sample=X, y=y, accelerate=False)
    rule = {
        "name": "unequal",
        "metric": "group_accuracy_gap",
        "by": "region",
        "threshold": 0.2,
        "min_rows": 4,
        "cooldown_s": 0,
    }
    spec = {"routes": [{"model": "credit@1.0.0"}], "monitoring": {"alerts": [rule]}}
    settings = Settings(
        home=home,
        user="tester",
        poll_interval_s=0.05,
        monitor_interval_s=0.2,
        log_flush_interval_s=0.05,
    )
    with running(settings) as app:
        from test_app_inprocess import deploy

        deploy(app, "credit", spec)
        rows = [{"income": v, "region": r} for r in ("north", "south") for v in (2, 1, -1, -2)]
        answer = app.post("/v1/endpoints/credit/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        request_id = answer.json()["request_id"]
        truth = [1, 1, 0, 0, 1, 0, 1, 0]  # north all right; south rows 5 and 6 wrong
        feedback = [{"request_id": request_id, "row": i, "label": v} for i, v in enumerate(truth)]
        deadline = time.monotonic() + 30
        while app.post("/v1/endpoints/credit/feedback", json=feedback).json()["accepted"] < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        deadline = time.monotonic() + 30
        while True:  # poll until a pass has seen the labels
            states = app.get("/api/monitoring/alerts", params={"endpoint": "credit"}).json()
            if states and states[0]["status"] == "firing":
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        assert states[0]["rule"] == "unequal"
        assert states[0]["value"] == pytest.approx(0.5)
        events = app.get("/api/events").json()
        fired = [e for e in events if e["action"] == "alert.firing"]
        assert fired, events

    with Registry.open(Settings(home=home, user="tester")) as registry:
        store = MonitoringStore(str(home / "monitoring"))
        monitor = Monitor(registry, store, policies=Deployments(registry))
        strict = AlertRule.parse({**rule, "min_rows": 5})  # each group has only 4 labels
        assert monitor.value("credit", strict) is None
        assert monitor.value("credit", AlertRule.parse(rule)) == pytest.approx(0.5)
        assert monitor.performance_by("credit", Window(), "region")["versions"]["1.0.0"]["gap"][
            "gap"
        ] == pytest.approx(0.5)
