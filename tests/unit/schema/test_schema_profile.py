from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import InvalidRequestError
from dockyard.schema import (
    QUANTILE_LEVELS,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    Signature,
    build_profile,
    infer_signature,
)


def signature_of(sample: pd.DataFrame, predictions: object = None) -> Signature:
    return infer_signature(
        sample, layout="frame", predictions=predictions, classes=None, has_proba=False
    )


def json_round_trip(profile: ReferenceProfile) -> tuple[str, ReferenceProfile]:
    text = json.dumps(profile.to_dict(), allow_nan=False)
    return text, ReferenceProfile.from_dict(json.loads(text))


def test_penguin_profile_matches_numpy_and_pandas(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = penguins
    profile = build_profile(x, signature_of(x, y.to_numpy()), y.to_numpy(), bins=10)
    assert profile.rows == 344
    bill = profile.features["bill_length_mm"]
    assert isinstance(bill, NumericProfile)
    values = x["bill_length_mm"].dropna().to_numpy()
    assert (bill.count, bill.missing) == (342, 2)
    assert bill.missing_rate == pytest.approx(2 / 344)
    assert bill.mean == pytest.approx(values.mean())
    assert bill.std == pytest.approx(values.std())
    assert (bill.minimum, bill.maximum) == (values.min(), values.max())
    assert [level for level, _ in bill.quantiles] == list(QUANTILE_LEVELS)
    np.testing.assert_allclose(
        [value for _, value in bill.quantiles], np.quantile(values, QUANTILE_LEVELS)
    )
    assert bill.quantile(0.5) == pytest.approx(np.median(values))
    counts, edges = np.histogram(values, bins=10, range=(values.min(), values.max()))
    assert bill.histogram_counts == tuple(counts)
    np.testing.assert_allclose(bill.histogram_edges, edges)
    assert sum(bill.histogram_counts) == bill.count
    assert sorted(bill.reservoir) == sorted(values.tolist())  # fewer than 1000: all of them

    sex = profile.features["sex"]
    assert isinstance(sex, CategoricalProfile)
    assert (sex.count, sex.missing, sex.distinct, sex.other) == (333, 11, 2, 0)
    assert dict(sex.frequencies) == x["sex"].value_counts().to_dict()
    year = profile.features["year"]
    assert isinstance(year, NumericProfile)
    assert all(type(value) is int for value in year.reservoir)

    prediction = profile.prediction
    assert isinstance(prediction, CategoricalProfile)
    assert dict(prediction.frequencies) == y.value_counts().to_dict()
    text, restored = json_round_trip(profile)
    assert restored == profile
    assert "NaN" not in text


def test_profile_size_is_bounded_for_200k_rows() -> None:
    rows = 200_000
    rng = np.random.default_rng(7)
    sample = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, rows),
            "units": rng.integers(0, 1_000_000, rows),
            "note": [f"free text {i}" for i in range(rows)],
            "shop": pd.Categorical(rng.integers(0, 500, rows).astype(str)),
        }
    )
    profile = build_profile(sample, signature_of(sample), rng.normal(size=rows), max_categories=50)
    text, restored = json_round_trip(profile)
    assert len(text) < 120_000
    assert restored == profile
    amount = profile.features["amount"]
    assert isinstance(amount, NumericProfile)
    assert len(amount.reservoir) == 1000
    assert len(amount.histogram_counts) == 20
    assert set(amount.reservoir) <= set(sample["amount"].tolist())
    # a uniform sample: its median is near the data's
    assert np.median(amount.reservoir) == pytest.approx(np.median(sample["amount"]), rel=0.1)
    note = profile.features["note"]
    assert isinstance(note, CategoricalProfile)
    assert (note.distinct, len(note.frequencies), note.other) == (rows, 50, rows - 50)
    shop = profile.features["shop"]
    assert isinstance(shop, CategoricalProfile)
    assert shop.other + sum(count for _, count in shop.frequencies) == rows
    assert isinstance(profile.prediction, NumericProfile)


def test_reservoir_is_deterministic_per_seed() -> None:
    sample = pd.DataFrame({"a": np.arange(5000, dtype=float), "b": np.arange(5000.0)[::-1]})
    signature = signature_of(sample)

    def reservoir(seed: int, column: str = "a") -> tuple[float, ...]:
        feature = build_profile(sample, signature, seed=seed, reservoir_size=100).features[column]
        assert isinstance(feature, NumericProfile)
        return feature.reservoir

    assert reservoir(1) == reservoir(1)
    assert reservoir(1) != reservoir(2)
    assert len(reservoir(1)) == 100
    assert list(reservoir(1)) == sorted(reservoir(1))  # kept in the data's order
    # every column draws the same positions (when their nulls agree)
    assert reservoir(1, "b") == tuple(4999.0 - v for v in reservoir(1))


def test_constant_empty_and_infinite_columns() -> None:
    sample = pd.DataFrame(
        {
            "constant": [4.0, 4.0, 4.0, np.nan],
            "empty": [np.nan] * 4,
            "wild": [1.0, np.inf, -np.inf, 3.0],
        }
    )
    profile = build_profile(sample, signature_of(sample))
    constant, empty, wild = (profile.features[name] for name in sample.columns)
    assert isinstance(constant, NumericProfile)
    assert (constant.histogram_edges, constant.histogram_counts) == ((4.0, 4.0), (3,))
    assert constant.std == 0.0
    assert isinstance(empty, NumericProfile)
    assert (empty.count, empty.missing_rate, empty.mean, empty.quantiles) == (0, 1.0, None, ())
    assert (empty.histogram_edges, empty.reservoir) == ((), ())
    assert isinstance(wild, NumericProfile)
    assert (wild.count, wild.infinite, wild.mean, wild.maximum) == (4, 2, 2.0, 3.0)
    assert wild.reservoir == (1.0, 3.0)
    _, restored = json_round_trip(profile)
    assert restored == profile


def test_datetimes_are_profiled_as_epoch_seconds() -> None:
    sample = pd.DataFrame({"when": pd.to_datetime(["1970-01-02", "1970-01-03", None])})
    feature = build_profile(sample, signature_of(sample)).features["when"]
    assert isinstance(feature, NumericProfile)
    assert (feature.minimum, feature.maximum, feature.missing) == (86400.0, 172800.0, 1)


def test_boolean_features_and_regression_predictions() -> None:
    sample = pd.DataFrame({"flag": [True, True, False], "x": [1.0, 2.0, 3.0]})
    predictions = np.array([0.5, 1.5, 2.5])
    profile = build_profile(sample, signature_of(sample, predictions), predictions)
    flag = profile.features["flag"]
    assert isinstance(flag, CategoricalProfile)
    assert flag.frequencies == ((True, 2), (False, 1))
    assert isinstance(profile.prediction, NumericProfile)
    assert profile.prediction.mean == 1.5
    two_d = build_profile(sample, signature_of(sample), np.zeros((3, 2)))
    assert two_d.prediction is None
    _, restored = json_round_trip(profile)
    assert restored == profile


def test_sample_must_have_the_signature_columns(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    with pytest.raises(InvalidRequestError, match="lacks signature columns"):
        build_profile(x.drop(columns=["year"]), signature_of(x))
