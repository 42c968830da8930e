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
* **Many floats.** Given a :class:`JsonNumbers`, a JSON body of 4 KiB or more whose inputs
  are FP32/FP64 tensors of plain numbers is read by simdjson, each ``data`` array copied to
  numpy in one step; it takes only what the path below accepts unchanged, and gives what it
  gives.
* **Headers decoded lately.** A client's binary requests repeat one JSON header (but for a
  leading ``id``, which kserve's client makes afresh each time); given a
  :class:`BinaryHeaders`, a header it holds is not parsed again, only the binary part read
  (and checked) as that header lays it out. It holds at most 32 headers of up to 16 KiB,
  each only after it decoded with every input in binary, and no request's values.
* **Layouts decoded lately.** A client's JSON requests of float columns, or of one float
  tensor, repeat one layout but for the numbers (and a leading ``id``); given a
  :class:`JsonLayouts`, a request in a layout it holds is read from its ``data`` arrays'
  contents alone (one parse of the numbers, by the parser the whole way uses for its size:
  orjson, or ``numbers``' simdjson from 4 KiB for columns). It holds at most 32 layouts,
  each only after it decoded to one block of float columns or one float tensor (under
  4 KiB), and no request's values.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from itertools import chain
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from dockyard.errors import PayloadTooLargeError
from dockyard.server.protocols.json_numbers import JsonNumbers, Tensors
from dockyard.server.protocols.v2.binary import HEADER_BYTES, BinaryHeaders, binary_tensor
from dockyard.server.protocols.v2.fast import (
    BULK,
    FLOATS,
    binary_block,
    column_block,
    plain_floats,
)
from dockyard.server.protocols.v2.layouts import JsonLayouts
from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    NO_PARAMETERS,
    ColumnBlock,
    InferRequest,
    RequestedOutput,
    Tensor,
    describe,
    invalid,
    shaped,
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


# -- requests -----------------------------------------------------------------------------


def decode_request(
    body: bytes,
    *,
    header_length: int | None = None,
    content_encoding: str | None = None,
    max_body_bytes: int | None = None,
    headers: BinaryHeaders | None = None,
    numbers: JsonNumbers | None = None,
    layouts: JsonLayouts | None = None,
) -> InferRequest:
    """Decode an inference request body; raise :class:`InvalidRequestError` if malformed.

    ``header_length`` is the ``Inference-Header-Content-Length`` HTTP header's value (binary
    tensor extension) and counts bytes of the decompressed body. ``content_encoding`` is the
    ``Content-Encoding`` header; the body inflates to at most ``max_body_bytes``. With
    ``headers``, a binary request whose JSON header was decoded lately skips decoding it
    again (:class:`BinaryHeaders`); with ``numbers``, a JSON request of many floats is read
    by simdjson when it takes it (:class:`JsonNumbers`); with ``layouts``, a JSON request of
    float columns (or a small one of one float tensor) laid out as one decoded lately is
    read from its numbers alone (:class:`JsonLayouts`).
    """
    if content_encoding:
        body = _inflate(body, content_encoding, max_body_bytes)
    view = memoryview(body)
    binary: memoryview | None = None
    header: bytes | None = None
    if header_length is not None:
        if not 0 <= header_length <= len(view):
            raise invalid(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(view)} bytes.",
                hint="The header gives the length of the JSON part at the start of the body.",
            )
        view, binary = view[:header_length], view[header_length:]
        if headers is not None and header_length <= HEADER_BYTES:
            header = bytes(view)
            known = headers.decode(header, binary)
            if known is not None:
                return known
    else:
        known = None if layouts is None else layouts.decode(body, numbers)
        if known is not None:
            return known
        found = None if numbers is None else numbers.v2_request(body)
        if found is not None:
            read = _numbers_inputs(found)
            request = InferRequest(found.id, read, (), NO_PARAMETERS, False, finite=True)
            if layouts is not None:
                layouts.remember(body, request)
            return request
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
    request = InferRequest(
        id=request_id,
        inputs=_inputs(inputs, binary),
        outputs=_requested_outputs(document.get("outputs")),
        parameters=parameters,
        binary_output=binary_output,
    )
    if header is not None and binary is not None and headers is not None:
        headers.remember(header, request, len(binary))
    elif layouts is not None and binary is None:
        layouts.remember(body, request)
    return request


def _inputs(inputs: list[Any], binary: memoryview | None) -> tuple[Tensor, ...] | ColumnBlock:
    if len(inputs) > 1:  # plain columns, taken in one step
        block = column_block(inputs) if binary is None else binary_block(inputs, binary)
        if block is not None:
            return block
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
    return tuple(tensors)


def _numbers_inputs(found: Tensors) -> tuple[Tensor, ...] | ColumnBlock:
    """What :func:`_inputs` makes of the inputs :class:`JsonNumbers` read: one
    :class:`ColumnBlock` for several columns of one float datatype and one shape ``[rows]``
    or ``[rows, 1]``, a tensor each otherwise."""
    names, datatypes, shapes = found.names, found.datatypes, found.shapes
    first = shapes[0]
    if (
        len(names) > 1
        and first[0] >= 1
        and (len(first) == 1 or first[1] == 1)
        and shapes.count(first) == len(shapes)
        and datatypes.count(datatypes[0]) == len(datatypes)
    ):
        if datatypes[0] == "FP64":  # the values as read, a column after another
            block = found.flat.reshape(len(names), -1).T
            return ColumnBlock(tuple(names), "FP64", first, np.ascontiguousarray(block))
        return ColumnBlock(tuple(names), datatypes[0], first, np.stack(found.values, axis=1))
    return tuple(
        Tensor(name, datatype, dims, shaped(flat, dims, name), NO_PARAMETERS)
        for name, datatype, dims, flat in zip(names, datatypes, shapes, found.values, strict=True)
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
        return binary_tensor(binary[offset:end], name, datatype, shape, parameters), end
    if "data" in item:
        data = _from_json(item["data"], datatype, math.prod(shape), shape, name)
    elif "shared_memory_region" in parameters:
        raise invalid(f"Input {name!r} uses shared memory, which Dockyard does not support.")
    else:
        raise invalid(
            f'Input {name!r} has no "data" and no binary_data_size.',
            hint='Send its values as "data" (a JSON array) or as binary data.',
            input=name,
        )
    return Tensor(name, datatype, shape, shaped(data, shape, name), parameters), offset


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
    if count >= BULK and datatype in FLOATS and data and type(data[0]) is list:
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
