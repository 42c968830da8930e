"""The exact methods, each giving attributions over the features its model sees.

Every function returns a :class:`Raw` — values ``(rows, targets, features)``, base and
output ``(rows, targets)`` — or raises :class:`NotApplicable` so the explainer can choose
another method. Outputs are the model's own (its probabilities, log-odds, margin or value),
except for XGBoost, which computes in float32: there the output is base + Σ contributions
in float64, checked against the booster's own margin to float32 precision.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.explain.result import Space

_LINEAR_MODULES = ("sklearn.linear_model", "sklearn.svm")
_FLOAT32_RTOL = 1e-4


class NotApplicable(Exception):
    """This method cannot explain this model (the reason is the message)."""


@dataclass(frozen=True)
class Raw:
    method: str
    space: Space
    targets: tuple[str, ...]
    values: Any
    base: Any
    output: Any


def xgboost(model: Any, x: Any, classes: Sequence[str] | None) -> Raw:
    """XGBoost's own TreeSHAP (``pred_contribs``), in its margin space."""
    import json

    import numpy as np
    import xgboost as xgb

    booster = model.booster
    matrix = xgb.DMatrix(x, enable_categorical=True)
    contribs = np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)
    if contribs.ndim == 2:
        contribs = contribs[:, None, :]
    values, base = contribs[:, :, :-1], contribs[:, :, -1]
    output = base + values.sum(axis=2)
    margin = np.asarray(booster.predict(matrix, output_margin=True), dtype=np.float64)
    margin = margin.reshape(output.shape)
    if not np.allclose(output, margin, rtol=_FLOAT32_RTOL, atol=_FLOAT32_RTOL):
        raise NotApplicable("pred_contribs does not add up to the booster's margin")
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    return Raw(
        "tree_shap (xgboost pred_contribs)",
        _booster_space(objective, output.shape[1]),
        _booster_targets(classes, output.shape[1]),
        values,
        base,
        output,
    )


def lightgbm(model: Any, x: Any, classes: Sequence[str] | None) -> Raw:
    """LightGBM's own TreeSHAP (``pred_contrib``), in its raw-score space."""
    import numpy as np

    booster = model.booster
    x = x if hasattr(x, "columns") else np.asarray(x)
    contribs = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    raw = np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)
    rows = contribs.shape[0]
    targets = 1 if raw.ndim == 1 else raw.shape[1]
    contribs = contribs.reshape(rows, targets, -1)
    values, base = contribs[:, :, :-1], contribs[:, :, -1]
    objective = str(model.header.get("objective", "")).split(" ")[0]
    return Raw(
        "tree_shap (lightgbm pred_contrib)",
        _booster_space(objective, targets),
        _booster_targets(classes, targets),
        values,
        base,
        raw.reshape(rows, targets),
    )


def sklearn_tree(final: Any, z: Any, classes: Sequence[str] | None) -> Raw:
    """``shap``'s exact (path-dependent) tree explainer on a scikit-learn tree ensemble."""
    import numpy as np

    shap = import_shap()
    try:
        explainer = shap.TreeExplainer(final)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.asarray(explainer.shap_values(z, check_additivity=False), np.float64)
    except Exception as exc:  # shap refuses models it does not know
        raise NotApplicable(f"shap's tree explainer: {exc}") from exc
    values = values[:, None, :] if values.ndim == 2 else values.transpose(0, 2, 1)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    base = np.broadcast_to(expected, (values.shape[0], values.shape[1])).copy()
    space, targets, output = _own_output(final, z, values.shape[1], classes)
    return Raw("tree_shap (shap TreeExplainer)", space, targets, values, base, output)


def sklearn_linear(final: Any, z: Any, background: Any, classes: Sequence[str] | None) -> Raw:
    """Exact for a linear model: coefficient × (x − mean of the reference rows)."""
    import numpy as np

    if not type(final).__module__.startswith(_LINEAR_MODULES):
        raise NotApplicable("not a scikit-learn linear model")
    coef = getattr(final, "coef_", None)
    intercept = getattr(final, "intercept_", None)
    if coef is None or intercept is None:
        raise NotApplicable("no coefficients")
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    mean = np.asarray(background, dtype=np.float64).mean(axis=0)
    values = coef[None, :, :] * (z - mean)[:, None, :]
    base = np.broadcast_to(
        np.atleast_1d(np.asarray(intercept, dtype=np.float64)) + coef @ mean,
        (z.shape[0], coef.shape[0]),
    ).copy()
    space, targets, output = _own_output(final, z, coef.shape[0], classes, linear=True)
    return Raw("exact linear (coef × (x − reference mean))", space, targets, values, base, output)


def _own_output(
    final: Any, z: Any, targets: int, classes: Sequence[str] | None, *, linear: bool = False
) -> tuple[Space, tuple[str, ...], Any]:
    """The model's own output that ``targets`` attributions explain, and its space."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if classes is None:
            out = np.asarray(final.predict(z), dtype=np.float64).reshape(len(z), targets)
            return "value", ("value",), out
        if not linear and hasattr(final, "predict_proba"):
            proba = np.asarray(final.predict_proba(z), dtype=np.float64)
            if proba.shape[1] == targets:
                return "probability", tuple(classes), proba
        if not hasattr(final, "decision_function"):
            raise NotApplicable("no output in the attributions' space")
        out = np.asarray(final.decision_function(z), dtype=np.float64).reshape(len(z), targets)
    if targets == 1:
        return "log_odds", (classes[-1],), out
    return "margin", tuple(classes), out


def _booster_space(objective: str, targets: int) -> Space:
    if objective.startswith(("binary", "reg:logistic")) and targets == 1:
        return "log_odds"
    if objective.startswith(("reg:squared", "reg:absolute", "reg:pseudohuber", "reg:quantile")):
        return "value"
    if objective in ("regression", "regression_l1", "huber", "fair", "quantile", "mape"):
        return "value"
    return "margin"


def _booster_targets(classes: Sequence[str] | None, targets: int) -> tuple[str, ...]:
    if classes is not None and len(classes) == targets:
        return tuple(classes)
    if classes is not None and targets == 1:
        return (classes[-1],)
    return ("value",) if targets == 1 else tuple(str(i) for i in range(targets))


def import_shap() -> Any:
    """``shap``, imported quietly (its import warns about its plotting dependencies)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import shap
    except ImportError as exc:
        from dockyard.errors import UnsupportedModelError

        raise UnsupportedModelError(
            "Explaining this model needs the shap package.",
            hint="pip install 'dockyard[explain]'",
        ) from exc
    return shap
