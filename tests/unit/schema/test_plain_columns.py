"""The validator's fast path for records and columns of plain values (:class:`PlainColumns`)
gives exactly what the full path gives, and leaves to the full path everything the full path
would refuse, note or change.

Each case runs the input through a validator (fast path on) and through the full path alone
(the same validator with the fast path taken away), and asserts the same columns, DataFrame
or error come out.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _pandas import text_as
from dockyard.errors import SchemaValidationError
from dockyard.schema import Validator
from dockyard.schema.plain_columns import PlainColumns
from dockyard.schema.signature import ColumnSpec, OutputSpec, Signature
from dockyard.schema.validation import FrameColumns

OUTPUT = OutputSpec(kind="classification", classes=(0, 1), has_proba=True, dtype="int64")
COLUMNS = (
    ColumnSpec("size", "float", "float64", nullable=False),
    ColumnSpec("weight", "float", "float64", nullable=True),
    ColumnSpec("count", "integer", "int64", nullable=False),
    ColumnSpec("color", "string", "object", nullable=True, categories=("red", "blue"),
               unseen="allow"),
    ColumnSpec("plan", "string", "object", nullable=False, categories=("free", "pro"),
               unseen="reject"),
    ColumnSpec("tier", "string", "object", nullable=True, categories=("a", "b"),
               unseen="reject"),
    ColumnSpec("note", "string", "object", nullable=False),
    ColumnSpec("member", "boolean", "bool", nullable=False),
)  # fmt: skip
ROW = {"size": 0.5, "weight": 2, "count": 3, "color": "red", "plan": "pro", "tier": "a",
       "note": "hi", "member": True}  # fmt: skip


def _validators(
    layout: str = "frame", columns: tuple[ColumnSpec, ...] = COLUMNS
) -> tuple[Validator, Validator]:
    signature = Signature(columns=columns, output=OUTPUT, layout=layout)  # type: ignore[arg-type]
    fast, full = Validator(signature), Validator(signature)
    assert fast._plain is not None
    full._plain = None
    return fast, full


def _outcome(validator: Validator, data: Any, as_columns: bool) -> Any:
    try:
        validated = validator.validate(copy.deepcopy(data), as_columns=as_columns)
    except SchemaValidationError as exc:
        return ("error", exc.message, exc.details)
    return ("ok", validated.data, validated.rows, validated.notes)


def _same(data: Any, layout: str = "frame", columns: tuple[ColumnSpec, ...] = COLUMNS) -> Any:
    fast, full = _validators(layout, columns)
    for as_columns in (True, False):
        got, want = _outcome(fast, data, as_columns), _outcome(full, data, as_columns)
        assert got[0] == want[0], (got, want)
        if got[0] == "error":
            assert got == want
            continue
        assert got[2:] == want[2:]
        if type(want[1]) is FrameColumns:
            assert type(got[1]) is FrameColumns
            assert got[1].names == want[1].names
            for mine, theirs in zip(got[1].arrays, want[1].arrays, strict=True):
                _assert_same_array(mine, theirs)
        elif isinstance(want[1], pd.DataFrame):
            pd.testing.assert_frame_equal(got[1], want[1])
        else:
            _assert_same_array(got[1], want[1])
    return got


def _assert_same_array(got: Any, want: Any) -> None:
    """Values and dtype; NaN in an object array counts as equal to NaN."""
    assert type(got) is type(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    missing = pd.isna(want)
    np.testing.assert_array_equal(pd.isna(got), missing)
    np.testing.assert_array_equal(got[~missing], want[~missing], strict=True)


def _records(rows: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(rows)
    return [
        {"size": float(rng.normal()), "weight": int(rng.integers(0, 9)),
         "count": int(rng.integers(-5, 5)), "color": str(rng.choice(["red", "blue", "teal"])),
         "plan": str(rng.choice(["free", "pro"])), "tier": str(rng.choice(["a", "b"])),
         "note": f"row {i}",
         "member": bool(rng.random() < 0.5)}
        for i in range(rows)
    ]  # fmt: skip


def _decoded(data: Any) -> Any:
    return _validators()[0]._plain.decode(copy.deepcopy(data))  # type: ignore[union-attr]


@pytest.mark.parametrize("rows", [1, 2, 100])
def test_clean_records_and_columns_come_out_as_the_full_path_makes_them(rows: int) -> None:
    records = _records(rows)
    columns = {name: [record[name] for record in records] for name in ROW}
    shapes = [records, columns] + ([records[0]] if rows == 1 else [])
    for data in shapes:
        assert _decoded(data) is not None, data
        for layout in ("frame", "array"):
            assert _same(data, layout)[0] == "ok"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("size", None),  # a null where nulls are refused
        ("size", float("nan")),
        ("weight", None),  # a null where they are accepted: float64 NaN
        ("weight", float("nan")),
        ("size", True),
        ("size", "1.5"),
        ("size", 10**400),  # beyond float64
        ("size", np.float64(1.5)),  # numpy scalars: the full path's business
        ("count", 1.0),  # a whole float in an integer column: the full path takes it
        ("count", 1.5),
        ("count", True),
        ("count", 2**63),  # beyond int64
        ("count", -(2**63)),
        ("count", None),
        ("color", None),  # nullable text: NaN
        ("color", "teal"),  # unseen, allowed
        ("color", 3),
        ("plan", "team"),  # unseen, refused
        ("plan", None),
        ("plan", ["pro"]),  # unhashable
        ("tier", None),  # nullable, unseen refused
        ("tier", "c"),
        ("tier", ["a"]),
        ("note", ""),
        ("note", 1),
        ("member", 1),
        ("member", None),
        ("member", np.True_),
    ],
)
def test_anything_unusual_gets_the_full_paths_answer(column: str, value: Any) -> None:
    for rows in (1, 3):
        records = _records(rows)
        records[-1][column] = value
        columns = {name: [record[name] for record in records] for name in ROW}
        for data in (records, columns):
            _same(data)
            _same(data, "array")


def test_the_fast_path_takes_no_value_the_full_path_would_report_or_change() -> None:
    for column, value in [("size", None), ("size", float("nan")), ("count", 1.0),
                          ("plan", "team"), ("plan", None), ("member", 1), ("count", 2**63),
                          ("note", None), ("count", None), ("tier", "c")]:  # fmt: skip
        assert _decoded([{**ROW, column: value}]) is None, (column, value)
    # nothing the full path would change: an unseen category where allowed, nulls (NaN)
    # where the column takes them
    for column, value in [("color", "teal"), ("color", None), ("weight", None),
                          ("weight", float("nan")), ("tier", None)]:  # fmt: skip
        assert _decoded([{**ROW, column: value}]) is not None, (column, value)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {},
        [{**ROW, "extra": 1}],  # noted by the full path
        [{k: v for k, v in ROW.items() if k != "note"}],  # missing
        [ROW, ["a", "row"]],
        [ROW, "text"],
        [ROW, None],
        {**{k: [v] for k, v in ROW.items()}, "size": [0.5, 1.5]},  # uneven columns
        {**{k: [v] for k, v in ROW.items()}, "size": (0.5,)},  # a tuple column
        {**{k: [v] for k, v in ROW.items()}, "count": 3},  # a value, not a column
        {**{k: [v] for k, v in ROW.items()}, "count": np.array(3)},
        {k: [] for k in ROW},
        {**{k: [v] for k, v in ROW.items()}, "extra": [1]},
        (ROW,),
        "records",
    ],
)
def test_shape_problems_get_the_full_paths_answer(data: Any) -> None:
    assert _decoded(data) is None
    _same(data)


def test_a_null_beside_an_unseen_category_is_refused_as_the_full_path_refuses_it() -> None:
    records = _records(3)
    records[0]["tier"], records[2]["tier"] = None, "c"
    assert _decoded(records) is None
    assert _same(records)[0] == "error"


def test_plain_requests_join_as_the_full_path_ones_do() -> None:
    fast, full = _validators()
    requests = [_records(1), _records(3), _records(2)]
    joined = FrameColumns.join([fast.validate(r, as_columns=True).data for r in requests]).frame()
    expected = FrameColumns.join([full.validate(r, as_columns=True).data for r in requests]).frame()
    pd.testing.assert_frame_equal(joined, expected)


OTHER_KINDS = [
    ColumnSpec("c", "float", "float32", nullable=False),
    ColumnSpec("c", "integer", "int32", nullable=False),
    ColumnSpec("c", "integer", "Int64", nullable=True),
    ColumnSpec("c", "boolean", "boolean", nullable=True),
    ColumnSpec("c", "category", "category", nullable=False, categories=("a",),
               categories_dtype="object"),
    ColumnSpec("c", "datetime", "datetime64[ns]", nullable=False),
]  # fmt: skip


@pytest.mark.parametrize("column", OTHER_KINDS)
def test_signatures_with_other_column_kinds_take_the_full_path(column: ColumnSpec) -> None:
    signature = Signature(columns=(COLUMNS[0], column), output=OUTPUT, layout="frame")
    assert PlainColumns.for_signature(signature) is None
    assert Validator(signature)._plain is None


def _tensor_columns(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Columns as the v2 protocol hands them over: numpy arrays of numbers and flags, lists
    of text."""
    columns: dict[str, Any] = {name: [record[name] for record in records] for name in ROW}
    for name in ("size", "weight", "count", "member"):
        columns[name] = np.array(columns[name])
    return columns


