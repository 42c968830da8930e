from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import InvalidRequestError
from dockyard.schema import (
    STRING_CATEGORY_LIMIT,
    ColumnSpec,
    OutputSpec,
    Signature,
    infer_output,
    infer_signature,
)


def json_round_trip(signature: Signature) -> Signature:
    text = json.dumps(signature.to_dict(), allow_nan=False)
    return Signature.from_dict(json.loads(text))


def infer(sample: pd.DataFrame, **kwargs: Any) -> Signature:
    options: dict[str, Any] = {
        "layout": "frame",
        "predictions": None,
        "classes": None,
        "has_proba": False,
    }
    options.update(kwargs)
    return infer_signature(sample, **options)


def test_penguin_columns_are_inferred(penguins: tuple[pd.DataFrame, pd.Series]) -> None:
    x, y = penguins
    signature = infer(x, predictions=y.to_numpy())
    assert signature.column_names == tuple(x.columns)
    island = signature.column("island")
    expected = ("string", str(x["island"].dtype), False)  # "str" on pandas 3, "object" on 2
    assert (island.dtype, island.pandas_dtype, island.nullable) == expected
    assert island.categories == ("Biscoe", "Dream", "Torgersen")
    assert island.unseen == "reject"
    sex = signature.column("sex")
    assert sex.nullable is True
    assert sex.categories == ("female", "male")
    bill = signature.column("bill_length_mm")
    assert (bill.dtype, bill.pandas_dtype, bill.nullable) == ("float", "float64", True)
    assert (bill.minimum, bill.maximum) == (32.1, 59.6)
    year = signature.column("year")
    assert (year.dtype, year.pandas_dtype, year.nullable) == ("integer", "int64", False)
    assert (year.minimum, year.maximum) == (2007.0, 2009.0)
    assert signature.output == OutputSpec(
        "classification", ("Adelie", "Chinstrap", "Gentoo"), False, "object"
    )


def test_every_dtype_kind_is_recognised_and_survives_json() -> None:
    sample = pd.DataFrame(
        {
            "f32": np.array([1.5, 2.5, 3.5], dtype=np.float32),
            "nullable_int": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, True],
            "nullable_flag": pd.array([True, None, False], dtype="boolean"),
            "object_text": pd.Series(["a", "b", None], dtype=object),
            "python_text": pd.Series(["a", "b", "a"], dtype="string"),
            "ordered": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "codes": pd.Categorical([3, 1, 3]),
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
            "when_utc": pd.to_datetime(["2024-01-01T10:00Z"] * 3),
            "object_ints": pd.Series([1, 2, 3], dtype=object),
        }
    )
    signature = infer(sample)
    kinds = {column.name: (column.dtype, column.pandas_dtype) for column in signature.columns}
    assert kinds == {
        "f32": ("float", "float32"),
        "nullable_int": ("integer", "Int64"),
        "flag": ("boolean", "bool"),
        "nullable_flag": ("boolean", "boolean"),
        "object_text": ("string", "object"),
        "python_text": ("string", "string"),
        "ordered": ("category", "category"),
        "codes": ("category", "category"),
        "when": ("datetime", str(sample["when"].dtype)),
        "when_utc": ("datetime", str(sample["when_utc"].dtype)),
        "object_ints": ("integer", "object"),
    }
    ordered = signature.column("ordered")
    assert ordered.categories == ("lo", "hi")  # the dtype's order, not sorted
    assert ordered.ordered is True
    assert signature.column("codes").categories == (1, 3)
    assert signature.column("codes").categories_dtype == "int64"
    assert json_round_trip(signature) == signature


def test_many_distinct_strings_are_free_text() -> None:
    sample = pd.DataFrame({"comment": [f"text {i}" for i in range(STRING_CATEGORY_LIMIT + 1)]})
    column = infer(sample).column("comment")
    assert column.categories is None
    assert column.unseen == "allow"
    few = infer(sample.head(STRING_CATEGORY_LIMIT)).column("comment")
    assert few.categories is not None
    assert len(few.categories) == STRING_CATEGORY_LIMIT


def test_classes_and_numpy_scalars_become_json_values(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, y = cancer
    signature = infer(
        x, predictions=y.to_numpy(), classes=np.array([0, 1]), has_proba=True, layout="array"
    )
    assert signature.output == OutputSpec("classification", (0, 1), True, "int64")
    assert type(signature.output.classes[0]) is int  # type: ignore[index]
    assert signature.layout == "array"
    restored = json_round_trip(signature)
    assert restored == signature
    assert restored.column_names == tuple(x.columns)


@pytest.mark.parametrize(
    ("predictions", "classes", "has_proba", "kind", "expected_classes"),
    [
        (np.array([0.5, 1.5]), None, False, "regression", None),
        (np.array(["yes", "no", "yes"]), None, False, "classification", ("no", "yes")),
        (np.array([True, False]), None, False, "classification", (False, True)),
        (np.array([2, 0, 1]), None, True, "classification", (0, 1, 2)),
        (np.array([2, 0, 1]), None, False, "other", None),  # counts or labels: cannot tell
        (np.array([[0.1, 0.9]]), None, False, "regression", None),
        (None, ["a", "b"], True, "classification", ("a", "b")),
        (None, None, False, "other", None),
    ],
)
def test_output_kind_is_conservative(
    predictions: Any,
    classes: Any,
    has_proba: bool,
    kind: str,
    expected_classes: tuple[Any, ...] | None,
) -> None:
    output = infer_output(predictions, classes, has_proba)
    assert output.kind == kind
    assert output.classes == expected_classes


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        (pd.DataFrame(), "empty"),
        (pd.DataFrame({"a": pd.Series([], dtype=float)}), "empty"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "repeated column names"),
        (pd.DataFrame({"a": pd.Series([1, "x"], dtype=object)}), "mixed or unsupported"),
        (pd.DataFrame({"a": pd.to_timedelta([1, 2], unit="s")}), "unsupported dtype"),
    ],
)
def test_unusable_samples_are_refused(sample: pd.DataFrame, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as caught:
        infer(sample)
    assert caught.value.hint


def test_sample_must_be_a_dataframe() -> None:
    with pytest.raises(InvalidRequestError, match="must be a DataFrame"):
        infer(np.zeros((2, 2)))  # type: ignore[arg-type]


def test_non_finite_ranges_are_left_out_and_json_stays_strict() -> None:
    sample = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 2.0]})
    column = infer(sample).column("x")
    assert (column.minimum, column.maximum) == (1.0, 2.0)
    constant = infer(pd.DataFrame({"x": [np.inf, np.nan]})).column("x")
    assert (constant.minimum, constant.maximum) == (None, None)
    json.dumps(infer(sample).to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"columns": [], "output": {"kind": "clustering", "classes": None, "has_proba": False,
                                   "dtype": "int64"}, "layout": "frame"},
        {"columns": [{"name": "a"}], "output": {}, "layout": "frame"},
        {"columns": [], "output": {"kind": "other", "classes": None, "has_proba": False,
                                   "dtype": "x"}, "layout": "tensor"},
    ],
)  # fmt: skip
def test_malformed_signature_dicts_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="malformed signature"):
        Signature.from_dict(broken)


def test_column_lookup_by_name() -> None:
    spec = ColumnSpec("a", "float", "float64", False)
    signature = Signature((spec,), OutputSpec("other", None, False, "float64"), "frame")
    assert signature.column("a") is spec
    with pytest.raises(KeyError):
        signature.column("b")
