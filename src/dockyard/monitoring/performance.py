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
:func:`fit_calibration` fits isotonic regression of the 0/1 labels on the scores of a
labelled reference sample, and keeps it only when it measurably lowers the expected
calibration error (ECE: 10 equal-width bins, ``sum over bins of n_b/n · |mean label -
mean score|``), measured honestly by two-fold cross-fitting: rows sorted by score are dealt
alternately into two halves, the isotonic map fitted on each half is scored on the other,
and the raw scores are scored on the same halves. The map is kept when its cross-validated
ECE is below ``CALIBRATION_GAIN`` (0.8) times the raw one, and there are at least
``CALIBRATION_MIN_ROWS`` rows with ``CALIBRATION_MIN_PER_CLASS`` of each label; otherwise
the identity is returned with ``calibrated=False``. A kept map is refitted on all rows and
stored as at most ``CALIBRATION_MAX_POINTS`` thresholds ``x → y``, applied with linear
interpolation and clipped at the ends (``np.interp``), which needs no scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

CONFIDENCE = 0.95
"""Level of every confidence interval here."""

CALIBRATION_MIN_ROWS = 200
"""Fewer labelled reference rows than this: no calibration is fitted."""

CALIBRATION_MIN_PER_CLASS = 10
"""Fewer positive or negative reference rows than this: no calibration is fitted."""

CALIBRATION_GAIN = 0.8
"""A calibration is kept when its cross-validated ECE is below this share of the raw one."""

CALIBRATION_MAX_POINTS = 200
"""Most thresholds a stored calibration holds."""

ECE_BINS = 10

_Z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
_DIGITS = 6  # stored calibrated probabilities are rounded to this many decimals

FloatArray = NDArray[np.float64]


def wilson_interval(successes: int, n: int, *, z: float = _Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); ``None`` when ``n`` is 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


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


@dataclass(frozen=True)
class Calibration:
    """A monotone map from a model's scores to calibrated probabilities: linear
    interpolation through the points ``x → y``, constant beyond the ends.

    ``calibrated`` is False for the identity that :func:`fit_calibration` returns when
    calibrating would not help. ``error_before`` is the ECE of the raw scores and
    ``error_after`` that of the isotonic map, both averaged over the two held-out halves of
    the reference rows, and reported whether or not the map was kept (with too few rows to
    fit one: ``error_before`` over all rows and ``error_after`` None).
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    calibrated: bool
    error_before: float | None = None
    error_after: float | None = None

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError("a calibration needs as many x as y, at least one")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("calibration points must be finite")
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise ValueError("calibration x must increase and y must not decrease")
        if y[0] < 0 or y[-1] > 1:
            raise ValueError("calibrated probabilities must lie in [0, 1]")
        for error in (self.error_before, self.error_after):
            if error is not None and not math.isfinite(error):
                raise ValueError("calibration errors must be finite or None")

    @classmethod
    def identity(
        cls, *, error_before: float | None = None, error_after: float | None = None
    ) -> Calibration:
        """Scores unchanged (clipped to [0, 1])."""
        return cls((0.0, 1.0), (0.0, 1.0), False, error_before, error_after)

    def apply(self, scores: ArrayLike) -> FloatArray:
        """Calibrated probabilities for ``scores``; needs numpy only."""
        values = np.asarray(scores, dtype=np.float64)
        return np.asarray(np.interp(values, self.x, self.y), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-ready form (kept in the version's reference profile)."""
        return {
            "method": "isotonic",
            "x": list(self.x),
            "y": list(self.y),
            "calibrated": self.calibrated,
            "error_before": self.error_before,
            "error_after": self.error_after,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The calibration that :meth:`to_dict` wrote."""
        if data.get("method", "isotonic") != "isotonic":
            raise ValueError(f"unknown calibration method {data.get('method')!r}")

        def error(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            x=tuple(float(v) for v in data["x"]),
            y=tuple(float(v) for v in data["y"]),
            calibrated=bool(data["calibrated"]),
            error_before=error("error_before"),
            error_after=error("error_after"),
        )


def expected_calibration_error(scores: ArrayLike, labels: ArrayLike, bins: int = ECE_BINS) -> float:
    """ECE of probabilities ``scores`` against 0/1 ``labels`` over ``bins`` equal-width bins:
    the row-weighted mean gap between each bin's mean label and mean score."""
    s, t = _binary_sample(scores, labels)
    if s.size == 0:
        raise ValueError("the calibration error of no rows is undefined")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    index = np.minimum((s * bins).astype(np.intp), bins - 1)
    gap = np.bincount(index, weights=t, minlength=bins) - np.bincount(
        index, weights=s, minlength=bins
    )
    return float(np.abs(gap).sum() / s.size)


def fit_calibration(scores: ArrayLike, labels: ArrayLike) -> Calibration:
    """Isotonic calibration of reference ``scores`` (P(positive)) against 0/1 ``labels``,
    kept only when cross-fitting shows it lowers the ECE; see the module docstring."""
    s, t = _binary_sample(scores, labels)
    positives = int(t.sum())
    if s.size < CALIBRATION_MIN_ROWS or (
        min(positives, s.size - positives) < CALIBRATION_MIN_PER_CLASS
    ):
        return Calibration.identity(
            error_before=expected_calibration_error(s, t) if s.size else None
        )
    order = np.argsort(s, kind="stable")
    halves = (order[0::2], order[1::2])
    before = after = 0.0
    for fitted, held in (halves, halves[::-1]):
        isotonic = _isotonic(s[fitted], t[fitted])
        before += expected_calibration_error(s[held], t[held]) / 2
        after += expected_calibration_error(_predict(isotonic, s[held]), t[held]) / 2
    if not after < CALIBRATION_GAIN * before:
        return Calibration.identity(error_before=before, error_after=after)
    x, y = _thresholds(_isotonic(s, t), s)
    return Calibration(x, y, True, before, after)


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


def _binary_sample(scores: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = _probabilities(scores, "scores")
    t = np.asarray(labels)
    if s.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"{t.size} labels for {s.size} scores, one-dimensional")
    if t.dtype != np.bool_ and not np.isin(t, (0, 1)).all():
        raise ValueError("labels must be 0/1 or booleans")
    return s, t.astype(np.float64)


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


def _isotonic(scores: FloatArray, labels: FloatArray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)


def _predict(isotonic: Any, scores: FloatArray) -> FloatArray:
    return np.clip(np.asarray(isotonic.predict(scores), dtype=np.float64), 0.0, 1.0)


def _thresholds(isotonic: Any, scores: FloatArray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """At most ``CALIBRATION_MAX_POINTS`` points of the fitted map: its own thresholds when
    few enough, else the map at quantiles of the scores (resolution where the data is)."""
    x = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
    if x.size > CALIBRATION_MAX_POINTS:  # the quantiles include the scores' min and max
        x = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, CALIBRATION_MAX_POINTS)))
    # x keeps full precision (isotonic steps are pairs of close thresholds); rounding y is
    # monotone, so it stays non-decreasing
    y = _predict(isotonic, x).round(_DIGITS)
    return tuple(x.tolist()), tuple(y.tolist())
