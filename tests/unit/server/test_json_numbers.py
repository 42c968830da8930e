"""JSON requests of many numbers, read by simdjson (``JsonNumbers``): what it takes of v2
decodes exactly as the full decoder decodes it, what it takes of v1 is the values' arrays,
and what it does not take goes the whole way and is refused as before."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from _v2 import assert_same_request
from dockyard.errors import InvalidRequestError
from dockyard.schema.numeric_rows import ColumnValues
from dockyard.server.protocols.json_numbers import KEPT_BYTES, SMALL_BYTES, JsonNumbers
from dockyard.server.protocols.v2 import decode_request

X = np.random.default_rng(7).normal(size=(100, 20))


def _tensor(data: Any, shape: list[Any], datatype: str = "FP64", **extra: Any) -> bytes:
    item = {"name": "input-0", "shape": shape, "datatype": datatype, "data": data, **extra}
    return json.dumps({"inputs": [item]}).encode()


def _columns(datatypes: list[str], shape: list[int], nested: bool = False) -> bytes:
    inputs = [
        {
            "name": f"x{i}",
            "shape": shape,
            "datatype": datatype,
            "data": [[v] for v in X[:, i].tolist()] if nested else X[:, i].tolist(),
        }
        for i, datatype in enumerate(datatypes)
    ]
    return json.dumps({"inputs": inputs}).encode()


def _with(position: tuple[int, int], value: Any) -> list[list[Any]]:
    rows: list[list[Any]] = X.tolist()
    rows[position[0]][position[1]] = value
    return rows


TAKEN = {
    "2-D, one array a row": _tensor(X.tolist(), [100, 20]),
    "2-D, flat": _tensor(X.ravel().tolist(), [100, 20]),
    "2-D FP32": _tensor(X.tolist(), [100, 20], "FP32"),
    "integers in FP64": _tensor((X * 100).astype(int).tolist(), [100, 20]),
    "integers past int64, within uint64": _tensor(_with((0, 0), 2**64 - 1), [100, 20]),
    "an id, and brackets in it and a name": json.dumps(
        {
            "id": "a[b]",
            "inputs": [
                {"name": "in[0]", "shape": [100, 20], "datatype": "FP64", "data": X.tolist()}
            ],
        }
    ).encode(),
    "indented": json.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [100, 20], "datatype": "FP64", "data": X.tolist()}
            ]
        },
        indent=2,
    ).encode(),
    "rows of uneven length, the count right": _tensor(
        [X.ravel()[:1500].tolist(), X.ravel()[1500:].tolist()], [2000]
    ),
    "-0.0, the least subnormal, the largest double": _tensor(
        [-0.0, 5e-324, 1.7976931348623157e308, *X.ravel()[3:].tolist()], [2000]
    ),
    "columns": _columns(["FP64"] * 20, [100]),
    "columns [rows, 1]": _columns(["FP64"] * 20, [100, 1]),
    "columns [rows, 1], one array a row": _columns(["FP64"] * 20, [100, 1], nested=True),
    "columns of FP32 and FP64": _columns(["FP32", "FP64"] * 10, [100]),
}

REFUSED_BY_BOTH = {
    "an array in a row": _tensor(_with((3, 4), [0.5]), [100, 20]),
    "an array among flat values": _tensor([[0.5], *X.ravel()[1:].tolist()], [100, 20]),
    "a value among rows": _tensor([1.0, *X.tolist()[1:]], [100, 20]),
    "a value among rows, the arrays' count made up deeper": _tensor(
        [X.ravel()[:1997].tolist(), 3.0, [[4.0]]], [1999]
    ),
    "true": _tensor(_with((0, 0), True), [100, 20]),
    "a string": _tensor(_with((0, 0), "1"), [100, 20]),
    "too few values": _tensor(X.tolist(), [100, 21]),
    "columns a value short and a value more, as many in all": json.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [100], "datatype": "FP64", "data": X[:99, 0].tolist()},
                {"name": "b", "shape": [100], "datatype": "FP64", "data": [*X[:, 1], 0.5]},
                {"name": "c", "shape": [1], "datatype": "FP64", "data": [0.5]},
            ]
        }
    ).encode(),
    "rows a row short and a row more, as many in all": json.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [50, 20], "datatype": "FP64", "data": X[:49].tolist()},
                {"name": "b", "shape": [50, 20], "datatype": "FP64", "data": X[49:].tolist()},
            ]
        }
    ).encode(),
    "FP32 overflow": _tensor((X * 1e300).tolist(), [100, 20], "FP32"),
    "a float in the shape": _tensor(X.tolist(), [100.0, 20]),
    "true in the shape": _tensor(X.ravel().tolist(), [True, 2000]),
    "an empty name": json.dumps(
        {"inputs": [{"name": "", "shape": [100, 20], "datatype": "FP64", "data": X.tolist()}]}
    ).encode(),
    "a name twice": json.dumps(
        {
            "inputs": [
                {"name": "x", "shape": [100], "datatype": "FP64", "data": X[:, i].tolist()}
                for i in range(2)
            ]
        }
    ).encode(),
    "not an object": json.dumps([X.tolist()]).encode(),
    "data twice, no datatype": b'{"inputs": [{"name": "input-0", "shape": [100, 20], "data": '
    + json.dumps(X.tolist()).encode()
    + b', "data": '
    + json.dumps(X.tolist()).encode()
    + b"}]}",
}

DECODED_THE_WHOLE_WAY = {
    "null (NaN)": _tensor(_with((0, 0), None), [100, 20]),
    "a NaN literal": _tensor(_with((0, 0), float("nan")), [100, 20]),
    "an integer past 64 bits": _tensor(_with((0, 0), 10**30), [100, 20]),
    "parameters": _tensor(X.tolist(), [100, 20], parameters={"a": 1}),
    "INT64": _tensor((X * 100).astype(int).tolist(), [100, 20], "INT64"),
    "three dimensions": _tensor(X.reshape(10, 10, 20).tolist(), [10, 10, 20]),
    "requested outputs": json.dumps(
        {
            "inputs": [
                {"name": "input-0", "shape": [100, 20], "datatype": "FP64", "data": X.tolist()}
            ],
            "outputs": [{"name": "predict"}],
        }
    ).encode(),
    "data twice (the last wins)": b'{"inputs": [{"name": "input-0", "shape": [100, 20], '
    + b'"datatype": "FP64", "data": [], "data": '
    + json.dumps(X.tolist()).encode()
    + b"}]}",
    "a key twice": b'{"inputs": [], "inputs": '
    + json.dumps(
        [{"name": "input-0", "shape": [100, 20], "datatype": "FP64", "data": X.tolist()}]
    ).encode()
    + b"}",
}


@pytest.mark.parametrize("body", TAKEN.values(), ids=TAKEN.keys())
def test_what_it_takes_decodes_as_the_full_decoder_does(body: bytes) -> None:
    assert JsonNumbers().v2_request(body) is not None
    assert_same_request(decode_request(body, numbers=JsonNumbers()), decode_request(body))


@pytest.mark.parametrize("body", REFUSED_BY_BOTH.values(), ids=REFUSED_BY_BOTH.keys())
def test_a_malformed_request_goes_the_whole_way_and_gets_the_same_400(body: bytes) -> None:
    assert JsonNumbers().v2_request(body) is None
    with pytest.raises(InvalidRequestError) as full:
        decode_request(body)
    with pytest.raises(InvalidRequestError) as through:
        decode_request(body, numbers=JsonNumbers())

    assert through.value.to_dict() == full.value.to_dict()


@pytest.mark.parametrize("body", DECODED_THE_WHOLE_WAY.values(), ids=DECODED_THE_WHOLE_WAY.keys())
def test_what_it_leaves_is_decoded_the_whole_way(body: bytes) -> None:
    assert JsonNumbers().v2_request(body) is None
    assert_same_request(decode_request(body, numbers=JsonNumbers()), decode_request(body))


def test_a_small_body_is_left_to_orjson() -> None:
    body = _tensor(X[:1].tolist(), [1, 20])

    assert len(body) < SMALL_BYTES
    assert JsonNumbers().v2_request(body) is None


def test_one_parser_decodes_request_after_request_and_keeps_no_values() -> None:
    numbers = JsonNumbers()
    first = decode_request(_tensor(X.tolist(), [100, 20]), numbers=numbers)
    with pytest.raises(InvalidRequestError):  # a failed one between
        decode_request(_tensor(_with((0, 0), "x"), [100, 20]), numbers=numbers)
    second = decode_request(_tensor((X * 2).tolist(), [100, 20]), numbers=numbers)

    assert np.array_equal(first.inputs[0].data, X)
    assert np.array_equal(second.inputs[0].data, X * 2)
    first.inputs[0].data[0, 0] = 123.0  # the values are the request's own
    assert second.inputs[0].data[0, 0] == X[0, 0] * 2


# -- v1 rows --------------------------------------------------------------------------------


def _instances(rows: Any, **extra: Any) -> bytes:
    return json.dumps({"instances": rows, **extra}).encode()


@pytest.mark.parametrize(
    "rows",
    [X.tolist(), (X * 100).astype(int).tolist(), [[*row[:-1], 2**64 - 1] for row in X.tolist()]],
    ids=["floats", "integers", "an integer past int64, within uint64"],
)
def test_v1_rows_of_plain_numbers_are_one_array(rows: list[list[Any]]) -> None:
    found = JsonNumbers().v1_values(_instances(rows))

    assert isinstance(found, np.ndarray)
    np.testing.assert_array_equal(found, np.array(rows, dtype=np.float64), strict=True)


def _inputs(columns: dict[str, Any]) -> bytes:
    return json.dumps({"inputs": columns}).encode()


def test_v1_columns_of_plain_numbers_are_one_block_a_row_a_column() -> None:
    columns = {f"x[{i}]": X[:, i].tolist() for i in range(19)}
    columns["n"] = (X[:, 19] * 100).astype(int).tolist()

    found = JsonNumbers().v1_values(_inputs(columns))

    assert isinstance(found, ColumnValues)
    assert found.names == tuple(columns)
    expected = np.array(list(columns.values()), dtype=np.float64)
    np.testing.assert_array_equal(found.block, expected, strict=True)
    assert found.block.flags.writeable  # the request's own, as numpy's from lists would be


V1_LEFT = {
    "records": _instances(
        [dict(zip("abcdefghijklmnopqrst", row, strict=True)) for row in X.tolist()]
    ),
    "an array in a row": _instances(_with((3, 4), [0.5])),
    "an array in a row, the row one value short": _instances(
        [*X.tolist()[:3], [*X.tolist()[3][:18], [0.5, 0.25]], *X.tolist()[4:]]
    ),
    "rows of two lengths": _instances([*X.tolist()[:-1], X.tolist()[-1][:-1]]),
    "a value among rows": _instances([1.0, *X.tolist()[1:]]),
    "null": _instances(_with((0, 0), None)),
    "true": _instances(_with((0, 0), True)),
    "a string": _instances(_with((0, 0), "1")),
    "an integer past 64 bits": _instances(_with((0, 0), 10**30)),
    "another key": _instances(X.tolist(), sticky="user-1"),
    "columns, an array in one": _inputs(
        {f"x{i}": X[:, i].tolist() if i != 7 else [[0.5], *X[1:, i].tolist()] for i in range(20)}
    ),
    "columns of two lengths": _inputs(
        {f"x{i}": X[: 100 - (i == 3), i].tolist() for i in range(20)}
    ),
    "columns of two lengths, as many values in all": _inputs(
        {f"x{i}": X[: 100 - (i == 3), i].tolist() + [0.5] * (i == 4) for i in range(20)}
    ),
    "columns, a null in one": _inputs(
        {f"x{i}": [None, *X[1:, i].tolist()] if i == 2 else X[:, i].tolist() for i in range(20)}
    ),
    "columns, a value for a column": _inputs(
        {"x0": 1.0, **{f"x{i}": X[:, i].tolist() for i in range(1, 20)}}
    ),
    "v2 columns": json.dumps(
        {
            "inputs": [{"name": "x", "shape": [100], "datatype": "FP64", "data": X[:, 0].tolist()}]
            * 20
        }
    ).encode(),
    "small": _instances(X[:2].tolist()),
}


@pytest.mark.parametrize("body", V1_LEFT.values(), ids=V1_LEFT.keys())
def test_anything_else_in_v1_is_left_to_the_whole_way(body: bytes) -> None:
    assert JsonNumbers().v1_values(body) is None


NAMES = tuple(f"x[{i}]" for i in range(20))  # names need not be Python identifiers


def _records(rows: list[list[Any]], **extra: Any) -> bytes:
    return _instances([dict(zip(NAMES, row, strict=True)) for row in rows], **extra)


def _record_with(row: int, change: dict[str, Any]) -> bytes:
    records = [dict(zip(NAMES, values, strict=True)) for values in X.tolist()]
    records[row] = {key: value for key, value in {**records[row], **change}.items() if value != ...}
    return _instances(records)


def test_v1_records_are_left_unparsed_without_the_columns() -> None:
    # each row an object, which simdjson reads one key at a time: not even asked
    numbers = JsonNumbers()

    assert numbers.v1_values(_records(X.tolist())) is None
    assert numbers._parser is None
    assert numbers.v1_values(_instances(X.tolist())) is not None


RECORDS_TAKEN = {
    "floats": (X.tolist(), X),
    "integers": ((X * 100).astype(int).tolist(), (X * 100).astype(int).astype(np.float64)),
    "signed zeros, subnormals, large": (
        _with((0, 0), -0.0)[:1] + [[5e-324, -9.2e18, *X[1, 2:].tolist()]] * 99,
        np.array([[-0.0, *X[0, 1:]]] + [[5e-324, -9.2e18, *X[1, 2:]]] * 99),
    ),
}


@pytest.mark.parametrize(("rows", "expected"), RECORDS_TAKEN.values(), ids=RECORDS_TAKEN.keys())
def test_v1_records_of_the_columns_are_one_array_in_their_order(
    rows: list[list[Any]], expected: np.ndarray[Any, Any]
) -> None:
    found = JsonNumbers().v1_values(_records(rows), NAMES[::-1])

    assert isinstance(found, np.ndarray)
    np.testing.assert_array_equal(found, expected[:, ::-1], strict=True)
    assert (np.signbit(found) == np.signbit(expected[:, ::-1])).all()


def test_v1_records_may_list_their_columns_in_any_order() -> None:
    records = [dict(reversed(list(zip(NAMES, row, strict=True)))) for row in X.tolist()]

    found = JsonNumbers().v1_values(_instances(records), NAMES)

    np.testing.assert_array_equal(found, X, strict=True)


RECORDS_LEFT = {
    "a column missing": _record_with(3, {NAMES[4]: ...}),
    "a column more": _record_with(3, {"y": 1.0}),
    "true": _record_with(0, {NAMES[0]: True}),
    "null": _record_with(0, {NAMES[0]: None}),
    "a string": _record_with(0, {NAMES[0]: "1.5"}),
    "an array for a value": _record_with(0, {NAMES[0]: [1.5]}),
    "an object for a value": _record_with(0, {NAMES[0]: {"v": 1.5}}),
    "an integer past 64 bits": _record_with(9, {NAMES[1]: 2**64}),  # orjson refuses it
    "an integer below int64": _record_with(9, {NAMES[1]: -(2**63) - 1}),
    "a float past int64 (the whole way takes it)": _record_with(9, {NAMES[1]: 1e300}),
    "another key": _records(X.tolist(), sticky="user-1"),
    "an array among records": _instances(
        [X[0].tolist(), *(dict(zip(NAMES, row, strict=True)) for row in X[1:].tolist())]
    ),
    "not JSON": _records(X.tolist())[:-2] + b",]}",
}


@pytest.mark.parametrize("body", RECORDS_LEFT.values(), ids=RECORDS_LEFT.keys())
def test_anything_else_in_v1_records_is_left_to_the_whole_way(body: bytes) -> None:
    assert len(body) >= SMALL_BYTES
    assert JsonNumbers().v1_values(body, NAMES) is None


def test_a_parser_that_read_a_body_past_kept_bytes_is_let_go() -> None:
    # simdjson's buffers grow to a few times the largest document and stay with the parser
    numbers = JsonNumbers()
    decode_request(_tensor(X.tolist(), [100, 20]), numbers=numbers)
    kept = numbers._parser
    many = np.tile(X, (60, 1))
    large = _tensor(many.tolist(), [6000, 20])
    assert len(large) > KEPT_BYTES

    decoded = decode_request(large, numbers=numbers)

    assert kept is not None
    assert numbers._parser is None
    np.testing.assert_array_equal(decoded.inputs[0].data, many)
    assert decode_request(_tensor(X.tolist(), [100, 20]), numbers=numbers) is not None
    assert numbers._parser is not None
