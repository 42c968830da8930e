"""An MLflow model registered without a sample takes the signature its MLmodel declares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression

from dockyard.errors import SchemaValidationError
from dockyard.registry import Registry
from dockyard.settings import Settings

COLUMNS = ["age", "income", "score"]


def _mlflow_dir(root: Path, model: LogisticRegression, signature: dict[str, str] | None) -> Path:
    """What ``mlflow.sklearn.save_model(..., serialization_format="skops")`` leaves."""
    root.mkdir()
    (root / "model.skops").write_bytes(sio.dumps(model))
    mlmodel: dict[str, object] = {
        "flavors": {
            "python_function": {"loader_module": "mlflow.sklearn", "python_version": "3.11.9"},
            "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"},
        },
        "mlflow_version": "2.16.0",
    }
    if signature is not None:
        mlmodel["signature"] = signature
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return root


@pytest.fixture
def fitted() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=COLUMNS)
    return LogisticRegression().fit(X, (X["age"] > 0).astype(int)), X


def test_declared_columns_become_the_signature(
    tmp_path: Path, fitted: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, X = fitted
    inputs = [{"type": "double", "name": name, "required": True} for name in COLUMNS]
    signature = {
        "inputs": json.dumps(inputs),
        "outputs": json.dumps([{"type": "long", "required": True}]),
        "params": None,
    }
    folder = _mlflow_dir(tmp_path / "model", model, signature)
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        version = registry.register(folder, "declared")
        assert version.signature is not None
        columns = version.signature["columns"]
        assert [(c["name"], c["dtype"], c["nullable"]) for c in columns] == [
            (name, "float", False) for name in COLUMNS
        ]
        assert version.signature["output"]["kind"] == "classification"
        assert version.signature["output"]["classes"] == [0, 1]

        loaded = registry.load("declared")
        records = X.head(3).to_dict(orient="records")
        np.testing.assert_array_equal(loaded.predict(records), model.predict(X.head(3)))
        with pytest.raises(SchemaValidationError) as refused:
            loaded.predict([{"age": "old", "income": 1.0}])
        problems = {p["column"] for p in refused.value.details["problems"]}
        assert {"age", "score"} <= problems


def test_without_a_declared_signature_nothing_is_invented(
    tmp_path: Path, fitted: tuple[LogisticRegression, pd.DataFrame]
) -> None:
    model, _ = fitted
    tensor = {"inputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float64"}}])}
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        for name, signature in (("none", None), ("tensor", tensor)):
            folder = _mlflow_dir(tmp_path / name, model, signature)
            assert registry.register(folder, name).signature is None
