"""One v2 JSON tensor per column, decoded together (``ColumnBlock``): the same tensors and
the same tabular input as decoding them one by one, and anything outside the plain case
decoded (or refused) by the per-input path exactly as before."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from dockyard.errors import InvalidRequestError, SchemaValidationError
from dockyard.server.protocols import v2

NAMES = ["a", "b", "c"]


def _body(inputs: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"inputs": inputs})


def _columns(values: dict[str, list[Any]], datatype: str = "FP64", shape: Any = None) -> bytes:
    return _body(
        [
            {"name": n, "shape": shape or [len(v)], "datatype": datatype, "data": v}
            for n, v in values.items()
        ]
    )


@pytest.mark.parametrize("shape", [None, [2, 1]])
def test_plain_columns_decode_as_one_block_with_the_same_tensors(shape: Any) -> None:
    request = v2.decode_request(
        _columns({"a": [1.5, 2], "b": [3, -4.25], "c": [0, 1e300]}, shape=shape)
    )

    assert isinstance(request.inputs, v2.ColumnBlock)
    tensors = list(request.inputs)
    assert [t.name for t in tensors] == NAMES
    assert all(t.datatype == "FP64" and t.shape == tuple(shape or [2]) for t in tensors)
    assert tensors[1].data.reshape(-1).tolist() == [3.0, -4.25]
    assert tensors[2].data.dtype == np.float64
    assert [t.name for t in request.inputs[1:]] == ["b", "c"]


def test_a_block_is_the_model_input_in_the_models_column_order() -> None:
    same = v2.decode_request(_columns({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]}))
    other = v2.decode_request(_columns({"c": [5.0, 6.0], "a": [1.0, 2.0], "b": [3.0, 4.0]}))

    expected = [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
    assert v2.tabular_input(same, NAMES).tolist() == expected  # type: ignore[union-attr]
    assert v2.tabular_input(other, NAMES).tolist() == expected  # type: ignore[union-attr]


def test_a_block_that_is_not_the_models_columns_lists_every_problem() -> None:
    request = v2.decode_request(_columns({"a": [1.0], "b": [2.0], "z": [3.0]}))

    with pytest.raises(SchemaValidationError) as caught:
        v2.tabular_input(request, NAMES)

    messages = [p["message"] for p in caught.value.details["problems"]]
    assert any("'z' is not a column" in m for m in messages)
    assert any("missing column 'c'" in m for m in messages)


def test_fp32_columns_keep_their_dtype() -> None:
    request = v2.decode_request(_columns({"a": [1.5], "b": [2.5]}, datatype="FP32"))

    assert isinstance(request.inputs, v2.ColumnBlock)
    assert request.inputs[0].data.dtype == np.float32


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        # a boolean where a number goes: refused by the per-input path, as before
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [True]}], "FP64 data in JSON"),
        # the same name twice
        ([{"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}], "more than once"),
        # past FP32's range
        ([{"name": "a", "shape": [1], "datatype": "FP32", "data": [1e300]}], "out of range"),
        # a count that does not match the shape
        ([{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0, 2.0]}], "2 values"),
        # a dimension that equals the first input's but is not an integer
        ([{"name": "a", "shape": [1.0], "datatype": "FP64", "data": [1.0]}], "list of integers"),
        ([{"name": "a", "shape": [True], "datatype": "FP64", "data": [1.0]}], "list of integers"),
    ],
)
def test_what_the_block_does_not_take_is_refused_as_before(
    inputs: list[dict[str, Any]], error: str
) -> None:
    body = _body([{"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}, *inputs])

    with pytest.raises(InvalidRequestError, match=error):
        v2.decode_request(body)


@pytest.mark.parametrize(
    "odd",
    [
        {"name": "a", "shape": [1], "datatype": "FP64", "data": [None]},  # null: NaN
        {"name": "a", "shape": [1], "datatype": "FP32", "data": [1.0]},  # another datatype
        {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0], "parameters": {}},
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
    ],
)
def test_other_inputs_decode_one_by_one_as_before(odd: dict[str, Any]) -> None:
    request = v2.decode_request(
        _body([{"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}, odd])
    )

    assert isinstance(request.inputs, tuple)
    assert [t.name for t in request.inputs] == ["b", "a"]


def _binary(
    values: dict[str, list[float]], datatype: str = "FP64", sizes: dict[str, int] | None = None
) -> tuple[bytes, int]:
    dtype = "<f8" if datatype == "FP64" else "<f4"
    blobs = {n: np.asarray(v, dtype=dtype).tobytes() for n, v in values.items()}
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": n,
                    "shape": [len(v)],
                    "datatype": datatype,
                    "parameters": {"binary_data_size": (sizes or {}).get(n, len(blobs[n]))},
                }
                for n, v in values.items()
            ]
        }
    )
    return header + b"".join(blobs.values()), len(header)


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_plain_binary_columns_decode_as_one_block(datatype: str) -> None:
    body, length = _binary({"b": [3.0, 4.0], "a": [1.0, 2.0], "c": [5.0, np.nan]}, datatype)

    request = v2.decode_request(body, header_length=length)

    assert isinstance(request.inputs, v2.ColumnBlock)
    assert request.inputs[1].data.tolist() == [1.0, 2.0]
    rows = v2.tabular_input(request, NAMES)
    assert rows.tolist()[0] == [1.0, 3.0, 5.0]  # type: ignore[union-attr]
    assert np.isnan(rows[1, 2])  # type: ignore[call-overload]


def test_binary_columns_with_sizes_that_do_not_add_up_are_refused_as_before() -> None:
    body, length = _binary({"a": [1.0], "b": [2.0]}, sizes={"a": 16})

    with pytest.raises(InvalidRequestError, match="binary_data_size 16"):
        v2.decode_request(body, header_length=length)
    plain, length = _binary({"a": [1.0], "b": [2.0]})
    with pytest.raises(InvalidRequestError, match="bytes after the binary data"):
        v2.decode_request(plain + b"\0" * 8, header_length=length)


@pytest.mark.parametrize("dimension", [1.0, True])
def test_a_binary_column_whose_shape_is_not_integers_is_refused_as_before(dimension: Any) -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": n, "shape": [d], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
                for n, d in (("a", 1), ("b", dimension))
            ]
        }
    )
    body = header + np.asarray([1.0, 2.0], dtype="<f8").tobytes()

    with pytest.raises(InvalidRequestError, match="list of integers"):
        v2.decode_request(body, header_length=len(header))


MIXED = {
    "f": ("FP64", [1.5, 2]),
    "n": ("INT64", [3, -4]),
    "b": ("BOOL", [True, False]),
    "s": ("BYTES", ["red", ""]),
    "h": ("FP32", [0.5, 1]),
    "i": ("INT32", [7, 8]),
    "g": ("FP64", [-1, 0.25]),
}


def _mixed(shape: Any = None, **changes: Any) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": shape or [2], "datatype": d, "data": changes.get(n, v)}
        for n, (d, v) in MIXED.items()
    ]


@pytest.mark.parametrize("shape", [None, [2, 1]])
def test_plain_columns_of_several_datatypes_decode_as_each_alone(shape: Any) -> None:
    """One numpy call per datatype, the same tensors as the per-input path makes (a request
    of one input takes that path)."""
    inputs = _mixed(shape)
    together = v2.decode_request(_body(inputs)).inputs

    assert type(together) is tuple
    for tensor, item in zip(together, inputs, strict=True):
        (alone,) = v2.decode_request(_body([item])).inputs
        assert (tensor.name, tensor.datatype, tensor.shape) == (
            alone.name, alone.datatype, alone.shape)  # fmt: skip
        assert tensor.parameters == alone.parameters
        assert tensor.data.dtype == alone.data.dtype
        np.testing.assert_array_equal(tensor.data, alone.data, strict=True)
    # one numpy call per datatype: its columns are views of one array
    assert together[0].data.base is not None
    assert together[0].data.base is together[-1].data.base
    columns = v2.tabular_input(v2.decode_request(_body(inputs)), list(MIXED))
    assert columns["s"] == ["red", None]  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("n", [True, 1], "INT64 data in JSON"),
        ("n", [1.5, 1], "INT64 data in JSON"),
        ("n", [2**63, 1], "out of range"),
        ("i", [2**40, 1], "out of range"),
        ("b", [1, 0], "BOOL data in JSON"),
        ("s", [1, "a"], "BYTES data in JSON"),
        ("f", ["1.5", 1], "FP64 data in JSON"),
        ("h", [1e300, 1], "out of range"),
        ("f", [1.0], "1 values"),
    ],
)
def test_mixed_columns_the_block_does_not_take_are_refused_as_before(
    name: str, value: list[Any], error: str
) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        v2.decode_request(_body(_mixed(**{name: value})))


def test_a_null_in_a_mixed_request_decodes_one_by_one_as_before() -> None:
    request = v2.decode_request(_body(_mixed(f=[None, 1.0])))

    assert np.isnan(request.inputs[0].data[0])
    assert request.inputs[1].data.tolist() == [3, -4]


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_many_values_of_flags_decode_in_bulk_and_a_boolean_among_them_is_refused(
    datatype: str,
) -> None:
    """Columns of many values go to numpy without a scan of every value's type; 0 and 1
    (which numpy would also make of ``false`` and ``true``) are checked one by one."""
    rng = np.random.default_rng(0)
    values = {
        "a": rng.integers(0, 2, size=40).tolist(),  # flags, as integers
        "b": rng.integers(0, 2, size=40).astype(float).tolist(),  # and as floats
        "c": rng.normal(size=40).tolist(),
    }
    request = v2.decode_request(_columns(values, datatype=datatype))
    assert isinstance(request.inputs, v2.ColumnBlock)
    for tensor, (name, column) in zip(request.inputs, values.items(), strict=True):
        (alone,) = v2.decode_request(_columns({name: column}, datatype=datatype)).inputs
        assert tensor.data.dtype == alone.data.dtype
        np.testing.assert_array_equal(tensor.data, alone.data, strict=True)

    values["b"][29] = True
    with pytest.raises(InvalidRequestError, match=f"{datatype} data in JSON"):
        v2.decode_request(_columns(values, datatype=datatype))
    tensor_2d = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [40, 3], "datatype": datatype,
                     "data": [list(row) for row in zip(*values.values(), strict=True)]}]}
    )  # fmt: skip
    with pytest.raises(InvalidRequestError, match=f"{datatype} data in JSON"):
        v2.decode_request(tensor_2d)
