"""Encoding Open Inference Protocol responses: JSON, or JSON and binary outputs.

Policies:

* **Not-a-number.** In JSON, NaN and ±infinity are written as ``null`` (what
  ``tritonclient`` and ``numpy.array(data, dtype=float)`` read back as NaN); infinity therefore
  comes back as NaN. Ask for ``binary_data`` to get exact IEEE values.
* **Missing strings.** ``None`` and NaN elements of a ``BYTES`` output are ``null`` in JSON
  and empty in binary; ``bytes`` that are not UTF-8 can only be sent as binary.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from dockyard.server.protocols.v2.tensors import (
    OutputTensor,
    RequestedOutput,
    invalid,
    listing,
)

__all__ = ["datatype_of", "encode_response", "plain_response"]

_BY_KIND = {
    ("b", 1): "BOOL", ("u", 1): "UINT8", ("u", 2): "UINT16", ("u", 4): "UINT32",
    ("u", 8): "UINT64", ("i", 1): "INT8", ("i", 2): "INT16", ("i", 4): "INT32",
    ("i", 8): "INT64", ("f", 2): "FP16", ("f", 4): "FP32", ("f", 8): "FP64",
}  # fmt: skip
_BY_DTYPE = {np.dtype(f"{kind}{size}"): name for (kind, size), name in _BY_KIND.items()}
"""The native dtypes' datatypes, looked up by dtype at once (most outputs are one of these)."""
_DECLARED = {
    dtype: "FP64" if dtype.kind == "f" else "INT64" if dtype.kind in "iu" else name
    for dtype, name in _BY_DTYPE.items()
    if dtype != np.uint64  # past INT64: widened (or refused) the whole way
}
"""The datatypes a model's outputs are declared as (its metadata: FP64 for floats, INT64
for integers, whatever width ran it), by the dtypes whose values JSON writes as they are."""
_WIRE = frozenset({np.dtype(np.float64), np.dtype(np.int64)})
_LENGTH = struct.Struct("<I")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def datatype_of(array: NDArray[Any]) -> str:
    """The wire datatype for an array: by dtype; ``object``, ``str`` and ``bytes`` are BYTES."""
    datatype = _BY_DTYPE.get(array.dtype)
    if datatype is not None:
        return datatype
    kind = array.dtype.kind
    if kind in "OUS":
        return "BYTES"
    datatype = _BY_KIND.get((kind, array.dtype.itemsize))
    if datatype is None:
        raise TypeError(
            f"The Open Inference Protocol has no datatype for numpy dtype {array.dtype}; "
            "convert the output to a boolean, integer, float or string array."
        )
    return datatype


