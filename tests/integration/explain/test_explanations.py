"""Explanations on real models of every runtime: additive, in the user's columns, equal to
shap called directly where shap has the same method."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import InvalidRequestError
from dockyard.registry.service import Registry

EXPECTED = {
    "forest": ("tree_shap (shap TreeExplainer)", "probability", ("0", "1")),
    "linear": ("exact linear", "log_odds", ("1",)),
    "ridge": ("exact linear", "value", ("value",)),
    "pipeline": ("exact linear", "log_odds", ("1",)),
    "pipeline-forest": ("tree_shap (shap TreeExplainer)", "probability", ("0", "1")),
    "xgboost": ("tree_shap (xgboost pred_contribs)", "log_odds", ("1",)),
    "xgboost-multi": ("tree_shap (xgboost pred_contribs)", "margin", ("0", "1", "2")),
    "lightgbm": ("tree_shap (lightgbm pred_contrib)", "log_odds", ("1",)),
    "lightgbm-reg": ("tree_shap (lightgbm pred_contrib)", "value", ("value",)),
    "onnx": ("permutation shap", "probability", ("0", "1")),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_runtime_adds_up_in_the_users_columns(
    registry: Registry, models: dict[str, Any], name: str
) -> None:
    X = models["linear" if name == "onnx" else name][1]
    explanation = registry.load(name).explain(X.iloc[:25])
    method, space, targets = EXPECTED[name]
    assert explanation.method.startswith(method)
    assert (explanation.space, explanation.targets) == (space, targets)
    assert explanation.columns == tuple(X.columns)
    assert explanation.values.shape == (25, len(targets), X.shape[1])
    assert explanation.additivity_gap() <= 1e-6
    assert explanation.additive


def test_the_output_is_the_models_own(registry: Registry, models: dict[str, Any]) -> None:
    forest, X = models["forest"]
    rows = X.iloc[:10]
    assert np.allclose(registry.load("forest").explain(rows).output, forest.predict_proba(rows))
    linear = models["linear"][0]
    margin = registry.load("linear").explain(rows).output[:, 0]
    assert np.allclose(margin, linear.decision_function(rows), atol=1e-12)
    booster = models["xgboost"][0].get_booster()
    import xgboost

    own = booster.predict(xgboost.DMatrix(rows), output_margin=True)
    assert np.allclose(registry.load("xgboost").explain(rows).output[:, 0], own, atol=1e-5)


def test_forest_agrees_with_shap_called_directly(
    registry: Registry, models: dict[str, Any], shap: Any
) -> None:
    forest, X = models["forest"]
    direct = np.asarray(shap.TreeExplainer(forest).shap_values(X.iloc[:20]))  # (rows, cols, 2)
    ours = registry.load("forest").explain(X.iloc[:20]).values  # (rows, 2, cols)
    assert np.allclose(ours, direct.transpose(0, 2, 1), atol=1e-12)


@pytest.mark.parametrize("name", ["xgboost", "lightgbm"])
def test_native_tree_shap_agrees_with_shaps_tree_explainer(
    registry: Registry, models: dict[str, Any], name: str, shap: Any
) -> None:
    model, X = models[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap notes its LightGBM output layout changed
        direct = np.asarray(shap.TreeExplainer(model).shap_values(X.iloc[:20]))
    if direct.ndim == 3:  # (rows, columns, classes) or a (classes, rows, columns) list
        direct = direct[..., -1] if direct.shape[0] == 20 else direct[-1]
    ours = registry.load(name).explain(X.iloc[:20]).values[:, 0, :]
    assert np.allclose(ours, direct, atol=1e-5)


def test_linear_agrees_with_shaps_linear_explainer(
    registry: Registry, models: dict[str, Any], shap: Any
) -> None:
    linear, X = models["linear"]
    loaded = registry.load("linear")
    reference = loaded.reference_rows(registry.get_profile("linear"))
    direct = shap.LinearExplainer(linear, shap.maskers.Independent(reference)).shap_values(
        X.iloc[:20]
    )
    assert np.allclose(loaded.explain(X.iloc[:20]).values[:, 0, :], direct, atol=1e-10)


def test_one_hot_columns_are_summed_back_to_the_users_column(
    registry: Registry, models: dict[str, Any]
) -> None:
    pipeline, Xc = models["pipeline"]
    loaded = registry.load("pipeline")
    rows = Xc.iloc[:15]
    explanation = loaded.explain(rows)
    # by hand: coefficient × (one-hot value − its mean over the reference rows), summed
    reference = loaded.reference_rows(registry.get_profile("pipeline"))
    transform, final = pipeline[0], pipeline[-1]
    z, z_ref = transform.transform(rows), transform.transform(reference)
    names = list(transform.get_feature_names_out())
    city = [i for i, n in enumerate(names) if n.startswith("cat__city_")]
    assert len(city) == 3
    by_hand = (final.coef_[0][city] * (z[:, city] - z_ref[:, city].mean(axis=0))).sum(axis=1)
    assert np.allclose(explanation.values[:, 0, 4], by_hand, atol=1e-12)
    assert explanation.values.shape[2] == 5  # a, b, c, d, city: not the 7 encoded features


def test_lime_gives_one_weight_per_column_and_target(
    registry: Registry, models: dict[str, Any]
) -> None:
    Xc = models["pipeline"][1]
    explanation = registry.load("pipeline").explain(Xc.iloc[:3], method="lime")
    assert explanation.method == "lime"
    assert not explanation.additive
    assert explanation.values.shape == (3, 1, 5) or explanation.values.shape == (3, 2, 5)
    assert np.isfinite(explanation.values).all()
    assert np.abs(explanation.values).sum() > 0
    document = explanation.to_dict()
    assert set(document["explanations"][0]["attributions"][explanation.targets[0]]) == set(
        Xc.columns
    )


def test_an_unknown_method_is_a_client_error(registry: Registry, models: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="Unknown explanation method"):
        registry.load("forest").explain(models["forest"][1].iloc[:1], method="magic")


def test_penguins_lightgbm_with_categories_and_missing_values(
    tmp_path: Any, penguins: tuple[Any, pd.DataFrame, Any]
) -> None:
    from dockyard.settings import Settings

    model, X, _ = penguins
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        registry.register(model, "penguins", sample=X)
        explanation = registry.load("penguins").explain(X.iloc[:30])
    assert explanation.method == "tree_shap (lightgbm pred_contrib)"
    assert explanation.targets == ("Adelie", "Chinstrap", "Gentoo")
    assert explanation.columns == tuple(X.columns)
    assert explanation.additivity_gap() <= 1e-6
    assert explanation.importance()["island"] >= 0
