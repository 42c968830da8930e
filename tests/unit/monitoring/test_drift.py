from __future__ import annotations

import json
import math
from typing import Literal

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats
from scipy.spatial.distance import jensenshannon

from dockyard.errors import InvalidRequestError
from dockyard.monitoring.drift import (
    EPSILON,
    DriftPolicy,
    DriftReport,
    FeatureDrift,
    FeaturePolicy,
    compare,
    reference_from_frame,
)
from dockyard.schema import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    infer_signature,
    profile_values,
)

Kind = Literal["numeric", "categorical"]
COLORS = ["red", "green", "blue"]
COLOR_SHARES = [0.5, 0.3, 0.2]


def training_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "color": rng.choice(COLORS, rows, p=COLOR_SHARES),
        }
    )


def one_column(values: object, *, numeric: bool, **options: int) -> ReferenceProfile:
    series = pd.Series(values)
    return ReferenceProfile(
        len(series), {"x": profile_values(series, numeric=numeric, **options)}, None
    )


def feature(report: DriftReport, name: str) -> FeatureDrift:
    return next(f for f in report.features if f.feature == name)


def json_safe(report: DriftReport) -> dict[str, object]:
    data: dict[str, object] = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    return data


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return training_frame(5000)


@pytest.fixture(scope="module")
def reference(training: pd.DataFrame) -> ReferenceProfile:
    signature = infer_signature(
        training, layout="frame", predictions=None, classes=None, has_proba=False
    )
    return build_profile(training, signature)


