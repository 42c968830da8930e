"""A monitor is handed each endpoint's policy; it never reads deployments itself.

The policies here are a plain mapping (any object with ``drift_policy`` will do), and the
registry holds no deployment at all: what the monitor knows about endpoints comes from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import NotFoundError
from dockyard.monitoring.policy import DriftPolicy
from dockyard.monitoring.predictions import PredictionLog
from dockyard.monitoring.records import ModelCall, Source
from dockyard.monitoring.service import Monitor
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.settings import Settings
from dockyard.windows import Window


class Policies:
    """Drift policies by endpoint name; an endpoint absent here is not deployed."""

    def __init__(self, policies: dict[str, DriftPolicy]) -> None:
        self.policies = policies

    def drift_policy(self, name: str) -> DriftPolicy | None:
        return self.policies.get(name)


def test_drift_is_judged_by_the_policy_the_monitor_is_given(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"])
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        registry.register(LinearRegression().fit(X, X["a"]), "m", sample=X, version="1.0.0")
        store = MonitoringStore(str(tmp_path / "monitoring"))
        log = PredictionLog(store)
        shifted = X.to_numpy() + np.array([0.5, 0.0])  # "a" moves by half a std
        source = Source("ep", 1, "m", "1.0.0", ("a", "b"), None, None)
        log.record(source, "r1", 200, 0.001, ModelCall(shifted, shifted[:, 0]), 0, len(X))
        assert log.flush() == len(X)

        lenient = DriftPolicy(numeric_threshold=10.0, drift_share=0.9)
        given = Monitor(registry, store, policies=Policies({"ep": lenient}))
        report = given.drift("ep", Window())["report"]
        assert report["policy"] == lenient.model_dump()
        assert not report["dataset_drifted"]

        default = Monitor(registry, store, policies=Policies({}))
        report = default.drift("ep", Window())["report"]
        assert report["policy"] == DriftPolicy().model_dump()
        assert report["dataset_drifted"]


def test_an_endpoint_is_known_when_deployed_or_logged(tmp_path: Path) -> None:
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        store = MonitoringStore(str(tmp_path / "monitoring"))
        Monitor(registry, store, policies=Policies({"new": DriftPolicy()})).check_endpoint("new")
        with pytest.raises(NotFoundError, match="'new'"):
            Monitor(registry, store, policies=Policies({})).check_endpoint("new")
