"""Between the gRPC messages and the one v2 codec: a ``ModelInferRequest`` becomes the body
the HTTP binary tensor extension would carry, and the plane's reply becomes a
``ModelInferResponse`` or a gRPC status. Pure: no I/O.

Why transcode rather than decode protobuf tensors a second way: the request then runs the very
path an HTTP request runs (:func:`~dockyard.server.protocols.v2.decode_request`, the
signature's validation, the endpoint's batcher, the metrics and the prediction log), so both
protocols accept the same tensors and refuse the same mistakes with the same messages. The cost
is a JSON header of a few hundred bytes written and read again, and one copy of the raw
tensor bytes.

Policies:

* **Values.** ``raw_input_contents`` (what tritonclient sends) or the typed ``contents``
  field of the input's datatype (``int_contents`` for INT8/16/32, ``uint_contents`` for
  UINT8/16/32, ``fp32_contents`` for FP32, ...); FP16 and BF16 only raw. Typed values are
  converted to the raw layout; a value out of the datatype's range is refused.
* **Outputs.** Always ``raw_output_contents``, one entry per output in output order (what
  Triton answers and both clients read); the outputs asked for, in their order, or all.
* **Errors.** The HTTP status of the same mistake, as its gRPC code (:data:`CODES`); the
  message is the HTTP error's ``error``, and the whole JSON error body rides in the trailing
  metadata as ``dockyard-error``.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import orjson

from dockyard.server.grpc import inference_pb2 as pb
from dockyard.server.http import Reply
from dockyard.server.protocols.v2 import DATATYPES
from dockyard.server.protocols.v2.tensors import invalid

__all__ = [
    "CODES",
    "error_parts",
    "infer_body",
    "infer_response",
    "parameters_of",
    "status_of",
]

HEADER_LENGTH = "inference-header-content-length"

CODES: Mapping[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
"""HTTP status of a refusal -> its gRPC code; any other 4xx is INVALID_ARGUMENT, any other
5xx INTERNAL (a user's mistake is never INTERNAL: those are all 4xx)."""

# datatype -> the typed contents field that carries it
_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_LENGTH = struct.Struct("<I")


def status_of(http_status: int) -> grpc.StatusCode:
    """The gRPC code for the HTTP status the same refusal has."""
    code = CODES.get(http_status)
    if code is not None:
        return code
    return grpc.StatusCode.INVALID_ARGUMENT if http_status < 500 else grpc.StatusCode.INTERNAL


def parameters_of(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """Protobuf parameters as the plain values the JSON form carries (unset ones dropped)."""
    plain: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            plain[key] = getattr(parameter, choice)
    return plain


def infer_body(request: pb.ModelInferRequest) -> tuple[bytes, int]:
    """The HTTP body (JSON header, then every input's raw bytes) that carries ``request``;
    returns ``(body, header_length)``. Every output is asked for as binary data."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise invalid(
            f"The request has {len(raw)} raw_input_contents for {len(request.inputs)} inputs.",
            hint="Send one raw_input_contents entry per input, in input order, or none.",
        )
    inputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for position, tensor in enumerate(request.inputs):
        blob = raw[position] if raw else _typed_bytes(tensor)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {**parameters_of(tensor.parameters), "binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    header: dict[str, Any] = {
        "parameters": {**parameters_of(request.parameters), "binary_data_output": True},
        "inputs": inputs,
    }
    if request.id:
        header["id"] = request.id
    if request.outputs:
        header["outputs"] = [
            {
                "name": output.name,
                "parameters": {**parameters_of(output.parameters), "binary_data": True},
            }
            for output in request.outputs
        ]
    encoded = orjson.dumps(header)
    return b"".join([encoded, *blobs]), len(encoded)


def _typed_bytes(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    """An input's typed ``contents`` in the raw layout, after checking they are in the field
    of its datatype and fill its shape."""
    name, datatype = tensor.name, tensor.datatype
    present = [field.name for field, _ in tensor.contents.ListFields()]
    wanted = _FIELDS.get(datatype)
    if datatype not in DATATYPES:
        return b""  # the decoder names the unknown datatype
    if wanted is None:
        raise invalid(
            f"Input {name!r} is {datatype}, which gRPC carries in raw_input_contents only.",
            input=name,
        )
    stray = [field for field in present if field != wanted]
    if stray:
        raise invalid(
            f"Input {name!r} ({datatype}) has values in {', '.join(stray)}; {datatype} values "
            f"go in {wanted} (or raw_input_contents).",
            input=name,
        )
    values: Sequence[Any] = getattr(tensor.contents, wanted)
    shape = list(tensor.shape)
    if all(dim >= 0 for dim in shape) and len(values) != math.prod(shape):
        count = math.prod(shape)
        raise invalid(
            f"Input {name!r} has shape {shape} ({count} elements) but its {wanted} has "
            f"{len(values)} values.",
            input=name,
        )
    if datatype == "BYTES":
        return _bytes_layout(values)
    dtype = DATATYPES[datatype]
    assert dtype is not None  # BF16 has no typed field
    if dtype.kind in "iu":
        wide = np.array(values, dtype=np.uint64 if datatype == "UINT64" else np.int64)
        limits = np.iinfo(dtype)
        if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
            raise invalid(f"Input {name!r} has values out of range for {datatype}.", input=name)
        return wide.astype(dtype).tobytes()
    return np.array(values, dtype=dtype).tobytes()


def _bytes_layout(values: Iterable[bytes]) -> bytes:
    parts: list[bytes] = []
    for value in values:
        parts.append(_LENGTH.pack(len(value)))
        parts.append(value)
    return b"".join(parts)


def infer_response(reply: Reply) -> pb.ModelInferResponse:
    """The plane's 200 reply to a transcoded request as a ``ModelInferResponse``."""
    body = memoryview(reply.body)
    length = next(
        (int(value) for key, value in reply.headers if key == HEADER_LENGTH.encode()), None
    )
    header = orjson.loads(body if length is None else body[:length])
    response = pb.ModelInferResponse(
        model_name=header["model_name"],
        model_version=header.get("model_version", ""),
        id=header["id"],
    )
    offset = length or 0
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]  # every output was asked as binary
        response.outputs.add(
            name=output["name"], datatype=output["datatype"], shape=output["shape"]
        )
        response.raw_output_contents.append(bytes(body[offset : offset + size]))
        offset += size
    return response


def error_parts(reply: Reply) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """A refusal reply as ``(code, message, trailing metadata)``: the message is the error
    body's ``error``; the body itself rides along as ``dockyard-error`` (ASCII JSON, as
    metadata values must be)."""
    try:
        document = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        document = {"error": f"HTTP status {reply.status}"}
    trailing: tuple[tuple[str, str], ...] = (("dockyard-error", json.dumps(document)),)
    request_id = document.get("request_id")
    if isinstance(request_id, str) and request_id.isascii() and request_id.isprintable():
        trailing = (*trailing, ("x-request-id", request_id))
    return status_of(reply.status), str(document.get("error")), trailing
