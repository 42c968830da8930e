"""The binary tensor extension's data part: each input's raw little-endian bytes as the
array it stands for (:func:`binary_tensor`), and the JSON headers of binary requests
decoded lately (:class:`BinaryHeaders`), so that a client's next request with one of them
is read from its binary part alone. The policies (zero copy, ``BF16``, ``BOOL`` bytes,
``BYTES`` elements) are stated in :mod:`~dockyard.server.protocols.v2.decode`."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dockyard.errors import InvalidRequestError
from dockyard.server.protocols.v2.fast import column_view
from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    ColumnBlock,
    InferRequest,
    Tensor,
    invalid,
    kept,
    recalled,
    shaped,
    without_id,
)

__all__ = ["HEADERS", "HEADER_BYTES", "BinaryHeaders", "binary_tensor"]

_LENGTH = struct.Struct("<I")


def binary_tensor(
    raw: memoryview,
    name: str,
    datatype: str,
    shape: tuple[int, ...],
    parameters: Mapping[str, Any],
) -> Tensor:
    """Input ``name``'s tensor from its binary data ``raw`` (exactly its
    ``binary_data_size`` bytes); raise :class:`InvalidRequestError` naming what is wrong."""
    data = _from_binary(raw, datatype, math.prod(shape), shape, name)
    return Tensor(name, datatype, shape, shaped(data, shape, name), parameters)


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


HEADERS = 32
"""How many binary requests' JSON headers a :class:`BinaryHeaders` remembers."""
HEADER_BYTES = 16 * 1024
"""The longest JSON header remembered (~200 one-value columns): a longer one is decoded
every time, so what is remembered stays under ``HEADERS`` x this."""


class _Plan(NamedTuple):
    """A binary request's JSON header as decoded, without the binary part's values: the
    request (no inputs), and either its inputs' column block (names, datatype, shape) or
    each input's name, datatype, shape and parameters, in the binary part's order; the
    binary part's length."""

    request: InferRequest
    block: tuple[tuple[str, ...], str, tuple[int, ...]] | None
    tensors: tuple[tuple[str, str, tuple[int, ...], Mapping[str, Any]], ...]
    size: int


class BinaryHeaders:
    """The JSON headers of the binary requests decoded lately (the binary tensor extension),
    each with what it decoded to. A client's binary requests to one model repeat one header
    byte for byte (the inputs' names, datatypes, shapes and sizes; only the binary part
    changes, and the ``id`` where a client sends a fresh one first, as kserve's does), and
    decoding it again is most of what a request of many one-value columns
    costs. A request whose header is here and whose binary part has the length it had is
    decoded from the binary part alone, with the checks that part's values get (a ``BOOL``
    byte other than 0 or 1, malformed ``BYTES``) made on it as before; any other goes the
    whole way, so a malformed one is refused as it was.

    Only headers that decoded, every input in binary (inline ``data`` would have to be
    copied for every request), of at most :data:`HEADER_BYTES`, are remembered, at most
    :data:`HEADERS`; when it is full it starts over. A request never shares its arrays with
    another: each is read from its own body."""

    def __init__(self, size: int = HEADERS) -> None:
        self.size = size
        self._plans: dict[bytes, _Plan] = {}

    def __len__(self) -> int:
        return len(self._plans)

    def decode(self, header: bytes, binary: memoryview) -> InferRequest | None:
        """The request of ``header`` with ``binary`` as its binary part, or ``None`` when the
        header is not remembered (but for its leading ``id``: :func:`without_id`) or
        ``binary`` has another length."""
        split = without_id(header)
        if split is None:
            return None
        key, request_id = split
        plan = self._plans.get(key)
        if plan is None or len(binary) != plan.size:
            return None
        inputs: tuple[Tensor, ...] | ColumnBlock
        if plan.block is not None:
            inputs = column_view(*plan.block, binary)
        else:
            tensors = []
            offset = 0
            for name, datatype, shape, parameters in plan.tensors:
                raw = binary[offset : offset + parameters["binary_data_size"]]
                tensors.append(binary_tensor(raw, name, datatype, shape, parameters))
                offset += len(raw)
            inputs = tuple(tensors)
        return recalled(plan.request, inputs, request_id)

    def remember(self, header: bytes, request: InferRequest, size: int) -> None:
        """Keep what ``header`` decoded to (``request``, whose binary part had ``size``
        bytes), if every input came from the binary part; under the header without its
        leading ``id``, so that a client's next requests, a fresh id each, find it."""
        split = without_id(header, remembering=True)
        if split is None:
            return
        inputs = request.inputs
        block = None
        tensors: tuple[tuple[str, str, tuple[int, ...], Mapping[str, Any]], ...] = ()
        if isinstance(inputs, ColumnBlock):
            block = (inputs.names, inputs.datatype, inputs.shape)
        elif inputs and all("binary_data_size" in tensor.parameters for tensor in inputs):
            tensors = tuple(
                (t.name, t.datatype, t.shape, MappingProxyType(dict(t.parameters))) for t in inputs
            )
        else:
            return
        if len(self._plans) >= self.size:
            self._plans.clear()
        self._plans[split[0]] = _Plan(kept(request, split[1]), block, tensors, size)
