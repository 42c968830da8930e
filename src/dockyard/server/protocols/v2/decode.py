"""Decoding Open Inference Protocol requests, and their values as the validator takes them.

Requests (:func:`decode_request`) may be plain JSON or use the binary tensor extension: the
first ``Inference-Header-Content-Length`` bytes are JSON, the rest the raw little-endian bytes
of every input that has ``parameters.binary_data_size``, in input order. JSON ``data`` is
row-major, flat or nested. Every malformed request raises
:class:`~dockyard.errors.InvalidRequestError` naming the input and what was wrong.

Policies:

* **Compression.** ``Content-Encoding`` ``gzip``, ``deflate`` (zlib-wrapped or raw) and
  ``identity`` are accepted; the body is inflated in bounded steps and never beyond
  ``max_body_bytes``: a body that would inflate further (a zip bomb) raises
  :class:`~dockyard.errors.PayloadTooLargeError` (413, as a body over the limit as sent)
  saying so, with ``details.limit``; no
  more than ``max_body_bytes + 1`` bytes are ever held. Other encodings are refused the same way.
* **Not-a-number.** JSON has no NaN: ``null`` in a floating-point tensor's ``data`` decodes
  to NaN, and the ``NaN``/``Infinity`` literals that Python encoders (tritonclient,
  ``json.dumps``) write are accepted too (a slower parser is tried only when the fast one
  refuses the body).
* **Missing strings.** In :func:`~dockyard.server.protocols.v2.tabular.tabular_input`, an
  empty ``BYTES`` element (``""``) means a missing value and becomes ``None``; NaN in
  floating-point tensors stays NaN. Integer and boolean tensors cannot carry missing values.
* **Strings.** ``BYTES`` elements decode to ``str`` (UTF-8), or stay ``bytes`` when they are
  not valid UTF-8 (binary only: JSON strings are always text).
* **Zero copy.** Binary numeric inputs are ``numpy.frombuffer`` views of the body (read-only)
  unless misaligned, when they are copied. ``BF16`` arrives in binary only and decodes to
  ``float32``. ``BOOL`` bytes must be 0 or 1.
* **Parameters.** Values must be strings, numbers or booleans, except Triton's reserved names
  (``sequence_*``, ``priority``, ``timeout``, ``headers``, ``binary_data_output``,
  ``triton_*``), which are accepted as they come. Only ``binary_data_output`` (request),
  ``binary_data_size`` (input) and ``binary_data`` (requested output) are interpreted; the rest
  are passed on untouched. Unknown top-level keys (``model_name`` from kserve) are ignored.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Mapping
from itertools import chain
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from dockyard.errors import InvalidRequestError, PayloadTooLargeError
from dockyard.server.protocols.v2.fast import (
    BULK,
    FLOATS,
    binary_block,
    column_block,
    plain_floats,
)
from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    NO_PARAMETERS,
    InferRequest,
    RequestedOutput,
    Tensor,
    describe,
    invalid,
)

__all__ = ["decode_request"]

_RESERVED = frozenset({"priority", "timeout", "headers", "binary_data_output"})
_RESERVED_PREFIXES = ("sequence_", "triton_")
_SCALARS = (str, int, float, bool)
_INT: frozenset[type] = frozenset({int})
_FLOAT: frozenset[type] = frozenset({int, float, type(None)})
_INTEGERS = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
_JSON_TYPES: dict[str, tuple[frozenset[type], str]] = {
    "BOOL": (frozenset({bool}), "true or false"),
    "BYTES": (frozenset({str}), "strings"),
    "FP16": (_FLOAT, "numbers (null for NaN)"),
    "FP32": (_FLOAT, "numbers (null for NaN)"),
    "FP64": (_FLOAT, "numbers (null for NaN)"),
    **dict.fromkeys(_INTEGERS, (_INT, "integers")),
}
_LENGTH = struct.Struct("<I")


# -- requests -----------------------------------------------------------------------------


def decode_request(
    body: bytes,
    *,
    header_length: int | None = None,
    content_encoding: str | None = None,
    max_body_bytes: int | None = None,
) -> InferRequest:
    """Decode an inference request body; raise :class:`InvalidRequestError` if malformed.

    ``header_length`` is the ``Inference-Header-Content-Length`` HTTP header's value (binary
    tensor extension) and counts bytes of the decompressed body. ``content_encoding`` is the
    ``Content-Encoding`` header; the body inflates to at most ``max_body_bytes``.
    """
    if content_encoding:
        body = _inflate(body, content_encoding, max_body_bytes)
    view = memoryview(body)
    binary: memoryview | None = None
    if header_length is not None:
        if not 0 <= header_length <= len(view):
            raise invalid(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(view)} bytes.",
                hint="The header gives the length of the JSON part at the start of the body.",
            )
        view, binary = view[:header_length], view[header_length:]
    document = _parse_json(view)
    if type(document) is not dict:
        raise invalid(
            f"The request must be a JSON object, not {describe(document)}.",
            hint='Send {"inputs": [{"name", "shape", "datatype", "data"}, ...]}.',
        )
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise invalid(f'The request "id" must be a string, not {describe(request_id)}.')
    parameters = _parameters(document.get("parameters"), "the request")
    binary_output = parameters.get("binary_data_output", False)
    if type(binary_output) is not bool:
        raise invalid(
            f'The request parameter "binary_data_output" must be true or false, not '
            f"{describe(binary_output)}."
        )
    inputs = document.get("inputs")
    if type(inputs) is not list:
        raise invalid(
            'The request has no "inputs" list.'
            if inputs is None
            else f'The request "inputs" must be a list, not {describe(inputs)}.',
            hint='Send {"inputs": [{"name", "shape", "datatype", "data"}, ...]}.',
        )
    block = None  # plain columns, taken in one step
    if len(inputs) > 1:
        block = column_block(inputs) if binary is None else binary_block(inputs, binary)
    if block is not None:
        return InferRequest(
            id=request_id,
            inputs=block,
            outputs=_requested_outputs(document.get("outputs")),
            parameters=parameters,
            binary_output=binary_output,
        )
    tensors: list[Tensor] = []
    seen: set[str] = set()
    offset = 0
    for position, item in enumerate(inputs):
        tensor, offset = _decode_input(item, position, binary, offset)
        if tensor.name in seen:
            raise invalid(f"Input {tensor.name!r} appears more than once.", input=tensor.name)
        seen.add(tensor.name)
        tensors.append(tensor)
    if binary is not None and offset != len(binary):
        raise invalid(
            f"The body has {len(binary) - offset} bytes after the binary data of the inputs "
            f"(their binary_data_size add up to {offset}, the binary part is {len(binary)}).",
            hint="Check each input's binary_data_size and Inference-Header-Content-Length.",
        )
    return InferRequest(
        id=request_id,
        inputs=tuple(tensors),
        outputs=_requested_outputs(document.get("outputs")),
        parameters=parameters,
        binary_output=binary_output,
    )


def _decode_input(
    item: Any, position: int, binary: memoryview | None, offset: int
) -> tuple[Tensor, int]:
    if type(item) is not dict:
        raise invalid(f"inputs[{position}] must be a JSON object, not {describe(item)}.")
    name = item.get("name")
    if type(name) is not str or not name:
        raise invalid(f'inputs[{position}] needs a "name" (a non-empty string).')
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        known = ", ".join(DATATYPES)
        suggestion = (
            f" Did you mean {datatype.upper()!r}?"
            if type(datatype) is str and datatype.upper() in DATATYPES
            else ""
        )
        raise invalid(
            f"Input {name!r} has unknown datatype {describe(datatype)}.{suggestion}",
            hint=f"Datatypes are {known}.",
            input=name,
        )
    shape = _shape(item.get("shape"), name)
    count = math.prod(shape)
    parameters = _parameters(item.get("parameters"), f"input {name!r}")
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size < 0:
            raise invalid(
                f"Input {name!r} has binary_data_size {describe(size)}; it must be a "
                "non-negative integer.",
                input=name,
            )
        if "data" in item:
            raise invalid(
                f'Input {name!r} has both inline "data" and binary_data_size.',
                hint="Send each input's values either in JSON or as binary data, not both.",
                input=name,
            )
        if binary is None:
            raise invalid(
                f"Input {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header.",
                hint="Set the header to the length of the JSON part of the body.",
                input=name,
            )
        end = offset + size
        if end > len(binary):
            raise invalid(
                f"Input {name!r} has binary_data_size {size} at offset {offset}, past the end "
                f"of the {len(binary)} bytes of binary data.",
                input=name,
            )
        data = _from_binary(binary[offset:end], datatype, count, shape, name)
        offset = end
    elif "data" in item:
        data = _from_json(item["data"], datatype, count, shape, name)
    elif "shared_memory_region" in parameters:
        raise invalid(f"Input {name!r} uses shared memory, which Dockyard does not support.")
    else:
        raise invalid(
            f'Input {name!r} has no "data" and no binary_data_size.',
            hint='Send its values as "data" (a JSON array) or as binary data.',
            input=name,
        )
    if len(shape) != 1:
        try:
            data = data.reshape(shape)
        except ValueError:  # more dimensions than numpy allows
            raise invalid(f"Input {name!r} has shape {list(shape)}, too many dimensions.") from None
    return Tensor(name, datatype, shape, data, parameters), offset


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if type(value) is list and 1 <= len(value) <= 2:  # a column or a 2-D tensor, at once
        first, last = value[0], value[-1]
        if type(first) is int and type(last) is int and first >= 0 and last >= 0:
            return (first,) if len(value) == 1 else (first, last)
    if type(value) is not list or any(type(dim) is not int for dim in value):
        raise invalid(
            f"Input {name!r} has shape {describe(value)}; a shape is a list of integers.",
            input=name,
        )
    if any(dim < 0 for dim in value):
        raise invalid(
            f"Input {name!r} has shape {value}; dimensions cannot be negative in a request.",
            input=name,
        )
    return tuple(value)


def _parameters(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return NO_PARAMETERS
    if type(value) is not dict:
        raise invalid(f'The "parameters" of {where} must be a JSON object, not {describe(value)}.')
    for key, item in value.items():
        if not isinstance(item, _SCALARS) and not _reserved(key):
            raise invalid(
                f"Parameter {key!r} of {where} is {describe(item)}; parameter values are "
                "strings, numbers or booleans."
            )
    return value


def _reserved(key: str) -> bool:
    return key in _RESERVED or key.startswith(_RESERVED_PREFIXES)


def _requested_outputs(value: Any) -> tuple[RequestedOutput, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise invalid(f'The request "outputs" must be a list, not {describe(value)}.')
    outputs: list[RequestedOutput] = []
    seen: set[str] = set()
    for position, item in enumerate(value):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str or not name:
            raise invalid(f'outputs[{position}] needs a "name" (a non-empty string).')
        if name in seen:
            raise invalid(f"Output {name!r} is requested more than once.")
        seen.add(name)
        binary = _parameters(item.get("parameters"), f"output {name!r}").get("binary_data")
        if binary is not None and type(binary) is not bool:
            raise invalid(
                f"Output {name!r} has binary_data {describe(binary)}; it must be true or false."
            )
        outputs.append(RequestedOutput(name, binary))
    return tuple(outputs)


def _from_json(
    data: Any, datatype: str, count: int, shape: tuple[int, ...], name: str
) -> NDArray[Any]:
    if type(data) is not list:
        raise invalid(
            f'The "data" of input {name!r} must be a JSON array, not {describe(data)}.',
            input=name,
        )
    if count >= BULK and datatype in FLOATS and type(data[0]) is list:
        array = _plain_floats(data, count, datatype)
        if array is not None:
            return array
    flat: list[Any] = data
    while len(flat) == 1 and type(flat[0]) is list:  # one row: nothing to join
        flat = flat[0]
    while flat and type(flat[0]) is list:
        if any(type(item) is not list for item in flat):
            raise invalid(
                f'The "data" of input {name!r} mixes nested arrays and values at one level.',
                input=name,
            )
        flat = list(chain.from_iterable(flat))
    if len(flat) != count:
        raise invalid(
            f"Input {name!r} has shape {list(shape)} ({count} elements) but its data has "
            f"{len(flat)} values.",
            input=name,
        )
    if datatype == "BF16":
        raise invalid(f"Input {name!r} is BF16, which can only be sent as binary data.", input=name)
    allowed, expected = _JSON_TYPES[datatype]
    if not allowed.issuperset(map(type, flat)):
        index, value = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        raise invalid(
            f"Input {name!r} ({datatype}) has {describe(value)} at position {index}; "
            f"{datatype} data in JSON must be {expected}.",
            input=name,
        )
    dtype = DATATYPES[datatype]
    try:
        if datatype in ("FP16", "FP32"):
            with np.errstate(over="raise"):
                return np.array(flat, dtype=dtype)
        return np.array(flat, dtype=dtype)
    except (OverflowError, FloatingPointError):
        raise invalid(
            f"Input {name!r} has values out of range for {datatype}.", input=name
        ) from None


def _plain_floats(data: list[Any], count: int, datatype: str) -> NDArray[Any] | None:
    """Plain numbers nested evenly (a 2-D tensor's rows) straight into a flat array in
    numpy's C loop (:func:`~dockyard.server.protocols.v2.fast.plain_floats`); ``None`` for
    anything the checked path must look at and name: nulls, strings, booleans, uneven
    nesting, a count that does not match the shape, integers beyond int64, an FP32
    overflow."""
    array = plain_floats(data, datatype)
    return None if array is None or array.size != count else array.reshape(-1)


def _from_binary(
    raw: memoryview, datatype: str, count: int, shape: tuple[int, ...], name: str
) -> NDArray[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, count, name)
    dtype = DATATYPES[datatype]
    itemsize = 2 if dtype is None else dtype.itemsize
    if len(raw) != count * itemsize:
        raise invalid(
            f"Input {name!r} has binary_data_size {len(raw)} but shape {list(shape)} of "
            f"{datatype} takes {count * itemsize} bytes ({count} × {itemsize}).",
            input=name,
        )
    if datatype == "BF16":
        high = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return high.view(np.float32)
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise invalid(
                f"Input {name!r} (BOOL) has a byte other than 0 or 1 in its binary data.",
                input=name,
            )
        return octets.view(np.bool_)
    array: NDArray[Any] = np.frombuffer(raw, dtype=dtype)
    return array if array.flags.aligned else array.copy()


def _bytes_elements(raw: memoryview, count: int, name: str) -> NDArray[Any]:
    """Decode BYTES binary data: each element a 4-byte little-endian length, then the bytes."""
    end = len(raw)
    if count * 4 > end:
        raise _bytes_error(name, f"{end} bytes cannot hold the {count} elements of its shape")
    items: list[Any] = []
    offset = 0
    unpack = _LENGTH.unpack_from
    for index in range(count):
        if offset + 4 > end:
            raise _bytes_error(name, f"it ends after {index} of the {count} elements")
        (length,) = unpack(raw, offset)
        offset += 4
        if offset + length > end:
            raise _bytes_error(
                name, f"element {index} claims {length} bytes, only {end - offset} remain"
            )
        chunk = bytes(raw[offset : offset + length])
        offset += length
        try:
            items.append(chunk.decode())
        except UnicodeDecodeError:
            items.append(chunk)
    if offset != end:
        raise _bytes_error(name, f"{end - offset} bytes follow its {count} elements")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


def _bytes_error(name: str, what: str) -> InvalidRequestError:
    return invalid(
        f"The binary BYTES data of input {name!r} is malformed: {what}.",
        hint="Each element is a 4-byte little-endian length followed by that many bytes.",
        input=name,
    )


def _parse_json(view: memoryview) -> Any:
    try:
        return orjson.loads(view)
    except orjson.JSONDecodeError as exc:
        try:  # NaN/Infinity literals, which Python encoders write and orjson refuses
            return json.loads(bytes(view))
        except (ValueError, RecursionError):
            raise invalid(
                f"The request is not valid JSON: {exc}.",
                hint="With binary tensor data, set Inference-Header-Content-Length to the "
                "length of the JSON part.",
            ) from None


def _inflate(body: bytes, content_encoding: str, limit: int | None) -> bytes:
    """Undo ``Content-Encoding`` (listed in the order applied), never past ``limit`` bytes."""
    for encoding in reversed(content_encoding.lower().split(",")):
        encoding = encoding.strip()
        if encoding in ("gzip", "x-gzip"):
            body = _decompress(body, 16 + zlib.MAX_WBITS, limit, encoding)
        elif encoding == "deflate":  # zlib-wrapped per RFC 9110; raw deflate is common too
            zlib_header = (
                len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
            )
            wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            body = _decompress(body, wbits, limit, encoding)
        elif encoding not in ("identity", ""):
            raise invalid(
                f"Content-Encoding {encoding!r} is not supported.",
                hint="Send the body as is, or compressed with gzip or deflate.",
            )
    return body


def _decompress(data: bytes, wbits: int, limit: int | None, encoding: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        while True:  # one round per gzip member
            inflater = zlib.decompressobj(wbits)
            chunk = inflater.decompress(data, 0 if limit is None else limit - total + 1)
            total += len(chunk)
            chunks.append(chunk)
            if limit is not None and (total > limit or inflater.unconsumed_tail):
                raise PayloadTooLargeError(
                    f"The {encoding} body inflates to more than the limit of {limit} bytes.",
                    hint="Send a smaller request, or split it into several.",
                    details={"limit": limit},
                )
            if not inflater.eof:
                raise invalid(f"The {encoding} body is truncated.")
            data = inflater.unused_data
            if not data or wbits != 16 + zlib.MAX_WBITS:
                break
    except zlib.error as exc:
        raise invalid(f"The body is not valid {encoding} data: {exc}.") from None
    if data:
        raise invalid(f"The {encoding} body has {len(data)} bytes after its end.")
    return b"".join(chunks)
