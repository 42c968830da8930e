"""scikit-learn through skops: exact round trips and the trust policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from dockyard.errors import UnreadableFileError, UnsupportedModelError, UntrustedModelError
from dockyard.runtimes import Runtimes
from dockyard.runtimes.sklearn import SklearnRuntime


class ShiftedRegressor(RegressorMixin, BaseEstimator):
    """A custom estimator: a type neither skops nor Dockyard trusts by default."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def fit(self, x: Any, y: Any) -> ShiftedRegressor:
        self.mean_ = float(np.mean(y))
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> Any:
        return np.full(len(x), self.mean_ + self.shift)


@pytest.fixture(scope="module")
def churn_pipeline(customers: tuple[pd.DataFrame, pd.Series[Any]]) -> Pipeline:
    frame, churn = customers
    columns = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression()).fit(frame, churn)


def test_pipeline_on_a_frame_round_trips_exactly(
    runtimes: Runtimes, churn_pipeline: Pipeline, customers: tuple[pd.DataFrame, Any]
) -> None:
    frame, _ = customers
    unseen = pd.DataFrame({"age": [30.0, np.nan], "income": [np.nan, 1e5], "plan": ["gold", None]})
    artifact = runtimes.artifact_from_object(churn_pipeline)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)

    assert (artifact.runtime, artifact.suffix, artifact.trusted_types) == ("sklearn", ".skops", ())
    for x in (frame, unseen):
        np.testing.assert_array_equal(model.predict(x), churn_pipeline.predict(x))
        np.testing.assert_array_equal(model.predict_proba(x), churn_pipeline.predict_proba(x))
    assert model.input_layout == "frame"
    assert list(model.feature_names or []) == ["age", "income", "plan"]
    assert list(model.classes or []) == [0, 1]
    assert model.has_proba
    assert model.metadata() == {"estimator": "sklearn.pipeline.Pipeline", "n_features": 3}


def test_one_pass_through_a_pipeline_answers_as_predict_and_predict_proba(
    runtimes: Runtimes, churn_pipeline: Pipeline, customers: tuple[pd.DataFrame, Any]
) -> None:
    """The transformers run once for both answers (``predict_with_proba``), with the same
    results as the pipeline's own two calls; steps left out ("passthrough", None) are
    skipped as the pipeline skips them, and a pandas-output pipeline keeps its frames."""
    frame, churn = customers
    unseen = pd.DataFrame({"age": [30.0, np.nan], "income": [np.nan, 1e5], "plan": ["gold", None]})
    framed = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        (
                            "plan",
                            OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                            ["plan"],
                        ),
                        ("numbers", SimpleImputer(), ["age", "income"]),
                    ]
                ),
            ),
            ("nothing", "passthrough"),
            ("none", None),
            ("scale", StandardScaler()),
            ("model", RandomForestClassifier(n_estimators=5, random_state=0)),
        ]
    ).set_output(transform="pandas")
    framed.fit(frame, churn)
    for pipeline in (churn_pipeline, framed):
        artifact = runtimes.artifact_from_object(pipeline)
        model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)
        for x in (frame, unseen):
            predictions, probabilities = model.predict_with_proba(x)
            np.testing.assert_array_equal(predictions, pipeline.predict(x))
            np.testing.assert_array_equal(probabilities, pipeline.predict_proba(x))


def test_array_regressor_has_array_layout_and_no_proba(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    regressor = LinearRegression().fit(x, y)
    runtime = SklearnRuntime()
    artifact = runtime.dump(regressor)
    model = runtime.load(artifact.data, artifact.options)

    np.testing.assert_array_equal(model.predict(x), regressor.predict(x))
    assert model.input_layout == "array"
    assert model.feature_names is None
    assert model.classes is None
    assert not model.has_proba
    with pytest.raises(UnsupportedModelError):
        model.predict_proba(x)


def test_svc_without_probability_says_it_has_no_proba(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    svc = SVC().fit(x, y > 0)
    runtime = SklearnRuntime()
    artifact = runtime.dump(svc)
    model = runtime.load(artifact.data, artifact.options)

    assert not model.has_proba
    assert list(model.classes or []) == [False, True]
    np.testing.assert_array_equal(model.predict(x), svc.predict(x))


def test_tree_models_dump_without_trust_but_their_files_need_it(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], tmp_path: Path
) -> None:
    x, y = numbers
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y > 0)
    runtime = SklearnRuntime()
    artifact = runtime.dump(forest)
    model = runtime.load(artifact.data, artifact.options)
    np.testing.assert_array_equal(model.predict_proba(x), forest.predict_proba(x))

    file = tmp_path / "forest.skops"
    sio.dump(forest, file)
    with pytest.raises(UntrustedModelError) as refused:
        runtime.read(file)
    assert refused.value.details == {"untrusted_types": ["sklearn.tree._tree.Tree"]}
    read = runtime.read(file, trusted=True)
    assert read.trusted_types == ("sklearn.tree._tree.Tree",)
    assert read.data == file.read_bytes()


def test_custom_type_is_refused_without_trust(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], tmp_path: Path
) -> None:
    x, y = numbers
    custom = ShiftedRegressor(shift=2.0).fit(x, y)
    name = f"{ShiftedRegressor.__module__}.ShiftedRegressor"
    runtime = SklearnRuntime()

    with pytest.raises(UntrustedModelError, match="ShiftedRegressor") as refused:
        runtime.dump(custom)
    assert "trusted=True" in str(refused.value)

    artifact = runtime.dump(custom, trusted=True)
    assert artifact.trusted_types == (name,)
    assert artifact.options["trusted_types"] == [name]
    with pytest.raises(UntrustedModelError):
        runtime.load(artifact.data, artifact.options)
    model = runtime.load(artifact.data, artifact.options, trusted=True)
    np.testing.assert_array_equal(model.predict(x), custom.predict(x))

    file = tmp_path / "custom.skops"
    sio.dump(custom, file)
    with pytest.raises(UntrustedModelError):
        Runtimes.discover().artifact_from_path(file)


def test_functions_are_not_trusted_by_library_prefix() -> None:
    # np.log1p is a ufunc skops trusts; np.mean is a plain function and is not.
    runtime = SklearnRuntime()
    assert runtime.dump(FunctionTransformer(np.log1p)).trusted_types == ()
    with pytest.raises(UntrustedModelError, match=r"numpy\.mean"):
        runtime.dump(FunctionTransformer(np.mean))


def test_xgboost_and_lightgbm_wrappers_are_left_to_their_runtimes() -> None:
    import lightgbm
    import xgboost

    runtime = SklearnRuntime()
    assert runtime.handles(LogisticRegression())
    assert not runtime.handles(xgboost.XGBClassifier())
    assert not runtime.handles(lightgbm.LGBMRegressor())
    assert not runtime.handles(object())


def test_a_broken_skops_file_is_unreadable(tmp_path: Path) -> None:
    file = tmp_path / "broken.skops"
    file.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
    with pytest.raises(UnreadableFileError):
        SklearnRuntime().read(file)
