"""LightGBM as model text: exact round trips with string labels, categoricals and NaNs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from dockyard.runtimes import Runtimes
from dockyard.runtimes.lightgbm import LightGBMRuntime


@pytest.fixture(scope="module")
def species_classifier(penguins: tuple[pd.DataFrame, pd.Series[Any]]) -> lgb.LGBMClassifier:
    features, species = penguins
    return lgb.LGBMClassifier(n_estimators=10, num_leaves=7, verbose=-1).fit(features, species)


def test_penguin_classifier_round_trips_exactly(
    runtimes: Runtimes,
    species_classifier: lgb.LGBMClassifier,
    penguins: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    features, _ = penguins
    artifact = runtimes.artifact_from_object(species_classifier)
    json.dumps(artifact.options)  # options must be JSON-safe
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)

    assert (artifact.runtime, artifact.suffix) == ("lightgbm", ".txt")
    assert artifact.options["estimator"] == "LGBMClassifier"
    assert artifact.options["input_layout"] == "frame"
    predicted = model.predict(features)
    np.testing.assert_array_equal(predicted, species_classifier.predict(features))
    assert predicted.dtype == species_classifier.predict(features).dtype
    np.testing.assert_array_equal(
        model.predict_proba(features), species_classifier.predict_proba(features)
    )
    assert list(model.classes or []) == ["Adelie", "Chinstrap", "Gentoo"]
    assert list(model.feature_names or []) == list(features.columns)
    assert model.input_layout == "frame"
    assert model.metadata() == {
        "estimator": "LGBMClassifier",
        "objective": "multiclass",
        "trees": 30,
        "n_features": features.shape[1],
    }


def test_binary_classifier_stacks_probabilities_like_lightgbm(
    customers: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    frame, churn = customers
    features = frame.assign(plan=frame["plan"].astype("category"))
    labels = churn.map({0: "stays", 1: "churns"})
    original = lgb.LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1)
    original.fit(features, labels)
    runtime = LightGBMRuntime()
    artifact = runtime.dump(original)
    model = runtime.load(artifact.data, artifact.options)

    np.testing.assert_array_equal(model.predict(features), original.predict(features))
    np.testing.assert_array_equal(model.predict_proba(features), original.predict_proba(features))
    assert model.predict_proba(features).shape == (len(features), 2)
    assert list(model.classes or []) == ["churns", "stays"]


def test_integer_labels_keep_their_dtype(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    labels = np.digitize(y, [-1.0, 1.0]) * 10
    original = lgb.LGBMClassifier(n_estimators=5, min_child_samples=5, verbose=-1).fit(x, labels)
    runtime = LightGBMRuntime()
    artifact = runtime.dump(original)
    model = runtime.load(artifact.data, artifact.options)

    assert model.input_layout == "array"
    assert model.feature_names is None
    assert model.predict(x).dtype == original.predict(x).dtype
    np.testing.assert_array_equal(model.predict(x), original.predict(x))


def test_regressor_and_raw_booster_round_trip_exactly(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    regressor = lgb.LGBMRegressor(n_estimators=5, min_child_samples=5, verbose=-1).fit(x, y)
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(x, label=y),
        num_boost_round=4,
    )
    runtime = LightGBMRuntime()
    for original, expected in ((regressor, regressor.predict(x)), (booster, booster.predict(x))):
        artifact = runtime.dump(original)
        model = runtime.load(artifact.data, artifact.options)
        np.testing.assert_array_equal(model.predict(x), expected)
        assert not model.has_proba
        assert model.classes is None


def test_model_file_saved_by_lightgbm_is_recognised(
    runtimes: Runtimes,
    species_classifier: lgb.LGBMClassifier,
    penguins: tuple[pd.DataFrame, pd.Series[Any]],
    tmp_path: Path,
) -> None:
    features, _ = penguins
    file = tmp_path / "penguins.txt"
    species_classifier.booster_.save_model(file)

    artifact = runtimes.artifact_from_path(file)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)

    assert artifact.options == {"estimator": "Booster", "input_layout": "frame"}
    np.testing.assert_array_equal(
        model.predict(features), species_classifier.booster_.predict(features)
    )


def test_plain_text_file_is_not_a_lightgbm_model(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("tree house\nversion=none\n")
    assert not LightGBMRuntime().recognises(file)
