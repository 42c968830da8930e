"""A batch of ``frame``-layout requests joined column by column (:class:`FrameColumns`) is the
DataFrame pandas' concat of their DataFrames would be, dtype for dtype; a column whose dtype
differs between requests is refused, as the concat of frames refuses it, so that the
batcher predicts those requests alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.schema import Validator, infer_signature
from dockyard.schema.signature import ColumnSpec, OutputSpec, Signature
from dockyard.schema.validation import FrameColumns
from dockyard.serving.calls import concat_rows


@pytest.fixture(scope="module")
def validator() -> Validator:
    rng = np.random.default_rng(3)
    n = 60
    sample = pd.DataFrame(
        {
            "size": rng.normal(size=n),
            "count": rng.integers(0, 9, n),
            "color": pd.Series(rng.choice(["red", "blue"], n), dtype=object),
            "grade": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "visits": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "member": rng.random(n) < 0.5,
            "seen": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        }
    )
    sample.loc[3, "color"] = np.nan
    sample.loc[4, "visits"] = pd.NA
    signature = infer_signature(
        sample, layout="frame", predictions=None, classes=None, has_proba=False
    )
    return Validator(signature)


REQUESTS: list[Any] = [
    [{"size": 0.5, "count": 3, "color": "red", "grade": "b", "visits": 2, "member": True,
      "seen": "2026-02-01T10:00:00+00:00"}],
    [{"size": 1.5, "count": 1, "color": None, "grade": "a", "visits": None, "member": False,
      "seen": "2026-02-02T11:00:00+00:00"},
     {"size": -0.5, "count": 7, "color": "blue", "grade": "c", "visits": 4, "member": True,
      "seen": "2026-02-03T12:30:00+00:00"}],
    {"size": [2.0], "count": [0], "color": ["blue"], "grade": ["a"], "visits": [1],
     "member": [False], "seen": ["2026-02-04T00:00:00+00:00"]},
]  # fmt: skip


def test_joined_columns_are_the_concat_of_the_requests_frames(validator: Validator) -> None:
    parts = [validator.validate(r, as_columns=True).data for r in REQUESTS]
    frames = [validator.validate(r).data for r in REQUESTS]

    assert all(type(part) is FrameColumns for part in parts)
    assert [len(part) for part in parts] == [1, 2, 1]
    for part, frame in zip(parts, frames, strict=True):
        pd.testing.assert_frame_equal(part.frame(), frame)
    joined = FrameColumns.join(parts).frame()
    pd.testing.assert_frame_equal(joined, concat_rows(frames))
    # numpy arrays and pandas' extension arrays (categories, Int64, datetimes) alike, each
    # in the sample's dtype (a datetime's unit is pandas' choice: ns before pandas 3, us after)
    assert [str(dtype) for dtype in joined.dtypes] == [
        *("float64", "int64", "object", "category", "Int64", "bool"),
        validator.signature.columns[-1].pandas_dtype,
    ]
    assert validator.signature.columns[-1].pandas_dtype.startswith("datetime64[")


def test_a_column_whose_dtype_differs_between_requests_is_refused() -> None:
    columns = (
        ColumnSpec("x", "float", "float64", nullable=False),
        ColumnSpec("n", "integer", "int64", nullable=True),
    )
    output = OutputSpec("classification", (0, 1), True, "int64")
    validator = Validator(Signature(columns, output, "frame"))
    whole = validator.validate([{"x": 1.0, "n": 2}], as_columns=True).data
    with_null = validator.validate([{"x": 1.0, "n": None}], as_columns=True).data

    assert whole.arrays[1].dtype == np.int64
    assert with_null.arrays[1].dtype == np.float64  # pandas' own answer for a null integer
    with pytest.raises(ValueError, match="column 'n' differs in dtype"):
        FrameColumns.join([whole, with_null])
    with pytest.raises(ValueError, match="the requests' columns differ"):
        FrameColumns.join([whole, pd.DataFrame({"x": [1.0], "n": [2]})])  # type: ignore[list-item]


def test_array_layouts_and_frames_in_the_signatures_dtypes_come_back_as_before(
    validator: Validator,
) -> None:
    frame = validator.validate(REQUESTS[0]).data
    assert validator.validate(frame, as_columns=True).data is frame  # already rebuilt
    columns = (ColumnSpec("x", "float", "float64", nullable=False),)
    output = OutputSpec("regression", None, False, "float64")
    array = Validator(Signature(columns, output, "array")).validate([[1.0]], as_columns=True)
    assert isinstance(array.data, np.ndarray)
