"""Real, tiny models fitted once per session on bundled datasets."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def cancer() -> tuple[Any, Any, Any]:
    """(pipeline, X, y): StandardScaler + LogisticRegression on breast_cancer (a DataFrame)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    return model, X, y


@pytest.fixture(scope="session")
def penguins() -> tuple[Any, Any, Any]:
    """(LGBMClassifier, X, y) on palmerpenguins: categorical island/sex and missing values."""
    import lightgbm
    from palmerpenguins import load_penguins

    frame = load_penguins()
    y = frame.pop("species")
    X = frame.drop(columns=["year"])
    for column in ("island", "sex"):
        X[column] = X[column].astype("category")
    model = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)
    return model, X, y
