"""The training-range check behind the per-response ``warnings`` (pure code)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dockyard.schema import Signature
from dockyard.schema.inference import infer_signature
from dockyard.serving.ranges import FEW_ROWS, Ranges

SAMPLE = pd.DataFrame(
    {
        "bill": [33.0, 58.0],
        "island": ["Biscoe", "Dream"],
        "count": np.array([0, 9], dtype=np.int64),
        "when": pd.to_datetime(["2024-01-01", "2024-02-01"]),
    }
)
PROFILE = {
    "features": {
        "bill": {"kind": "numeric", "min": 33.0, "max": 58.0},
        "island": {"kind": "categorical"},
        "count": {"kind": "numeric", "min": 0, "max": 9},
        "when": {"kind": "numeric", "min": 1.7e9, "max": 1.71e9},
    }
}


def _signature() -> Signature:
    return infer_signature(
        SAMPLE, layout="frame", predictions=np.zeros(2), classes=None, has_proba=False
    )


def _ranges() -> Ranges:
    ranges = Ranges.from_profile(_signature(), PROFILE)
    assert ranges is not None
    return ranges


def test_only_numeric_columns_with_a_range_are_checked() -> None:
    ranges = _ranges()
    assert ranges.names == ("bill", "count")  # not the category, not the datetime
    assert Ranges.from_profile(None, PROFILE) is None
    assert Ranges.from_profile(_signature(), {}) is None


def test_rows_outside_are_found_once_per_call_and_described_per_request() -> None:
    ranges = _ranges()
    frame = pd.DataFrame(
        {
            "bill": [45.0, 460.0, np.nan, 58.0],
            "island": ["Biscoe", "Dream", "Biscoe", "Dream"],
            "count": np.array([3, 3, 3, 10], dtype=np.int64),
            "when": pd.to_datetime(["2030-01-01"] * 4),  # not ranged: no warning
        }
    )
    mask = ranges.rows_outside(frame)
    assert mask is not None
    assert mask.tolist() == [False, True, False, True]  # NaN is missing, never outside
    report = ranges.check(frame)
    assert report is not None
    assert report.columns == ("bill", "count")
    assert report.rows == 2
    assert report.warnings == (
        "'bill' is 460, outside its training range [33, 58]",
        "'count' is 10, outside its training range [0, 9]",
    )
    assert ranges.rows_outside(frame.iloc[[0, 2]]) is None
    assert ranges.check(frame.iloc[[0]]) is None


def test_a_numeric_array_is_checked_column_by_position() -> None:
    ranges = Ranges(["a", "c"], [0, 2], 3, [0.0, 10.0], [1.0, 20.0])
    array = np.array([[0.5, 99.0, 15.0], [0.5, -99.0, 25.0], [2.0, 0.0, 5.0]])
    mask = ranges.rows_outside(array)
    assert mask is not None
    assert mask.tolist() == [False, True, True]
    report = ranges.check(array)
    assert report is not None
    assert report.warnings[1] == "'c' is 5, 25, outside its training range [10, 20] in 2 rows"
    assert ranges.rows_outside(np.array([["x", "y", "z"]])) is None  # not numeric: skipped


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_batch_of_a_row_or_two_gets_the_answer_of_a_larger_one(dtype: type) -> None:
    # FEW_ROWS rows or fewer are compared in Python: the same rows as part of a larger
    # batch (numpy's comparison) must be found outside, or not, alike
    ranges = Ranges(["a", "c"], [0, 2], 3, [0.0, 10.0], [1.0, 20.0])
    rows = [
        [0.5, 99.0, 15.0],  # inside (the unranged column ignored)
        [0.0, 0.0, 20.0],  # on both bounds: inside
        [-1e-9, 0.0, 15.0],  # just under a's low
        [0.5, 0.0, 20.5],  # over c's high
        [np.nan, 0.0, np.nan],  # missing: never outside
        [0.5, 0.0, np.inf],  # infinity: outside
    ]
    whole = ranges.rows_outside(np.array(rows * 3, dtype=dtype))
    assert whole is not None
    expected = whole.tolist()[: len(rows)]
    assert expected == [False, False, True, True, False, True]
    assert FEW_ROWS == 2
    for first in range(len(rows)):
        for count in (1, 2):
            batch = np.array(rows[first : first + count], dtype=dtype)
            mask = ranges.rows_outside(batch)
            got = [False] * len(batch) if mask is None else mask.tolist()
            assert got == expected[first : first + len(batch)], (first, count)
