"""Model-agnostic explanations over the user's columns: ``shap``'s permutation explainer
(exactly additive: each permutation's contributions telescope from the background's mean
output to the row's output) and LIME on request. Both only call the model."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from dockyard.explain.methods import Raw, import_shap
from dockyard.explain.result import Space

Call = Callable[[Any], Any]
"""Rows as a 2-D numpy array (object dtype for mixed columns) -> outputs ``(rows, targets)``."""


def permutation(call: Call, x: Any, background: Any, space: Space, targets: tuple[str, ...]) -> Raw:
    """Shapley values estimated over feature orderings, against ``background`` rows."""
    import numpy as np

    shap = import_shap()
    n_features = x.shape[1]
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.PermutationExplainer(call, masker, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = explainer(x, max_evals=4 * (2 * n_features + 1), silent=True)
    values = np.asarray(result.values, dtype=np.float64)
    values = values[:, None, :] if values.ndim == 2 else values.transpose(0, 2, 1)
    base = np.asarray(result.base_values, dtype=np.float64).reshape(len(x), -1)
    output = np.asarray(call(x), dtype=np.float64).reshape(base.shape)
    return Raw(
        "permutation shap (background: reference rows)", space, targets, values, base, output
    )


def lime(
    call: Call,
    x: Any,
    background: Any,
    columns: Sequence[str],
    space: Space,
    targets: tuple[str, ...],
) -> Raw:
    """LIME's local linear surrogate per row: its weights, its intercept as ``base``, and
    the model's own output. Text columns are given to LIME as categories."""
    import numpy as np

    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError as exc:
        from dockyard.errors import UnsupportedModelError

        raise UnsupportedModelError(
            "method=lime needs the lime package.", hint="pip install 'dockyard[explain]'"
        ) from exc
    both = np.concatenate([background, x])
    categorical = [c for c in range(both.shape[1]) if not _numeric(both[:, c])]
    categories = {c: sorted({str(v) for v in both[:, c]}) for c in categorical}

    def encode(rows: Any) -> Any:
        out = np.empty(rows.shape, dtype=np.float64)
        for c in range(rows.shape[1]):
            if c in categories:
                index = {v: i for i, v in enumerate(categories[c])}
                out[:, c] = [index[str(v)] for v in rows[:, c]]
            else:
                out[:, c] = rows[:, c].astype(np.float64)
        return out

    def decode(codes: Any) -> Any:
        rows = codes.astype(object)
        for c, names in categories.items():
            rows[:, c] = [names[round(float(v))] for v in codes[:, c]]
        return rows if categories else codes

    classification = space == "probability"
    explainer = LimeTabularExplainer(
        encode(background),
        feature_names=list(columns),
        categorical_features=categorical,
        categorical_names=dict(categories),
        mode="classification" if classification else "regression",
        discretize_continuous=False,
        random_state=0,
    )

    def predict(codes: Any) -> Any:
        out = np.asarray(call(decode(codes)), dtype=np.float64)
        return out if classification else out[:, 0]

    labels = list(range(len(targets)))
    values = np.zeros((len(x), len(targets), len(columns)))
    base = np.zeros((len(x), len(targets)))
    for r, row in enumerate(encode(x)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = explainer.explain_instance(
                row, predict, labels=labels, num_features=len(columns), num_samples=1000
            )
        for t in labels:
            key = t if classification else next(iter(found.local_exp))
            for c, weight in found.local_exp[key]:
                values[r, t, c] = weight
            base[r, t] = found.intercept[key]
    output = np.asarray(call(x), dtype=np.float64).reshape(base.shape)
    return Raw("lime", space, targets, values, base, output)


def _numeric(column: Any) -> bool:
    try:
        column.astype("float64")
    except (TypeError, ValueError):
        return False
    return True
