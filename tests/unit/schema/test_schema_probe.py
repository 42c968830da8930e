"""The probes ask a real fitted model what it tolerates, and the validator then holds to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from dockyard.errors import SchemaValidationError
from dockyard.schema import PROBE_ROWS, UNSEEN_PROBE_VALUE, Signature, Validator, infer_signature

Accepts = Callable[[pd.DataFrame], bool]


def infer(sample: pd.DataFrame, accepts: Accepts | None) -> Signature:
    return infer_signature(
        sample, layout="frame", predictions=None, classes=None, has_proba=True, accepts=accepts
    )


def policies(signature: Signature) -> dict[str, tuple[bool, str]]:
    return {column.name: (column.nullable, column.unseen) for column in signature.columns}


def unseen_island(x: pd.DataFrame) -> list[dict[str, Any]]:
    record = x.iloc[0].to_dict()
    record["island"] = "Atlantis"
    return [record]


def test_handle_unknown_ignore_allows_unseen_categories_and_nulls(
    penguins: tuple[pd.DataFrame, pd.Series],
    lenient_accepts: Accepts,
    lenient_penguin_model: Pipeline,
) -> None:
    x, _ = penguins
    signature = infer(x, lenient_accepts)
    assert policies(signature) == {
        "island": (True, "allow"),  # a null is one more unknown category to the encoder
        "bill_length_mm": (True, "reject"),
        "bill_depth_mm": (True, "reject"),
        "flipper_length_mm": (True, "reject"),
        "body_mass_g": (True, "reject"),
        "sex": (True, "allow"),
        "year": (True, "reject"),  # no nulls in the sample, but the imputer takes them
    }
    validated = Validator(signature).validate(unseen_island(x))
    assert validated.data["island"][0] == "Atlantis"
    assert len(lenient_penguin_model.predict(validated.data)) == 1


def test_handle_unknown_error_rejects_unseen_categories(
    penguins: tuple[pd.DataFrame, pd.Series], strict_accepts: Accepts
) -> None:
    x, _ = penguins
    signature = infer(x, strict_accepts)
    assert signature.column("island").unseen == "reject"
    assert signature.column("island").nullable is False
    assert signature.column("sex").unseen == "reject"
    assert signature.column("sex").nullable is True  # seen in the sample
    with pytest.raises(SchemaValidationError) as caught:
        Validator(signature).validate(unseen_island(x))
    assert caught.value.details["problems"][0]["column"] == "island"


def test_without_accepts_nullable_is_what_the_sample_shows(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    signature = infer(x, None)
    assert policies(signature)["year"] == (False, "reject")
    assert policies(signature)["island"] == (False, "reject")
    assert policies(signature)["sex"] == (True, "reject")


def test_nan_tolerance_follows_the_estimator(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    x, y = cancer
    small = x.iloc[:, :4]
    strict = make_pipeline(StandardScaler(), LogisticRegression()).fit(small, y)
    tolerant = DecisionTreeClassifier(max_depth=3, random_state=0).fit(small, y)

    def accepts_of(model: Any) -> Accepts:
        return lambda frame: len(model.predict(frame)) == len(frame)

    assert not any(c.nullable for c in infer(small, accepts_of(strict)).columns)
    assert all(c.nullable for c in infer(small, accepts_of(tolerant)).columns)


def test_category_columns_probe_nan_because_unseen_values_become_nan(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = penguins
    categorical = x.astype({"island": "category", "sex": "category"})
    with threadpool_limits(limits=1):  # OpenMP threads crawl on a busy machine
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5)
        model.fit(categorical, y)
        signature = infer(categorical, lambda frame: len(model.predict(frame)) > 0)
        assert signature.column("island").unseen == "allow"
        validated = Validator(signature).validate(unseen_island(categorical))
        assert pd.isna(validated.data["island"][0])
        assert validated.data.dtypes.equals(categorical.dtypes)
        assert len(model.predict(validated.data)) == 1


def test_probe_frames_have_the_sample_dtypes_and_calls_are_bounded(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    seen: list[pd.DataFrame] = []

    def recording(frame: pd.DataFrame) -> bool:
        seen.append(frame)
        return True

    signature = infer(x, recording)
    assert all(column.nullable for column in signature.columns)
    assert signature.column("island").unseen == "allow"
    base = seen[0]
    assert len(base) == min(PROBE_ROWS, len(x))
    pd.testing.assert_frame_equal(base, x.head(PROBE_ROWS))
    # island, year: null probes; island, sex: unseen probes; the rest had nulls already.
    # A model accepting them all answers in one call: the sample rows, then four probe rows.
    assert len(seen) == 2
    probes = seen[1]
    assert len(probes) == 4
    assert UNSEEN_PROBE_VALUE in set(probes["island"])
    assert probes["year"].isna().sum() == 1
    assert probes["year"].dtype == np.float64  # what a null makes of an int64 column


def test_a_refused_group_probe_falls_back_to_one_probe_per_question(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    seen: list[pd.DataFrame] = []

    def no_nulls_in_year(frame: pd.DataFrame) -> bool:
        seen.append(frame)
        return not frame["year"].isna().any()

    signature = infer(x, no_nulls_in_year)
    assert signature.column("year").nullable is False
    assert signature.column("island").unseen == "allow"
    assert len(seen) == 1 + 1 + 4  # sample rows, the refused group, then each question


def test_a_model_that_refuses_its_own_sample_leaves_the_signature_alone(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins

    def broken(frame: pd.DataFrame) -> bool:
        raise RuntimeError("model cannot predict at all")

    assert infer(x, broken) == infer(x, None)
    assert infer(x, lambda frame: False) == infer(x, None)
