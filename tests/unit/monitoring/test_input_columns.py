"""The prediction log's input columns for DataFrame models: each pandas column becomes the
Arrow column drift and the console read (numbers, booleans or text; NaN and None as nulls),
whichever conversion path it takes (numpy buffers, one Arrow call for text, or pandas'
inference for anything else)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dockyard.monitoring.encoding import _input_array, _input_frame

CASES: dict[str, tuple[pd.Series, pa.DataType, list[Any]]] = {
    "floats": (pd.Series([1.0, 2.5]), pa.float64(), [1.0, 2.5]),
    "floats with NaN": (pd.Series([1.0, np.nan]), pa.float64(), [1.0, None]),
    "float32 with NaN": (pd.Series(np.array([1, np.nan], np.float32)), pa.float32(), [1.0, None]),
    "integers": (pd.Series([1, 2]), pa.int64(), [1, 2]),
    "uint8": (pd.Series(np.array([1, 2], np.uint8)), pa.uint8(), [1, 2]),
    "booleans": (pd.Series([True, False]), pa.bool_(), [True, False]),
    "text": (pd.Series(["a", "b"], dtype=object), pa.string(), ["a", "b"]),
    "text, nulls": (pd.Series(["a", np.nan, None], dtype=object), pa.string(), ["a", None, None]),
    "only nulls": (pd.Series([np.nan, None], dtype=object), pa.null(), [None, None]),
    "text and numbers": (pd.Series(["a", 1.5, 2], dtype=object), pa.string(), ["a", "1.5", "2"]),
    "numbers as objects": (pd.Series([1, 2.5, None], dtype=object), pa.float64(), [1.0, 2.5, None]),
    "booleans as objects": (pd.Series([True, None], dtype=object), pa.bool_(), [True, None]),
    "categories": (pd.Series(pd.Categorical(["x", None])), pa.string(), ["x", None]),
    "nullable integers": (pd.Series([1, None], dtype="Int64"), pa.int64(), [1, None]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_column_kind_becomes_its_arrow_column(case: str) -> None:
    series, kind, values = CASES[case]
    array = _input_array(series)
    assert array.type == kind
    assert array.to_pylist() == values
    assert array.null_count == values.count(None)


def test_the_models_input_is_not_changed() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan], "s": ["a", None]}, index=[5, 6])
    before = frame.copy()
    logged = _input_frame([(None, frame, 2)])
    assert list(logged.index) == [0, 1]
    pd.testing.assert_frame_equal(frame, before)
