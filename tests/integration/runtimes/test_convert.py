"""ONNX twins: real fitted models converted, loaded back through OnnxRuntime, and compared
with the native model; refusals say why."""

from __future__ import annotations

import json
import sys
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dockyard.runtimes import LoadedModel, Runtimes
from dockyard.runtimes._estimators import EstimatorModel
from dockyard.runtimes.convert import INSTALL_HINT, Conversion, convert_to_onnx
from dockyard.runtimes.onnx import OnnxRuntime

Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def features() -> tuple[Array, Array]:
    """1,000 rows of 20 float features; a binary target."""
    return make_classification(n_samples=1000, n_features=20, n_informative=10, random_state=0)


def frame_of(x: Array) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"feature {i}" for i in range(x.shape[1])])


def loaded(runtimes: Runtimes, estimator: Any) -> LoadedModel:
    """The model as the registry hands it over: stored by its runtime, loaded back."""
    artifact = runtimes.artifact_from_object(estimator)
    return runtimes.get(artifact.runtime).load(artifact.data, artifact.options)


def twin_of(conversion: Conversion) -> LoadedModel:
    assert conversion.artifact is not None, conversion.reason
    assert conversion.artifact.runtime == "onnx"
    return OnnxRuntime().load(conversion.artifact.data, conversion.artifact.options)


def assert_same_classifier(native: LoadedModel, twin: LoadedModel, x: Any) -> None:
    assert list(twin.classes or []) == list(native.classes or [])
    assert twin.predict(x).tolist() == native.predict(x).tolist()
    np.testing.assert_allclose(twin.predict_proba(x), native.predict_proba(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["array", "frame"])
@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression(max_iter=1000),
        RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0),
    ],
    ids=["logistic", "forest"],
)
def test_linear_and_forest_classifiers_convert_to_equivalent_twins(
    runtimes: Runtimes, features: tuple[Array, Array], estimator: Any, layout: str
) -> None:
    x, y = features
    sample = frame_of(x) if layout == "frame" else x
    native = loaded(runtimes, estimator.fit(sample, y))

    conversion = convert_to_onnx(native, sample)
    twin = twin_of(conversion)

    assert conversion.rows_checked == 1000
    assert conversion.reason.startswith("equivalent on 1000 reference rows")
    assert conversion.max_abs_diff is not None
    assert conversion.max_abs_diff <= 1e-6
    assert twin.input_layout == native.input_layout == layout
    if layout == "frame":
        assert list(twin.feature_names or []) == list(sample.columns)
    assert_same_classifier(native, twin, sample)
    fresh = make_classification(n_samples=300, n_features=20, random_state=1)[0]
    assert_same_classifier(native, twin, frame_of(fresh) if layout == "frame" else fresh)


def test_lightgbm_classifier_with_string_labels_converts(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    labels = np.array(["fraud", "ok"])[y]
    native = loaded(
        runtimes, lightgbm.LGBMClassifier(n_estimators=50, n_jobs=1, verbose=-1).fit(x, labels)
    )

    twin = twin_of(convert_to_onnx(native, x))

    assert twin.classes == ["fraud", "ok"]
    assert_same_classifier(native, twin, x)


def test_xgboost_classifier_on_a_frame_converts(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    frame = frame_of(x)
    native = loaded(
        runtimes, xgboost.XGBClassifier(n_estimators=50, max_depth=4, n_jobs=1).fit(frame, y)
    )

    twin = twin_of(convert_to_onnx(native, frame))

    assert twin.input_layout == "frame"
    assert_same_classifier(native, twin, frame)


@pytest.mark.parametrize(
    "estimator",
    [
        LinearRegression(),
        HistGradientBoostingRegressor(max_iter=50, random_state=0),
        lightgbm.LGBMRegressor(n_estimators=50, n_jobs=1, verbose=-1),
    ],
    ids=["linear", "histogram-boosting", "lightgbm"],
)
def test_regressors_convert_within_a_relative_tolerance(runtimes: Runtimes, estimator: Any) -> None:
    x, y = make_regression(n_samples=600, n_features=8, noise=5.0, random_state=2)
    native = loaded(runtimes, estimator.fit(x, y))

    conversion = convert_to_onnx(native, x)
    twin = twin_of(conversion)

    scale = np.abs(native.predict(x)).max()
    np.testing.assert_allclose(twin.predict(x), native.predict(x), rtol=0, atol=1e-6 * scale)
    assert not twin.has_proba
    assert conversion.max_abs_diff is not None
    assert conversion.max_abs_diff <= 1e-6 * scale


def test_pipeline_with_string_columns_gets_one_input_per_named_column(
    runtimes: Runtimes,
) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "monthly spend": rng.normal(50, 15, 400),
            "plan": rng.choice(["basic", "plus", "pro"], 400),
            "tenure": rng.integers(0, 60, 400),
        }
    )
    churn = np.where((frame["tenure"] < 12) | (frame["plan"] == "basic"), "churn", "stay")
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("numbers", StandardScaler(), ["monthly spend", "tenure"]),
                ("plans", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, churn)
    native = loaded(runtimes, pipeline)

    twin = twin_of(convert_to_onnx(native, frame))

    assert twin.input_layout == "frame"
    assert list(twin.feature_names or []) == ["monthly spend", "plan", "tenure"]
    assert_same_classifier(native, twin, frame)


