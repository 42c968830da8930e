"""Global importance: mean |attribution| over the registration sample, kept on the version
and used to rank drift."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dockyard.registry.service import Registry


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