def test_numpy_columns_of_numbers_and_flags_come_out_as_the_full_path_makes_them() -> None:
    data = _tensor_columns(_records(5))
    assert _decoded(data) is not None
    assert _same(data)[0] == "ok"
    _same(data, "array")


@pytest.mark.parametrize(
    ("column", "array", "fast"),
    [
        ("size", np.array([0.5, 1.5], dtype=np.float32), True),
        ("size", np.array([1, 2], dtype=np.uint64), True),
        ("size", np.array([0.5, np.nan]), False),  # a null where nulls are refused
        ("weight", np.array([0.5, np.nan]), True),
        ("size", np.array([True, False]), False),
        ("size", np.array(["0.5", "1.5"]), False),
        ("size", np.array([[0.5], [1.5]]), False),
        ("count", np.array([1, 2], dtype=np.int32), True),
        ("count", np.array([1, 2], dtype=np.uint8), True),
        ("count", np.array([1, 2**63], dtype=np.uint64), False),
        ("count", np.array([1.0, 2.0]), False),
        ("member", np.array([1, 0]), False),
        ("member", np.array([True, False]), True),
        ("note", np.array(["a", "b"], dtype=object), False),
    ],
)
def test_numpy_columns_the_full_path_would_change_or_refuse_are_its_own(
    column: str, array: Any, fast: bool
) -> None:
    data = _tensor_columns(_records(2))
    data[column] = array
    assert (_decoded(data) is not None) is fast
    _same(data)


