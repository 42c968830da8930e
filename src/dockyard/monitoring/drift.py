"""Data drift: live data (or a later window) against a version's :class:`ReferenceProfile`.

Pure: numpy, scipy and pandas only, no I/O. :func:`compare` tests every profiled feature
(and the prediction) and returns a :class:`DriftReport`; :func:`reference_from_frame`
profiles an earlier window so that windows can be compared with each other.

Policies (every number below is a :class:`DriftPolicy` field unless it is a constant here):

- **Tests.** Numeric: two-sample Kolmogorov–Smirnov against the profile's reservoir
  (``ks``), Wasserstein-1 distance against the reservoir divided by the reference std of the
  whole training sample (``wasserstein``, effect measure ``wasserstein_normalized``), PSI on
  the reference histogram (``psi``). Categorical: chi-squared of the current counts against
  the reference frequencies (``chi2``), Jensen–Shannon distance, base 2, in [0, 1]
  (``jensen_shannon``), PSI on the same buckets. Every test's statistics are reported in
  ``stats`` whichever one decides.
- **Default test** (``method="auto"``), by the number ``n`` of current values tested:
  numeric ``ks`` when ``n <= large_sample`` else ``wasserstein``; categorical ``chi2`` when
  ``n <= large_sample`` else ``jensen_shannon``. :class:`FeaturePolicy` overrides the method
  and threshold per feature, or ignores it; a method of the other kind is an error.
- **Decision.** A p-value test (``ks``, ``chi2``) drifts only when its Benjamini–Hochberg
  adjusted p-value is below ``alpha`` AND its effect size (normalised Wasserstein for ``ks``,
  Jensen–Shannon for ``chi2``) reaches the threshold, so a trivial shift on many rows is
  not drift. Effect-size tests drift when the effect reaches the threshold
  (``numeric_threshold``, ``categorical_threshold``, ``psi_threshold``).
- **Multiple testing.** Benjamini–Hochberg (``scipy.stats.false_discovery_control``) over
  the p-values of the features that ran a p-value test in one report, controlling the false
  discovery rate at ``alpha``. The prediction is a family of its own (adjusted = raw).
- **Reservoir noise.** KS and Wasserstein see at most the profile's 1,000 reservoir values,
  so the normalised Wasserstein distance has a noise floor of about 0.04 σ (99th percentile
  ~0.09 σ) however many current rows there are; keep ``numeric_threshold`` above it.
- **KS p-value** as ``scipy.stats.ks_2samp(method="auto")``: exact (scipy computes it) when
  both samples have at most 10,000 values, else the asymptotic
  ``kstwo.sf(D, round(n·m / (n + m)))``. The statistic D is computed here from the sorted
  arrays at the reference points. A p-value below ~1e-308 underflows to 0.0.
- **Constant reference** (numeric min == max): Wasserstein is divided by
  :data:`CONSTANT_SCALE` (1e-3) instead of the std 0, so an average move of 1e-4 reaches
  the default threshold; PSI uses three bins (< v, = v, > v), reported as edges
  ``[v, v, v, v]``. A categorical reference with one bucket gives chi-squared 0, p = 1.
- **PSI** = Σ (c − r)·ln(c / r) over bins; numeric bins are the reference histogram's with
  the outer bins open-ended (values below min count in the first, above max in the last).
  Empty bins: a share below :data:`EPSILON` (1e-4) is raised to 1e-4 on either side, without
  renormalising. Jensen–Shannon is not smoothed (it is finite with empty buckets).
- **Categorical buckets** are the reference's top values plus ``(other)`` when the
  reference's ``other`` count is positive; current values outside the top values fall into
  ``(other)`` when it exists.
- **Unseen categories** can only be told when the reference has no ``other`` mass (its
  frequencies then list every value it had); otherwise ``unseen`` is None. Unseen rows are
  their own signal and left out of chi-squared, Jensen–Shannon and PSI; share = unseen rows /
  all current rows; drifted when the share reaches ``unseen_threshold``.
- **Missing values** (None/NaN; numeric values that are not numbers count as missing;
  ±inf are left out of the tests as in the profile): rate = missing / rows; drifted when
  ``|current - reference| >= missing_rate_threshold``, even when the main test cannot run.
- **Too few rows.** Fewer than ``min_rows`` current rows: "insufficient data", not drifted,
  not counted. Fewer than ``min_rows`` tested values on either side (current finite/seen
  values, reference reservoir/non-missing count): the main test does not run (method
  ``none``), the missing and unseen signals still do.
- **Absent or ignored features** are reported with method ``none``, not drifted, not
  counted, their current missing rate and shares 0; current columns without a profile are
  left out.
- **Dataset.** ``feature_count`` = counted features (present, not ignored, enough rows),
  ``drift_share`` = drifted / counted (0 when none), ``dataset_drifted`` when
  ``drift_share >= policy.drift_share`` and something was counted. The prediction (named
  ``"prediction"``, tested with the default :class:`FeaturePolicy`) is not counted. A
  categorical prediction's labels are compared as text on both sides (``label_text``: the
  class ``1``, ``1.0`` and ``"1"`` are one class, ``True`` is ``"True"``), as the log keeps them.
  Features are ranked drifted first, then by effect size (descending, None last), then by
  importance (descending, None last), then by name.
- **Finite output.** Every float is finite or None (``json.dumps(allow_nan=False)`` works).
- **Datetimes** are compared as seconds since the Unix epoch (UTC), as they are profiled.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats

from dockyard.errors import InvalidRequestError
from dockyard.monitoring.policy import DriftPolicy, FeaturePolicy
from dockyard.schema._json import to_json_value
from dockyard.schema.labels import label_text
from dockyard.schema.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    ReferenceProfile,
    profile_values,
)

__all__ = [
    "CONSTANT_SCALE",
    "EPSILON",
    "DriftPolicy",
    "DriftReport",
    "FeatureDrift",
    "FeaturePolicy",
    "compare",
    "reference_from_frame",
]

EPSILON = 1e-4
"""PSI floor for the share of an empty bin."""
CONSTANT_SCALE = 1e-3
"""Divides the Wasserstein distance when the reference column is constant (std 0)."""
EXACT_KS_MAX = 10_000  # scipy's ks_2samp(method="auto") computes exactly up to this size
UNSEEN_EXAMPLES = 10

Method = Literal["ks", "wasserstein", "psi", "chi2", "jensen_shannon", "none"]
Measure = Literal["wasserstein_normalized", "jensen_shannon", "psi"]
Kind = Literal["numeric", "categorical"]
FloatArray = NDArray[np.float64]
_METHODS: dict[str, tuple[str, ...]] = {
    "numeric": ("ks", "wasserstein", "psi"),
    "categorical": ("chi2", "jensen_shannon", "psi"),
}
_LABEL = {"ks": "KS", "chi2": "chi-squared"}


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature (or the prediction); see the module docstring."""

    feature: str
    kind: Kind
    rows: int
    method: Method
    p_value: float | None
    p_value_adjusted: float | None
    effect_size: float | None
    effect_measure: Measure
    threshold: float
    drifted: bool
    reason: str
    stats: Mapping[str, float | None]
    missing: Mapping[str, Any]
    unseen: Mapping[str, Any] | None
    importance: float | None
    distribution: Mapping[str, list[Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (every float finite or None)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DriftReport:
    """Per-feature verdicts, ranked, and the whole-dataset verdict."""

    rows: int
    reference_rows: int
    feature_count: int
    drifted_count: int
    drift_share: float
    dataset_drifted: bool
    policy: DriftPolicy
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``json.dumps(..., allow_nan=False)`` accepts it)."""
        data = dataclasses.asdict(self)
        return {**data, "policy": self.policy.model_dump(), "features": list(data["features"])}


@dataclass
class _Measured:
    """A feature's statistics before the multiple-testing correction and the decision."""

    name: str
    kind: Kind
    rows: int
    measure: Measure
    threshold: float
    importance: float | None
    method: Method = "none"
    skip: str | None = None  # why the main test did not run
    counted: bool = False
    p_value: float | None = None
    effect: float | None = None
    stats: dict[str, float | None] = field(default_factory=dict)
    missing: tuple[float, float] = (0.0, 0.0)  # reference rate, current rate
    unseen: tuple[int, list[Any]] | None = None
    distribution: dict[str, list[Any]] = field(default_factory=dict)


def compare(
    reference: ReferenceProfile,
    current: pd.DataFrame,
    *,
    predictions: pd.Series | None = None,
    policy: DriftPolicy | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftReport:
    """Test every profiled feature of ``current`` (and ``predictions``) for drift."""
    policy = DriftPolicy() if policy is None else policy
    _check_methods(reference, policy)
    columns = {str(name): current.iloc[:, i] for i, name in enumerate(current.columns)}
    weights = {name: _finite(value) for name, value in (importance or {}).items()}
    measured = []
    for name, profile in reference.features.items():
        override = policy.features.get(name, FeaturePolicy())
        series = columns.get(name)
        measured.append(_measure(name, profile, series, override, policy, weights.get(name)))
    adjusted = _benjamini_hochberg([m.p_value for m in measured])
    features = [_decide(m, p, policy) for m, p in zip(measured, adjusted, strict=True)]
    prediction = None
    if reference.prediction is not None and predictions is not None:
        expected, answered = _as_labels(reference.prediction, predictions)
        m = _measure("prediction", expected, answered, FeaturePolicy(), policy)
        prediction = _decide(m, m.p_value, policy)
    counted = [f for f, m in zip(features, measured, strict=True) if m.counted]
    drifted = sum(f.drifted for f in counted)
    share = drifted / len(counted) if counted else 0.0
    return DriftReport(
        rows=len(current),
        reference_rows=reference.rows,
        feature_count=len(counted),
        drifted_count=drifted,
        drift_share=share,
        dataset_drifted=bool(counted) and share >= policy.drift_share,
        policy=policy,
        features=tuple(sorted(features, key=_rank)),
        prediction=prediction,
    )


def _as_labels(profile: FeatureProfile, predictions: pd.Series) -> tuple[FeatureProfile, pd.Series]:
    """A categorical prediction's reference and current labels as the same text.

    The reference profiles the model's own answers (``0``, ``True``, ``1.0``) while the
    prediction log holds them as text (``"0"``, ``"True"``, ``"1"``): both sides go through
    :func:`~dockyard.schema.labels.label_text`, the form feedback labels are compared by,
    so an integer, boolean or float class is never "unseen" against itself.
    """
    if not isinstance(profile, CategoricalProfile):
        return profile, predictions
    merged: Counter[Any] = Counter()
    for value, count in profile.frequencies:
        merged[label_text(value)] += count
    frequencies = tuple(merged.items())
    if pd.api.types.infer_dtype(predictions, skipna=True) != "string":  # text stays text
        predictions = predictions.map(label_text, na_action="ignore").astype(object)
    return dataclasses.replace(profile, frequencies=frequencies), predictions


def reference_from_frame(
    frame: pd.DataFrame,
    kinds: Mapping[str, Kind],
    *,
    predictions: pd.Series | None = None,
    prediction_kind: Kind | None = None,
) -> ReferenceProfile:
    """Profile an earlier window (``kinds``: feature name to kind) to compare against."""
    columns = {str(name): frame.iloc[:, i] for i, name in enumerate(frame.columns)}
    absent = [name for name in kinds if name not in columns]
    if absent:
        raise InvalidRequestError(f"the window lacks columns {absent}")
    features: dict[str, FeatureProfile] = {
        name: profile_values(columns[name], numeric=kind == "numeric")
        for name, kind in kinds.items()
    }
    prediction = None
    if predictions is not None:
        if prediction_kind is None:
            dtype = predictions.dtype
            numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            prediction_kind = "numeric" if numeric else "categorical"
        prediction = profile_values(predictions, numeric=prediction_kind == "numeric")
    return ReferenceProfile(len(frame), features, prediction)


def _check_methods(reference: ReferenceProfile, policy: DriftPolicy) -> None:
    wrong = [
        f"{name}: {override.method} is not a {profile.kind} test"
        for name, override in policy.features.items()
        if (profile := reference.features.get(name)) is not None
        and override.method not in ("auto", *_METHODS[profile.kind])
    ]
    if wrong:
        raise InvalidRequestError(
            f"drift policy names tests of the wrong kind: {'; '.join(wrong)}",
            hint="Numeric features take ks, wasserstein or psi; categorical ones take chi2, "
            "jensen_shannon or psi.",
        )


def _measure(
    name: str,
    profile: FeatureProfile,
    series: pd.Series | None,
    override: FeaturePolicy,
    policy: DriftPolicy,
    importance: float | None = None,
) -> _Measured:
    numeric = profile.kind == "numeric"
    method = override.method
    measure: Measure = (
        "psi" if method == "psi" else ("wasserstein_normalized" if numeric else "jensen_shannon")
    )
    default = {"psi": policy.psi_threshold, "wasserstein_normalized": policy.numeric_threshold}
    threshold = override.threshold
    if threshold is None:
        threshold = default.get(measure, policy.categorical_threshold)
    rows = 0 if series is None else len(series)
    m = _Measured(name, profile.kind, rows, measure, threshold, importance)
    skip = "ignored by policy" if override.ignore else None
    if series is None or skip is not None:  # measure nothing: only the reference side
        skip = skip or "absent from the current data"
        series = pd.Series([], dtype=np.float64 if numeric else object)
    if isinstance(profile, NumericProfile):
        _measure_numeric(m, profile, _as_float(series), policy)
    else:
        _measure_categorical(m, profile, series, policy)
    if skip is None and rows < policy.min_rows:
        skip = f"insufficient data: {rows} rows < min_rows {policy.min_rows}"
    m.counted = skip is None
    m.skip = skip or m.skip
    if m.skip is not None:
        m.method = "none"
        return m
    if method != "auto":
        m.method = method
    p_keys = {"ks": "ks_p_value", "chi2": "chi2_p_value"}
    m.p_value = m.stats[p_keys[m.method]] if m.method in p_keys else None
    m.effect = m.stats[m.measure]
    return m


def _measure_numeric(
    m: _Measured, profile: NumericProfile, values: FloatArray, policy: DriftPolicy
) -> None:
    missing = int(np.isnan(values).sum())
    m.missing = (profile.missing_rate, missing / len(values) if len(values) else 0.0)
    current = np.sort(values[np.isfinite(values)])
    reservoir = np.sort(np.asarray(profile.reservoir, dtype=np.float64))
    edges, ref_counts, cur_counts = _numeric_bins(profile, current)
    m.distribution = {
        "edges": edges,
        "reference": _shares(ref_counts).tolist(),
        "current": _shares(cur_counts).tolist(),
    }
    m.stats = dict.fromkeys(("ks", "ks_p_value", "wasserstein_normalized", "psi"))
    m.method = "ks" if current.size <= policy.large_sample else "wasserstein"
    m.skip = _too_few(current.size, reservoir.size, policy.min_rows)
    if m.skip is not None:
        return
    d = _ks_statistic(reservoir, current)
    constant = profile.minimum == profile.maximum
    scale = CONSTANT_SCALE if constant or not profile.std else profile.std
    m.stats["ks"] = d
    m.stats["ks_p_value"] = _finite(_ks_p_value(d, reservoir, current))
    m.stats["wasserstein_normalized"] = _finite(_wasserstein(reservoir, current) / scale)
    m.stats["psi"] = _finite(_psi(_shares(ref_counts), _shares(cur_counts)))


def _measure_categorical(
    m: _Measured, profile: CategoricalProfile, series: pd.Series, policy: DriftPolicy
) -> None:
    missing = int(series.isna().sum())
    m.missing = (profile.missing_rate, missing / len(series) if len(series) else 0.0)
    values = [value for value, _ in profile.frequencies]
    bucket = {value: i for i, value in enumerate(values)}
    has_other = profile.other > 0
    ref_counts = np.array(
        [count for _, count in profile.frequencies] + [profile.other] * has_other, dtype=float
    )
    cur_counts = np.zeros(len(ref_counts))
    unseen: Counter[Any] = Counter()
    for raw, count in series.value_counts(dropna=True).items():
        value = to_json_value(raw)
        i = bucket.get(value, len(values) if has_other else None)
        if i is None:
            unseen[value] += int(count)
        else:
            cur_counts[i] += count
    unseen_rows = sum(unseen.values())
    if not has_other:
        m.unseen = (unseen_rows, [value for value, _ in unseen.most_common(UNSEEN_EXAMPLES)])
    present = max(len(series) - missing, 1)
    extra = ["(unseen)"] * bool(unseen_rows)
    m.distribution = {
        "values": values + ["(other)"] * has_other + extra,
        "reference": (ref_counts / max(profile.count, 1)).tolist() + [0.0] * len(extra),
        "current": (cur_counts / present).tolist() + [unseen_rows / present] * len(extra),
    }
    m.stats = dict.fromkeys(("chi2", "chi2_p_value", "jensen_shannon", "psi"))
    seen = int(cur_counts.sum())
    m.method = "chi2" if seen <= policy.large_sample else "jensen_shannon"
    m.skip = _too_few(seen, profile.count, policy.min_rows)
    if m.skip is not None:
        return
    chi2, p_value = 0.0, 1.0
    if len(ref_counts) > 1:
        expected = ref_counts / ref_counts.sum() * cur_counts.sum()
        result = stats.chisquare(cur_counts, f_exp=expected)
        chi2, p_value = float(result.statistic), float(result.pvalue)
    m.stats["chi2"] = _finite(chi2)
    m.stats["chi2_p_value"] = _finite(p_value)
    m.stats["jensen_shannon"] = _jensen_shannon(ref_counts, cur_counts)
    m.stats["psi"] = _finite(_psi(_shares(ref_counts), _shares(cur_counts)))


def _too_few(current: int, reference: int, min_rows: int) -> str | None:
    if current < min_rows:
        return f"insufficient data: {current} values to test < min_rows {min_rows}"
    if reference < min_rows:
        return f"insufficient reference: {reference} values < min_rows {min_rows}"
    return None


def _decide(m: _Measured, adjusted: float | None, policy: DriftPolicy) -> FeatureDrift:
    main, clauses = False, []
    if m.skip is not None:
        clauses.append(m.skip)
    else:
        effect = m.effect if m.effect is not None else math.nan
        large = effect >= m.threshold
        main = large
        sign = "≥" if large else "<"
        unit = {
            "wasserstein_normalized": "Wasserstein {:.3g} σ",
            "jensen_shannon": "Jensen–Shannon {:.3g}",
        }
        size = unit.get(m.measure, "PSI {:.3g}").format(effect) + f" {sign} {m.threshold:g}"
        if adjusted is not None and m.p_value is not None:
            significant = adjusted < policy.alpha
            main = significant and large
            test = (
                f"{_LABEL[m.method]} p = {m.p_value:.3g} (adjusted {adjusted:.3g}) "
                f"{'<' if significant else '≥'} α {policy.alpha:g}"
            )
            joiner = " and " if significant == large else " but "
            size = test + (joiner + size if significant else "")
        clauses.append(size)
    reference_rate, current_rate = m.missing
    rates = {"reference_rate": reference_rate, "current_rate": current_rate}
    missing_drifted = (
        m.counted and abs(current_rate - reference_rate) >= policy.missing_rate_threshold
    )
    unseen = None
    if m.unseen is not None:
        count, examples = m.unseen
        share = count / m.rows if m.rows else 0.0
        unseen_drifted = m.counted and share >= policy.unseen_threshold
        unseen = {"count": count, "share": share, "values": examples, "drifted": unseen_drifted}
        if unseen_drifted:
            clauses.append(
                f"unseen categories in {share:.1%} of rows ≥ {policy.unseen_threshold:.1%}"
            )
    if missing_drifted:
        clauses.append(
            f"missing rate {reference_rate:.1%} → {current_rate:.1%} "
            f"(change ≥ {policy.missing_rate_threshold:.1%})"
        )
    drifted = main or missing_drifted or bool(unseen and unseen["drifted"])
    if drifted and not main:
        clauses = clauses[1:] + clauses[:1]  # lead with what drifted
    return FeatureDrift(
        feature=m.name,
        kind=m.kind,
        rows=m.rows,
        method=m.method,
        p_value=m.p_value,
        p_value_adjusted=adjusted if m.p_value is not None else None,
        effect_size=m.effect,
        effect_measure=m.measure,
        threshold=m.threshold,
        drifted=drifted,
        reason="; ".join(clauses),
        stats=m.stats,
        missing={**rates, "drifted": missing_drifted},
        unseen=unseen,
        importance=m.importance,
        distribution=m.distribution,
    )


def _rank(f: FeatureDrift) -> tuple[bool, bool, float, bool, float, str]:
    effect, weight = f.effect_size, f.importance
    return (
        not f.drifted,
        effect is None,
        -(effect or 0),
        weight is None,
        -(weight or 0),
        f.feature,
    )


def _benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    tested = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if tested:
        values = stats.false_discovery_control([p_values[i] for i in tested], method="bh")
        for i, value in zip(tested, np.atleast_1d(values).tolist(), strict=True):
            adjusted[i] = float(value)
    return adjusted


def _as_float(series: pd.Series) -> FloatArray:
    """Numbers as float64 (NaN for missing), datetimes as epoch seconds like the profile."""
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_datetime64_any_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.infer_dtype(
        series, skipna=True
    ) in ("datetime", "datetime64", "date"):
        stamps = pd.to_datetime(series, utc=True)
        series = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _numeric_bins(
    profile: NumericProfile, current: FloatArray
) -> tuple[list[float], FloatArray, FloatArray]:
    """Reference edges and counts, and the sorted current values' counts (outer bins open)."""
    edges = np.asarray(profile.histogram_edges, dtype=np.float64)
    if edges.size < 2:
        return [], np.zeros(0), np.zeros(0)
    if edges[0] == edges[-1]:  # constant reference: < v, = v, > v
        v = edges[0]
        low, high = np.searchsorted(current, v, "left"), np.searchsorted(current, v, "right")
        reference = np.array([0.0, sum(profile.histogram_counts), 0.0])
        counts = np.array([low, high - low, current.size - high], dtype=np.float64)
        return [float(v)] * 4, reference, counts
    cuts = np.searchsorted(current, edges[1:-1], side="left")
    counts = np.diff(np.concatenate(([0], cuts, [current.size]))).astype(np.float64)
    return edges.tolist(), np.asarray(profile.histogram_counts, dtype=np.float64), counts


def _shares(counts: FloatArray) -> FloatArray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def _ks_statistic(reference: FloatArray, current: FloatArray) -> float:
    """sup |F_ref - F_cur| from sorted samples, evaluated at the reference points only.

    Between two reference points F_ref is constant and F_cur grows, so the supremum is
    reached at a reference point or just before one (the left limits).
    """
    points, n, m = np.unique(reference), reference.size, current.size
    gaps = [
        np.searchsorted(reference, points, side) / n - np.searchsorted(current, points, side) / m
        for side in ("left", "right")
    ]
    return float(max(np.abs(gap).max() for gap in gaps))


def _ks_p_value(d: float, reference: FloatArray, current: FloatArray) -> float:
    n, m = reference.size, current.size
    if max(n, m) <= EXACT_KS_MAX:
        with warnings.catch_warnings():
            # scipy falls back to the asymptotic method (and warns) when exact fails
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(reference, current, method="auto").pvalue)
    big, small = max(n, m), min(n, m)
    return float(np.clip(stats.kstwo.sf(d, np.round(big * small / (big + small))), 0.0, 1.0))


def _wasserstein(reference: FloatArray, current: FloatArray) -> float:
    """∫ |F_ref - F_cur| from sorted samples by merging them (linear in the sample sizes)."""
    n, m = reference.size, current.size
    at = np.searchsorted(current, reference, side="left") + np.arange(n)
    from_reference = np.zeros(n + m, dtype=bool)
    from_reference[at] = True
    merged = np.empty(n + m)
    merged[at] = reference
    merged[~from_reference] = current
    ref_seen = np.cumsum(from_reference[:-1])
    cur_seen = np.arange(1, n + m) - ref_seen
    gaps = np.abs(ref_seen / n - cur_seen / m)
    return float(np.dot(gaps, np.diff(merged)))


def _psi(reference: FloatArray, current: FloatArray) -> float:
    ref, cur = np.maximum(reference, EPSILON), np.maximum(current, EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _jensen_shannon(reference: FloatArray, current: FloatArray) -> float:
    """As ``scipy.spatial.distance.jensenshannon(..., base=2)``, clipped at 0 before sqrt."""
    p, q = reference / reference.sum(), current / current.sum()
    mid = (p + q) / 2
    divergence = (special.rel_entr(p, mid).sum() + special.rel_entr(q, mid).sum()) / 2
    return float(np.sqrt(max(divergence / np.log(2), 0.0)))


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
