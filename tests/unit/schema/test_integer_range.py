"""Out-of-range integers are refused for the column's dtype, in every input path.

``age = 2**63`` in an int64 column answered 200 and the model received -2**63: the value
went through float64, where ``float(2**63 - 1)`` is ``2**63``, so the range check passed and
the cast wrapped. Every integer dtype (int8..int64, uint8..uint64, nullable Int64) refuses a
value outside its range, whether it arrives as a Python int, a float, a numpy array or a
v2 JSON/binary tensor, and the values inside the range reach the model exactly.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import InvalidRequestError, SchemaValidationError
from dockyard.schema.inference import infer_signature
from dockyard.schema.validation import Validator
from dockyard.server.protocols import v2

DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "Int64"]


def _validator(dtype: str, layout: str = "frame") -> Validator:
    ages = pd.array([1, 2, None if dtype == "Int64" else 3], dtype=dtype)  # Int64: nullable
    frame = pd.DataFrame({"age": ages, "x": [0.5, 1.5, 2.5]})
    if layout == "array":
        frame = frame[["age"]]
    signature = infer_signature(
        frame, layout=layout, predictions=np.zeros(3), classes=None, has_proba=False
    )
    return Validator(signature)


def _bounds(dtype: str) -> tuple[int, int]:
    info = np.iinfo(pd.api.types.pandas_dtype(dtype).numpy_dtype if dtype == "Int64" else dtype)
    return int(info.min), int(info.max)


def _shapes(value: Any) -> dict[str, Any]:
    """One row holding ``value`` as each v1 input shape."""
    return {
        "records": [{"age": value, "x": 1.0}],
        "record": {"age": value, "x": 1.0},
        "columns": {"age": [value], "x": [1.0]},
        "rows": [[value, 1.0]],
        "json": json.loads(json.dumps([{"age": value, "x": 1.0}])),
    }


def _age(out: Any) -> Any:
    return out.data["age"].iloc[0] if isinstance(out.data, pd.DataFrame) else out.data[0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_integers_outside_the_column_dtype_are_refused_in_every_v1_shape(dtype: str) -> None:
    low, high = _bounds(dtype)
    validator = _validator(dtype)
    outside = [high + 1, low - 1, 2**63, -(2**63) - 1, 2**64, 10**30, float(high) * 2]
    if high >= 2**53:
        outside.append(float(2**63 if dtype in ("int64", "Int64") else 2**64))  # == float(high)
    for value in outside:
        if low <= value <= high:
            continue
        for shape, data in _shapes(value).items():
            with pytest.raises(SchemaValidationError) as caught:
                validator.validate(data)
            problem = caught.value.details["problems"][0]
            assert problem["column"] == "age", (dtype, shape, value)
            assert "range" in problem["message"], problem


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_extremes_of_each_dtype_reach_the_model_exactly(dtype: str) -> None:
    low, high = _bounds(dtype)
    validator = _validator(dtype)
    for value in (low, high):
        for shape, data in _shapes(value).items():
            assert int(_age(validator.validate(data))) == value, (dtype, shape)


def test_nulls_beside_huge_integers_are_checked_exactly() -> None:
    nullable = _validator("Int64")
    out = nullable.validate([{"age": 2**63 - 1, "x": 1.0}, {"age": None, "x": 1.0}])
    assert out.data["age"].tolist() == [2**63 - 1, pd.NA]
    with pytest.raises(SchemaValidationError):
        nullable.validate([{"age": 2**63, "x": 1.0}, {"age": None, "x": 1.0}])


def test_a_numpy_array_of_floats_or_unsigned_integers_is_checked_too() -> None:
    validator = _validator("int64", layout="array")
    with pytest.raises(SchemaValidationError):
        validator.validate(np.array([[9.223372036854776e18]]))
    with pytest.raises(SchemaValidationError):
        validator.validate(np.array([[2**63]], dtype=np.uint64))
    assert int(_age(validator.validate(np.array([[2**62]], dtype=np.uint64)))) == 2**62
    frame = pd.DataFrame({"age": np.array([2**63], dtype=np.uint64), "x": [1.0]})
    with pytest.raises(SchemaValidationError):
        _validator("int64").validate(frame)


def _infer(datatype: str, value: Any) -> bytes:
    tensor = {"name": "input-0", "shape": [1, 2], "datatype": datatype, "data": [value, 1]}
    return json.dumps({"inputs": [tensor]}).encode()


@pytest.mark.parametrize("datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT64"])
def test_v2_json_tensors_outside_their_datatype_are_a_400(datatype: str) -> None:
    info = np.iinfo(v2.DATATYPES[datatype])
    for value in (int(info.max) + 1, int(info.min) - 1, 2**64):
        with pytest.raises(InvalidRequestError) as caught:
            v2.decode_request(_infer(datatype, value))
        assert caught.value.status == 400
        message = caught.value.message  # 2**64 is read as a float by the JSON parser
        assert "out of range" in message or "must be integers" in message, message


@pytest.mark.parametrize(
    ("datatype", "value"),
    [("UINT64", 2**63), ("FP64", 9.223372036854776e18), ("FP64", -1e19), ("INT64", 2**40)],
)
def test_v2_tensors_are_checked_against_the_columns_dtype(datatype: str, value: Any) -> None:
    validator = _validator("int32" if datatype == "INT64" else "int64")
    request = v2.decode_request(_infer(datatype, value))
    columns = v2.tabular_input(request, ["age", "x"])
    with pytest.raises(SchemaValidationError) as caught:
        validator.validate(columns)
    assert "range" in caught.value.details["problems"][0]["message"]


def test_floats_too_large_to_be_exact_integers_are_refused_in_64_bit_columns() -> None:
    """A JSON parser reads -2**63 - 1 as the float -2**63 (inside int64): a float that
    large no longer says which integer was meant, so it is refused; integers are exact."""
    validator = _validator("int64")
    for value in (-9.223372036854775808e18, 2.0**53, -(2.0**60)):
        with pytest.raises(SchemaValidationError) as caught:
            validator.validate([{"age": value, "x": 1.0}])
        assert "exact integer" in caught.value.details["problems"][0]["message"]
    assert int(_age(validator.validate([{"age": 2**53, "x": 1.0}]))) == 2**53
    assert int(_age(validator.validate([{"age": 2.0**52, "x": 1.0}]))) == 2**52
    assert int(_age(_validator("int32").validate([{"age": 2.0**31 - 1, "x": 1.0}]))) == 2**31 - 1
