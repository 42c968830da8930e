"""Real data for the schema tests: penguins (strings, NaNs), breast cancer (30 floats),
and small models fitted on them. Session-scoped: tests must copy before mutating."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

PENGUIN_NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


@pytest.fixture(scope="session")
def penguins() -> tuple[pd.DataFrame, pd.Series]:
    """Features (island and sex as strings, NaNs in five columns) and species."""
    frame = load_penguins()
    return frame.drop(columns=["species"]), frame["species"]


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    """30 float64 features without nulls, and a 0/1 integer target."""
    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def penguin_pipeline(handle_unknown: str, x: pd.DataFrame, y: pd.Series) -> Pipeline:
    """One-hot island and sex, impute the numbers, logistic regression."""
    features = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown=handle_unknown), ["island", "sex"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), PENGUIN_NUMBERS),
        ]
    )
    return make_pipeline(features, LogisticRegression(max_iter=1000)).fit(x, y)


@pytest.fixture(scope="session")
def lenient_penguin_model(penguins: tuple[pd.DataFrame, pd.Series]) -> Pipeline:
    return penguin_pipeline("ignore", *penguins)


@pytest.fixture(scope="session")
def strict_penguin_model(penguins: tuple[pd.DataFrame, pd.Series]) -> Pipeline:
    return penguin_pipeline("error", *penguins)


def _accepts(model: Pipeline) -> Callable[[pd.DataFrame], bool]:
    """What the registry passes as ``accepts``: whether the model predicts on a frame."""

    def accepts(frame: pd.DataFrame) -> bool:
        model.predict(frame)
        return True

    return accepts


@pytest.fixture(scope="session")
def lenient_accepts(lenient_penguin_model: Pipeline) -> Callable[[pd.DataFrame], bool]:
    """A real pipeline with OneHotEncoder(handle_unknown="ignore")."""
    return _accepts(lenient_penguin_model)


@pytest.fixture(scope="session")
def strict_accepts(strict_penguin_model: Pipeline) -> Callable[[pd.DataFrame], bool]:
    """A real pipeline with OneHotEncoder(handle_unknown="error")."""
    return _accepts(strict_penguin_model)
