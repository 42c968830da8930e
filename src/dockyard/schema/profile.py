"""Reference profiles: bounded per-feature statistics of the training sample, for drift.

A :class:`ReferenceProfile` is stored with every version as JSON. Its size does not grow with
the sample: per numeric feature a fixed set of quantiles, a ``bins``-bin histogram and a
reservoir of at most ``reservoir_size`` raw values; per categorical feature the
``max_categories`` most frequent values and one ``other`` count.

Policies:

- **numeric** (float, integer; datetimes as seconds since the Unix epoch, UTC): NaN/None
  count as ``missing``; ``±inf`` count in ``count`` and ``infinite`` but are left out of
  mean, std (population, ``ddof=0``), min, max, quantiles (numpy's default ``linear``
  method), histogram and reservoir.
- **histogram**: ``bins`` equal-width bins over ``[min, max]`` of the finite values
  (``numpy.histogram``; the last bin includes ``max``). A constant column gets one bin
  ``[v, v]``; a column without finite values gets none. Values seen later outside
  ``[min, max]`` belong to no bin: drift code should treat the outer bins as open-ended.
- **reservoir**: a uniform random sample without replacement of the finite values, in their
  original order, drawn with ``numpy.random.default_rng(seed)`` afresh for every feature (so
  it does not depend on column order); all values when there are at most ``reservoir_size``.
- **categorical** (string, category, boolean): frequencies of the ``max_categories`` most
  frequent non-null values (ties in order of first appearance), the rest summed as
  ``other``, and the number of ``distinct`` values.
- **prediction**: profiled like a categorical feature for classifiers and string/boolean
  output, like a numeric one otherwise; not profiled when 2-D or absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dockyard.errors import InvalidRequestError
from dockyard.schema._json import finite_or_none, to_json_value
from dockyard.schema.signature import Signature

__all__ = [
    "QUANTILE_LEVELS",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "ReferenceProfile",
    "build_profile",
    "profile_values",
]

QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
_FORMAT = 1


@dataclass(frozen=True)
class NumericProfile:
    """Statistics of one numeric feature (see the module docstring for the policies)."""

    count: int
    missing: int
    missing_rate: float
    infinite: int
    mean: float | None
    std: float | None
    minimum: float | None
    maximum: float | None
    quantiles: tuple[tuple[float, float], ...]
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]
    reservoir: tuple[float, ...]
    kind: Literal["numeric"] = "numeric"

    def quantile(self, level: float) -> float | None:
        """The stored quantile at ``level`` (one of :data:`QUANTILE_LEVELS`), if any."""
        return dict(self.quantiles).get(level)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (no NaN or infinities)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "missing_rate": self.missing_rate,
            "infinite": self.infinite,
            "mean": finite_or_none(self.mean),
            "std": finite_or_none(self.std),
            "min": finite_or_none(self.minimum),
            "max": finite_or_none(self.maximum),
            "quantiles": [[level, finite_or_none(value)] for level, value in self.quantiles],
            "histogram": {
                "edges": [finite_or_none(edge) for edge in self.histogram_edges],
                "counts": list(self.histogram_counts),
            },
            "reservoir": [to_json_value(value) for value in self.reservoir],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            missing_rate=float(data["missing_rate"]),
            infinite=int(data.get("infinite", 0)),
            mean=data["mean"],
            std=data["std"],
            minimum=data["min"],
            maximum=data["max"],
            quantiles=tuple((float(level), value) for level, value in data["quantiles"]),
            histogram_edges=tuple(data["histogram"]["edges"]),
            histogram_counts=tuple(int(count) for count in data["histogram"]["counts"]),
            reservoir=tuple(data["reservoir"]),
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """Statistics of one categorical (string, category or boolean) feature."""

    count: int
    missing: int
    missing_rate: float
    distinct: int
    frequencies: tuple[tuple[Any, int], ...]
    other: int
    kind: Literal["categorical"] = "categorical"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: frequencies as ``[{"value": v, "count": n}, ...]``."""
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "missing_rate": self.missing_rate,
            "distinct": self.distinct,
            "frequencies": [
                {"value": to_json_value(value), "count": count} for value, count in self.frequencies
            ],
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            missing_rate=float(data["missing_rate"]),
            distinct=int(data["distinct"]),
            frequencies=tuple((item["value"], int(item["count"])) for item in data["frequencies"]),
            other=int(data["other"]),
        )


FeatureProfile = NumericProfile | CategoricalProfile


