"""The Open Inference Protocol's wire types: datatypes, the decoded request's tensors, the
outputs to send, the error helpers every part of the codec shares, and what the remembered
binary headers and JSON layouts share (a request's leading ``id`` split off,
:func:`without_id`; what is kept of a request, :func:`kept`, and given back,
:func:`recalled`). Pure data.

The records a request builds (:class:`InferRequest`, :class:`Tensor`, :class:`OutputTensor`,
:class:`RequestedOutput`) are immutable named tuples rather than frozen dataclasses: a frozen
dataclass sets each field through ``object.__setattr__``, about three times the cost of a
tuple, and a one-row request builds four of them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from dockyard.errors import InvalidRequestError

__all__ = [
    "DATATYPES",
    "NO_PARAMETERS",
    "ColumnBlock",
    "InferRequest",
    "OutputTensor",
    "RequestedOutput",
    "Tensor",
    "describe",
    "invalid",
    "kept",
    "listing",
    "recalled",
    "shaped",
    "without_id",
]

DATATYPES: Mapping[str, np.dtype[Any] | None] = MappingProxyType(
    {
        "BOOL": np.dtype(np.bool_),
        "UINT8": np.dtype("<u1"),
        "UINT16": np.dtype("<u2"),
        "UINT32": np.dtype("<u4"),
        "UINT64": np.dtype("<u8"),
        "INT8": np.dtype("<i1"),
        "INT16": np.dtype("<i2"),
        "INT32": np.dtype("<i4"),
        "INT64": np.dtype("<i8"),
        "FP16": np.dtype("<f2"),
        "FP32": np.dtype("<f4"),
        "FP64": np.dtype("<f8"),
        "BYTES": np.dtype(object),
        "BF16": None,
    }
)
"""Wire datatype -> numpy dtype of its little-endian elements; ``None`` for ``BF16``, which
numpy lacks (it decodes to ``float32``). ``BYTES`` holds ``str``/``bytes`` objects."""


class Tensor(NamedTuple):
    """One decoded input tensor; ``data`` already has ``shape``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: NDArray[Any]
    """``bool`` for BOOL, ``float32`` for BF16, an object array of ``str`` (or ``bytes``
    that are not UTF-8) for BYTES, else the datatype's little-endian dtype."""
    parameters: Mapping[str, Any]


class RequestedOutput(NamedTuple):
    """An output the request asks for; ``binary`` is its ``binary_data`` parameter, if given."""

    name: str
    binary: bool | None


NO_PARAMETERS: Mapping[str, Any] = MappingProxyType({})
"""An input's parameters when it has none (one shared, read-only mapping)."""


class ColumnBlock(Sequence[Tensor]):
    """Inputs that are plain columns: each a JSON float tensor of shape ``[rows]`` (or
    ``[rows, 1]``), one datatype, no parameters, decoded together into one ``[rows, inputs]``
    array (``values``; column *i* is input *i*). It is the inputs' sequence as it is: a
    :class:`Tensor` is made only for whoever asks for one (the tabular path takes ``values``
    whole), so a request of many one-value columns costs one conversion, not one per column."""

    __slots__ = ("datatype", "names", "shape", "values")

    def __init__(
        self, names: tuple[str, ...], datatype: str, shape: tuple[int, ...], values: NDArray[Any]
    ) -> None:
        self.names = names
        self.datatype = datatype
        self.shape = shape
        self.values = values

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self.names))[index])
        column = self.values[:, index].reshape(self.shape)
        return Tensor(self.names[index], self.datatype, self.shape, column, NO_PARAMETERS)


class InferRequest(NamedTuple):
    """A decoded inference request. Empty ``outputs`` means every output."""

    id: str | None
    inputs: tuple[Tensor, ...] | ColumnBlock
    outputs: tuple[RequestedOutput, ...]
    parameters: Mapping[str, Any]
    binary_output: bool
    """The request-level ``binary_data_output`` parameter (tritonclient sets it when it asks
    for no outputs by name)."""
    finite: bool = False
    """Every input's values are finite numbers as read: a JSON reader of plain numbers
    (orjson, simdjson) made them, which refuses ``NaN`` and numbers past float64, so the
    numeric path need not look for them again. ``False`` for binary data and for what the
    full decoder read (it reads ``null`` as NaN)."""


