"""The validator's all-numeric fast path (:class:`NumericRows`) gives exactly what the full
path gives, and leaves to the full path everything the full path would refuse or change.

Each case runs the input through a validator (fast path on) and through the full path alone
(the same validator with the fast path taken away), and asserts the same array, or the same
error, comes out.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import SchemaValidationError
from dockyard.schema import Validator, infer_signature
from dockyard.schema.numeric_rows import ColumnValues, NumericRows, plain_numbers


def _validators(dtypes: dict[str, str], nullable: bool = False) -> tuple[Validator, Validator]:
    """(with the fast path, full path only) for an array-layout signature of ``dtypes``."""
    frame = pd.DataFrame({name: pd.array([1, 2, 3], dtype=d) for name, d in dtypes.items()})
    if nullable:
        frame.iloc[0, 0] = np.nan
    signature = infer_signature(
        frame, layout="array", predictions=np.zeros(3), classes=None, has_proba=False
    )
    fast, full = Validator(signature), Validator(signature)
    assert fast._numeric is not None
    full._numeric = None
    return fast, full


def _outcome(validator: Validator, data: Any) -> Any:
    try:
        validated = validator.validate(data)
    except SchemaValidationError as exc:
        return ("error", exc.message, exc.details)
    return ("ok", validated.data, validated.rows, validated.notes)


def _same(fast: Validator, full: Validator, data: Any) -> Any:
    got, want = _outcome(fast, data), _outcome(full, data)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        np.testing.assert_array_equal(got[1], want[1], strict=True)  # values and dtype
        assert got[2:] == want[2:]
    else:
        assert got == want
    return got


MIXED = {"a": "float64", "b": "int64"}


def _shapes(rows: list[list[Any]], names: list[str]) -> dict[str, Any]:
    shapes: dict[str, Any] = {
        "records": [dict(zip(names, row, strict=True)) for row in rows],
        "rows": rows,
        "columns": {name: [row[i] for row in rows] for i, name in enumerate(names)},
    }
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        shapes["numpy columns"] = {
            name: np.array([row[i] for row in rows]) for i, name in enumerate(names)
        }
    with contextlib.suppress(TypeError, ValueError, OverflowError):
        shapes["array"] = np.array(rows, dtype=np.float64)
    return shapes


@pytest.mark.parametrize(
    "dtypes", [MIXED, {"a": "float64", "b": "float64"}, {"a": "int64", "b": "int64"}]
)
def test_clean_numbers_come_out_as_the_full_path_makes_them(dtypes: dict[str, str]) -> None:
    fast, full = _validators(dtypes)
    for data in _shapes(
        [[1.0, 2], [3.5 if dtypes["a"] != "int64" else 3, -4]], list(dtypes)
    ).values():
        assert _same(fast, full, data)[0] == "ok"
    assert _same(fast, full, {"a": 1, "b": 2})[0] == "ok"  # one record


@pytest.mark.parametrize(
    ("value", "column"),
    [
        (None, 0),  # a null where none is allowed
        (float("nan"), 0),
        (float("inf"), 0),  # infinity: accepted by the full path, not by the fast one
        ("1.5", 0),  # a string
        (True, 1),  # a bool
        (2.5, 1),  # a fraction in an integer column
        (2.0**53, 1),  # a float too large to be an exact integer
        (2**53 + 1, 1),  # an exact integer past float64's
        (10**20, 1),  # beyond int64
        (10**400, 0),  # beyond float64
        (3.0, 1),  # an integral float in an integer column: accepted
    ],
)
@pytest.mark.parametrize("count", [2, 40], ids=["few rows", "rows converted in bulk"])
def test_anything_unusual_gets_the_full_paths_answer(value: Any, column: int, count: int) -> None:
    fast, full = _validators(MIXED)
    rows: list[list[Any]] = [[1.5 + i, 2 + i] for i in range(count)]
    rows[-1][column] = value
    for data in _shapes(rows, ["a", "b"]).values():
        _same(fast, full, data)


def test_zeros_and_ones_among_many_rows_are_numbers_still() -> None:
    """Many rows go to numpy in one call unless a value is 0 or 1 (which may have been a
    bool): those rows take the type scan, and clean ones come out the same either way."""
    fast, full = _validators(MIXED)
    rows: list[list[Any]] = [[float(i % 2), i % 2] for i in range(40)]
    for data in _shapes(rows, ["a", "b"]).values():
        assert _same(fast, full, data)[0] == "ok"


@pytest.mark.parametrize("flags", [0.1, 0.9], ids=["few 0/1 values", "mostly 0/1 values"])
@pytest.mark.parametrize("odd", [True, False, np.True_, np.float64(1.0)])
def test_a_bool_among_flags_in_many_rows_gets_the_full_paths_answer(flags: float, odd: Any) -> None:
    fast, full = _validators(MIXED)
    rng = np.random.default_rng(0)
    rows: list[list[Any]] = [
        [float(rng.integers(0, 2)) if rng.random() < flags else 1.5 + i, 2 + i] for i in range(40)
    ]
    rows[17][0] = odd
    for data in _shapes(rows, ["a", "b"]).values():
        _same(fast, full, data)


@pytest.mark.parametrize("share", [0.05, 0.5, 1.0])
def test_plain_numbers_reads_flags_in_bulk_and_finds_a_bool_among_them(share: float) -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 8))
    values[rng.random(size=values.shape) < share] = 0.0
    values[:, 3] = rng.integers(0, 2, size=50)  # a column of flags
    rows: list[list[Any]] = values.tolist()
    flat: list[Any] = values.reshape(-1).tolist()
    for data in (rows, flat, [[int(v) for v in row[3:4]] for row in rows]):
        got = plain_numbers(data)
        assert got is not None
        np.testing.assert_array_equal(got, np.array(data))
    for position in (0, 7, 399):
        rows_with = [row[:] for row in rows]
        rows_with[position // 8][position % 8] = position % 2 == 0  # True or False
        flat_with = flat[:]
        flat_with[position] = False
        assert plain_numbers(rows_with) is None
        assert plain_numbers(flat_with) is None


@pytest.mark.parametrize(
    "data",
    [
        [[1.0, 2.0], [3.0, "4"]],  # a string
        [[1.0, None], [3.0, 4.0]],  # a null
        [[1.0, 2.0], [3.0]],  # uneven rows
        [[[1.0], [2.0]], [[3.0], [4.0]]],  # deeper than rows
        [10**20, 1.0],  # beyond int64
        [True, False],
    ],
)
def test_plain_numbers_leaves_anything_else_to_the_checked_path(data: Any) -> None:
    assert plain_numbers(data) is None


def test_shape_problems_get_the_full_paths_answer() -> None:
    fast, full = _validators(MIXED)
    for data in (
        [{"a": 1.0}],  # a missing key
        [{"a": 1.0, "b": 2, "c": 3}],  # an extra key: a note
        [[1.0, 2], [3.0]],  # a short row
        [[1.0, 2], {"a": 1.0, "b": 2}],  # rows and records mixed
        [{"a": 1.0, "b": 2}, [1.0, 2]],
        {"a": [1.0, 2.0], "b": [1]},  # columns of different lengths
        {"a": [1.0], "b": [1], "c": [2]},  # an extra column: a note
        {"a": [1.0], "b": 1},  # a column that is not a list
        {"a": np.array([1.0]), "b": np.array([1], dtype=np.uint64)},
        {"a": np.array([1.0]), "b": np.array([True])},
        {"a": np.array([1.0]), "b": np.array([[1]])},
        {"a": [], "b": []},
        [],
        np.zeros((0, 2)),
        np.zeros((2, 3)),
        np.array([[1, 2]], dtype=np.uint64),
        np.array([[True, False]]),
        np.array([[1, 2]], dtype=np.int32),
        np.array([[1.5, 2]], dtype=np.float32),
    ):
        _same(fast, full, data)


def test_values_said_finite_skip_the_check_alone() -> None:
    """``finite`` (numbers from a JSON parser that refuses NaN and overflow) gives every
    clean shape the array it gets checked, and columns of numpy arrays, which no JSON
    parser made, are checked still."""
    fast, _ = _validators({"a": "float64", "b": "int64"})
    for data in _shapes([[1.0, 2], [3.5, -4]], ["a", "b"]).values():
        said = fast.validate(data, finite=True).data
        np.testing.assert_array_equal(said, fast.validate(data).data, strict=True)
    numeric = fast._numeric
    assert numeric is not None
    with_nan = {"a": np.array([1.0, np.nan]), "b": np.array([2, 3])}
    assert numeric.decode(with_nan, finite=True) is None


def test_only_all_numeric_array_signatures_have_a_fast_path() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    for layout, data in (("array", frame), ("frame", frame[["a"]])):
        signature = infer_signature(
            data, layout=layout, predictions=np.zeros(2), classes=None, has_proba=False
        )
        assert NumericRows.for_signature(signature) is None


def test_a_frame_signature_has_an_array_fast_path_for_a_model_that_takes_arrays() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    signature = infer_signature(
        frame, layout="frame", predictions=np.zeros(2), classes=None, has_proba=False
    )
    assert NumericRows.for_signature(signature) is None
    rows = NumericRows.for_signature(signature, layout="array")
    assert rows is not None
    np.testing.assert_array_equal(rows.decode(frame.to_numpy()), frame.to_numpy())


@pytest.mark.parametrize(
    ("columns", "clean"),
    [
        ({"a": np.array([1.5, 2.0]), "b": np.array([3, 4])}, True),
        ({"a": np.array([1, 2], dtype=np.int32), "b": np.array([3.0, 4.0])}, True),
        ({"a": np.array([np.nan, 2.0]), "b": np.array([3, 4])}, False),  # NaN
        ({"a": np.array([np.inf, 2.0]), "b": np.array([3, 4])}, False),  # infinity
        ({"a": np.array([1.0, 2.0]), "b": np.array([3.5, 4.0])}, False),  # a fraction
        ({"a": np.array([1.0, 2.0]), "b": np.array([2.0**53, 4.0])}, False),  # past 2**53
        ({"a": np.array([1.0, 2.0]), "b": np.array([3, 4], dtype=np.uint64)}, False),
        ({"a": np.array([True, False]), "b": np.array([3, 4])}, False),  # booleans
        ({"a": np.array(["1", "2"]), "b": np.array([3, 4])}, False),  # text
        ({"a": np.array([1.0, 2.0]), "b": np.array([3])}, False),  # lengths differ
        ({"a": np.array([1.0, 2.0])}, False),  # a column missing
        ({"a": np.array([1.0]), "b": np.array([3]), "c": np.array([4])}, False),  # extra
        ({"a": np.array([], dtype=float), "b": np.array([], dtype=int)}, False),  # no rows
        ({"a": [1.0, 2.0], "b": [3, 4]}, False),  # lists: not what this check takes
    ],
)
def test_columns_are_clean_exactly_when_decode_takes_them(
    columns: dict[str, Any], clean: bool
) -> None:
    fast, _ = _validators(MIXED)
    rows = fast._numeric
    assert rows is not None
    assert rows.clean_columns(columns) is clean
    if clean or all(type(c) is np.ndarray and len(c) for c in columns.values()):
        assert (rows.decode(columns) is not None) is clean


def test_a_block_of_columns_in_any_order_is_decoded_as_the_same_columns_are() -> None:
    fast, _ = _validators(MIXED)
    numeric = fast.numeric
    assert numeric is not None
    a, b = [1.5, -0.0, 3.0], [2.0, 4.0, -6.0]

    for names, block in ((("a", "b"), [a, b]), (("b", "a"), [b, a])):
        got = numeric.decode(ColumnValues(names, np.array(block)))
        want = numeric.decode({"a": np.array(a), "b": np.array(b)})
        assert got is not None
        np.testing.assert_array_equal(got, want, strict=True)
        assert got.flags.c_contiguous
        assert np.signbit(got[1, 0])


@pytest.mark.parametrize(
    ("names", "block"),
    [
        (("a",), [[1.0, 2.0]]),  # a column missing
        (("a", "c"), [[1.0, 2.0], [3.0, 4.0]]),  # another column instead
        (("a", "b", "c"), [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),  # a column more: a note
        (("a", "b"), [[1.0, 2.0], [3.5, 4.0]]),  # a fraction in the integer column
        (("a", "b"), [[np.inf, 2.0], [3.0, 4.0]]),
        (("a", "b"), np.empty((2, 0))),  # no rows
    ],
)
def test_a_block_the_full_path_would_answer_otherwise_is_left_to_it(
    names: tuple[str, ...], block: Any
) -> None:
    fast, _ = _validators(MIXED)
    assert fast.numeric is not None
    assert fast.numeric.decode(ColumnValues(names, np.array(block, dtype=np.float64))) is None