@pytest.mark.parametrize("rows", [1, 5, 40])  # a few values are looked at in Python
def test_a_nan_in_a_numpy_column_that_refuses_nulls_is_the_full_paths(rows: int) -> None:
    data = _tensor_columns(_records(rows))
    assert _decoded(data) is not None
    data["size"] = data["size"].copy()
    data["size"][-1] = np.nan
    assert _decoded(data) is None
    assert _same(data)[0] == "error"


# -- pandas' text dtypes -------------------------------------------------------------------


@pytest.fixture(params=["str", "string"])
def text_columns(request: pytest.FixtureRequest) -> Iterator[tuple[ColumnSpec, ...]]:
    """The signature with its text columns in pandas' ``str`` dtype (pandas 3's default;
    pandas 2.3 reads the name so with ``future.infer_string``) or ``string``."""
    columns = tuple(
        dataclasses.replace(c, pandas_dtype=request.param) if c.dtype == "string" else c
        for c in COLUMNS
    )
    with text_as(request.param):
        assert isinstance(pd.api.types.pandas_dtype(request.param), pd.StringDtype)
        yield columns


def test_text_of_pandas_text_dtypes_takes_the_fast_path_with_the_full_paths_answer(
    text_columns: tuple[ColumnSpec, ...],
) -> None:
    records = _records(3)
    columns = {name: [record[name] for record in records] for name in ROW}
    for data in (records, columns, records[:1], _tensor_columns(records)):
        assert _validators(columns=text_columns)[0]._plain.decode(data) is not None  # type: ignore[union-attr]
        assert _same(data, columns=text_columns)[0] == "ok"
        _same(data, "array", text_columns)
    frame = _validators(columns=text_columns)[0].validate(records).data
    assert all(
        isinstance(frame[c.name].dtype, pd.StringDtype) for c in text_columns if c.dtype == "string"
    )
    for column, value in [("color", None), ("tier", None), ("plan", None), ("note", 1),
                          ("color", "teal"), ("plan", "team"), ("tier", "c")]:  # fmt: skip
        changed = [{**records[0], column: value}, records[1]]
        _same(changed, columns=text_columns)
        _same({name: [r[name] for r in changed] for name in ROW}, columns=text_columns)


def test_text_of_pandas_text_dtypes_is_typed_once_per_batch(
    text_columns: tuple[ColumnSpec, ...],
) -> None:
    """Requests' text columns are object arrays (nulls NaN) until the batch's DataFrame gives
    them their dtype, whichever path validated them; the batch equals its requests'."""
    fast, full = _validators(columns=text_columns)
    requests = [_records(1), [{**ROW, "color": None}], _records(2)]
    parts = [fast.validate(requests[0], as_columns=True).data,
             full.validate(requests[1], as_columns=True).data,
             fast.validate(requests[2], as_columns=True).data]  # fmt: skip
    for part in parts:
        assert all(type(array) is np.ndarray for array in part.arrays)
    assert parts[1].arrays[3][0] is not None
    assert np.isnan(parts[1].arrays[3][0])
    joined = FrameColumns.join(parts)
    expected = pd.concat([full.validate(r).data for r in requests], ignore_index=True)
    pd.testing.assert_frame_equal(joined.frame(), expected)
    pd.testing.assert_frame_equal(joined.rows_in(1, 2).frame(), full.validate(requests[1]).data)