def _feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    if data["kind"] == "numeric":
        return NumericProfile.from_dict(data)
    if data["kind"] == "categorical":
        return CategoricalProfile.from_dict(data)
    raise InvalidRequestError(f"unknown feature profile kind {data['kind']!r}")


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-feature statistics of a training sample and of the model's predictions on it."""

    rows: int
    features: Mapping[str, FeatureProfile]
    prediction: FeatureProfile | None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``json.dumps(..., allow_nan=False)`` accepts it)."""
        return {
            "format": _FORMAT,
            "rows": self.rows,
            "seed": self.seed,
            "features": {name: profile.to_dict() for name, profile in self.features.items()},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`."""
        prediction = data.get("prediction")
        return cls(
            rows=int(data["rows"]),
            features={
                str(name): _feature_from_dict(profile) for name, profile in data["features"].items()
            },
            prediction=None if prediction is None else _feature_from_dict(prediction),
            seed=int(data.get("seed", 0)),
        )


def build_profile(
    sample: pd.DataFrame,
    signature: Signature,
    predictions: Any | None = None,
    *,
    seed: int = 0,
    reservoir_size: int = 1000,
    bins: int = 20,
    max_categories: int = 100,
) -> ReferenceProfile:
    """Profile every signature column of ``sample`` (and ``predictions``, when given)."""
    names = [str(column) for column in sample.columns]
    missing = [name for name in signature.column_names if name not in names]
    if missing:
        raise InvalidRequestError(
            f"the sample lacks signature columns {missing}",
            hint="Profile the same sample the signature was inferred from.",
        )
    options = {
        "seed": seed,
        "reservoir_size": reservoir_size,
        "bins": bins,
        "max_categories": max_categories,
    }
    features: dict[str, FeatureProfile] = {}
    for column in signature.columns:
        series = sample.iloc[:, names.index(column.name)]
        numeric = column.dtype in ("float", "integer", "datetime")
        features[column.name] = profile_values(series, numeric=numeric, **options)
    prediction = None
    if predictions is not None:
        array = np.asarray(predictions)
        if array.ndim == 1:
            numeric = array.dtype.kind in "iuf" and signature.output.kind != "classification"
            prediction = profile_values(pd.Series(array), numeric=numeric, **options)
    return ReferenceProfile(len(sample), features, prediction, seed)


def profile_values(
    series: pd.Series,
    *,
    numeric: bool,
    seed: int = 0,
    reservoir_size: int = 1000,
    bins: int = 20,
    max_categories: int = 100,
) -> FeatureProfile:
    """Profile one column (also useful for profiling live data the same way)."""
    if not numeric:
        return _categorical(series, max_categories)
    if pd.api.types.infer_dtype(series, skipna=True) in ("datetime", "datetime64", "date"):
        series = _epoch_seconds(series)
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    integer = pd.api.types.is_integer_dtype(series.dtype)
    return _numeric(values, integer=integer, seed=seed, size=reservoir_size, bins=bins)


def _epoch_seconds(series: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(series, utc=True)
    seconds: pd.Series = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds


def _numeric(
    values: NDArray[np.float64], *, integer: bool, seed: int, size: int, bins: int
) -> NumericProfile:
    missing_mask = np.isnan(values)
    missing = int(missing_mask.sum())
    present = values[~missing_mask]
    finite = present[np.isfinite(present)]
    rows = len(values)
    mean = std = minimum = maximum = None
    quantiles: tuple[tuple[float, float], ...] = ()
    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    if finite.size:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = float(finite.mean()), float(finite.std())
        minimum, maximum = float(finite.min()), float(finite.max())
        levels = np.quantile(finite, QUANTILE_LEVELS)
        quantiles = tuple(zip(QUANTILE_LEVELS, levels.tolist(), strict=True))
        if minimum == maximum:
            edges, counts = (minimum, maximum), (int(finite.size),)
        else:
            hist, bin_edges = np.histogram(finite, bins=bins, range=(minimum, maximum))
            edges, counts = tuple(bin_edges.tolist()), tuple(hist.tolist())
    reservoir = finite
    if finite.size > size:
        chosen = np.random.default_rng(seed).choice(finite.size, size=size, replace=False)
        reservoir = finite[np.sort(chosen)]
    kept = reservoir.astype(np.int64).tolist() if integer else reservoir.tolist()
    return NumericProfile(
        count=int(present.size),
        missing=missing,
        missing_rate=missing / rows if rows else 0.0,
        infinite=int(present.size - finite.size),
        mean=mean,
        std=std,
        minimum=minimum,
        maximum=maximum,
        quantiles=quantiles,
        histogram_edges=edges,
        histogram_counts=counts,
        reservoir=tuple(kept),
    )


def _categorical(series: pd.Series, max_categories: int) -> CategoricalProfile:
    counts = series.value_counts(dropna=True, sort=True)
    counts = counts[counts > 0]  # a category dtype lists unused categories with count 0
    missing = int(series.isna().sum())
    top = counts.iloc[:max_categories]
    frequencies = tuple(
        (to_json_value(value), int(count)) for value, count in zip(top.index, top, strict=True)
    )
    return CategoricalProfile(
        count=len(series) - missing,
        missing=missing,
        missing_rate=missing / len(series) if len(series) else 0.0,
        distinct=len(counts),
        frequencies=frequencies,
        other=int(counts.iloc[max_categories:].sum()),
    )
