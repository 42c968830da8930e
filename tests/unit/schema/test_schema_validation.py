from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dockyard.errors import SchemaValidationError
from dockyard.schema import (
    PROBLEM_LIMIT,
    ColumnSpec,
    OutputSpec,
    Signature,
    Validator,
    infer_signature,
)


def signature_of(sample: pd.DataFrame, layout: Any = "frame") -> Signature:
    return infer_signature(sample, layout=layout, predictions=None, classes=None, has_proba=False)


def problems_of(
    validator: Validator, data: Any
) -> tuple[SchemaValidationError, list[dict[str, Any]]]:
    with pytest.raises(SchemaValidationError) as caught:
        validator.validate(data)
    details = caught.value.details
    json.dumps(details, allow_nan=False)  # the error crosses the wire as JSON
    return caught.value, details["problems"]


def one_problem(validator: Validator, data: Any) -> dict[str, Any]:
    _, problems = problems_of(validator, data)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.fixture(scope="module")
def mixed_sample() -> pd.DataFrame:
    """One column of every kind Dockyard knows, some with nulls."""
    return pd.DataFrame(
        {
            "amount": [12.5, np.nan, 3.0, 8.25],
            "f32": np.array([1.5, 2.5, 3.5, 4.5], dtype=np.float32),
            "count": [1, 2, 3, 4],
            "maybe_count": pd.array([1, None, 3, 4], dtype="Int64"),
            "flag": [True, False, True, True],
            "maybe_flag": pd.array([True, None, False, True], dtype="boolean"),
            "city": ["Oslo", "Lima", None, "Oslo"],
            "object_city": pd.Series(["Oslo", "Lima", "Oslo", np.nan], dtype=object),
            "tier": pd.Categorical(["gold", "silver", "gold", None], categories=["silver", "gold"]),
            "level": pd.Categorical([3, 1, 3, 2]),
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
            "seen_utc": pd.to_datetime(["2024-01-01T10:00Z"] * 4),
        }
    )


# -- every input shape gives the frame the model was trained on ----------------------------


@pytest.mark.filterwarnings("ignore:Mismatched null-like values:FutureWarning")  # pandas 2
def test_records_columns_frame_and_json_rebuild_the_sample_exactly(
    mixed_sample: pd.DataFrame,
) -> None:
    validator = Validator(signature_of(mixed_sample))
    from_json = json.loads(mixed_sample.to_json(orient="records", date_format="iso"))
    inputs = {
        "records": mixed_sample.to_dict(orient="records"),
        "json records": from_json,
        "columns": mixed_sample.to_dict(orient="list"),
        "json columns": {c: [r[c] for r in from_json] for c in mixed_sample.columns},
        "frame": mixed_sample,
        "object frame": mixed_sample.astype(object),
    }
    for name, data in inputs.items():
        result = validator.validate(data)
        assert result.rows == 4, name
        pd.testing.assert_frame_equal(result.data, mixed_sample, obj=name)
        assert result.data.dtypes.equals(mixed_sample.dtypes), name


def test_penguin_inputs_of_every_shape_agree(penguins: tuple[pd.DataFrame, pd.Series]) -> None:
    x, _ = penguins
    head = x.head(20)
    validator = Validator(signature_of(x))
    records = validator.validate(head.to_dict(orient="records")).data
    columns = validator.validate({c: head[c].tolist() for c in head.columns}).data
    frame = validator.validate(head).data
    rows = validator.validate(head.to_numpy().tolist()).data
    array = validator.validate(head.to_numpy()).data
    for other in (columns, frame, rows, array):
        pd.testing.assert_frame_equal(records, other)
    pd.testing.assert_frame_equal(records, head)


