"""ONNX through onnxruntime: outputs equal onnxruntime's own, labels equal scikit-learn's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dockyard.errors import SchemaValidationError, UnreadableFileError
from dockyard.runtimes import Runtimes
from dockyard.runtimes.onnx import OnnxRuntime


@pytest.fixture(scope="module")
def flowers() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.array(["iris", "rose", "tulip"])[np.argmax(x, axis=1)]
    return x, y


def _onnx_outputs(data: bytes, feeds: dict[str, Any]) -> list[Any]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


@pytest.mark.parametrize("zipmap", [False, True])
def test_classifier_matches_onnxruntime_and_sklearn_labels(
    runtimes: Runtimes,
    flowers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    tmp_path: Path,
    zipmap: bool,
) -> None:
    x, y = flowers
    classifier = LogisticRegression().fit(x, y)
    file = tmp_path / "flowers.onnx"
    file.write_bytes(
        to_onnx(classifier, x[:1], options={"zipmap": zipmap}, target_opset=17).SerializeToString()
    )

    artifact = runtimes.artifact_from_path(file)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)
    labels, probabilities = _onnx_outputs(artifact.data, {"X": x})

    assert (artifact.runtime, artifact.suffix, dict(artifact.options)) == ("onnx", ".onnx", {})
    np.testing.assert_array_equal(model.predict(x), labels)
    np.testing.assert_array_equal(model.predict(x), classifier.predict(x))
    expected = (
        np.array([[row[c] for c in classifier.classes_] for row in probabilities], np.float32)
        if zipmap
        else probabilities
    )
    np.testing.assert_array_equal(model.predict_proba(x), expected)
    assert model.predict_proba(x).dtype == np.float32
    both = model.predict_with_proba(x)  # the serving path: one run for both answers
    np.testing.assert_array_equal(both[0], labels)
    np.testing.assert_array_equal(both[1], expected)
    assert both[1].dtype == np.float32
    assert list(model.classes or []) == list(classifier.classes_)
    assert model.input_layout == "array"
    assert model.has_proba
    metadata = model.metadata()
    assert metadata["opset"] == 17
    assert metadata["producer"] == "skl2onnx"
    assert metadata["inputs"] == [{"name": "X", "type": "tensor(float)", "shape": [None, 3]}]


def test_one_input_per_column_takes_a_frame(
    customers: tuple[pd.DataFrame, pd.Series[Any]],
) -> None:
    frame, churn = customers
    frame = frame.assign(plan=frame["plan"].fillna("none"), income=frame["income"].fillna(0.0))
    pipeline: Pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                ("numbers", StandardScaler(), ["age", "income"]),
            ]
        ),
        LogisticRegression(),
    ).fit(frame, churn)
    proto = to_onnx(
        pipeline,
        initial_types=[
            ("age", FloatTensorType([None, 1])),
            ("income", FloatTensorType([None, 1])),
            ("plan", StringTensorType([None, 1])),
        ],
        options={"zipmap": False},
    )
    runtime = OnnxRuntime()
    artifact = runtime.dump(proto)
    model = runtime.load(artifact.data, artifact.options)
    labels, probabilities = _onnx_outputs(
        artifact.data,
        {
            "age": frame[["age"]].to_numpy(np.float32),
            "income": frame[["income"]].to_numpy(np.float32),
            "plan": frame[["plan"]].to_numpy(object),
        },
    )

    assert model.input_layout == "frame"
    assert list(model.feature_names or []) == ["age", "income", "plan"]
    np.testing.assert_array_equal(model.predict(frame), labels)
    np.testing.assert_array_equal(model.predict(frame), pipeline.predict(frame))
    np.testing.assert_array_equal(model.predict_proba(frame), probabilities)
    assert list(model.classes or []) == [0, 1]
    with pytest.raises(SchemaValidationError, match="plan"):
        model.predict(frame.drop(columns=["plan"]))


def test_regressor_predictions_are_flattened(
    numbers: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    x, y = numbers
    regressor = LinearRegression().fit(x, y)
    runtime = OnnxRuntime()
    artifact = runtime.dump(to_onnx(regressor, x[:1].astype(np.float32)))
    model = runtime.load(artifact.data, artifact.options)
    (expected,) = _onnx_outputs(artifact.data, {"X": x.astype(np.float32)})

    assert expected.shape == (len(x), 1)
    np.testing.assert_array_equal(model.predict(x), expected.reshape(-1))
    assert model.classes is None
    assert not model.has_proba


def test_a_broken_onnx_file_is_unreadable(runtimes: Runtimes, tmp_path: Path) -> None:
    file = tmp_path / "model.onnx"
    file.write_bytes(b"this is not a protobuf message")
    with pytest.raises(UnreadableFileError):
        runtimes.artifact_from_path(file)
