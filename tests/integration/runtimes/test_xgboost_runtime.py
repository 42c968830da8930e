"""XGBoost in its native UBJSON format: exact round trips, categoricals, model files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from dockyard.errors import UnsupportedModelError
from dockyard.runtimes import Runtimes
from dockyard.runtimes.xgboost import XGBoostRuntime


@pytest.fixture(scope="module")
def categorical_classifier(
    penguins: tuple[pd.DataFrame, pd.Series[Any]],
) -> tuple[xgb.XGBClassifier, pd.DataFrame]:
    features, species = penguins
    labels = species.map({"Adelie": 0, "Chinstrap": 1, "Gentoo": 2})
    model = xgb.XGBClassifier(
        n_estimators=8, max_depth=3, enable_categorical=True, tree_method="hist"
    ).fit(features, labels)
    return model, features


def test_categorical_classifier_round_trips_exactly(
    runtimes: Runtimes, categorical_classifier: tuple[xgb.XGBClassifier, pd.DataFrame]
) -> None:
    original, features = categorical_classifier
    artifact = runtimes.artifact_from_object(original)
    model = runtimes.get("xgboost").load(artifact.data, artifact.options)

    assert (artifact.runtime, artifact.suffix) == ("xgboost", ".ubj")
    assert artifact.options == {"estimator": "XGBClassifier"}
    np.testing.assert_array_equal(model.predict(features), original.predict(features))
    np.testing.assert_array_equal(model.predict_proba(features), original.predict_proba(features))
    assert model.input_layout == "frame"
    assert list(model.feature_names or []) == list(features.columns)
    assert list(model.classes or []) == [0, 1, 2]
    assert model.has_proba
    assert model.metadata() == {
        "estimator": "XGBClassifier",
        "objective": "multi:softprob",
        "boosted_rounds": 8,
        "n_features": features.shape[1],
    }


def test_regressor_with_custom_missing_marker_round_trips_exactly(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    x = x.copy()
    x[::7, 1] = -999.0
    original = xgb.XGBRegressor(n_estimators=6, max_depth=2, missing=-999.0).fit(x, y)
    runtime = XGBoostRuntime()
    artifact = runtime.dump(original)
    model = runtime.load(artifact.data, artifact.options)

    assert artifact.options == {"estimator": "XGBRegressor", "missing": -999.0}
    np.testing.assert_array_equal(model.predict(x), original.predict(x))
    assert model.input_layout == "array"
    assert model.classes is None
    assert not model.has_proba
    with pytest.raises(UnsupportedModelError):
        model.predict_proba(x)


def test_raw_booster_round_trips_exactly(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), num_boost_round=4)
    runtime = XGBoostRuntime()
    artifact = runtime.dump(booster)
    model = runtime.load(artifact.data, artifact.options)

    assert artifact.options == {"estimator": "Booster"}
    np.testing.assert_array_equal(model.predict(x), booster.predict(xgb.DMatrix(x)))
    assert model.metadata()["objective"] == "reg:squarederror"


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_model_files_saved_by_xgboost_are_read_with_their_kind(
    runtimes: Runtimes,
    categorical_classifier: tuple[xgb.XGBClassifier, pd.DataFrame],
    tmp_path: Path,
    suffix: str,
) -> None:
    original, features = categorical_classifier
    file = tmp_path / f"penguins{suffix}"
    original.save_model(file)

    artifact = runtimes.artifact_from_path(file)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)

    assert artifact.runtime == "xgboost"
    assert artifact.options == {"estimator": "XGBClassifier"}
    np.testing.assert_array_equal(model.predict_proba(features), original.predict_proba(features))


def test_a_json_file_that_is_not_a_model_is_not_recognised(
    runtimes: Runtimes, tmp_path: Path
) -> None:
    file = tmp_path / "config.json"
    file.write_text('{"threshold": 0.5}')
    assert not XGBoostRuntime().recognises(file)
    with pytest.raises(UnsupportedModelError):
        runtimes.artifact_from_path(file)