def test_matching_frame_is_passed_through_untouched(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    validator = Validator(signature_of(x))
    assert validator.validate(x).data is x
    shuffled = x[list(reversed(x.columns))]
    out = validator.validate(shuffled).data
    assert list(out.columns) == list(x.columns)
    pd.testing.assert_frame_equal(out, x)
    subset = x.iloc[10:15]
    pd.testing.assert_index_equal(validator.validate(subset).data.index, pd.RangeIndex(5))


def test_single_record_and_series_row_are_one_row(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    validator = Validator(signature_of(x))
    record = x.iloc[0].to_dict()
    from_record = validator.validate(record)
    assert from_record.rows == 1
    pd.testing.assert_frame_equal(from_record.data, x.head(1))
    pd.testing.assert_frame_equal(validator.validate(x.iloc[0]).data, x.head(1))


def test_array_layout_gives_float64_in_column_order(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = cancer
    validator = Validator(signature_of(x, layout="array"))
    head = x.head(7)
    expected = head.to_numpy()
    for data in (head, head.to_dict(orient="records"), head.to_dict(orient="list"), expected):
        out = validator.validate(data).data
        assert isinstance(out, np.ndarray)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, expected)
    assert validator.validate(expected).data is expected  # already right: no copy


def test_array_layout_keeps_a_shared_dtype_and_falls_back_to_object() -> None:
    f32 = pd.DataFrame({"a": np.array([1, 2], np.float32), "b": np.array([3, 4], np.float32)})
    out = Validator(signature_of(f32, "array")).validate([[1.0, 2.0]]).data
    assert out.dtype == np.float32
    mixed = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "c": [True, False]})
    out = Validator(signature_of(mixed, "array")).validate([{"a": 1, "b": 2.5, "c": True}]).data
    np.testing.assert_array_equal(out, np.array([[1.0, 2.5, 1.0]]))
    assert out.dtype == np.float64
    text = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    out = Validator(signature_of(text, "array")).validate({"a": [1], "b": ["y"]}).data
    assert out.dtype == object
    assert out.tolist() == [[1.0, "y"]]


