"""Model performance over a window of logged predictions: measured once labels arrive,
estimated while they have not.

Everything here is pure (numpy; scikit-learn only to fit a calibration map, imported
inside that function) and returns plain dicts whose floats are finite or ``None``, so that
``json.dumps(result, allow_nan=False)`` always accepts them. A figure that cannot be
computed (no labelled row, one class only for ROC AUC, no probabilities for log loss) is
``None``; no warning is raised.

Measured performance
--------------------
The caller joins the window's predictions with the labels that came back as feedback and
passes the labelled rows; ``predictions_total`` is how many predictions the window holds, so
``coverage = labelled / rows`` sits beside every figure.

* **Classification** compares text: the log stores classes as strings (``"1"``,
  ``"setosa"``, ``"True"``) and the caller normalises them. ``classes`` is the model's class
  list and the order of the probability columns (without it: the sorted classes seen in
  the window, and no probabilities). A label outside ``classes`` still counts, as a wrong
  prediction; ROC AUC and log loss skip such rows and ``excluded_rows`` says how many.

  - ``accuracy``: share of labelled rows whose prediction equals the label, with
    ``accuracy_ci``, the 95% Wilson score interval
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
  - ``per_class``: precision, recall and F1 of each class, one-vs-rest. A ratio with
    nothing to divide by is ``None``: precision of a class never predicted, recall of a
    class never seen in the labels, all three for a class absent from both.
  - ``average``: ``"binary"`` for two classes, where precision, recall and F1 are those of
    the positive class ``classes[1]``; otherwise ``"macro"``, the unweighted mean over
    the classes whose figure is defined (scikit-learn's ``average="macro"`` with
    ``zero_division=nan``).
  - ``roc_auc``: binary, the AUC of P(positive); multiclass, the mean one-vs-rest AUC over
    the classes present among the labels (the others have none defined).
  - ``log_loss``: mean ``-ln P(label)``, probabilities clipped to ``[eps, 1 - eps]``.

* **Regression**: ``mae``, ``rmse`` and ``r2`` (``None`` under two rows or for constant
  labels), and ``mae_ci``, the normal approximation ``mae ± z·sd(|error|)/sqrt(n)`` (lower
  end clipped at 0).

Estimated performance (CBPE)
----------------------------
Without labels, a binary classifier's probabilities say how often it should be right.
Confidence-based performance estimation (as in NannyML) takes, for each row, the decision
``d ∈ {0, 1}`` (predicted positive or not) and the probability ``p`` of the positive
class, and estimates::

    expected accuracy = mean over rows of (1 - |d - p|)

i.e. ``p`` where the model said positive and ``1 - p`` where it said negative. It holds
when ``p`` is calibrated and only the inputs drift (a changed relation between inputs and
labels goes unseen), so the output is marked ``"estimate": True``.

Calibration
-----------
The probabilities are corrected by the version's stored calibration when it has one
(:class:`~dockyard.schema.calibration.Calibration`, fitted at registration).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dockyard.schema.calibration import Calibration
from dockyard.stats import wilson_interval

CONFIDENCE = 0.95
"""Level of every confidence interval here."""

_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)

FloatArray = NDArray[np.float64]


def classification_performance(
    labels: Sequence[str] | NDArray[Any],
    predictions: Sequence[str] | NDArray[Any],
    *,
    probabilities: ArrayLike | None = None,
    classes: Sequence[str] | None = None,
    predictions_total: int | None = None,
) -> dict[str, Any]:
    """Accuracy (with its Wilson interval), precision, recall, F1, ROC AUC and log loss of
    the labelled rows of one window; see the module docstring for each definition.

    ``probabilities`` has one column per class in ``classes`` order (or, for two classes,
    may be the 1-D probability of ``classes[1]``); it requires ``classes``.
    """
    y = _as_text(labels, "labels")
    predicted = _as_text(predictions, "predictions")
    if y.shape != predicted.shape:
        raise ValueError(f"{y.size} labels but {predicted.size} predictions")
    n = int(y.size)
    if classes is None:
        if probabilities is not None:
            raise ValueError("probabilities need classes, the order of their columns")
        names = sorted(set(y.tolist()) | set(predicted.tolist()))
    else:
        names = [str(c) for c in classes]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"classes must be distinct and not empty, got {names}")
    proba = None if probabilities is None else _probability_matrix(probabilities, n, names)
    binary = len(names) == 2
    known = np.isin(y, names)
    result: dict[str, Any] = {
        "task": "classification",
        **_counts(n, predictions_total),
        "accuracy": None,
        "accuracy_ci": None,
        "precision": None,
        "recall": None,
        "f1": None,
        "average": "binary" if binary else "macro",
        "roc_auc": None,
        "log_loss": None,
        "excluded_rows": n - int(known.sum()),
        "per_class": {
            name: {"precision": None, "recall": None, "f1": None, "support": 0} for name in names
        },
    }
    if n == 0:
        return result
    correct = int((y == predicted).sum())
    interval = wilson_interval(correct, n)
    result["accuracy"] = correct / n
    result["accuracy_ci"] = None if interval is None else list(interval)

    # an undefined ratio is NaN here, reported as None and left out of the macro mean
    figures = _precision_recall_f1(y, predicted, names)
    per_class = result["per_class"]
    for i, name in enumerate(names):
        precision, recall, f1 = (_finite(float(column[i])) for column in figures[:3])
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(figures[3][i]),
        }
    for key, column in zip(("precision", "recall", "f1"), figures[:3], strict=True):
        if binary:
            result[key] = per_class[names[1]][key]
        else:
            defined = column[~np.isnan(column)]
            result[key] = _finite(float(defined.mean())) if defined.size else None

    if proba is not None and known.any():
        order = np.argsort(names)  # the column of each known label, by binary search
        rows = order[np.searchsorted(np.array(names), y[known], sorter=order)]
        result["roc_auc"] = _roc_auc(rows, proba[known], binary)
        result["log_loss"] = _log_loss(rows, proba[known])
    return result


def regression_performance(
    labels: Sequence[float] | ArrayLike,
    predictions: Sequence[float] | ArrayLike,
    *,
    predictions_total: int | None = None,
) -> dict[str, Any]:
    """MAE (with a 95% normal-approximation interval), RMSE and R² of the labelled rows of
    one window."""
    y = _as_floats(labels, "labels")
    predicted = _as_floats(predictions, "predictions")
    if y.shape != predicted.shape:
        raise ValueError(f"{y.size} labels but {predicted.size} predictions")
    n = int(y.size)
    result: dict[str, Any] = {
        "task": "regression",
        **_counts(n, predictions_total),
        "mae": None,
        "mae_ci": None,
        "rmse": None,
        "r2": None,
    }
    if n == 0:
        return result
    with np.errstate(over="ignore", invalid="ignore"):
        absolute = np.abs(predicted - y)
        squared = absolute * absolute
        mae = float(absolute.mean())
        result["mae"] = _finite(mae)
        result["rmse"] = _finite(math.sqrt(float(squared.mean())))
        if n >= 2:
            spread = float(absolute.std(ddof=1)) * _Z / math.sqrt(n)
            low, high = _finite(max(0.0, mae - spread)), _finite(mae + spread)
            result["mae_ci"] = None if low is None or high is None else [low, high]
            total = float(np.sum((y - y.mean()) ** 2))
            if total > 0:
                result["r2"] = _finite(1 - float(squared.sum()) / total)
    return result


def estimate_accuracy(
    scores: ArrayLike,
    *,
    threshold: float = 0.5,
    predicted_positive: ArrayLike | None = None,
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Expected accuracy of a binary classifier without labels (CBPE).

    ``scores`` are P(positive class) per row; ``predicted_positive`` is the model's actual
    decision when known, else ``scores >= threshold``. The decision always comes from the
    raw scores; ``calibration`` only corrects the probabilities it is judged against.
    """
    s = _probabilities(scores, "scores")
    if s.ndim != 1:
        raise ValueError("scores must be one-dimensional")
    if predicted_positive is None:
        decided = s >= threshold
    else:
        decisions = np.asarray(predicted_positive)
        if decisions.shape != s.shape:
            raise ValueError(f"{decisions.size} decisions for {s.size} scores")
        if decisions.dtype != np.bool_ and not np.isin(decisions, (0, 1)).all():
            raise ValueError("predicted_positive must be booleans or 0/1")
        decided = decisions.astype(bool)
    calibrated = calibration is not None and calibration.calibrated
    p = calibration.apply(s) if calibration is not None else s
    estimate = _finite(float(np.where(decided, p, 1 - p).mean())) if s.size else None
    correction = (
        "recalibrated on labelled reference data"
        if calibrated
        else "taken as calibrated, without correction"
    )
    return {
        "task": "estimate",
        "method": "confidence-based (CBPE)",
        "estimate": True,
        "rows": int(s.size),
        "estimated_accuracy": estimate,
        "calibrated": calibrated,
        "note": (
            "Estimated without labels from the model's probabilities; expected accuracy is "
            f"the mean of 1 - |decision - P(positive)|, with probabilities {correction}. "
            "It holds while only the inputs drift, not the relation between inputs and labels."
        ),
    }


