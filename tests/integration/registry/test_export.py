"""``export_onnx`` on every runtime that converts: a standalone ONNX file that names its
version and signature, loads in plain onnxruntime and answers like the native model; int8 and
fp16 variants with a report of how far they moved on the reference rows."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from dockyard.errors import InvalidRequestError, UnsupportedModelError
from dockyard.registry import Registry
from dockyard.registry.export import export_onnx
from dockyard.settings import Settings


def _models() -> dict[str, Any]:
    import lightgbm
    import xgboost
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "lr": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "forest": RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
        "xgb": xgboost.XGBClassifier(n_estimators=20, max_depth=3),
        "lgbm": lightgbm.LGBMClassifier(n_estimators=20, verbose=-1),
    }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = load_breast_cancer(as_frame=True)
    X = _cancer()
    with Registry.open(Settings(home=tmp_path_factory.mktemp("export"), user="t")) as registry:
        for name, model in _models().items():
            registry.register(model.fit(X, data.target), name, sample=X, y=data.target)
        diabetes = load_diabetes(as_frame=True)
        from sklearn.linear_model import Ridge

        registry.register(
            Ridge().fit(diabetes.data, diabetes.target), "ridge", sample=diabetes.data
        )
        yield registry


def _cancer() -> pd.DataFrame:
    """Breast-cancer features as float32 (boosters' converters take float32) with names
    LightGBM keeps (it replaces spaces)."""
    frame = load_breast_cancer(as_frame=True).data.astype("float32")
    return frame.rename(columns=lambda c: c.replace(" ", "_"))


def _run(data: bytes, frame: pd.DataFrame) -> list[np.ndarray[Any, Any]]:
    """The file in plain onnxruntime, as any consumer would run it."""
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {}
    for node in session.get_inputs():
        dtype = np.float32 if node.type == "tensor(float)" else np.float64
        if node.name in frame.columns:
            feeds[node.name] = frame[[node.name]].to_numpy(dtype=dtype)
        else:
            feeds[node.name] = frame.to_numpy(dtype=dtype)
    return session.run(None, feeds)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["lr", "forest", "xgb", "lgbm"])
@pytest.mark.parametrize("quantization", [None, "int8", "fp16"])
def test_export_answers_like_the_native_model(
    registry: Registry, name: str, quantization: str | None
) -> None:
    if (name, quantization) == ("lgbm", "fp16"):
        # onnxconverter-common leaves the twin's probability scaling half in float16: refused
        # cleanly (a known gap, README Export)
        with pytest.raises(UnsupportedModelError, match="is a graph onnxruntime rejects"):
            export_onnx(registry, f"{name}@1.0.0", quantization=quantization)
        return
    exported = export_onnx(registry, f"{name}@1.0.0", quantization=quantization)
    report = exported.report()
    assert report["ref"] == f"{name}@1.0.0"
    assert report["quantization"] == quantization
    assert report["size"] == len(exported.data)
    assert report["task"] == "classification"
    assert report["rows"] == 100  # the reference rows kept at registration
    if quantization is None:  # the equivalent twin, stamped
        assert report["label_changes"] == 0
        assert report["max_proba_diff"] < 1e-5

    graph = onnx.load_from_string(exported.data)
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["dockyard.ref"] == f"{name}@1.0.0"
    assert props["dockyard.quantization"] == (quantization or "none")
    version = registry.get_version(f"{name}@1.0.0")
    assert props["dockyard.digest"] == version.digest
    assert json.loads(props["dockyard.signature"]) == json.loads(json.dumps(version.signature))

    # The report is what the file does in plain onnxruntime on the reference rows.
    rows = pd.DataFrame((registry.get_profile(version.ref) or {})["examples"])
    labels, proba = _run(exported.data, rows)[:2]
    native = registry.load(version.ref)
    assert (np.asarray(labels) != native.predict(rows)).sum() == report["label_changes"]
    diff = np.abs(np.asarray(proba, dtype="float64") - native.predict_proba(rows)).max()
    assert diff == pytest.approx(report["max_proba_diff"], abs=1e-9)


def test_int8_and_fp16_shrink_a_network_and_report_what_it_cost(tmp_path: Path) -> None:
    """A float32 network registered as ONNX: its weights are most of the file, so int8 keeps
    about a quarter of it and fp16 about half; the report measures the error it costs."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    data = load_diabetes(as_frame=True)
    X = data.data.astype("float32")
    network = MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=30, tol=1e9, random_state=0)
    network.fit(X.to_numpy(), data.target)
    path = tmp_path / "network.onnx"
    path.write_bytes(to_onnx(network, X.to_numpy()[:1]).SerializeToString())
    with Registry.open(Settings(home=tmp_path / "home", user="t")) as registry:
        registry.register(path, "net", sample=X.to_numpy())
        plain = export_onnx(registry, "net@1.0.0")
        small = export_onnx(registry, "net@1.0.0", quantization="int8")
        half = export_onnx(registry, "net@1.0.0", quantization="fp16")
    assert plain.source == "artifact"
    assert plain.comparison.max_abs_error == 0.0
    assert small.report()["size_ratio"] < 0.4
    assert half.report()["size_ratio"] < 0.7
    for compressed in (small, half):
        assert compressed.comparison.task == "regression"
        assert 0 < compressed.comparison.max_abs_error < 0.1 * 350  # measured, and bounded


def test_a_regressor_reports_its_error(registry: Registry) -> None:
    report = export_onnx(registry, "ridge@1.0.0", quantization="fp16").report()
    assert report["task"] == "regression"
    assert "label_changes" not in report
    assert 0 <= report["max_abs_error"] < 1e-6 * 400  # float64 graph: fp16 leaves it exact
    assert report["mean_abs_error"] <= report["max_abs_error"]


def test_bad_requests_change_nothing(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="Unknown quantization 'int4'"):
        export_onnx(registry, "lr@1.0.0", quantization="int4")
    with pytest.raises(InvalidRequestError, match="Unknown export format 'tflite'"):
        export_onnx(registry, "lr@1.0.0", format="tflite")


def test_a_version_without_a_sample_or_a_converter_is_refused(tmp_path: Path) -> None:
    from sklearn.semi_supervised import SelfTrainingClassifier
    from sklearn.tree import DecisionTreeClassifier

    data = load_breast_cancer(as_frame=True)
    with Registry.open(Settings(home=tmp_path, user="t")) as registry:
        registry.register(DecisionTreeClassifier(max_depth=3).fit(data.data, data.target), "bare")
        with pytest.raises(InvalidRequestError, match="no reference rows"):
            export_onnx(registry, "bare@1.0.0")
        odd = SelfTrainingClassifier(DecisionTreeClassifier(max_depth=3))
        with warnings.catch_warnings():  # "no unlabeled samples": it is only a model skl2onnx lacks
            warnings.simplefilter("ignore")
            odd.fit(data.data, data.target)
        registry.register(odd, "odd", sample=data.data, y=data.target)
        with pytest.raises(UnsupportedModelError, match="does not convert to ONNX"):
            export_onnx(registry, "odd@1.0.0")
