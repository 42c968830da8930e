"""Inputs outside the training range, through a real ``dockyard serve``.

A bill length of 460 against 33-58 in training was answered without a note. Now the v1
answer carries ``warnings`` naming each column outside its reference profile's range (and
nothing when all is inside), ``dockyard_out_of_range_rows_total{endpoint}`` counts the rows
(v1 and v2), and the alert metric ``out_of_range_rate`` gives the same share from the
prediction log. Integers beyond the column's dtype stay a 400 (issue 13, item 14).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from _server import ServerProcess
from dockyard.deploy.service import Deployments
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.monitoring.alerts import AlertRule
from dockyard.monitoring.service import Monitor
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.settings import Settings
from dockyard.windows import Window


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    """``frame``: a DataFrame model (bill 33..58, depth 13..22, count an int64 0..9);
    ``array``: fitted on a numpy array, so served as one (the all-numeric fast path)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "bill": rng.uniform(33, 58, 300),
            "depth": rng.uniform(13, 22, 300),
            "count": rng.integers(0, 10, 300).astype(np.int64),
        }
    )
    X.loc[0, "bill"], X.loc[1, "bill"] = 33.0, 58.0  # the exact range, for the warning text
    y = (X["bill"] > 45).astype(int)
    home = tmp_path_factory.mktemp("ranges")
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(LogisticRegression().fit(X, y), "frame", sample=X, y=y)
        array = LogisticRegression().fit(X.to_numpy(np.float64), y)  # served as an array
        registry.register(array, "array", sample=X, y=y)
        store = DeploymentStore(registry.db)
        for name in ("frame", "array"):
            spec = {"routes": [{"model": f"{name}@1.0.0"}], "monitoring": {"log": True}}
            store.put(name, DeploymentSpec.parse(spec), actor="tester")
    server = ServerProcess(home, env={"DOCKYARD_MONITOR_INTERVAL_S": "3600"})
    try:
        server.wait_ready()
        yield home, server
    finally:
        server.stop()


def _counted(client: httpx.Client, endpoint: str) -> float:
    text = client.get("/metrics").text
    found = re.search(
        rf'^dockyard_out_of_range_rows_total\{{endpoint="{endpoint}"\}} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def _record(**values: float) -> dict[str, Any]:
    row: dict[str, Any] = {"bill": 45.0, "depth": 17.0, "count": 3}
    row.update(values)
    return {"instances": [row]}


@pytest.mark.parametrize("endpoint", ["frame", "array"])
def test_a_response_warns_of_inputs_outside_the_training_range(
    served: tuple[Path, ServerProcess], endpoint: str
) -> None:
    _, server = served
    path = f"/v1/endpoints/{endpoint}/predict"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = _counted(client, endpoint)
        inside = client.post(path, json=_record(bill=58.0, count=9))
        assert inside.status_code == 200, inside.text
        assert "warnings" not in inside.json()  # the range's own ends are inside

        outside = client.post(path, json=_record(bill=460.0))
        assert outside.status_code == 200, outside.text
        assert "predictions" in outside.json()
        (warning,) = outside.json()["warnings"]
        assert "'bill' is 460" in warning
        assert "[33, 58]" in warning

        rows = [
            {"bill": 40.0, "depth": 2.0, "count": 3},
            {"bill": 40.0, "depth": 17.0, "count": 3},
            {"bill": -1.0, "depth": 99.0, "count": 12},
        ]
        several = client.post(path, json={"instances": rows})
        assert several.status_code == 200, several.text
        warnings = several.json()["warnings"]
        assert [w.split(" ")[0] for w in warnings] == ["'bill'", "'depth'", "'count'"]
        assert "in 2 rows" in warnings[1]  # depth 2 and 99, in rows 0 and 2

        assert _counted(client, endpoint) == before + 1 + 2


def test_v2_requests_are_counted_and_overflowing_integers_refused(
    served: tuple[Path, ServerProcess],
) -> None:
    _, server = served
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = _counted(client, "frame")
        tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [460.0, 17.0, 3.0]}
        reply = client.post("/v2/models/frame/infer", json={"inputs": [tensor]})
        assert reply.status_code == 200, reply.text
        assert _counted(client, "frame") == before + 1

        for value in (2**63, -(2**63) - 1, 2**64):
            reply = client.post("/v1/endpoints/frame/predict", json=_record(count=value))
            assert reply.status_code == 400, (value, reply.text)
            assert reply.json()["code"] == "schema_validation"


def test_the_out_of_range_rate_is_an_alert_metric(
    served: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    home, server = served
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for bill in (460.0, 45.0, 46.0, 47.0):
            reply = client.post("/v1/endpoints/frame/predict", json=_record(bill=bill))
            assert reply.status_code == 200
    server.stop()  # flushes the prediction log
    rule = AlertRule.model_validate(
        {"name": "odd-inputs", "metric": "out_of_range_rate", "threshold": 0.1, "min_rows": 1}
    )
    with Registry.open(Settings(home=home, user="tester")) as registry:
        store = MonitoringStore(str(home / "monitoring"))
        monitor = Monitor(registry, store, policies=Deployments(registry))
        frame = monitor.frame("frame", Window())
        expected = float(
            (
                (frame["input.bill"] < 33)
                | (frame["input.bill"] > 58)
                | (frame["input.depth"] < 13)
                | (frame["input.depth"] > 22)
                | (frame["input.count"] > 9)
                | (frame["input.count"] < 0)
            ).mean()
        )
        assert 0 < expected < 1
        assert monitor.value("frame", rule) == pytest.approx(expected)
        assert monitor.out_of_range_rate("frame", Window(), min_rows=10_000) is None
