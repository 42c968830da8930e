"""Group fairness at a gate: how a binary classifier treats each group of a sensitive column.

Per group (``fairlearn``'s ``MetricFrame``): selection rate, accuracy, true and false
positive rates, and the group's row count. Per column, fairlearn's four summaries —
demographic parity difference and ratio (selection rates), equalized odds difference and
ratio (the worse of the TPR and FPR gaps) — which gate requirements name like any metric
(``demographic_parity_difference <= 0.1``, ``equalized_odds_difference <= baseline +
0.02``). With several sensitive columns a requirement holds for the worst of them (the
largest difference, the smallest ratio). ``fairlearn`` comes with the ``explain`` extra and
is imported only when a gate names sensitive columns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from dockyard.errors import InvalidRequestError, UnsupportedModelError

DIFFERENCES = ("demographic_parity_difference", "equalized_odds_difference")
RATIOS = ("demographic_parity_ratio", "equalized_odds_ratio")
GROUP_FIGURES = ("selection_rate", "accuracy", "tpr", "fpr", "count")


def check_sensitive(columns: Sequence[str], available: Sequence[str]) -> None:
    """Refuse sensitive columns the data lacks, before any model is loaded."""
    missing = [c for c in columns if c not in available]
    if missing:
        raise InvalidRequestError(
            f"The gate data has no sensitive column(s) {', '.join(map(repr, missing))}.",
            hint=f"Its columns: {', '.join(map(str, list(available)[:20]))}.",
        )


def group_fairness(
    truth: Sequence[str], predicted: Sequence[str], positive: str, groups: Any
) -> dict[str, Any]:
    """Per-group figures and the four summaries for one sensitive column (``groups``: one
    value per row); ``truth`` and ``predicted`` are label texts, ``positive`` the positive
    class's."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fairlearn import metrics as fm
        from sklearn.metrics import accuracy_score

        y_true = np.asarray([t == positive for t in truth], dtype=np.int64)
        y_pred = np.asarray([p == positive for p in predicted], dtype=np.int64)
        sensitive = np.asarray([str(g) for g in groups], dtype=object)
        frame = fm.MetricFrame(
            metrics={
                "selection_rate": fm.selection_rate,
                "accuracy": accuracy_score,
                "tpr": fm.true_positive_rate,
                "fpr": fm.false_positive_rate,
                "count": fm.count,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=sensitive,
        )
        by_group = {
            str(group): {name: _number(value) for name, value in row.items()}
            for group, row in frame.by_group.to_dict(orient="index").items()
        }
        options = {"y_true": y_true, "y_pred": y_pred, "sensitive_features": sensitive}
        summary = {
            "demographic_parity_difference": fm.demographic_parity_difference(**options),
            "demographic_parity_ratio": fm.demographic_parity_ratio(**options),
            "equalized_odds_difference": fm.equalized_odds_difference(**options),
            "equalized_odds_ratio": fm.equalized_odds_ratio(**options),
        }
    return {"groups": by_group, "summary": {k: _number(v) for k, v in summary.items()}}


def worst(per_column: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The summaries a requirement is checked against: over the sensitive columns, the
    largest difference and the smallest ratio (``None`` when a column's is undefined)."""
    found: dict[str, float | None] = {}
    for name in (*DIFFERENCES, *RATIOS):
        values = [column["summary"][name] for column in per_column.values()]
        if not values or any(v is None for v in values):
            found[name] = None
        else:
            found[name] = max(values) if name in DIFFERENCES else min(values)
    return found


def positive_class(classes: Sequence[Any] | None, ref: str) -> str:
    """The positive class's label text: fairness figures need a binary classifier."""
    from dockyard.schema.labels import label_text

    if classes is None or len(classes) != 2:
        raise UnsupportedModelError(
            f"{ref} is not a binary classifier, so it has no group fairness figures.",
            hint="Gate it without --sensitive.",
        )
    return str(label_text(classes[1]))


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
