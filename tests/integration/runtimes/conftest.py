"""Real, tiny data sets and fitted models shared by the runtime tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from dockyard.runtimes import Runtimes


@pytest.fixture(scope="session")
def runtimes() -> Runtimes:
    return Runtimes.discover()


@pytest.fixture(scope="session")
def customers() -> tuple[pd.DataFrame, pd.Series[Any]]:
    """A frame with a string column, missing numbers and missing strings; binary target."""
    rng = np.random.default_rng(7)
    rows = 120
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(float),
            "income": rng.normal(50_000, 15_000, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
        }
    )
    frame.loc[rng.choice(rows, 12, replace=False), "income"] = np.nan
    frame.loc[rng.choice(rows, 6, replace=False), "plan"] = None
    churn = ((frame["age"] < 35) | (frame["plan"] == "basic")).astype(int)
    return frame, churn


@pytest.fixture(scope="session")
def numbers() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A float array and a real-valued target."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 4))
    y = x @ np.array([1.5, -2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=80)
    return x, y


@pytest.fixture(scope="session")
def penguins() -> tuple[pd.DataFrame, pd.Series[Any]]:
    """Palmer penguins: category island/sex with NaNs, string species labels."""
    frame = load_penguins()
    features = frame.drop(columns=["species"])
    for column in ("island", "sex"):
        features[column] = features[column].astype("category")
    return features, frame["species"]
