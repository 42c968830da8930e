"""``dockyard explain`` from the command line: a file of rows in, attributions out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _cli import run
from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A pipeline (scaler + one-hot, then a logistic regression) registered as ``credit``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"income": rng.normal(50, 10, 200), "age": rng.integers(18, 80, 200)})
    X["region"] = rng.choice(["north", "south", "east"], size=len(X))
    y = ((X.income > 50) | (X.region == "east")).astype(int)
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["income", "age"]), ("cat", OneHotEncoder(), ["region"])]
    )
    model = make_pipeline(columns, LogisticRegression()).fit(X, y)
    path = tmp_path_factory.mktemp("explain-cli") / "home"
    with Registry.open(Settings(home=path, user="tester")) as registry:
        registry.register(model, "credit", sample=X, y=y)
    return path, X


def test_explain_writes_one_row_per_input_row_in_the_users_columns(
    home: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, X = home
    rows = tmp_path / "rows.csv"
    X.head(5).to_csv(rows, index=False)
    out = tmp_path / "why.csv"
    result = run(path, "explain", "credit", "--data", str(rows), "--out", str(out))
    assert "exact linear" in result.stderr
    written = pd.read_csv(out)
    assert list(written.columns) == ["row", "target", "base", "output", "income", "age", "region"]
    assert len(written) == 5
    total = written["base"] + written[["income", "age", "region"]].sum(axis=1)
    assert np.allclose(total, written["output"], atol=1e-9)
    with Registry.open(Settings(home=path, user="tester")) as registry:
        expected = registry.load("credit").explain(X.head(5))
    assert np.allclose(written["region"], expected.values[:, 0, 2])


def test_explain_json_and_table(home: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    path, X = home
    rows = tmp_path / "rows.json"
    X.head(2).to_json(rows, orient="records")
    body: dict[str, Any] = json.loads(
        run(path, "explain", "credit", "--data", str(rows), "--json").stdout
    )
    assert body["version"] == "credit@1.0.0"
    assert body["columns"] == ["income", "age", "region"]
    assert len(body["explanations"]) == 2
    table = run(path, "explain", "credit", "--data", str(rows)).stdout
    assert "credit@1.0.0: exact linear" in table
    assert "region" in table


def test_explain_refuses_an_unknown_output_format_in_one_line(
    home: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, X = home
    rows = tmp_path / "rows.csv"
    X.head(1).to_csv(rows, index=False)
    result = run(path, "explain", "credit", "--data", str(rows), "--out", "x.xlsx", code=2)
    assert "Cannot write x.xlsx" in result.stderr
    assert not (tmp_path / "x.xlsx").exists()
    result = run(path, "explain", "credit", "--data", str(rows), "--method", "nope", code=2)
    assert "Unknown explanation method" in result.stderr
