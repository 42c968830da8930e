"""Every format through the whole registry: register, then ``load(...).predict`` gives exactly
the original model's outputs on the sample."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import UntrustedModelError
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture
def registry(sqlite_settings: Settings) -> Any:
    with Registry.open(sqlite_settings) as opened:
        yield opened


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(11)
    rows = 300
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(float),
            "income": rng.normal(50_000, 15_000, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows).astype(object),
        }
    )
    frame.loc[rng.choice(rows, 20, replace=False), "income"] = np.nan
    label = ((frame["age"] < 35) | (frame["plan"] == "basic")).astype(int)
    return frame, label


class Doubler:
    """A custom model class: only storable as a trusted pickle."""

    def predict(self, x: Any) -> Any:
        return np.asarray(x, dtype=float).sum(axis=1) * 2


def _assert_same(registry: Registry, ref: str, original: Any, sample: Any) -> None:
    loaded = registry.load(ref)
    np.testing.assert_array_equal(loaded.predict(sample), original.predict(sample))
    if hasattr(original, "predict_proba") and loaded.model.has_proba:
        np.testing.assert_array_equal(loaded.predict_proba(sample), original.predict_proba(sample))


def test_sklearn_pipeline_with_column_transformer(registry: Registry, churn: Any) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = churn
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                        (
                            "numbers",
                            make_pipeline(SimpleImputer(), StandardScaler()),
                            ["age", "income"],
                        ),
                    ]
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(X, y)
    version = registry.register(model, "churn", sample=X, y=y)
    assert version.runtime == "sklearn"
    _assert_same(registry, "churn@1.0.0", model, X)
    columns = {c["name"]: c for c in version.signature["columns"]}  # type: ignore[index]
    assert columns["plan"]["unseen"] == "allow"  # OneHotEncoder(handle_unknown="ignore")
    assert columns["income"]["nullable"] is True
    unseen = registry.load("churn").predict([{"age": 40.0, "income": 1.0, "plan": "gold"}])
    assert unseen.shape == (1,)


def test_xgboost_classifier_with_categoricals(registry: Registry, penguins: Any) -> None:
    import xgboost

    _, X, y = penguins
    codes = y.astype("category").cat.codes
    model = xgboost.XGBClassifier(
        n_estimators=15, max_depth=3, enable_categorical=True, tree_method="hist"
    ).fit(X, codes)
    assert registry.register(model, "xgb", sample=X, y=codes).runtime == "xgboost"
    _assert_same(registry, "xgb", model, X)


def test_lightgbm_regressor_on_an_array(registry: Registry) -> None:
    import lightgbm

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 0.0])
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, y)
    version = registry.register(model, "lgbm-reg", sample=X, y=y)
    assert version.signature["output"]["kind"] == "regression"  # type: ignore[index]
    _assert_same(registry, "lgbm-reg", model, X)


def test_onnx_file(registry: Registry, tmp_path: Path) -> None:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    path = tmp_path / "forest.onnx"
    path.write_bytes(to_onnx(forest, X[:1], options={"zipmap": False}).SerializeToString())
    version = registry.register(path, "forest", sample=X)
    assert version.runtime == "onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: X})
    loaded = registry.load("forest")
    np.testing.assert_array_equal(loaded.predict(X), labels)
    np.testing.assert_array_equal(loaded.predict_proba(X), probabilities)
    np.testing.assert_array_equal(loaded.predict(X), forest.predict(X))


def test_torchscript_module(registry: Registry) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    scripted = torch.jit.script(net.eval())
    X = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    assert registry.register(scripted, "net", sample=X).runtime == "torch"
    with torch.inference_mode():
        expected = scripted(torch.from_numpy(X)).numpy()
    np.testing.assert_array_equal(
        registry.load("net").predict(X), expected.reshape(registry.load("net").predict(X).shape)
    )


def test_pickles_need_trust_and_record_it(registry: Registry, tmp_path: Path, cancer: Any) -> None:
    model, X, _ = cancer
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(UntrustedModelError, match="trusted"):
        registry.register(path, "pickled", sample=X)
    with pytest.raises(UntrustedModelError):
        registry.register(Doubler(), "custom")
    assert registry.list_models() == []

    converted = registry.register(path, "pickled", sample=X, trusted=True)
    assert converted.runtime == "sklearn"  # unpickled once, stored safely as skops
    assert converted.trusted
    _assert_same(registry, "pickled", model, X)

    custom = registry.register(Doubler(), "custom", trusted=True)
    assert custom.runtime == "pickle"
    sample = np.ones((3, 2))
    np.testing.assert_array_equal(
        registry.load("custom").predict(sample), Doubler().predict(sample)
    )
    event = registry.events(model="custom", action="version.register")[0]
    assert event.details["trusted"] is True
    assert "pickle" in event.details["trusted_types"]


def test_mlflow_model_directory(registry: Registry, tmp_path: Path) -> None:
    import lightgbm

    rng = np.random.default_rng(9)
    X = pd.DataFrame(rng.normal(size=(150, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, y), num_boost_round=10
    )
    folder = tmp_path / "mlflow-model"
    folder.mkdir()
    booster.save_model(str(folder / "model.lgb"))
    (folder / "MLmodel").write_text(
        "artifact_path: model\n"
        "flavors:\n"
        "  lightgbm:\n"
        "    code: null\n"
        "    data: model.lgb\n"
        "    lgb_version: 4.7.0\n"
        "    model_class: lightgbm.basic.Booster\n"
        "  python_function:\n"
        "    data: model.lgb\n"
        "    env:\n      conda: conda.yaml\n      virtualenv: python_env.yaml\n"
        "    loader_module: mlflow.lightgbm\n"
        "    python_version: 3.11.7\n"
        "mlflow_version: 3.6.0\n"
    )
    version = registry.register(folder, "from-mlflow", sample=X)
    assert version.runtime == "lightgbm"
    np.testing.assert_array_equal(registry.load("from-mlflow").predict(X), booster.predict(X))
