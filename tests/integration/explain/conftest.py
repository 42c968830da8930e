"""Real models of every runtime, registered with a sample, for the explanation tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.registry.service import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="session")
def shap() -> Any:
    """The shap package, called directly to check our answers against it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's import warns about matplotlib
        import shap
    return shap


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X, y) numeric and (Xc, yc) with a text column ``city``."""
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    y = (X.a + 0.5 * X.b > 0).astype(int)
    Xc = X.copy()
    Xc["city"] = rng.choice(["ny", "sf", "la"], size=len(X))
    yc = ((X.a > 0) | (Xc.city == "sf")).astype(int)
    return X, y, Xc, yc


@pytest.fixture(scope="module")
def models(data: tuple[Any, ...]) -> dict[str, tuple[Any, pd.DataFrame]]:
    import lightgbm
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y, Xc, yc = data

    def columns() -> ColumnTransformer:
        return ColumnTransformer(
            [("num", StandardScaler(), ["a", "b", "c", "d"]), ("cat", OneHotEncoder(), ["city"])]
        )

    return {
        "forest": (RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), X),
        "linear": (LogisticRegression().fit(X, y), X),
        "ridge": (Ridge().fit(X, 2 * X.a + X.b), X),
        "pipeline": (make_pipeline(columns(), LogisticRegression()).fit(Xc, yc), Xc),
        "pipeline-forest": (
            make_pipeline(columns(), RandomForestClassifier(20, random_state=0)).fit(Xc, yc),
            Xc,
        ),
        "xgboost": (xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y), X),
        "xgboost-multi": (
            xgboost.XGBClassifier(n_estimators=20).fit(X, (X.a > 0).astype(int) + (X.b > 0)),
            X,
        ),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y), X),
        "lightgbm-reg": (lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, X.a), X),
    }


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, models: dict[str, tuple[Any, pd.DataFrame]]
) -> Iterator[Registry]:
    home = tmp_path_factory.mktemp("explain") / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        for name, (model, X) in models.items():
            registry.register(model, name, sample=X)
        # an ONNX-only model: the linear model's verified twin, registered from its file
        twin = registry.get_version("linear").accelerated or {}
        path = Path(home) / "linear.onnx"
        path.write_bytes(registry.artifacts.get(str(twin["digest"])))
        registry.register(path, "onnx", sample=models["linear"][1])
        yield registry