def encode_response(
    *,
    model_name: str,
    model_version: str | None,
    request_id: str,
    outputs: Sequence[OutputTensor],
    requested: Sequence[RequestedOutput] = (),
    binary_output: bool = False,
    parameters: Mapping[str, Any] | None = None,
    declared: bool = False,
) -> tuple[bytes, int | None]:
    """Encode a response; return ``(body, json_header_length)``.

    Only the ``requested`` outputs are sent, in their order (all when none are); asking for an
    output the model does not have raises :class:`InvalidRequestError`. An output is binary
    when its request says ``binary_data: true``, or when ``binary_output`` is set and its
    request does not say ``false``. The header length is ``None`` when nothing is binary
    (the body is all JSON); otherwise the caller sends it as ``Inference-Header-Content-Length``.
    ``declared``: the outputs are a model's own, each sent as the datatype its metadata
    declares (:func:`plain_response`; binary data widened to it).
    """
    if not (requested or binary_output or parameters):
        plain = plain_response(model_name, model_version, request_id, outputs, declared=declared)
        if plain is not None:
            return plain, None
    if requested:
        available = {output.name: output for output in outputs}
        unknown = [wanted.name for wanted in requested if wanted.name not in available]
        if unknown:
            raise invalid(
                f"The model has no output {listing(unknown)}.",
                hint=f"Its outputs are {listing(list(available))}.",
                outputs=list(available),
            )
        chosen = [
            (available[wanted.name], binary_output if wanted.binary is None else wanted.binary)
            for wanted in requested
        ]
    else:
        chosen = [(output, binary_output) for output in outputs]
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output, binary in chosen:
        array = _widened(output.data) if declared else np.asarray(output.data)
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": array.shape}
        if binary:
            blob = _to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json(array, datatype, output.name)
        entries.append(entry)
    response = _response(model_name, model_version, request_id, parameters, entries)
    header = orjson.dumps(response, option=_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _response(
    model_name: str,
    model_version: str | None,
    request_id: str,
    parameters: Mapping[str, Any] | None,
    entries: list[dict[str, Any]],
) -> dict[str, Any]:
    response: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        response["model_version"] = model_version
    response["id"] = request_id
    if parameters:
        response["parameters"] = dict(parameters)
    response["outputs"] = entries
    return response


def plain_response(
    model_name: str,
    model_version: str | None,
    request_id: str,
    outputs: Sequence[tuple[str, Any]],
    *,
    declared: bool = False,
) -> bytes | None:
    """The usual answer in one step, all JSON: what :func:`encode_response` gives when no
    output is asked for by name or in binary, and every output is an array of a native
    number dtype (the predictions and probabilities of a model); ``None`` for any other
    output (another byte order, strings, objects, not an array), which it encodes.

    ``declared``: ``outputs`` are the model's own arrays, each sent as the datatype its
    metadata declares (FP64 for floats, INT64 for integers, whatever width ran the model:
    an ONNX twin answers float32 where its model answers float64), its values written as
    they are (a float32 as its own shortest digits, not those of its float64 widening)."""
    datatypes = _DECLARED if declared else _BY_DTYPE
    entries = []
    for name, array in outputs:
        datatype = datatypes.get(array.dtype) if type(array) is np.ndarray else None
        if datatype is None:
            return None
        entries.append(
            {"name": name, "datatype": datatype, "shape": array.shape, "data": array.ravel()}
        )
    response = _response(model_name, model_version, request_id, None, entries)
    return orjson.dumps(response, option=_NUMPY)


def _widened(values: Any) -> NDArray[Any]:
    """Floats as FP64 and integers as INT64, the datatypes a model's metadata declares
    (``GET /v2/models/{m}``), whatever ran it: an ONNX twin answers float32 where the
    native model answers float64."""
    if type(values) is np.ndarray and values.dtype in _WIRE:  # already as declared
        return values
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind == "f" and array.dtype != np.float64:
        return array.astype(np.float64)
    if kind in "iu" and array.dtype != np.int64:
        return array.astype(np.int64)
    return array


def _to_json(array: NDArray[Any], datatype: str, name: str) -> Any:
    if datatype != "BYTES":  # orjson writes numpy arrays natively, NaN and infinity as null
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array.ravel()  # C-contiguous, as orjson needs: a view when it already is
    items = array.reshape(-1).tolist()
    if all(type(item) is str for item in items):
        return items
    try:
        return [_text(item) for item in items]
    except UnicodeDecodeError:
        raise invalid(
            f"Output {name!r} holds bytes that are not UTF-8, which JSON cannot carry.",
            hint='Ask for it with "parameters": {"binary_data": true}.',
        ) from None


def _text(item: Any) -> str | None:
    if item is None or (isinstance(item, float) and math.isnan(item)):
        return None
    if isinstance(item, bytes):
        return item.decode()
    return item if isinstance(item, str) else str(item)


def _to_binary(array: NDArray[Any], datatype: str) -> bytes:
    if datatype != "BYTES":
        return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    parts: list[bytes] = []
    pack = _LENGTH.pack
    for item in array.reshape(-1).tolist():
        if isinstance(item, bytes):
            encoded = item
        else:
            text = _text(item)
            encoded = b"" if text is None else text.encode()
        parts.append(pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)
