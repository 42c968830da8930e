"""Protobuf to and from the one v2 codec: a gRPC request decodes to the tensors it carries,
its mistakes are refused with the codec's messages, and replies come back as protobuf."""

from __future__ import annotations

import grpc
import numpy as np
import orjson
import pytest

from dockyard.errors import InvalidRequestError, NotFoundError
from dockyard.server.grpc import inference_pb2 as pb
from dockyard.server.grpc.wire import error_parts, infer_body, infer_response, status_of
from dockyard.server.http import JSON, Reply, error_reply
from dockyard.server.protocols import v2


def decoded(request: pb.ModelInferRequest) -> v2.InferRequest:
    body, length = infer_body(request)
    return v2.decode_request(body, header_length=length)


def test_raw_and_typed_inputs_decode_to_their_values() -> None:
    rows = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    request = pb.ModelInferRequest(model_name="m", id="r1")
    request.inputs.add(name="x", datatype="FP64", shape=[2, 3])
    request.inputs.add(name="flag", datatype="BOOL", shape=[2])
    request.raw_input_contents.extend([rows.tobytes(), np.array([True, False]).tobytes()])
    decoded_request = decoded(request)
    assert decoded_request.id == "r1"
    np.testing.assert_array_equal(decoded_request.inputs[0].data, rows)
    assert decoded_request.inputs[1].data.tolist() == [True, False]

    typed = pb.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="x", datatype="INT16", shape=[3])
    tensor.contents.int_contents.extend([-3, 0, 300])
    words = typed.inputs.add(name="w", datatype="BYTES", shape=[2])
    words.contents.bytes_contents.extend([b"caf\xc3\xa9", b""])
    got = decoded(typed)
    assert got.inputs[0].data.dtype == np.dtype("<i2")
    assert got.inputs[0].data.tolist() == [-3, 0, 300]
    assert got.inputs[1].data.tolist() == ["café", ""]


def test_parameters_and_requested_outputs_pass_through_as_binary() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.parameters["priority"].int64_param = 2
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(1.5)
    request.outputs.add(name="predict_proba")
    got = decoded(request)
    assert got.parameters["priority"] == 2
    assert got.binary_output is True
    assert [(o.name, o.binary) for o in got.outputs] == [("predict_proba", True)]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda t: t.contents.fp64_contents.extend([1.0, 2.0]),
            "has values in fp64_contents; INT64 values go in int64_contents",
        ),
        (lambda t: t.contents.int64_contents.extend([1, 2]), "its int64_contents has 2 values"),
        (lambda t: None, "has shape [3] (3 elements) but its int64_contents has 0 values"),
    ],
    ids=["wrong-field", "too-few", "none"],
)
def test_typed_values_must_fill_the_shape_in_their_field(build: object, message: str) -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="INT64", shape=[3])
    build(tensor)  # type: ignore[operator]
    with pytest.raises(InvalidRequestError) as raised:
        infer_body(request)
    assert message in str(raised.value)


def test_out_of_range_and_raw_only_datatypes_are_refused() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="INT8", shape=[1]).contents.int_contents.append(300)
    with pytest.raises(InvalidRequestError, match="out of range for INT8"):
        infer_body(request)
    half = pb.ModelInferRequest(model_name="m")
    half.inputs.add(name="h", datatype="FP16", shape=[1]).contents.fp32_contents.append(1.0)
    with pytest.raises(InvalidRequestError, match="raw_input_contents only"):
        infer_body(half)


def test_raw_contents_must_match_the_inputs_and_their_shapes() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP64", shape=[2])
    request.inputs.add(name="y", datatype="FP64", shape=[2])
    request.raw_input_contents.append(b"\0" * 16)
    with pytest.raises(InvalidRequestError, match="1 raw_input_contents for 2 inputs"):
        infer_body(request)
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(InvalidRequestError, match=r"Input 'y' .* takes 16 bytes"):
        decoded(request)


def test_a_binary_reply_becomes_raw_output_contents() -> None:
    predict = np.array([0, 1, 1], dtype=np.int64)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    body, length = v2.encode_response(
        model_name="m",
        model_version="1.0.0",
        request_id="r9",
        outputs=[v2.OutputTensor("predict", predict), v2.OutputTensor("predict_proba", proba)],
        binary_output=True,
    )
    assert length is not None
    reply = Reply(200, body, [(b"inference-header-content-length", str(length).encode())])
    response = infer_response(reply)
    assert (response.model_name, response.model_version, response.id) == ("m", "1.0.0", "r9")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("predict", "INT64", [3]),
        ("predict_proba", "FP64", [3, 2]),
    ]
    assert np.frombuffer(response.raw_output_contents[0], "<i8").tolist() == [0, 1, 1]
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[1], "<f8").reshape(3, 2), proba
    )


def test_refusals_keep_their_meaning_and_message() -> None:
    assert status_of(400) is grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(401) is grpc.StatusCode.UNAUTHENTICATED
    assert status_of(403) is grpc.StatusCode.PERMISSION_DENIED
    assert status_of(404) is grpc.StatusCode.NOT_FOUND
    assert status_of(418) is grpc.StatusCode.INVALID_ARGUMENT  # any user's mistake
    assert status_of(500) is grpc.StatusCode.INTERNAL
    code, message, trailing = error_parts(error_reply(NotFoundError("No endpoint × 'nope'."), "r1"))
    assert code is grpc.StatusCode.NOT_FOUND
    assert message == "No endpoint × 'nope'."
    metadata = dict(trailing)
    assert metadata["x-request-id"] == "r1"
    assert metadata["dockyard-error"].isascii()
    assert orjson.loads(metadata["dockyard-error"])["code"] == "not_found"
    crash = error_parts(Reply(500, b"not json", [JSON]))
    assert crash[0] is grpc.StatusCode.INTERNAL