def test_frame_without_column_names_is_taken_by_position(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = cancer
    validator = Validator(signature_of(x))
    unnamed = pd.DataFrame(x.head(3).to_numpy())
    pd.testing.assert_frame_equal(validator.validate(unnamed).data, x.head(3))


def test_values_are_converted_to_the_column_dtype() -> None:
    sample = pd.DataFrame({"price": [1.5, 2.5], "units": [1, 2], "small": np.array([1, 2], "int8")})
    validator = Validator(signature_of(sample))
    out = validator.validate(
        {"price": [3, 4], "units": [3.0, np.int64(4)], "small": np.array([5.0, 6.0])}
    ).data
    assert out.dtypes.equals(sample.dtypes)
    assert out["price"].tolist() == [3.0, 4.0]
    assert out["units"].tolist() == [3, 4]
    frame = pd.DataFrame({"price": [3, 4], "units": [5.0, 6.0], "small": [7, 8]})
    assert validator.validate(frame).data.dtypes.equals(sample.dtypes)


def test_nulls_in_a_nullable_integer_column_make_it_float64() -> None:
    sample = pd.DataFrame({"units": [1, 2], "flag": [True, False]})
    lenient = Signature(
        tuple(
            ColumnSpec(c.name, c.dtype, c.pandas_dtype, True) for c in signature_of(sample).columns
        ),
        OutputSpec("other", None, False, "unknown"),
        "frame",
    )
    out = Validator(lenient).validate([{"units": None, "flag": None}, {"units": 3, "flag": True}])
    assert out.data["units"].dtype == np.float64
    assert np.isnan(out.data["units"][0])
    assert out.data["flag"].dtype == object
    assert out.data["flag"].tolist()[1] is True


def test_unseen_categories_allowed_by_policy_become_nan_in_category_columns(
    mixed_sample: pd.DataFrame,
) -> None:
    signature = signature_of(mixed_sample)
    allowing = Signature(
        tuple(
            ColumnSpec(**{**c.to_dict(), "unseen": "allow", "categories": c.categories})
            for c in signature.columns
        ),
        signature.output,
        "frame",
    )
    record = mixed_sample.head(1).to_dict(orient="records")[0]
    record.update(tier="platinum", city="Paris", level=99)
    out = Validator(allowing).validate(record).data
    assert pd.isna(out["tier"][0])
    assert out["tier"].dtype == mixed_sample["tier"].dtype
    assert pd.isna(out["level"][0])
    assert out["city"][0] == "Paris"
    assert out.dtypes.equals(mixed_sample.dtypes)


def test_category_frame_with_other_category_order_is_recoded(mixed_sample: pd.DataFrame) -> None:
    validator = Validator(signature_of(mixed_sample))
    other_order = mixed_sample.copy()
    other_order["tier"] = other_order["tier"].cat.reorder_categories(["gold", "silver"])
    out = validator.validate(other_order).data
    assert list(out["tier"].cat.categories) == ["silver", "gold"]
    assert out["tier"].tolist()[:2] == ["gold", "silver"]
    pd.testing.assert_frame_equal(out, mixed_sample)


# -- problems ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguin_validator(penguins: tuple[pd.DataFrame, pd.Series]) -> Validator:
    return Validator(signature_of(penguins[0]))


def penguin(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "island": "Biscoe",
        "bill_length_mm": 45.1,
        "bill_depth_mm": 14.5,
        "flipper_length_mm": 215.0,
        "body_mass_g": 5000.0,
        "sex": "female",
        "year": 2008,
    }
    record.update(changes)
    return {key: value for key, value in record.items() if value is not ...}


def test_valid_penguin_passes(penguin_validator: Validator) -> None:
    assert penguin_validator.validate([penguin()]).rows == 1


@pytest.mark.parametrize(
    ("change", "column", "expected", "got"),
    [
        ({"bill_length_mm": "abc"}, "bill_length_mm", "a number", "'abc' (string)"),
        ({"bill_length_mm": True}, "bill_length_mm", "a number", "True (boolean)"),
        ({"bill_length_mm": [1.0]}, "bill_length_mm", "a number", "[1.0] (array)"),
        ({"year": 2008.5}, "year", "an integer", "2008.5 (float)"),
        ({"year": "2008"}, "year", "an integer", "'2008' (string)"),
        ({"year": None}, "year", "an integer, not null", "null"),
        ({"year": float("nan")}, "year", "an integer, not null", "null"),
        ({"island": None}, "island", "a string, not null", "null"),
        ({"island": 3}, "island", "a string", "3 (integer)"),
        ({"island": {"a": 1}}, "island", "a string", "{'a': 1} (object)"),
        ({"island": "Atlantis"}, "island", "one of 'Biscoe', 'Dream', 'Torgersen'",
         "'Atlantis' (string)"),
        ({"sex": "unknown"}, "sex", "one of 'female', 'male'", "'unknown' (string)"),
    ],
)  # fmt: skip
def test_each_problem_names_row_column_expected_and_got(
    penguin_validator: Validator,
    change: dict[str, Any],
    column: str,
    expected: str,
    got: str,
) -> None:
    problem = one_problem(penguin_validator, [penguin(), penguin(**change)])
    assert problem["row"] == 1
    assert problem["column"] == column
    assert problem["expected"] == expected
    assert problem["got"] == got
    assert problem["message"].startswith(f"row 1: {column!r}")


def test_integral_floats_are_integers_and_ints_are_floats(penguin_validator: Validator) -> None:
    out = penguin_validator.validate([penguin(year=2009.0, body_mass_g=4000)]).data
    assert out["year"].tolist() == [2009]
    assert out["year"].dtype == np.int64
    assert out["body_mass_g"].tolist() == [4000.0]


def test_missing_key_in_some_records_is_a_null(penguin_validator: Validator) -> None:
    out = penguin_validator.validate([penguin(), penguin(sex=...)]).data
    assert pd.isna(out["sex"][1])
    problem = one_problem(penguin_validator, [penguin(), penguin(year=...)])
    assert (problem["row"], problem["column"], problem["got"]) == (1, "year", "null")


def test_missing_column_is_one_problem_without_a_row(penguin_validator: Validator) -> None:
    problem = one_problem(penguin_validator, [penguin(island=...), penguin(island=...)])
    assert problem == {
        "row": None,
        "column": "island",
        "expected": "a column 'island' (a string)",
        "got": "missing",
        "message": "missing column 'island'",
    }


def test_every_problem_is_reported_at_once(penguin_validator: Validator) -> None:
    error, problems = problems_of(
        penguin_validator,
        [
            penguin(island="Atlantis", year=1.5),
            penguin(),
            penguin(bill_depth_mm="deep", sex=7, flipper_length_mm=...),
            "not a record",
        ],
    )
    found = [(p["row"], p["column"]) for p in problems]
    assert found == [
        (0, "island"),
        (0, "year"),
        (2, "bill_depth_mm"),
        (2, "sex"),
        (3, None),
    ]
    assert error.details["total"] == 5
    assert error.message.startswith("5 problems in the input: row 0: 'island' has the unseen")
    assert error.hint is not None
    assert "'island'" in error.hint
    assert error.code == "schema_validation"


def test_problems_are_capped_but_all_counted(penguin_validator: Validator) -> None:
    bad = [penguin(year="x", island="Mars") for _ in range(300)]
    error, problems = problems_of(penguin_validator, bad)
    assert error.details["total"] == 600
    assert error.details["shown"] == len(problems) == PROBLEM_LIMIT
    assert [(p["row"], p["column"]) for p in problems[:3]] == [
        (0, "island"),
        (0, "year"),
        (1, "island"),
    ]
    assert problems[-1]["row"] == PROBLEM_LIMIT // 2 - 1


def test_extra_columns_are_ignored_with_a_note(penguin_validator: Validator) -> None:
    result = penguin_validator.validate([penguin(name="Pingu"), penguin(colour="black")])
    assert result.notes == ("ignored extra column 'colour'", "ignored extra column 'name'")
    assert "name" not in result.data.columns
    frame = pd.DataFrame([penguin(name="Pingu")])
    assert penguin_validator.validate(frame).notes == ("ignored extra column 'name'",)
    error, _ = problems_of(penguin_validator, [penguin(name="x", year="y")])
    assert error.details["notes"] == ["ignored extra column 'name'"]


def test_many_extra_columns_are_summarised(penguin_validator: Validator) -> None:
    record = penguin(**{f"extra{i:02}": i for i in range(25)})
    notes = penguin_validator.validate(record).notes
    assert len(notes) == 21
    assert notes[-1] == "ignored 5 more extra columns"


@pytest.mark.parametrize("empty", [[], {}, pd.DataFrame(columns=["island"]), np.zeros((0, 7))])
def test_empty_input_is_refused(penguin_validator: Validator, empty: Any) -> None:
    problem = one_problem(penguin_validator, empty)
    assert problem["expected"] == "at least one row"
    assert problem["got"] == "0 rows"


def test_ragged_columns_are_reported_and_types_still_checked(
    penguin_validator: Validator,
) -> None:
    columns = {name: [value] * 3 for name, value in penguin().items()}
    columns["sex"] = ["male"]
    columns["year"] = [2008, 2008, "soon"]
    _error, problems = problems_of(penguin_validator, columns)
    assert [(p["row"], p["column"]) for p in problems] == [(None, "sex"), (2, "year")]
    assert problems[0]["got"] == "1 values"
    assert problems[0]["expected"] == "3 values (like the other columns)"


def test_scalar_in_a_columns_dict_is_reported(penguin_validator: Validator) -> None:
    columns: dict[str, Any] = {name: [value] for name, value in penguin().items()}
    columns["year"] = 2008
    problem = one_problem(penguin_validator, columns)
    assert (problem["column"], problem["expected"]) == ("year", "a list of values")


def test_wrong_array_width_is_reported(penguin_validator: Validator) -> None:
    problem = one_problem(penguin_validator, np.zeros((3, 5)))
    assert problem["expected"] == "7 values per row"
    assert problem["got"] == "5 values"
    assert problem["row"] is None


def test_rows_of_the_wrong_width_are_reported_by_row(penguin_validator: Validator) -> None:
    good = list(penguin().values())
    _, problems = problems_of(penguin_validator, [good, good[:6], [*good[:3], "x", *good[4:]]])
    assert [(p["row"], p["column"], p["got"]) for p in problems] == [
        (1, None, "6 values"),
        (2, "flipper_length_mm", "'x' (string)"),
    ]


@pytest.mark.parametrize("data", ["text", 42, [1, 2, 3], np.zeros((2, 2, 2)), None])
def test_unsupported_input_shapes_are_reported(penguin_validator: Validator, data: Any) -> None:
    problem = one_problem(penguin_validator, data)
    assert problem["row"] is None
    assert problem["column"] is None


def test_bool_is_not_a_number_in_arrays_either() -> None:
    sample = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    validator = Validator(signature_of(sample))
    _, problems = problems_of(validator, {"a": np.array([True, False]), "b": np.array([1, 2])})
    assert [(p["row"], p["column"]) for p in problems] == [(0, "a"), (1, "a")]


def test_nan_in_a_non_nullable_frame_column_is_found_vectorised(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = cancer
    validator = Validator(signature_of(x, layout="array"))
    holes = x.head(50).copy()
    holes.iloc[[3, 40], 2] = np.nan
    _, problems = problems_of(validator, holes)
    assert [(p["row"], p["column"]) for p in problems] == [(3, x.columns[2]), (40, x.columns[2])]
    _, problems = problems_of(validator, holes.to_numpy())
    assert [p["row"] for p in problems] == [3, 40]


def test_object_frame_column_with_non_strings_is_checked(penguin_validator: Validator) -> None:
    frame = pd.DataFrame([penguin(), penguin()]).astype({"island": object})
    frame.loc[1, "island"] = 5
    problem = one_problem(penguin_validator, frame)
    assert (problem["row"], problem["column"], problem["got"]) == (1, "island", "5 (integer)")


def test_datetime_problems(mixed_sample: pd.DataFrame) -> None:
    validator = Validator(signature_of(mixed_sample))
    records = mixed_sample.head(3).to_dict(orient="records")
    records[0]["seen"] = "not a date"
    records[1]["seen_utc"] = "2024-01-01T10:00"  # no time zone, the column has one
    records[2]["seen"] = 1700000000
    _, problems = problems_of(validator, records)
    assert [(p["row"], p["column"], p["expected"]) for p in problems] == [
        (0, "seen", "a datetime without time zone"),
        (1, "seen_utc", "a datetime with time zone"),
        (2, "seen", "a datetime"),
    ]


def test_values_outside_the_seen_range_are_accepted(penguin_validator: Validator) -> None:
    out = penguin_validator.validate([penguin(body_mass_g=1e6, year=1990)]).data
    assert out["body_mass_g"][0] == 1e6


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("f32", np.nan, "a number, not null"),
        ("level", np.nan, "an integer category, not null"),
        ("seen_utc", pd.NaT, "a datetime, not null"),
        ("city", "Paris", "one of 'Lima', 'Oslo'"),
        ("object_city", "Paris", "one of 'Lima', 'Oslo'"),
        ("object_city", 12, "a string"),
        ("count", np.nan, "an integer, not null"),
    ],
)
def test_frames_with_the_sample_dtypes_are_still_fully_checked(
    mixed_sample: pd.DataFrame, column: str, value: Any, expected: str
) -> None:
    validator = Validator(signature_of(mixed_sample))
    frame = mixed_sample.copy()
    if column == "object_city":
        frame[column] = frame[column].astype(object)
    frame.loc[2, column] = value
    problem = one_problem(validator, frame)
    assert (problem["row"], problem["column"], problem["expected"]) == (2, column, expected)


