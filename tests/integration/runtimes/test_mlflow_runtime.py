"""MLflow model directories, written here in the layout MLflow itself writes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import cloudpickle
import lightgbm as lgb
import numpy as np
import pytest
import skops.io as sio
import xgboost as xgb
import yaml
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from dockyard.errors import UnreadableFileError, UnsupportedModelError, UntrustedModelError
from dockyard.runtimes import LoadedModel, Runtimes

Data = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _mlflow_dir(root: Path, flavour: str, spec: dict[str, Any], files: dict[str, bytes]) -> Path:
    """A directory like ``mlflow.<flavour>.save_model`` leaves behind."""
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    mlmodel = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": f"mlflow.{flavour}",
                "python_version": "3.11.9",
            },
            flavour: {"code": None, **spec},
        },
        "mlflow_version": "2.16.0",
        "model_size_bytes": sum(len(data) for data in files.values()),
        "model_uuid": "0f3c8a0e5d7a4b1e9c2f6a8b7d5e4c3a",
        "run_id": "4a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "utc_time_created": "2024-09-01 12:00:00.000000",
    }
    (root / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return root


def _load(runtimes: Runtimes, path: Path, *, trusted: bool = False) -> tuple[str, LoadedModel]:
    artifact = runtimes.artifact_from_path(path, trusted=trusted)
    model = runtimes.get(artifact.runtime).load(artifact.data, artifact.options)
    return artifact.runtime, model


@pytest.fixture(scope="module")
def classifier(numbers: Data) -> LogisticRegression:
    x, y = numbers
    return LogisticRegression().fit(x, y > 0)


def test_sklearn_cloudpickle_needs_trust_then_becomes_skops(
    runtimes: Runtimes, classifier: LogisticRegression, numbers: Data, tmp_path: Path
) -> None:
    x, _ = numbers
    spec = {
        "pickled_model": "model.pkl",
        "serialization_format": "cloudpickle",
        "sklearn_version": "1.5.1",
    }
    path = _mlflow_dir(
        tmp_path / "model", "sklearn", spec, {"model.pkl": cloudpickle.dumps(classifier)}
    )

    with pytest.raises(UntrustedModelError):
        runtimes.artifact_from_path(path)
    artifact = runtimes.artifact_from_path(path, trusted=True)
    assert (artifact.runtime, artifact.trusted_types) == ("sklearn", ("pickle",))
    model = runtimes.get("sklearn").load(artifact.data, artifact.options)
    np.testing.assert_array_equal(model.predict_proba(x), classifier.predict_proba(x))


def test_sklearn_skops_needs_no_trust(
    runtimes: Runtimes, classifier: LogisticRegression, numbers: Data, tmp_path: Path
) -> None:
    x, _ = numbers
    spec = {"pickled_model": "model.skops", "serialization_format": "skops"}
    path = _mlflow_dir(tmp_path / "model", "sklearn", spec, {"model.skops": sio.dumps(classifier)})

    runtime, model = _load(runtimes, path)
    assert runtime == "sklearn"
    np.testing.assert_array_equal(model.predict(x), classifier.predict(x))


def test_xgboost_native_file_is_read_as_its_model_class(
    runtimes: Runtimes, numbers: Data, tmp_path: Path
) -> None:
    x, y = numbers
    original = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(x, y > 0)
    spec = {
        "data": "model.xgb",
        "model_class": "xgboost.sklearn.XGBClassifier",
        "model_format": "xgb",
        "xgb_version": "2.1.1",
    }
    raw = bytes(original.get_booster().save_raw(raw_format="ubj"))
    path = _mlflow_dir(tmp_path / "model", "xgboost", spec, {"model.xgb": raw})

    runtime, model = _load(runtimes, path)
    assert runtime == "xgboost"
    np.testing.assert_array_equal(model.predict(x), original.predict(x))
    np.testing.assert_array_equal(model.predict_proba(x), original.predict_proba(x))


def test_lightgbm_booster_file_and_pickled_wrapper(
    runtimes: Runtimes, numbers: Data, tmp_path: Path
) -> None:
    x, y = numbers
    wrapper = lgb.LGBMClassifier(n_estimators=4, min_child_samples=5, verbose=-1)
    wrapper.fit(x, np.where(y > 0, "up", "down"))
    booster_dir = _mlflow_dir(
        tmp_path / "booster",
        "lightgbm",
        {"data": "model.lgb", "lgb_version": "4.5.0", "model_class": "lightgbm.basic.Booster"},
        {"model.lgb": wrapper.booster_.model_to_string().encode()},
    )
    runtime, booster = _load(runtimes, booster_dir)
    assert runtime == "lightgbm"
    np.testing.assert_array_equal(booster.predict(x), wrapper.booster_.predict(x))

    wrapper_dir = _mlflow_dir(
        tmp_path / "wrapper",
        "lightgbm",
        {"data": "model.pkl", "model_class": "lightgbm.sklearn.LGBMClassifier"},
        {"model.pkl": pickle.dumps(wrapper)},
    )
    with pytest.raises(UntrustedModelError):
        runtimes.artifact_from_path(wrapper_dir)
    runtime, model = _load(runtimes, wrapper_dir, trusted=True)
    assert runtime == "lightgbm"
    np.testing.assert_array_equal(model.predict(x), wrapper.predict(x))
    np.testing.assert_array_equal(model.predict_proba(x), wrapper.predict_proba(x))


def test_onnx_flavour_is_preferred_and_read_as_is(
    runtimes: Runtimes, classifier: LogisticRegression, numbers: Data, tmp_path: Path
) -> None:
    x, _ = numbers
    data = to_onnx(classifier, x[:1].astype(np.float32), options={"zipmap": False})
    path = _mlflow_dir(
        tmp_path / "model",
        "onnx",
        {"data": "model.onnx", "onnx_version": "1.16.2"},
        {"model.onnx": data.SerializeToString()},
    )
    runtime, model = _load(runtimes, path)
    assert runtime == "onnx"
    np.testing.assert_array_equal(model.predict(x), classifier.predict(x))


def test_bad_mlmodel_files_are_refused(runtimes: Runtimes, tmp_path: Path) -> None:
    (tmp_path / "outside.onnx").write_bytes(b"")
    escaping = _mlflow_dir(tmp_path / "escaping", "onnx", {"data": "../outside.onnx"}, {})
    with pytest.raises(UnreadableFileError, match="outside"):
        runtimes.artifact_from_path(escaping)

    custom = _mlflow_dir(tmp_path / "custom", "pytorch", {"model_data": "data"}, {})
    with pytest.raises(UnsupportedModelError, match="pytorch"):
        runtimes.artifact_from_path(custom)

    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    (unsafe / "MLmodel").write_text("flavors: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UnreadableFileError):
        runtimes.artifact_from_path(unsafe)
