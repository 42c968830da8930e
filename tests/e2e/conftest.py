"""A registry of real models for end-to-end tests (the ``dockyard serve`` process fixtures
live in the root conftest, shared with ``tests/security``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _server import ServerProcess
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registry with the breast-cancer pipeline (two versions) and a penguin LightGBM
    model, two endpoints deployed, and a server following it."""
    import lightgbm
    from palmerpenguins import load_penguins
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore

    home = tmp_path_factory.mktemp("served")
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    first = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500)).fit(X, y)
    second = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)).fit(X, y)
    penguins = load_penguins()
    species = penguins.pop("species")
    PX = penguins.drop(columns=["year"])
    for column in ("island", "sex"):
        PX[column] = PX[column].astype("category")
    penguin_model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(PX, species)

    settings = Settings(home=home, user="tester")
    with Registry.open(settings) as registry:
        registry.register(first, "cancer", sample=X, y=y, aliases=["production"])
        registry.register(second, "cancer", sample=X, y=y, aliases=["staging"])
        registry.register(penguin_model, "penguins", sample=PX, y=species, aliases=["production"])
        store = DeploymentStore(registry.db)
        for endpoint, ref in (("cancer", "cancer@production"), ("penguins", "penguins@production")):
            store.put(endpoint, DeploymentSpec.parse({"routes": [{"model": ref}]}), actor="tester")
    server = ServerProcess(home)
    try:
        server.wait_ready()
        yield {
            "server": server,
            "settings": settings,
            "X": X,
            "models": {"1.0.0": first, "1.0.1": second},
            "penguins": (penguin_model, PX),
        }
    finally:
        server.stop()


# --- a registry of three fitted models, shared by the conformance, auth and fuzz tests -------


@dataclass(frozen=True)
class Zoo:
    """A registry home with three models registered (nothing deployed), and the models.

    * ``cancer``: breast-cancer StandardScaler + LogisticRegression pipeline, 30 float
      columns, int classes; served by its ONNX twin.
    * ``mixed``: a ColumnTransformer pipeline over a string column with missing values and
      unseen categories, a float column with NaN, a bool and an int column; string classes
      ``"no"``/``"yes"``; no ONNX twin (served by scikit-learn).
    * ``diabetes``: a Ridge regressor (float output); served by its ONNX twin.

    Tests never change this home: :meth:`deploy` and :meth:`serve` copy it first.
    """

    home: Path
    models: dict[str, Any]
    samples: dict[str, pd.DataFrame]

    def deploy(self, dest: Path, endpoints: dict[str, str]) -> Settings:
        """A copy of the registry at ``dest`` with ``endpoints`` (name -> model ref) deployed."""
        from dockyard.deploy.spec import DeploymentSpec
        from dockyard.deploy.store import DeploymentStore

        shutil.copytree(self.home, dest)
        settings = Settings(home=dest, user="tester")
        with Registry.open(settings) as registry:
            store = DeploymentStore(registry.db)
            for name, ref in endpoints.items():
                store.put(name, DeploymentSpec.parse({"routes": [{"model": ref}]}), actor="tester")
        return settings

    def serve(
        self, dest: Path, endpoints: dict[str, str], *, args: tuple[str, ...] = ()
    ) -> ServerProcess:
        """:meth:`deploy`, then start a server on the copy (call ``wait_ready`` next)."""
        return ServerProcess(self.deploy(dest, endpoints).home, args=args)


def mixed_frame(rows: int, seed: int) -> pd.DataFrame:
    """Strings (some missing), floats (some NaN), booleans and integers."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], rows).astype(object),
            "size": rng.normal(10, 3, rows),
            "member": rng.random(rows) < 0.5,
            "count": rng.integers(0, 10, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.15, "color"] = np.nan
    frame.loc[rng.random(rows) < 0.15, "size"] = np.nan
    return frame


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    home = tmp_path_factory.mktemp("zoo")
    cancer = load_breast_cancer(as_frame=True)
    cancer_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    cancer_model.fit(cancer.data, cancer.target)

    mixed = mixed_frame(400, seed=0)
    labels = np.where((mixed["size"].fillna(10) > 10) ^ mixed["member"], "yes", "no")
    encode = ColumnTransformer(
        [
            (
                "strings",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["color"],
            ),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "count"]),
            ("flags", "passthrough", ["member"]),
        ]
    )
    mixed_model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(mixed, labels)

    diabetes = load_diabetes(as_frame=True)
    diabetes_model = Ridge().fit(diabetes.data, diabetes.target)

    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(cancer_model, "cancer", sample=cancer.data, y=cancer.target)
        registry.register(mixed_model, "mixed", sample=mixed, y=labels)
        registry.register(diabetes_model, "diabetes", sample=diabetes.data, y=diabetes.target)
    return Zoo(
        home=home,
        models={"cancer": cancer_model, "mixed": mixed_model, "diabetes": diabetes_model},
        samples={"cancer": cancer.data, "mixed": mixed, "diabetes": diabetes.data},
    )
