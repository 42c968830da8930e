"""Prediction drift through the real prediction log, for every kind of class label.

The log keeps predictions as text (``"0"``, ``"True"``) while a version's reference profile
keeps the model's own answers (``0``, ``True``): breast-cancer (0/1) and wine (0/1/2)
endpoints reported "(prediction) drift yes — unseen categories in 100.0% of rows" on the very
data the model was trained on. Both sides are compared as the same labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.deploy.service import Deployments
from dockyard.monitoring.predictions import PredictionLog
from dockyard.monitoring.records import ModelCall, Source
from dockyard.monitoring.service import Monitor
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry import Registry
from dockyard.schema.labels import label_text
from dockyard.settings import Settings
from dockyard.windows import Window


def _labels(kind: str, y: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if kind == "int":
        return y.astype(np.int64)
    if kind == "float":
        return y.astype(np.float64)
    if kind == "str":
        return np.array(["low", "mid", "high"], dtype=object)[y]
    return y.astype(bool)  # "bool": two classes only


@pytest.mark.parametrize(
    ("kind", "classes"),
    [("int", 2), ("int", 3), ("float", 2), ("str", 3), ("bool", 2)],
    ids=["int-binary", "int-wine", "float", "str", "bool"],
)
def test_a_model_answering_its_own_training_data_shows_no_prediction_drift(
    tmp_path: Path, kind: str, classes: int
) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    y = _labels(kind, np.digitize(X["a"].to_numpy(), [-0.5, 0.5][: classes - 1]))
    model = LogisticRegression(max_iter=500).fit(X, y)

    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        version = registry.register(model, "m", sample=X, y=y, version="1.0.0")
        store = MonitoringStore(str(tmp_path / "monitoring"))
        log = PredictionLog(store)
        names = tuple(str(label_text(c)) for c in model.classes_)
        source = Source("ep", 1, "m", str(version.version), ("a", "b", "c"), names, None)
        inputs = X.to_numpy()
        log.record(
            source,
            "r1",
            200,
            0.001,
            ModelCall(inputs, model.predict(X), model.predict_proba(X)),
            0,
            len(X),
        )
        assert log.flush() == len(X)

        monitor = Monitor(registry, store, policies=Deployments(registry))
        report = monitor.drift("ep", Window())["report"]
    prediction = report["prediction"]
    assert prediction["kind"] == "categorical"
    assert prediction["unseen"] is None or prediction["unseen"]["count"] == 0, prediction
    assert prediction["drifted"] is False, prediction["reason"]
    assert set(prediction["distribution"]["values"]) == set(names)
