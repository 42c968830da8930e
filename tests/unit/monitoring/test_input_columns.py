"""The prediction log's input columns for DataFrame models: each pandas column becomes the
Arrow column drift and the console read (numbers, booleans or text; NaN and None as nulls),
whichever conversion path it takes (numpy buffers, one Arrow call for text, or pandas'
inference for anything else); a served batch's columns (:class:`FrameColumns`, joined by
numpy) become the same columns as the DataFrame the model was given."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dockyard.monitoring.encoding import (
    TRANSPOSED_ROWS,
    _by_column,
    _input_array,
    _input_columns,
    _input_frame,
)
from dockyard.monitoring.records import Source
from dockyard.schema.validation import FrameColumns

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
    "pandas' text dtype": (pd.Series(["a", None], dtype="string"), pa.string(), ["a", None]),
    # the storage of pandas 3's default text dtype (str): large_string in Arrow
    "pandas' Arrow text": (pd.Series(["a", None], dtype="string[pyarrow]"), pa.string(),
                           ["a", None]),
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


def _source() -> Source:
    return Source(endpoint="e", revision=1, model="m", version="1", columns=None, classes=None,
                  positive=None)  # fmt: skip


def _objects(*values: Any) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


STAMPS = pd.array(pd.date_range("2026-01-01", periods=3, tz="UTC"))
# each case: the columns of two requests
REQUESTS: dict[str, dict[str, tuple[Any, Any]]] = {
    "plain": {
        "size": (np.array([0.5]), np.array([np.nan, 2.0])),
        "count": (np.array([1]), np.array([2, 3])),
        "member": (np.array([True]), np.array([False, True])),
        "color": (_objects("red"), _objects(np.nan, "blue")),
    },
    "objects pandas reads": {
        "size": (np.array([0.5]), np.array([1.5, 2.0])),
        "note": (_objects(1.5), _objects("x", None)),
    },
    "an extension array": {
        "when": (STAMPS[:1], STAMPS[1:]),
        "x": (np.array([1.0]), np.array([2.0, 3.0])),
    },
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_frame_columns_are_logged_as_their_dataframe_is(case: str) -> None:
    names = tuple(REQUESTS[case])
    parts = [
        FrameColumns(names, tuple(pieces[i] for pieces in REQUESTS[case].values()), rows)
        for i, rows in enumerate((1, 2))
    ]
    for calls in (parts, [FrameColumns.join(parts)]):  # two calls, or one for both
        sizes = [len(call) for call in calls]
        logged = _input_columns(_source(), list(calls), sizes, 3)
        expected = _input_columns(_source(), [call.frame() for call in calls], sizes, 3)
        assert isinstance(logged, dict)
        assert isinstance(expected, dict)
        assert list(logged) == list(names) == list(expected)
        for name, array in logged.items():
            assert array.equals(expected[name]), (name, array, expected[name])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_matrix_inputs_become_their_columns_whatever_the_parts_sizes(dtype: Any) -> None:
    """A table pass's numeric inputs, rows of several conversion slices, are turned
    column-major block by block: the same columns as joining them and transposing once,
    blocks and parts of any size."""
    rng = np.random.default_rng(3)
    sizes = [1, TRANSPOSED_ROWS - 1, TRANSPOSED_ROWS, 2 * TRANSPOSED_ROWS + 5, 7]
    parts = [(rng.normal(size=(n, 3)) * 100).astype(dtype) for n in sizes]

    columns = _by_column(parts)

    assert columns.dtype == dtype
    assert columns.flags.c_contiguous
    np.testing.assert_array_equal(columns, np.concatenate(parts).T)