class OutputTensor(NamedTuple):
    """One model output to send; its datatype follows from ``data.dtype`` (:func:`datatype_of`)."""

    name: str
    data: NDArray[Any]


# -- errors ---------------------------------------------------------------------------------


def invalid(message: str, *, hint: str | None = None, **details: Any) -> InvalidRequestError:
    return InvalidRequestError(message, hint=hint, details=details or None)


def describe(value: Any) -> str:
    """A short description of a JSON value for error messages: ``"abc" (string)``."""
    if value is None:
        return "null"
    if type(value) in (list, dict):
        kind = "array" if type(value) is list else "object"
        try:
            text = orjson.dumps(value).decode() if len(value) <= 20 else ""
        except orjson.JSONEncodeError:  # integers beyond 64 bits
            text = ""
        if text and len(text) <= 60:
            return f"{text} ({kind})"
        return f"an array of {len(value)} values" if kind == "array" else "an object"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        text = orjson.dumps(value[:60]).decode() + ("..." if len(value) > 60 else "")
        return f"{text} (string)"
    return f"{value!r} ({'number' if isinstance(value, int | float) else type(value).__name__})"


def shaped(data: NDArray[Any], shape: tuple[int, ...], name: str) -> NDArray[Any]:
    """Input ``name``'s flat ``data`` as its ``shape``."""
    if len(shape) == 1:
        return data
    try:
        return data.reshape(shape)
    except ValueError:  # more dimensions than numpy allows
        raise invalid(f"Input {name!r} has shape {list(shape)}, too many dimensions.") from None


def listing(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:10])
    return shown + (f" and {len(names) - 10} more" if len(names) > 10 else "")


_LEADING_ID = re.compile(rb'\{[ \t\n\r]*"id"[ \t\n\r]*:[ \t\n\r]*"([^"\\\x00-\x1f]*)"')
"""A JSON object whose first member is ``"id"``, a string without escapes or the control
characters JSON refuses in one (kserve's client sends a fresh uuid4 with every request,
first)."""


def without_id(text: bytes, *, remembering: bool = False) -> tuple[bytes, str | None] | None:
    """A request's JSON with its ``id``'s value taken out (the key kept, the string emptied),
    and that value: what lets a client's requests, which differ in their ``id`` alone
    besides their values, be remembered as one. ``(text, None)`` when the request does not
    open with an ``id`` string; ``None`` for an id that is not UTF-8, and, ``remembering``,
    when ``text`` holds ``"id"`` more than once (a duplicate key, whose last value the
    parser keeps, or another string equal to ``id``): the caller then decodes it the whole
    way. Only what is remembered needs that count (a scan of the whole text, ~20 µs for a
    42 KB body): a request found by the rest of its bytes has the count the remembered one
    had, since its id holds no quote and the rest is that one's or plain numbers."""
    found = _LEADING_ID.match(text)
    if found is None:
        return text, None
    if remembering and text.count(b'"id"') != 1:
        return None
    try:
        value = found.group(1).decode()
    except UnicodeDecodeError:
        return None
    start, end = found.span(1)
    return text[:start] + text[end:], value


def kept(request: InferRequest, own_id: str | None) -> InferRequest:
    """What a remembered header or layout keeps of the ``request`` it decoded to: all but its
    inputs, its parameters read-only (every request recalled from it shares them), and no
    id where the request brought its own first (``own_id``, as :func:`without_id` split it)."""
    parameters = MappingProxyType(dict(request.parameters))
    return request._replace(
        id=None if own_id is not None else request.id, inputs=(), parameters=parameters
    )


def recalled(
    remembered: InferRequest,
    inputs: tuple[Tensor, ...] | ColumnBlock,
    own_id: str | None,
    *,
    finite: bool = False,
) -> InferRequest:
    """A remembered request (:func:`kept`) with a new request's ``inputs`` (``finite``: read
    from JSON numbers, see :attr:`InferRequest.finite`), and its id where it brought its
    own."""
    return InferRequest(
        remembered.id if own_id is None else own_id,
        inputs,
        remembered.outputs,
        remembered.parameters,
        remembered.binary_output,
        finite,
    )
