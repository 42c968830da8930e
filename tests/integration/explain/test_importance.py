"""Global importance: mean |attribution| over the registration sample, kept on the version
and used to rank drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dockyard.registry.service import Registry
from dockyard.settings import Settings


@pytest.mark.parametrize("name", ["forest", "xgboost", "pipeline", "lightgbm-reg"])
def test_registration_keeps_mean_absolute_attribution_per_column(
    registry: Registry, models: dict[str, Any], name: str
) -> None:
    X = models[name][1]
    profile = registry.get_profile(name) or {}
    attribution = profile["attribution"]
    assert attribution["rows"] == 100
    step = len(X) // 100
    rows = X.iloc[::step][:100]
    expected = registry.load(name).explain(rows)
    assert attribution["method"] == expected.method
    assert set(attribution["importance"]) == set(X.columns)
    for column, value in expected.importance().items():
        assert np.isclose(attribution["importance"][column], value, rtol=1e-9)
    # drift ranks by the same figures, as shares
    assert np.isclose(sum(profile["importance"].values()), 1.0)
    top = max(attribution["importance"], key=attribution["importance"].get)
    assert max(profile["importance"], key=profile["importance"].get) == top


def test_a_model_without_an_exact_method_gets_none_at_registration(registry: Registry) -> None:
    profile = registry.get_profile("onnx") or {}
    assert "attribution" not in profile


def test_the_signal_columns_rank_first(registry: Registry) -> None:
    """y depends on a and b only: they carry the attribution."""
    importance = (registry.get_profile("forest") or {})["attribution"]["importance"]
    assert min(importance["a"], importance["b"]) > max(importance["c"], importance["d"])


def test_a_large_forest_is_explained_on_fewer_rows(tmp_path: Path) -> None:
    """Registration bounds shap's work: rows × tree nodes under a budget, at least 20 rows."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    from dockyard.explain.explainer import IMPORTANCE_ROWS, TREE_BUDGET

    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(2000, 4)), columns=["a", "b", "c", "d"])
    y = (X.a + rng.normal(size=len(X)) > 0).astype(int)  # noisy: deep trees, many nodes
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    nodes = sum(tree.tree_.node_count for tree in forest.estimators_)
    expected = max(20, TREE_BUDGET // nodes)
    assert expected < IMPORTANCE_ROWS  # the test's forest is over the budget
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        registry.register(forest, "big", sample=X, accelerate=False)
        attribution = (registry.get_profile("big") or {})["attribution"]
        assert attribution["rows"] == expected
        rows = X.iloc[:: len(X) // expected][:expected]
        direct = registry.load("big").explain(rows).importance()
        for column, value in direct.items():
            assert np.isclose(attribution["importance"][column], value, rtol=1e-9)


_WITHOUT_SHAP = """
import sys, json
sys.modules["shap"] = None  # as if the explain extra were not installed
import lightgbm, numpy as np, pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from dockyard.registry.service import Registry
from dockyard.settings import Settings

rng = np.random.default_rng(3)
X = pd.DataFrame(rng.normal(size=(300, 4)), columns=list("abcd"))
y = (X.a + X.b > 0).astype(int)
models = {
    "forest": RandomForestClassifier(20, random_state=0).fit(X, y),
    "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
    "lightgbm": lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y),
}
found = {}
with Registry.open(Settings(home=sys.argv[1], user="tester")) as registry:
    for name, model in models.items():
        registry.register(model, name, sample=X, y=y, accelerate=False)
        profile = registry.get_profile(name) or {}
        found[name] = {
            "attribution": (profile.get("attribution") or {}).get("method"),
            "importance": sorted(profile.get("importance") or {}),
        }
print(json.dumps({"found": found, "shap": sys.modules["shap"] is not None}))
"""


def test_registration_without_shap_keeps_what_needs_no_shap(tmp_path: Path) -> None:
    """Without the explain extra (the demo's set), every model registers: scikit-learn trees
    record no attribution (their importance falls back to ``feature_importances_``), while
    linear models and LightGBM keep their exact attributions."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SHAP, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["shap"] is False
    found = answer["found"]
    assert found["forest"] == {"attribution": None, "importance": ["a", "b", "c", "d"]}
    assert found["pipeline"]["attribution"].startswith("exact linear")
    assert found["lightgbm"]["attribution"] == "tree_shap (lightgbm pred_contrib)"
    assert found["lightgbm"]["importance"] == ["a", "b", "c", "d"]
