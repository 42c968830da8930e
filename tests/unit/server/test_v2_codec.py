"""The Open Inference Protocol codec against the unmodified tritonclient and kserve encoders.

Requests are built by ``tritonclient.http`` and ``kserve.protocol.infer_type`` exactly as their
clients send them, and responses are read back by their decoders: if these tests pass, the two
clients understand Dockyard's bodies byte for byte.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import ml_dtypes
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from kserve.protocol import infer_type as kserve

from dockyard.errors import InvalidRequestError, PayloadTooLargeError, SchemaValidationError
from dockyard.server.protocols import v2

STRINGS = np.array(["héllo", "", "日本語", "plain"], dtype=object)


def triton_request(
    *tensors: tuple[str, np.ndarray[Any, Any], str],
    binary: bool,
    outputs: list[triton.InferRequestedOutput] | None = None,
    **kwargs: Any,
) -> v2.InferRequest:
    """Encode with tritonclient exactly as its client does, then decode."""
    inputs = []
    for name, array, datatype in tensors:
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, json_size = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, **kwargs
    )
    return v2.decode_request(body, header_length=json_size)


def encode_json(document: Any) -> bytes:
    return orjson.dumps(document)


def one_input(**fields: Any) -> dict[str, Any]:
    tensor = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}
    tensor.update(fields)
    return {"inputs": [{k: v for k, v in tensor.items() if v is not None}]}


def error_from(body: bytes, **kwargs: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        v2.decode_request(body, **kwargs)
    return caught.value


# -- decoding what tritonclient sends ---------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    ("array", "datatype"),
    [
        (np.array([[1.5, -2.25, 3e-8], [4.0, 5.5, 6.0]], dtype=np.float32), "FP32"),
        (np.array([[1.0, 2.0**60, -1e300]], dtype=np.float64), "FP64"),
        (np.array([9_007_199_254_740_993, -(2**63), 0], dtype=np.int64), "INT64"),
        (np.array([0, 255, 7], dtype=np.uint8), "UINT8"),
        (np.array([2**64 - 1, 0], dtype=np.uint64), "UINT64"),
        (np.array([-128, 127], dtype=np.int8), "INT8"),
        (np.array([[True, False], [False, True]]), "BOOL"),
        (np.array([0.5, -65504.0], dtype=np.float16), "FP16"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_tritonclient_numeric_tensors_decode_exactly(
    array: np.ndarray[Any, Any], datatype: str, binary: bool
) -> None:
    request = triton_request(("x", array, datatype), binary=binary)
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, array.shape)
    assert tensor.data.dtype == array.dtype
    np.testing.assert_array_equal(tensor.data, array)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_strings_decode_with_non_ascii_and_empty(binary: bool) -> None:
    strings = STRINGS.reshape(2, 2)
    request = triton_request(("s", strings, "BYTES"), binary=binary)
    (tensor,) = request.inputs
    assert tensor.shape == (2, 2)
    assert tensor.data.dtype == object
    assert tensor.data.tolist() == [["héllo", ""], ["日本語", "plain"]]


def test_binary_strings_that_are_not_utf8_stay_bytes() -> None:
    raw = np.array([b"\xff\xfe", b"ok"], dtype=object)
    (tensor,) = triton_request(("s", raw, "BYTES"), binary=True).inputs
    assert tensor.data.tolist() == [b"\xff\xfe", "ok"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_nan_survives_both_modes(binary: bool) -> None:
    # In JSON mode tritonclient writes the NaN literal, which is not JSON but must work.
    array = np.array([[np.nan, 1.0, np.inf]], dtype=np.float32)
    (tensor,) = triton_request(("x", array, "FP32"), binary=binary).inputs
    np.testing.assert_array_equal(tensor.data, array)


def test_null_in_float_json_data_is_nan() -> None:
    (tensor,) = v2.decode_request(encode_json(one_input(data=[None, 2.0]))).inputs
    assert np.isnan(tensor.data[0])
    assert tensor.data[1] == 2.0


def test_bf16_binary_decodes_to_float32() -> None:
    array = np.array([1.5, -2.0, 3.140625], dtype=ml_dtypes.bfloat16)
    (tensor,) = triton_request(("x", array, "BF16"), binary=True).inputs
    assert tensor.data.dtype == np.float32
    np.testing.assert_array_equal(tensor.data, [1.5, -2.0, 3.140625])


def test_nested_and_flat_json_data_are_both_row_major() -> None:
    flat = one_input(shape=[2, 3], data=[1, 2, 3, 4, 5, 6])
    nested = one_input(shape=[2, 3], data=[[1, 2, 3], [4, 5, 6]])
    for body in (flat, nested):
        (tensor,) = v2.decode_request(encode_json(body)).inputs
        assert tensor.data.tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_many_rows_decode_in_bulk_to_the_same_values_and_still_refuse_booleans(
    datatype: str,
) -> None:
    """A large 2-D tensor of plain numbers goes to numpy in one call; the values are exact,
    and a ``true`` among them (which numpy would read as 1.0) is still refused by name."""
    rows: list[list[Any]] = (np.arange(120.0).reshape(40, 3) * 1.5 + 2.25).tolist()
    rows[3][1] = 7  # an integer among floats is a number too
    document = {"inputs": [{"name": "x", "shape": [40, 3], "datatype": datatype, "data": rows}]}

    data = v2.decode_request(encode_json(document)).inputs[0].data

    expected = np.array(rows, dtype=np.dtype(datatype.replace("FP", "float")))
    assert data.dtype == expected.dtype
    np.testing.assert_array_equal(data, expected)

    rows[39][2] = True
    error = error_from(encode_json(document))
    assert "true at position 119" in str(error)


def test_request_id_outputs_and_parameters_are_decoded() -> None:
    outputs = [
        triton.InferRequestedOutput("predict_proba", binary_data=False),
        triton.InferRequestedOutput("predict", binary_data=True),
    ]
    request = triton_request(
        ("x", np.zeros((1, 2), dtype=np.float64), "FP64"),
        binary=True,
        outputs=outputs,
        request_id="req-7",
        sequence_id=4,
        priority=1,
        timeout=1000,
        parameters={"custom": "yes"},
    )
    assert request.id == "req-7"
    assert request.outputs == (
        v2.RequestedOutput("predict_proba", False),
        v2.RequestedOutput("predict", True),
    )
    assert request.binary_output is False
    assert request.parameters["custom"] == "yes"
    assert request.parameters["sequence_id"] == 4


def test_asking_for_no_outputs_means_all_in_binary() -> None:
    request = triton_request(("x", np.ones(2, dtype=np.float32), "FP32"), binary=False)
    assert request.outputs == ()
    assert request.binary_output is True
    assert request.id is None


def test_reserved_parameters_are_accepted_whatever_their_values() -> None:
    body = one_input()
    body["parameters"] = {"headers": {"a": "b"}, "triton_x": [1], "sequence_x": None}
    request = v2.decode_request(encode_json(body))
    assert request.parameters == {"headers": {"a": "b"}, "triton_x": [1], "sequence_x": None}


def test_binary_tensors_are_views_of_the_body_when_aligned() -> None:
    array = np.arange(4, dtype=np.float64)
    document = orjson.dumps(
        one_input(data=None, datatype="FP64", shape=[4], parameters={"binary_data_size": 32})
    )
    for padding in (-len(document) % 8, -len(document) % 8 + 3):
        header = document + b" " * padding
        body = header + array.tobytes()
        (tensor,) = v2.decode_request(body, header_length=len(header)).inputs
        np.testing.assert_array_equal(tensor.data, array)
        assert tensor.data.flags.aligned
        assert np.shares_memory(tensor.data, np.frombuffer(body, np.uint8)) == (
            len(header) % 8 == 0
        )


# -- decoding what kserve sends -----------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_requests_decode(binary: bool) -> None:
    numbers = np.array([[0.5, np.nan], [2.0, 3.0]], dtype=np.float64)
    counts = np.array([1, -2], dtype=np.int32)
    first = kserve.InferInput("numbers", [2, 2], "FP64")
    first.set_data_from_numpy(numbers, binary_data=binary)
    second = kserve.InferInput("counts", [2], "INT32")
    second.set_data_from_numpy(counts, binary_data=binary)
    third = kserve.InferInput("names", [2], "BYTES")
    third.set_data_from_numpy(np.array(["ünï", "b"], dtype=object), binary_data=binary)
    request = kserve.InferRequest(
        "fraud",
        [first, second, third],
        request_id="k-1",
        parameters={"binary_data_output": True},
        request_outputs=[kserve.RequestedOutput("predict", {"binary_data": False})],
    )
    body, json_length = request.to_rest()
    raw = body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    decoded = v2.decode_request(raw, header_length=json_length)
    assert decoded.id == "k-1"
    assert decoded.binary_output is True
    assert decoded.outputs == (v2.RequestedOutput("predict", False),)
    by_name = {tensor.name: tensor.data for tensor in decoded.inputs}
    np.testing.assert_array_equal(by_name["numbers"], numbers)
    assert by_name["counts"].tolist() == [1, -2]
    assert by_name["names"].tolist() == ["ünï", "b"]


# -- compression ----------------------------------------------------------------------------


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        ("GZIP", lambda data: gzip.compress(data[:10]) + gzip.compress(data[10:])),
        ("gzip, identity", gzip.compress),
    ],
    ids=["gzip", "zlib", "raw-deflate", "two-gzip-members", "listed"],
)
def test_compressed_bodies_are_inflated(encoding: str, compress: Any) -> None:
    array = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    tensor = triton.InferInput("x", [3, 4], "FP32").set_data_from_numpy(array)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])
    request = v2.decode_request(
        compress(body),
        header_length=json_size,
        content_encoding=encoding,
        max_body_bytes=len(body),
    )
    np.testing.assert_array_equal(request.inputs[0].data, array)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
    ids=["gzip", "deflate"],
)
def test_a_body_inflating_past_the_limit_is_too_large(encoding: str, compress: Any) -> None:
    """A zip bomb, or any body over the limit once inflated: 413, as over the limit as sent."""
    bomb = compress(b" " * 20_000_000)
    assert len(bomb) < 50_000
    with pytest.raises(PayloadTooLargeError) as caught:
        v2.decode_request(bomb, content_encoding=encoding, max_body_bytes=1_000_000)
    assert caught.value.status == 413
    assert "inflates to more than the limit of 1000000 bytes" in caught.value.message
    assert caught.value.details == {"limit": 1_000_000}


@pytest.mark.parametrize(
    ("body", "encoding", "expected"),
    [
        (b"plain text", "gzip", "not valid gzip data"),
        (gzip.compress(b'{"inputs": []}')[:-6], "gzip", "truncated"),
        (zlib.compress(b'{"inputs": []}') + b"junk", "deflate", "4 bytes after its end"),
        (b'{"inputs": []}', "br", "Content-Encoding 'br' is not supported"),
    ],
    ids=["not-gzip", "truncated", "trailing", "brotli"],
)
def test_bad_compression_is_reported(body: bytes, encoding: str, expected: str) -> None:
    assert expected in error_from(body, content_encoding=encoding).message


# -- malformed requests -------------------------------------------------------------------------


def _bytes_input(raw: bytes, shape: list[int]) -> tuple[bytes, int]:
    size = {"binary_data_size": len(raw)}
    header = orjson.dumps(one_input(datatype="BYTES", shape=shape, data=None, parameters=size))
    return header + raw, len(header)


MALFORMED: list[tuple[str, Any, int | None, str]] = [
    ("not-json", b"{nope", None, "not valid JSON"),
    ("not-an-object", b"[1, 2]", None, "must be a JSON object, not [1,2] (array)"),
    ("no-inputs", {"id": "a"}, None, 'The request has no "inputs" list'),
    ("inputs-not-list", {"inputs": {"x": 1}}, None, '"inputs" must be a list, not {"x":1}'),
    ("input-not-object", {"inputs": [3]}, None, "inputs[0] must be a JSON object"),
    ("no-name", one_input(name=""), None, 'inputs[0] needs a "name"'),
    ("unknown-datatype", one_input(datatype="FLOAT"), None, "Input 'x' has unknown datatype"),
    ("lowercase-datatype", one_input(datatype="fp32"), None, "Did you mean 'FP32'?"),
    ("shape-not-list", one_input(shape=2), None, "shape 2 (number); a shape is a list"),
    ("shape-floats", one_input(shape=[2.0]), None, "shape [2.0] (array); a shape is a list"),
    ("too-many-dims", one_input(shape=[1] * 70, data=[1.0]), None, "too many dimensions"),
    ("negative-dim", one_input(shape=[-1]), None, "dimensions cannot be negative"),
    ("count-mismatch", one_input(shape=[3]), None, "shape [3] (3 elements) but its data has 2"),
    ("nested-count", one_input(shape=[2, 2], data=[[1, 2], [3]]), None, "its data has 3 values"),
    ("empty-data-of-many", one_input(shape=[100], data=[]), None, "its data has 0 values"),
    ("data-not-list", one_input(data="1,2"), None, '"data" of input \'x\' must be a JSON array'),
    ("mixed-nesting", one_input(data=[[1.0], 2.0]), None, "mixes nested arrays and values"),
    ("string-in-fp32", one_input(data=[1.0, "2"]), None, '"2" (string) at position 1'),
    ("bool-in-fp32", one_input(data=[True, 2.0]), None, "true at position 0"),
    ("bool-in-fp64-rows", one_input(datatype="FP64", shape=[2, 2], data=[[1.0, 2.0], [False, 3]]),
     None, "false at position 2"),
    ("string-in-fp64-rows", one_input(datatype="FP64", shape=[1, 2], data=[[1.0, "2"]]), None,
     '"2" (string) at position 1'),
    ("huge-int-in-fp64", b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", '
     b'"data": [1' + b"0" * 400 + b"]}]}", None, "out of range for FP64"),
    ("float-in-int64", one_input(datatype="INT64", data=[1, 2.5]), None, "must be integers"),
    ("int-in-bool", one_input(datatype="BOOL", data=[1, 0]), None, "must be true or false"),
    ("number-in-bytes", one_input(datatype="BYTES", data=["a", 1]), None, "must be strings"),
    ("int8-overflow", one_input(datatype="INT8", data=[1, 300]), None, "out of range for INT8"),
    ("uint-negative", one_input(datatype="UINT32", data=[1, -1]), None, "out of range for UINT32"),
    ("fp32-overflow", one_input(data=[1.0, 1e300]), None, "out of range for FP32"),
    ("bf16-json", one_input(datatype="BF16"), None, "BF16, which can only be sent as binary"),
    ("no-data", one_input(data=None), None, 'Input \'x\' has no "data" and no binary_data_size'),
    ("shared-memory", one_input(data=None, parameters={"shared_memory_region": "r"}), None,
     "shared memory"),
    ("duplicate-input", {"inputs": one_input()["inputs"] * 2}, None, "'x' appears more than once"),
    ("id-not-string", {**one_input(), "id": 5}, None, 'The request "id" must be a string'),
    ("parameters-not-object", {**one_input(), "parameters": [1]}, None,
     '"parameters" of the request must be a JSON object'),
    ("parameter-value-object", one_input(parameters={"content_type": {"a": 1}}), None,
     "Parameter 'content_type' of input 'x' is {\"a\":1} (object); parameter values are"),
    ("binary-output-not-bool", {**one_input(), "parameters": {"binary_data_output": 1}}, None,
     '"binary_data_output" must be true or false, not 1'),
    ("outputs-not-list", {**one_input(), "outputs": "predict"}, None, '"outputs" must be a list'),
    ("output-no-name", {**one_input(), "outputs": [{}]}, None, 'outputs[0] needs a "name"'),
    ("output-twice", {**one_input(), "outputs": [{"name": "p"}, {"name": "p"}]}, None,
     "'p' is requested more than once"),
    ("binary-data-not-bool", {**one_input(), "outputs": [
        {"name": "p", "parameters": {"binary_data": "yes"}}]}, None,
     'binary_data "yes" (string); it must be true or false'),
    ("inline-and-binary", one_input(parameters={"binary_data_size": 8}), 0,
     "both inline \"data\" and binary_data_size"),
    ("binary-without-header", one_input(data=None, parameters={"binary_data_size": 8}), None,
     "no Inference-Header-Content-Length header"),
    ("binary-size-negative", one_input(data=None, parameters={"binary_data_size": -8}), 0,
     "must be a non-negative integer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "header_length", "expected"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_json_requests_say_what_is_wrong(
    document: Any, header_length: int | None, expected: str
) -> None:
    body = document if isinstance(document, bytes) else encode_json(document)
    if header_length == 0:
        header_length = len(body)
    error = error_from(body, header_length=header_length)
    assert expected in str(error), str(error)
    assert error.status == 400


def _binary_fp32(declared: int, actual: int) -> tuple[bytes, int]:
    header = encode_json(one_input(data=None, parameters={"binary_data_size": declared}))
    return header + b"\0" * actual, len(header)


@pytest.mark.parametrize(
    ("body_and_length", "expected"),
    [
        (_binary_fp32(4, 4), "binary_data_size 4 but shape [2] of FP32 takes 8 bytes"),
        (_binary_fp32(8, 4), "past the end of the 4 bytes of binary data"),
        (_binary_fp32(8, 12), "4 bytes after the binary data of the inputs"),
        ((b'{"inputs": []}', 99), "Inference-Header-Content-Length is 99 but the body has 14"),
        (_bytes_input(b"\x05\x00\x00\x00ab", [1]), "element 0 claims 5 bytes, only 2 remain"),
        (_bytes_input(b"\x01\x00\x00\x00a\x00", [1]), "1 bytes follow its 1 elements"),
        (_bytes_input(b"\x01\x00\x00\x00a", [2]), "5 bytes cannot hold the 2 elements"),
        (_bytes_input(b"\x01\x00\x00\x00abcd", [2]), "it ends after 1 of the 2 elements"),
    ],
    ids=[
        "size-mismatch",
        "overrun",
        "trailing",
        "header-too-long",
        "bytes-overrun",
        "bytes-stray",
        "bytes-count",
        "bytes-short",
    ],
)
def test_malformed_binary_data_is_reported(
    body_and_length: tuple[bytes, int], expected: str
) -> None:
    body, header_length = body_and_length
    assert expected in str(error_from(body, header_length=header_length))


def test_binary_bool_bytes_must_be_zero_or_one() -> None:
    header = encode_json(one_input(datatype="BOOL", data=None, parameters={"binary_data_size": 2}))
    error = error_from(header + b"\x01\x02", header_length=len(header))
    assert "byte other than 0 or 1" in error.message
    assert error.details == {"input": "x"}


# -- tabular input ------------------------------------------------------------------------------


COLUMNS = ["age", "income", "city"]


def test_one_2d_tensor_goes_to_the_validator_as_the_array_it_is() -> None:
    rows = np.array([[30, 1200.5, np.nan], [41, 0.0, 7]], dtype=np.float64)
    request = triton_request(("input-0", rows, "FP64"), binary=True)
    array = v2.tabular_input(request, COLUMNS)
    assert isinstance(array, np.ndarray)
    assert array.base is not None  # a view of the decoded tensor, not a copy
    np.testing.assert_array_equal(array, rows)


def test_one_1d_tensor_is_one_row() -> None:
    request = triton_request(("x", np.array([1.0, 2.0, 3.0]), "FP64"), binary=False)
    array = v2.tabular_input(request, COLUMNS)
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [[1.0, 2.0, 3.0]]


def test_a_single_column_model_takes_a_1d_tensor_as_its_column() -> None:
    request = triton_request(("x", np.array([1, 2, 3], dtype=np.int64), "INT64"), binary=True)
    array = v2.tabular_input(request, ["n"])
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [[1], [2], [3]]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_one_tensor_per_column_mixes_types_and_empty_string_is_missing(binary: bool) -> None:
    request = triton_request(
        ("city", np.array([["Oslo"], [""], ["Zürich"]], dtype=object), "BYTES"),
        ("age", np.array([30, 41, 52], dtype=np.int64), "INT64"),
        ("income", np.array([1.5, np.nan, 3.0], dtype=np.float32), "FP32"),
        binary=binary,
    )
    columns = v2.tabular_input(request, COLUMNS)
    assert list(columns) == COLUMNS
    assert columns["city"] == ["Oslo", None, "Zürich"]
    assert list(columns["age"]) == [30, 41, 52]
    np.testing.assert_array_equal(columns["income"], np.array([1.5, np.nan, 3.0], np.float32))


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_a_2d_strings_tensor_gives_strings_with_empty_as_missing(binary: bool) -> None:
    request = triton_request(
        ("x", np.array([["a", ""], ["c", "d"]], dtype=object), "BYTES"), binary=binary
    )
    array = v2.tabular_input(request, ["p", "q"])
    assert isinstance(array, np.ndarray)
    assert array.tolist() == [["a", None], ["c", "d"]]


def _column_problems(request: v2.InferRequest, names: list[str]) -> list[dict[str, Any]]:
    with pytest.raises(SchemaValidationError) as caught:
        v2.tabular_input(request, names)
    assert isinstance(caught.value, InvalidRequestError)
    problems: list[dict[str, Any]] = caught.value.details["problems"]
    assert all(set(p) == {"row", "column", "expected", "got", "message"} for p in problems)
    assert problems[0]["message"] in caught.value.message
    return problems


def test_wrong_number_of_columns_is_a_problem() -> None:
    request = triton_request(("x", np.zeros((4, 2)), "FP64"), binary=True)
    (problem,) = _column_problems(request, COLUMNS)
    assert problem["got"] == "shape [4, 2]"
    assert "takes 3 columns ('age', 'income', 'city')" in problem["message"]


def test_unknown_missing_misshapen_and_uneven_column_inputs_are_all_listed() -> None:
    request = triton_request(
        ("age", np.zeros(3), "FP64"),
        ("income", np.zeros(2), "FP64"),
        ("cty", np.array(["a", "b", "c"], dtype=object), "BYTES"),
        binary=True,
    )
    problems = _column_problems(request, COLUMNS)
    by_column = {p["column"]: p for p in problems}
    assert "expected inputs named 'age', 'income', 'city'" in by_column["cty"]["message"]
    assert by_column["city"]["message"] == "missing column 'city'"
    assert by_column["income"]["message"] == "column 'income' has 2 rows but the others have 3"
    request = triton_request(("age", np.zeros((3, 2)), "FP64"), binary=True)
    assert "a column is 1-D" in _column_problems(request, ["age"])[0]["message"]


# -- responses ----------------------------------------------------------------------------------


OUTPUT_ARRAYS = [
    np.array([[True, False]]),
    np.array([1, 255], dtype=np.uint8),
    np.array([2**64 - 1], dtype=np.uint64),
    np.array([-5, 7], dtype=np.int16),
    np.array([[1, -(2**63)]], dtype=np.int64),
    np.array([0.5, -1.25], dtype=np.float16),
    np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32),
    np.array([1e-300, 3.0], dtype=np.float64),
    np.array([["héllo", ""], ["日本", "x"]], dtype=object),
    np.array(["a", "bc"]),  # numpy unicode
]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("array", OUTPUT_ARRAYS, ids=lambda a: f"{a.dtype}-{a.ndim}d")
def test_outputs_round_trip_through_tritonclient(array: np.ndarray[Any, Any], binary: bool) -> None:
    body, header_length = v2.encode_response(
        model_name="m",
        model_version="2.0.1",
        request_id="r",
        binary_output=binary,
        outputs=[v2.OutputTensor("out", array)],
    )
    assert (header_length is not None) == binary
    result = triton.InferResult.from_response_body(body, verbose=False, header_length=header_length)
    got = result.as_numpy("out")
    if array.dtype.kind in "OU":
        got = np.vectorize(lambda s: s.decode() if isinstance(s, bytes) else s, otypes=[object])(
            got
        )
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "m",
        "2.0.1",
        "r",
    )


@pytest.mark.parametrize("version", ["2.0.1", None])
@pytest.mark.parametrize("array", OUTPUT_ARRAYS, ids=lambda a: f"{a.dtype}-{a.ndim}d")
def test_the_usual_answer_is_written_as_one_that_names_its_outputs(
    array: np.ndarray[Any, Any], version: str | None
) -> None:
    # all JSON, nothing requested: written in one step for number arrays; naming every
    # output (in the same order) takes the whole loop, which must give the same bytes
    outputs = [v2.OutputTensor("predict", np.array([1, 0])), v2.OutputTensor("out", array)]
    if array.ndim == 2:
        outputs.append(v2.OutputTensor("view", array.T))  # not contiguous: flattened as a copy
    named = [v2.RequestedOutput(output.name, None) for output in outputs]
    for parameters in (None, {"note": "x"}):
        usual = v2.encode_response(
            model_name="m", model_version=version, request_id="r", outputs=outputs,
            parameters=parameters,
        )  # fmt: skip
        whole = v2.encode_response(
            model_name="m", model_version=version, request_id="r", outputs=outputs,
            parameters=parameters, requested=named,
        )  # fmt: skip
        assert usual == whole
        assert usual[1] is None


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_outputs_round_trip_through_kserve(binary: bool) -> None:
    outputs = [
        v2.OutputTensor("predict", np.array(["yes", "no"], dtype=object)),
        v2.OutputTensor("predict_proba", np.array([[0.1, 0.9], [0.8, 0.2]], dtype=np.float32)),
    ]
    body, header_length = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs, binary_output=binary
    )
    response = kserve.InferResponse.from_bytes(body, header_length or len(body))
    assert response.id == "r"
    assert response.get_output_by_name("predict").as_numpy().tolist() == ["yes", "no"]
    np.testing.assert_array_equal(
        response.get_output_by_name("predict_proba").as_numpy(), outputs[1].data
    )


def test_nan_and_infinity_are_null_in_json_and_exact_in_binary() -> None:
    values = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float64)
    outputs = [v2.OutputTensor("f", values)]
    body, _ = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs
    )
    assert orjson.loads(body)["outputs"][0]["data"] == [None, None, None, 1.0]
    body, length = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs, binary_output=True
    )
    result = triton.InferResult.from_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("f"), values)


def test_requested_outputs_pick_order_and_binary_per_output() -> None:
    outputs = [
        v2.OutputTensor("predict", np.array([1, 0])),
        v2.OutputTensor("predict_proba", np.array([[0.2, 0.8], [0.9, 0.1]])),
    ]
    requested = [v2.RequestedOutput("predict_proba", None), v2.RequestedOutput("predict", False)]
    body, length = v2.encode_response(
        model_name="m",
        model_version="1",
        request_id="r",
        outputs=outputs,
        requested=requested,
        binary_output=True,
        parameters={"rows": 2},
    )
    assert length is not None
    header = orjson.loads(body[:length])
    assert [o["name"] for o in header["outputs"]] == ["predict_proba", "predict"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 32}
    assert header["outputs"][1]["data"] == [1, 0]
    assert header["parameters"] == {"rows": 2}
    result = triton.InferResult.from_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), outputs[1].data)
    only_json, no_length = v2.encode_response(
        model_name="m",
        model_version=None,
        request_id="r",
        outputs=outputs,
        requested=[v2.RequestedOutput("predict", None)],
    )
    assert no_length is None
    assert [o["name"] for o in orjson.loads(only_json)["outputs"]] == ["predict"]
    assert "model_version" not in orjson.loads(only_json)


def test_an_unknown_requested_output_names_the_available_ones() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        v2.encode_response(
            model_name="m",
            model_version=None,
            request_id="r",
            outputs=[v2.OutputTensor("predict", np.array([1]))],
            requested=[v2.RequestedOutput("score", None)],
        )
    assert str(caught.value) == "The model has no output 'score'. Its outputs are 'predict'."


def test_strided_and_big_endian_outputs_encode_correctly() -> None:
    base = np.arange(12, dtype=">f8").reshape(3, 4)
    view = base[:, ::2]
    for binary in (True, False):
        body, length = v2.encode_response(
            model_name="m",
            model_version=None,
            request_id="r",
            binary_output=binary,
            outputs=[v2.OutputTensor("o", view)],
        )
        result = triton.InferResult.from_response_body(body, header_length=length)
        np.testing.assert_array_equal(result.as_numpy("o"), view)


def test_missing_strings_are_null_in_json_and_empty_in_binary() -> None:
    outputs = [v2.OutputTensor("s", np.array(["a", None, np.nan, 3], dtype=object))]
    body, _ = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs
    )
    assert orjson.loads(body)["outputs"][0]["data"] == ["a", None, None, "3"]
    body, length = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs, binary_output=True
    )
    result = triton.InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("s").tolist() == [b"a", b"", b"", b"3"]


def test_non_utf8_bytes_need_binary_output() -> None:
    outputs = [v2.OutputTensor("s", np.array([b"\xff"], dtype=object))]
    with pytest.raises(InvalidRequestError, match="not UTF-8"):
        v2.encode_response(model_name="m", model_version=None, request_id="r", outputs=outputs)
    body, length = v2.encode_response(
        model_name="m", model_version=None, request_id="r", outputs=outputs, binary_output=True
    )
    assert triton.InferResult.from_response_body(body, header_length=length).as_numpy("s")[0] == (
        b"\xff"
    )


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [
        ("bool", "BOOL"),
        ("uint16", "UINT16"),
        ("uint32", "UINT32"),
        ("int8", "INT8"),
        ("int32", "INT32"),
        ("float16", "FP16"),
        ("float32", "FP32"),
        ("float64", "FP64"),
        ("object", "BYTES"),
        ("U3", "BYTES"),
        ("S3", "BYTES"),
    ],
)
def test_datatype_of_follows_the_dtype(dtype: str, datatype: str) -> None:
    assert v2.datatype_of(np.zeros(1, dtype=dtype)) == datatype
    assert datatype in v2.DATATYPES


@pytest.mark.parametrize("dtype", ["complex128", "datetime64[s]", "timedelta64[s]"])
def test_datatype_of_refuses_what_the_protocol_cannot_carry(dtype: str) -> None:
    with pytest.raises(TypeError, match="no datatype for numpy dtype"):
        v2.datatype_of(np.zeros(1, dtype=dtype))


# -- metadata -----------------------------------------------------------------------------------


def test_model_and_server_metadata_shapes() -> None:
    metadata = v2.model_metadata(
        name="fraud",
        versions=["1.0.0", "1.1.0"],
        platform="sklearn",
        inputs=[("input-0", "FP64", [-1, 3])],
        outputs=[("predict", "INT64", [-1])],
    )
    assert metadata == {
        "name": "fraud",
        "versions": ["1.0.0", "1.1.0"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }
    with pytest.raises(ValueError, match="unknown datatype 'DOUBLE'"):
        v2.model_metadata(
            name="m", versions=[], platform="p", inputs=[("x", "DOUBLE", [1])], outputs=[]
        )
    server = v2.server_metadata(name="dockyard", version="0.4.0")
    assert server == {"name": "dockyard", "version": "0.4.0", "extensions": ["binary_tensor_data"]}