# helpers


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _counts(labelled: int, predictions_total: int | None) -> dict[str, Any]:
    rows = labelled if predictions_total is None else int(predictions_total)
    if rows < labelled:
        raise ValueError(f"{labelled} labelled rows but only {rows} predictions")
    return {"rows": rows, "labelled": labelled, "coverage": labelled / rows if rows else None}


def _as_text(values: Sequence[str] | ArrayLike, name: str) -> NDArray[np.str_]:
    array = np.asarray(values, dtype=str)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return array


def _as_floats(values: Sequence[float] | ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    return array


def _probabilities(values: ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite numbers")
    if array.size and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be probabilities in [0, 1]")
    return np.clip(array, 0.0, 1.0)


def _probability_matrix(values: ArrayLike, n: int, classes: list[str]) -> FloatArray:
    proba = _probabilities(values, "probabilities")
    if proba.ndim == 1 and len(classes) == 2:
        proba = np.column_stack([1 - proba, proba])
    if proba.shape != (n, len(classes)):
        raise ValueError(
            f"probabilities must have shape ({n}, {len(classes)}) for {n} rows of classes "
            f"{classes}, got {proba.shape}"
        )
    return proba


def _precision_recall_f1(
    y: NDArray[np.str_], predicted: NDArray[np.str_], names: Sequence[str]
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.int64]]:
    """Per class of ``names``: precision, recall, F1 (NaN where there is nothing to divide
    by) and support — scikit-learn's ``precision_recall_fscore_support(labels=names,
    average=None, zero_division=nan)``, in numpy: importing scikit-learn costs a command
    more than a second."""
    order = np.argsort(names)
    ordered = np.asarray(names, dtype=str)[order]

    def index(values: NDArray[np.str_]) -> NDArray[np.intp]:
        """Each value's position in ``names``; ``len(names)`` for values outside them."""
        at = np.clip(np.searchsorted(ordered, values), 0, len(names) - 1)
        return np.where(ordered[at] == values, order[at], len(names))

    truth, guess = index(y), index(predicted)
    bins = len(names) + 1
    support = np.bincount(truth, minlength=bins)[:-1]
    predicted_count = np.bincount(guess, minlength=bins)[:-1]
    hits = np.bincount(truth[truth == guess], minlength=bins)[:-1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, hits / predicted_count, np.nan)
        recall = np.where(support > 0, hits / support, np.nan)
        both = predicted_count + support
        f1 = np.where(both > 0, 2 * hits / both, np.nan)
    return precision, recall, f1, support


def _roc_auc(rows: NDArray[np.intp], proba: FloatArray, binary: bool) -> float | None:
    scores = []
    for column in [1] if binary else range(proba.shape[1]):
        positive = rows == column
        if positive.all() or not positive.any():
            continue  # one-vs-rest AUC needs both sides
        scores.append(_auc(positive, proba[:, column]))
    return _finite(float(np.mean(scores))) if scores else None


def _auc(positive: NDArray[np.bool_], scores: FloatArray) -> float:
    """ROC AUC as the Mann-Whitney statistic with tied scores sharing their average rank,
    which equals scikit-learn's ``roc_auc_score`` (trapezoids through the ties)."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(ordered.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)  # 1-based average ranks
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _log_loss(rows: NDArray[np.intp], proba: FloatArray) -> float | None:
    eps = float(np.finfo(np.float64).eps)
    chosen = np.clip(proba[np.arange(rows.size), rows], eps, 1 - eps)
    return _finite(float(-np.log(chosen).mean()))