class Majority(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A custom estimator no converter knows."""

    def fit(self, x: Array, y: Array) -> Majority:
        self.classes_ = np.unique(y)
        return self

    def predict(self, x: Array) -> Array:
        return np.full(len(x), self.classes_[0])


def test_models_without_an_equivalent_twin_get_a_reason_not_an_exception(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    custom = convert_to_onnx(EstimatorModel.wrap(Majority().fit(x, y), "sklearn"), x)
    neighbours = convert_to_onnx(loaded(runtimes, KNeighborsClassifier().fit(x, y)), x)
    not_2d = convert_to_onnx(loaded(runtimes, LogisticRegression().fit(x, y)), x[0])

    assert custom.artifact is None
    assert "Majority" in custom.reason
    # skl2onnx converts KNN, but its graph does not name the classes OnnxRuntime reports.
    assert neighbours.artifact is None
    assert "does not name its class labels" in neighbours.reason
    assert not_2d.artifact is None
    assert "not 2-D" in not_2d.reason


@pytest.mark.timeout(60)
def test_forest_with_missing_value_splits_is_refused_before_skl2onnx_loops_forever(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    holes = x.copy()
    holes[::5, 0] = np.nan  # scikit-learn learns splits at an infinite threshold from these
    forest = RandomForestClassifier(n_estimators=10, max_depth=10, random_state=0).fit(holes, y)
    assert any(np.isinf(tree.tree_.threshold).any() for tree in forest.estimators_)

    conversion = convert_to_onnx(loaded(runtimes, forest), holes)

    assert conversion.artifact is None
    assert "infinite threshold" in conversion.reason


def test_a_twin_that_differs_at_all_is_refused_at_tolerance_zero(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    native = loaded(runtimes, LogisticRegression(max_iter=1000).fit(x, y))

    conversion = convert_to_onnx(native, x, proba_tolerance=0.0)

    assert conversion.artifact is None
    assert "probabilities differ by up to" in conversion.reason
    assert conversion.max_abs_diff is not None
    assert conversion.max_abs_diff > 0
    assert conversion.rows_checked == 1000


def test_float_class_labels_are_refused_because_onnx_would_answer_integers(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    native = loaded(runtimes, LogisticRegression(max_iter=1000).fit(x, y.astype(float)))

    conversion = convert_to_onnx(native, x)

    assert native.predict(x[:1]).dtype == np.float64
    assert conversion.artifact is None
    assert "class labels are [0, 1], not [0.0, 1.0]" in conversion.reason


def test_large_samples_are_checked_on_a_bounded_evenly_spread_subset(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    native = loaded(runtimes, LogisticRegression(max_iter=1000).fit(x, y))

    conversion = convert_to_onnx(native, x, max_rows=250)

    assert conversion.artifact is not None
    assert conversion.rows_checked == 250


def test_to_dict_is_json_safe_and_has_no_bytes(
    runtimes: Runtimes, features: tuple[Array, Array]
) -> None:
    x, y = features
    native = loaded(runtimes, LogisticRegression(max_iter=1000).fit(x, y))
    converted = convert_to_onnx(native, x)
    refused = convert_to_onnx(native, x, proba_tolerance=0.0)

    facts = json.loads(json.dumps(converted.to_dict()))
    assert set(facts) == {"runtime", "rows_checked", "max_abs_diff", "reason"}
    assert facts["runtime"] == "onnx"
    assert facts["rows_checked"] == 1000
    assert set(json.loads(json.dumps(refused.to_dict()))) == {
        "rows_checked",
        "max_abs_diff",
        "reason",
    }


def test_missing_converters_say_how_to_install_them(
    runtimes: Runtimes, features: tuple[Array, Array], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = features
    native = loaded(runtimes, LogisticRegression().fit(x, y))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # what an absent package looks like

    conversion = convert_to_onnx(native, x)

    assert conversion.artifact is None
    assert conversion.reason == f"skl2onnx is not installed ({INSTALL_HINT})"