def test_nullable_extension_dtypes_are_checked_in_frames() -> None:
    sample = pd.DataFrame({"n": pd.array([1, 2], dtype="Int64"), "x": [0.5, 1.5]})
    validator = Validator(signature_of(sample))
    holed = sample.copy()
    holed.loc[1, "n"] = pd.NA
    problem = one_problem(validator, holed)
    assert (problem["row"], problem["column"], problem["got"]) == (1, "n", "null")
    assert validator.validate(sample).data is sample


def test_integers_outside_the_column_dtype_are_refused_not_wrapped() -> None:
    sample = pd.DataFrame({"small": np.array([1, 2], dtype=np.int8), "big": [1, 2]})
    validator = Validator(signature_of(sample))
    _, problems = problems_of(
        validator, {"small": [300, 5.0, -129], "big": [2**64, 1, np.int64(7)]}
    )
    assert [(p["row"], p["column"], p["expected"]) for p in problems] == [
        (0, "small", "an integer from -128 to 127"),
        (0, "big", f"an integer from {-(2**63)} to {2**63 - 1}"),
        (2, "small", "an integer from -128 to 127"),
    ]
    assert validator.validate({"small": [127.0], "big": [2**62]}).data["small"].dtype == np.int8


def test_array_layout_from_a_frame_with_nullable_integers() -> None:
    sample = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "x": [0.5, 1.5]})
    validator = Validator(signature_of(sample, "array"))
    out = validator.validate(sample).data
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.array([[1.0, 0.5], [np.nan, 1.5]]))
    from_records = validator.validate(sample.to_dict(orient="records")).data
    np.testing.assert_array_equal(from_records, out)


@pytest.mark.filterwarnings("ignore:Mismatched null-like values:FutureWarning")  # pandas 2
def test_numpy_datetimes_arrow_tables_and_1d_rows_are_accepted(mixed_sample: pd.DataFrame) -> None:
    validator = Validator(signature_of(mixed_sample))
    columns: dict[str, Any] = mixed_sample.to_dict(orient="list")
    columns["seen"] = mixed_sample["seen"].to_numpy()  # datetime64, naive
    columns["seen_utc"] = mixed_sample["seen_utc"].dt.tz_localize(None).to_numpy()  # as UTC
    pd.testing.assert_frame_equal(validator.validate(columns).data, mixed_sample)
    arrow = pa.Table.from_pandas(mixed_sample, preserve_index=False)
    pd.testing.assert_frame_equal(validator.validate(arrow).data, mixed_sample)
    cancer_like = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    row = Validator(signature_of(cancer_like, "array")).validate(np.array([5.0, 6.0]))
    assert row.rows == 1
    np.testing.assert_array_equal(row.data, [[5.0, 6.0]])
