"""Calibrating a binary classifier's probabilities, fitted once on its labelled reference sample.

Registration fits it (with the reference profile it is stored in); monitoring applies it
when it estimates accuracy without labels
(:func:`~dockyard.monitoring.performance.estimate_accuracy`). Pure: numpy, and scikit-learn's
isotonic regression imported inside :func:`fit_calibration` only; applying a stored map
needs numpy alone.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CALIBRATION_GAIN",
    "CALIBRATION_MAX_POINTS",
    "CALIBRATION_MIN_PER_CLASS",
    "CALIBRATION_MIN_ROWS",
    "ECE_BINS",
    "Calibration",
    "expected_calibration_error",
    "fit_calibration",
]

CALIBRATION_MIN_ROWS = 200
"""Fewer labelled reference rows than this: no calibration is fitted."""

CALIBRATION_MIN_PER_CLASS = 10
"""Fewer positive or negative reference rows than this: no calibration is fitted."""

CALIBRATION_GAIN = 0.8
"""A calibration is kept when its cross-validated ECE is below this share of the raw one."""

CALIBRATION_MAX_POINTS = 200
"""Most thresholds a stored calibration holds."""

ECE_BINS = 10

_DIGITS = 6  # stored calibrated probabilities are rounded to this many decimals

FloatArray = NDArray[np.float64]


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


def _binary_sample(scores: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite numbers")
    if s.size and (s.min() < -1e-6 or s.max() > 1 + 1e-6):
        raise ValueError("scores must be probabilities in [0, 1]")
    s = np.clip(s, 0.0, 1.0)
    t = np.asarray(labels)
    if s.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"{t.size} labels for {s.size} scores, one-dimensional")
    if t.dtype != np.bool_ and not np.isin(t, (0, 1)).all():
        raise ValueError("labels must be 0/1 or booleans")
    return s, t.astype(np.float64)


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