# --- agreement with scipy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "decimals"),
    [(40, 35, 12), (1000, 500, 12), (3000, 800, 1), (3000, 9000, 12), (3000, 50_000, 1)],
)
def test_ks_and_wasserstein_agree_with_scipy(
    reference_rows: int, current_rows: int, decimals: int
) -> None:
    rng = np.random.default_rng(reference_rows + current_rows)
    # rounding to 1 decimal makes many ties, within and across the samples
    reference = one_column(np.round(rng.normal(0, 1, reference_rows), decimals), numeric=True)
    current = np.round(rng.normal(0.1, 1.1, current_rows), decimals)
    policy = DriftPolicy(min_rows=10)
    result = feature(compare(reference, pd.DataFrame({"x": current}), policy=policy), "x")
    profile = reference.features["x"]
    assert isinstance(profile, NumericProfile)
    reservoir = np.asarray(profile.reservoir)
    assert reservoir.size == min(reference_rows, 1000)
    expected = stats.ks_2samp(reservoir, current)
    assert result.stats["ks"] == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
    assert result.stats["ks_p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    wasserstein = stats.wasserstein_distance(reservoir, current) / profile.std
    assert result.stats["wasserstein_normalized"] == pytest.approx(wasserstein, rel=1e-9)
    assert result.method == ("ks" if current_rows <= 1000 else "wasserstein")


def test_chi_squared_and_jensen_shannon_agree_with_scipy() -> None:
    rng = np.random.default_rng(1)
    letters = list("abcdef")
    # max_categories=3: a, b, c are the top values and d, e, f make the reference's "other"
    reference = one_column(
        rng.choice(letters, 4000, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]),
        numeric=False,
        max_categories=3,
    )
    current = pd.Series(rng.choice(letters, 600, p=[0.25, 0.25, 0.2, 0.1, 0.1, 0.1]))
    result = feature(compare(reference, pd.DataFrame({"x": current})), "x")
    profile = reference.features["x"]
    assert isinstance(profile, CategoricalProfile)
    assert profile.other > 0
    top = [value for value, _ in profile.frequencies]
    ref_counts = np.array([count for _, count in profile.frequencies] + [profile.other], float)
    cur_counts = np.array([(current == v).sum() for v in top] + [(~current.isin(top)).sum()])
    expected = stats.chisquare(cur_counts, f_exp=ref_counts / ref_counts.sum() * 600)
    assert result.method == "chi2"
    assert result.stats["chi2"] == pytest.approx(expected.statistic, rel=1e-9)
    assert result.stats["chi2_p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.p_value == result.stats["chi2_p_value"]
    js = jensenshannon(ref_counts, cur_counts, base=2)
    assert result.stats["jensen_shannon"] == pytest.approx(js, rel=1e-9)
    assert result.effect_size == result.stats["jensen_shannon"]
    assert result.distribution["values"] == [*top, "(other)"]
    assert result.unseen is None  # undecidable: the reference's tail is unknown


def test_benjamini_hochberg_adjusts_across_the_features_of_one_report(
    reference: ReferenceProfile,
) -> None:
    current = training_frame(400, seed=7)
    current["age"] += 3
    report = compare(reference, current)
    tested = [f for f in report.features if f.p_value is not None]
    assert len(tested) == 3
    adjusted = stats.false_discovery_control([f.p_value for f in tested], method="bh")
    assert [f.p_value_adjusted for f in tested] == pytest.approx(list(adjusted), rel=1e-12)
    assert all(f.p_value_adjusted >= f.p_value for f in tested)  # type: ignore[operator]


# --- PSI ------------------------------------------------------------------------------------


def test_numeric_psi_uses_the_reference_bins_with_open_outer_bins() -> None:
    # 4 bins over [0, 8]: [0,2) [2,4) [4,6) [6,8] holding 10, 20, 30, 40 values
    values = [1.0] * 10 + [3.0] * 20 + [5.0] * 30 + [7.0] * 40 + [0.0, 8.0]
    reference = one_column(values, numeric=True, bins=4)
    profile = reference.features["x"]
    assert isinstance(profile, NumericProfile)
    assert profile.histogram_counts == (11, 20, 30, 41)
    # below min and above max land in the outer bins; 2.0 and 6.0 sit on inner edges
    current = [-50.0] * 20 + [2.0] * 30 + [3.5] * 10 + [6.0] * 20 + [100.0] * 20
    result = feature(compare(reference, pd.DataFrame({"x": current})), "x")
    ref = np.array([11, 20, 30, 41]) / 102
    cur = np.array([20, 40, 0, 40]) / 100
    cur_floored = np.maximum(cur, EPSILON)  # the empty third bin counts as 1e-4
    psi = sum((c - r) * math.log(c / r) for r, c in zip(ref, cur_floored, strict=True))
    assert result.stats["psi"] == pytest.approx(psi, rel=1e-12)
    assert result.distribution["current"] == pytest.approx(cur.tolist())
    assert result.distribution["reference"] == pytest.approx(ref.tolist())
    assert result.distribution["edges"] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_categorical_psi_floors_empty_buckets_at_epsilon() -> None:
    reference = one_column(["a"] * 60 + ["b"] * 30 + ["c"] * 10, numeric=False)
    current = pd.DataFrame({"x": ["a"] * 50 + ["b"] * 50})  # no "c": an empty bucket
    policy = DriftPolicy(features={"x": FeaturePolicy(method="psi")})
    result = feature(compare(reference, current, policy=policy), "x")
    ref, cur = [0.6, 0.3, 0.1], [0.5, 0.5, EPSILON]
    psi = sum((c - r) * math.log(c / r) for r, c in zip(ref, cur, strict=True))
    assert result.method == "psi"
    assert result.effect_measure == "psi"
    assert result.effect_size == pytest.approx(psi, rel=1e-12)
    assert result.threshold == 0.2
    assert result.drifted == (psi >= 0.2)
    assert result.p_value is None
    # Jensen–Shannon is not smoothed: it agrees with scipy on the raw counts
    assert result.stats["jensen_shannon"] == pytest.approx(
        jensenshannon([60, 30, 10], [50, 50, 0], base=2), rel=1e-9
    )


# --- detection and false alarms -------------------------------------------------------------


def test_half_sigma_mean_shift_and_category_share_change_are_detected(
    reference: ReferenceProfile, training: pd.DataFrame
) -> None:
    current = training_frame(500, seed=11)
    current["age"] += 0.5 * training["age"].std()
    rng = np.random.default_rng(12)
    current["color"] = rng.choice(COLORS, 500, p=[0.25, 0.3, 0.45])
    report = compare(reference, current)
    age, color, income = (feature(report, name) for name in ("age", "color", "income"))
    assert age.drifted
    assert age.method == "ks"
    assert age.effect_size == pytest.approx(0.5, abs=0.1)
    assert age.reason.startswith("KS p = ")
    assert "Wasserstein" in age.reason
    assert color.drifted
    assert color.method == "chi2"
    assert not income.drifted
    assert (report.drifted_count, report.feature_count) == (2, 3)
    assert report.dataset_drifted
    assert [f.feature for f in report.features] == ["age", "color", "income"]
    stored = ReferenceProfile.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert compare(stored, current).to_dict() == report.to_dict()  # as read back from the registry


def test_undrifted_samples_rarely_raise_alarms() -> None:
    rng = np.random.default_rng(5)
    means, scales = rng.normal(0, 5, 20), rng.uniform(0.5, 3, 20)
    names = [f"f{i}" for i in range(20)]

    def sample(rows: int) -> pd.DataFrame:
        return pd.DataFrame(rng.normal(means, scales, (rows, 20)), columns=names)

    reference = reference_from_frame(sample(5000), dict.fromkeys(names, "numeric"))
    repetitions, raw_alarms, alarms, dataset_alarms = 100, 0, 0, 0
    for _ in range(repetitions):
        report = compare(reference, sample(500))
        raw_alarms += sum(f.p_value is not None and f.p_value < 0.05 for f in report.features)
        alarms += report.drifted_count
        dataset_alarms += report.dataset_drifted
    decisions = repetitions * 20
    assert raw_alarms / decisions < 0.1  # the raw KS p-values are about uniform under H0
    assert alarms / decisions <= 0.05 / 2
    assert dataset_alarms == 0


def test_trivial_shift_on_many_rows_is_significant_but_not_drift() -> None:
    # Against the default 1,000-value reservoir KS cannot see a trivial shift at all; the
    # large-sample failure needs many rows on both sides, so keep 100,000 reference values.
    # (KS needs ~500,000 rows a side to call 0.01 σ significant; 0.03 σ is as trivial.)
    rng = np.random.default_rng(3)
    reference = one_column(rng.normal(0, 1, 100_000), numeric=True, reservoir_size=100_000)
    current = pd.DataFrame({"x": rng.normal(0.03, 1, 100_000)})
    forced = DriftPolicy(features={"x": FeaturePolicy(method="ks")})
    result = feature(compare(reference, current, policy=forced), "x")
    assert result.p_value is not None
    assert result.p_value < 1e-5
    assert result.effect_size == pytest.approx(0.03, abs=0.01)
    assert not result.drifted
    assert "< α 0.05 but Wasserstein 0.0" in result.reason
    default = feature(compare(reference, current), "x")
    assert default.method == "wasserstein"
    assert default.p_value is None
    assert default.stats["ks_p_value"] == result.p_value
    assert not default.drifted


# --- policies for awkward data --------------------------------------------------------------


def test_unseen_categories_are_their_own_signal() -> None:
    reference = one_column(["a"] * 70 + ["b"] * 30, numeric=False)
    current = pd.DataFrame({"x": ["a"] * 63 + ["b"] * 27 + ["z"] * 6 + ["y"] * 4})
    result = feature(compare(reference, current), "x")
    assert result.unseen == {"count": 10, "share": 0.1, "values": ["z", "y"], "drifted": True}
    # the seen rows keep the reference's 70/30 split, so the main test sees no drift
    assert result.stats["jensen_shannon"] == pytest.approx(0.0, abs=1e-9)
    assert result.drifted
    assert result.reason.startswith("unseen categories in 10.0% of rows")
    assert result.distribution["values"] == ["a", "b", "(unseen)"]
    assert result.distribution["current"] == pytest.approx([0.63, 0.27, 0.1])
    assert result.distribution["reference"] == pytest.approx([0.7, 0.3, 0.0])


def test_missing_rate_change_is_drift_even_when_nothing_is_left_to_test() -> None:
    rng = np.random.default_rng(4)
    reference = one_column(rng.normal(0, 1, 1000), numeric=True)
    partly = rng.normal(0, 1, 200)
    partly[:30] = np.nan
    result = feature(compare(reference, pd.DataFrame({"x": partly})), "x")
    assert result.missing == {"reference_rate": 0.0, "current_rate": 0.15, "drifted": True}
    assert result.drifted
    assert result.reason.startswith("missing rate 0.0% → 15.0%")
    empty = feature(compare(reference, pd.DataFrame({"x": [None] * 200})), "x")
    assert empty.method == "none"
    assert empty.missing["current_rate"] == 1.0
    assert empty.drifted
    assert "insufficient data: 0 values to test" in empty.reason


def test_constant_reference_column() -> None:
    reference = one_column([5.0] * 500, numeric=True)
    same = feature(compare(reference, pd.DataFrame({"x": [5.0] * 100})), "x")
    assert not same.drifted
    assert same.stats["wasserstein_normalized"] == 0.0
    assert same.stats["psi"] == 0.0
    assert same.distribution["edges"] == [5.0, 5.0, 5.0, 5.0]
    moved = feature(compare(reference, pd.DataFrame({"x": [5.0] * 80 + [6.0] * 20})), "x")
    assert moved.drifted  # Wasserstein 0.2, over 1e-3 instead of the std 0: 200 "σ"
    assert moved.effect_size == pytest.approx(200.0)
    assert moved.distribution["current"] == pytest.approx([0.0, 0.8, 0.2])
    few = feature(compare(reference, pd.DataFrame({"x": [5.0] * 95 + [4.0] * 5})), "x")
    assert few.effect_size == pytest.approx(50.0)
    assert not few.drifted  # 5 of 100 rows is not significant


def test_absent_feature_is_reported_but_not_counted(reference: ReferenceProfile) -> None:
    current = training_frame(300, seed=2).drop(columns=["income"])
    report = compare(reference, current)
    income = feature(report, "income")
    assert (income.method, income.drifted, income.rows) == ("none", False, 0)
    assert income.reason == "absent from the current data"
    assert income.distribution["current"] == [0.0] * 20
    assert report.feature_count == 2
    assert report.features[-1] is income  # no effect size: ranked last


def test_too_few_rows_is_insufficient_data_not_drift(reference: ReferenceProfile) -> None:
    current = training_frame(10, seed=3)
    current["age"] += 100
    report = compare(reference, current)
    assert report.feature_count == 0
    assert report.drift_share == 0.0
    assert not report.dataset_drifted
    for f in report.features:
        assert (f.method, f.drifted, f.p_value, f.effect_size) == ("none", False, None, None)
        assert f.reason == "insufficient data: 10 rows < min_rows 30"


def test_every_float_is_finite_or_none() -> None:
    rng = np.random.default_rng(6)
    train = pd.DataFrame(
        {
            "inf": np.r_[rng.normal(size=300), [np.inf, -np.inf]],
            "const": np.ones(302),
            "empty": [np.nan] * 302,
            "words": ["x"] * 302,
            "when": pd.date_range("2024-01-01", periods=302, freq="h"),
        }
    )
    kinds: dict[str, Kind] = {
        "inf": "numeric",
        "const": "numeric",
        "empty": "numeric",
        "words": "categorical",
    }
    reference = reference_from_frame(train, {**kinds, "when": "numeric"})
    current = pd.DataFrame(
        {
            "inf": np.r_[[np.inf] * 40, [np.nan] * 10],
            "const": np.r_[np.ones(40), [1e300] * 10],
            "empty": rng.normal(size=50),
            "words": ["y"] * 50,
            "when": pd.date_range("2025-01-01", periods=50, freq="h"),
        }
    )
    predictions = pd.Series([np.nan] * 50)
    report = compare(reference, current, predictions=predictions)
    data = json_safe(report)
    assert data["feature_count"] == 5
    assert feature(report, "when").drifted  # a year later
    assert feature(report, "words").unseen == {
        "count": 50,
        "share": 1.0,
        "values": ["y"],
        "drifted": True,
    }
    assert feature(report, "empty").reason.startswith("missing rate 100.0% → 0.0%")


# --- ranking, policies, prediction, windows ---------------------------------------------------


def test_ranking_puts_drifted_first_then_effect_size_then_importance() -> None:
    rng = np.random.default_rng(8)
    train = pd.DataFrame(rng.normal(size=(3000, 3)), columns=["a", "b", "c"])
    train["twin"] = train["a"]
    reference = reference_from_frame(train, dict.fromkeys(train.columns, "numeric"))
    current = pd.DataFrame(rng.normal(size=(800, 3)), columns=["a", "b", "c"])
    current["twin"] = current["a"]
    current["c"] += 1.0
    report = compare(reference, current, importance={"twin": 0.9, "a": 0.1, "b": 0.5})
    assert report.features[0].feature == "c"
    assert report.features[0].drifted
    assert feature(report, "twin").effect_size == feature(report, "a").effect_size
    order = [f.feature for f in report.features]
    assert order.index("twin") == order.index("a") - 1  # tie broken by importance
    undrifted = [f.effect_size or 0.0 for f in report.features[1:]]
    assert undrifted == sorted(undrifted, reverse=True)
    assert feature(report, "a").importance == 0.1


def test_per_feature_policy_overrides_and_ignores(reference: ReferenceProfile) -> None:
    current = training_frame(500, seed=9)
    current["age"] += 2  # about 0.2 σ
    policy = DriftPolicy(
        features={
            "age": FeaturePolicy(method="wasserstein", threshold=0.5),
            "color": FeaturePolicy(ignore=True),
            "income": FeaturePolicy(method="psi", threshold=0.0),
        }
    )
    report = compare(reference, current, policy=policy)
    age, color, income = (feature(report, name) for name in ("age", "color", "income"))
    assert (age.method, age.threshold, age.p_value, age.drifted) == (
        "wasserstein",
        0.5,
        None,
        False,
    )
    assert age.reason.startswith("Wasserstein 0.")
    assert (color.method, color.drifted, color.reason) == ("none", False, "ignored by policy")
    assert (income.method, income.effect_measure, income.drifted) == ("psi", "psi", True)
    assert report.feature_count == 2
    with pytest.raises(InvalidRequestError, match="color: ks is not a categorical test"):
        compare(
            reference, current, policy=DriftPolicy(features={"color": FeaturePolicy(method="ks")})
        )
    with pytest.raises(ValidationError):
        DriftPolicy(alhpa=0.1)  # type: ignore[call-arg]


def test_prediction_drift_is_reported_apart_from_the_features(training: pd.DataFrame) -> None:
    labels = np.where(training["age"] > 40, "old", "young")
    kinds: dict[str, Kind] = {"age": "numeric", "color": "categorical"}
    reference = reference_from_frame(training, kinds, predictions=pd.Series(labels))
    assert isinstance(reference.prediction, CategoricalProfile)
    current = training_frame(400, seed=10)
    shifted = pd.Series(np.where(current["age"] > 30, "old", "young"))
    report = compare(reference, current, predictions=shifted)
    assert report.prediction is not None
    assert report.prediction.feature == "prediction"
    assert report.prediction.drifted
    assert report.prediction.p_value_adjusted == report.prediction.p_value
    without = compare(reference, current)
    assert without.prediction is None
    # the prediction is neither a feature nor part of the features' BH family
    assert [f.to_dict() for f in without.features] == [f.to_dict() for f in report.features]
    assert report.drifted_count == without.drifted_count
    assert json_safe(report)["prediction"]["method"] == "chi2"  # type: ignore[index]


def test_window_against_window() -> None:
    kinds: dict[str, Kind] = {"age": "numeric", "income": "numeric", "color": "categorical"}
    earlier = training_frame(20_000, seed=20)
    later = training_frame(20_000, seed=21)
    later["income"] *= 1.5
    scores = pd.Series(np.linspace(0, 1, 20_000))
    reference = reference_from_frame(earlier, kinds, predictions=scores)
    assert isinstance(reference.prediction, NumericProfile)
    assert reference.rows == 20_000
    report = compare(reference, later, predictions=scores + 0.3)
    assert [f.feature for f in report.features if f.drifted] == ["income"]
    assert feature(report, "income").method == "wasserstein"
    assert feature(report, "color").method == "jensen_shannon"
    assert report.prediction is not None
    assert report.prediction.drifted
    with pytest.raises(InvalidRequestError, match="lacks columns"):
        reference_from_frame(earlier, {"height": "numeric"})
