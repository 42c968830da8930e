"""The layouts of JSON requests of plain float columns, or of one float tensor, decoded
lately, so that a client's next request in one of them is read from its numbers alone
(:class:`JsonLayouts`).

A client sends one model the same JSON, byte for byte, but for the numbers in each
``data`` array: the inputs' names, datatype and shape, the keys' order, the spacing. A
request of twenty one-value columns spends most of its decoding on that repeated part
(twenty objects parsed, then checked as columns), which a layout lets it skip; one of
twenty 100-value columns spends a third of it walking simdjson's document an object and
an array at a time from Python; a small 2-D tensor (MLServer's own body) a third of it
on the request around its one array. The binary extension's JSON headers are remembered
the same way (:class:`~dockyard.server.protocols.v2.binary.BinaryHeaders`).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from itertools import chain
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import orjson
from numpy.typing import NDArray

from dockyard.server.protocols.json_numbers import SMALL_BYTES, JsonNumbers
from dockyard.server.protocols.v2.fast import FLOATS, float_block, plain_array
from dockyard.server.protocols.v2.tensors import (
    NO_PARAMETERS,
    ColumnBlock,
    InferRequest,
    Tensor,
    kept,
    recalled,
    without_id,
)

__all__ = ["LAYOUTS", "LEARN_EVERY", "JsonLayouts"]

LAYOUTS = 32
"""How many layouts a :class:`JsonLayouts` remembers."""
LEARN_EVERY = 64
"""Requests of float columns or of one float tensor that went the whole way between two
tries at learning a layout: a try costs about half a whole decoding more, so clients
whose layouts keep changing (a field that differs in every request), or cannot be
learned, pay it once in this many requests."""

_KEY = b'"data"'
_LIST = {list}
_NUMBER_BYTES = b"0123456789eE+-.," + b" \t\r\n"
"""The bytes of JSON numbers, commas and spaces: ``data`` arrays' contents with any other
byte hold something else (``true``, ``false``, ``null``, a string, an array, an object)."""


class _Layout(NamedTuple):
    """A request as it was sent, but for its ``data`` arrays' contents: the bytes before
    the first, ``opening`` (the key, colon and bracket as spaced), and after each the
    closing bracket and the bytes up to the next opening (``tails``, with ``cuts``, the
    slices that drop them); what its inputs decoded to but for their values, and the rest
    of the request it decoded to (its parameters, requested outputs, and ``id`` unless the
    request brings its own first)."""

    head: bytes
    opening: bytes
    tails: tuple[bytes, ...]
    cuts: tuple[slice, ...]
    names: tuple[str, ...]
    datatype: str
    shape: tuple[int, ...]
    request: InferRequest
    template: re.Pattern[bytes] | None = None  # once a request matched it: see _template


class _Tensor(NamedTuple):
    """A small request of one float tensor as it was sent, but for its ``data`` array: the
    bytes before the array (``head``, then ``opening``: the key, colon and bracket as
    spaced) and after it (``tail``); what its input decoded to but for its values, and the
    rest of the request it decoded to."""

    head: bytes
    opening: bytes
    tail: bytes
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: Mapping[str, Any]
    request: InferRequest


class JsonLayouts:
    """The layouts of the JSON requests of plain float columns (a
    :class:`~dockyard.server.protocols.v2.tensors.ColumnBlock`), or of one float tensor of
    one or two dimensions under :data:`~dockyard.server.protocols.json_numbers.SMALL_BYTES`
    (its data flat, or an array a row), decoded lately, each under its bytes before the
    first ``data`` key.

    A request whose bytes are a remembered request's but for the contents of its ``data``
    arrays, and whose contents are that many plain JSON numbers each (as the column path
    takes them: no ``null``, ``NaN``, string or nesting), decodes from those numbers alone,
    to what the whole way gives it; any other goes the whole way, so a malformed one is
    refused as it was. The numbers are read by the parser that reads the whole body (orjson
    under :data:`~dockyard.server.protocols.json_numbers.SMALL_BYTES`, simdjson from it),
    and converted as it converts them.

    Only requests that decoded to one float column block (no array in a ``data`` array) or
    to one float tensor, with no backslash and exactly one ``data`` key per input, are
    remembered: so that every other byte of the request is fixed (its parameters and
    requested outputs too: MLServer's pandas codec sends ``{"content_type": "pd"}``) and
    every ``"data"`` in it is an input's key. A leading ``id`` is left out of the layout
    (:func:`~dockyard.server.protocols.v2.tensors.without_id`): kserve's client sends a
    fresh one with every request. At most :data:`LAYOUTS`, one for each first bytes;
    when full it starts over. After a try at learning one, the next waits until
    :data:`LEARN_EVERY` such requests (columns and tensors alike) went the whole way. A
    request never shares its array with another: each is read from its own body."""

    def __init__(self, size: int = LAYOUTS, every: int = LEARN_EVERY) -> None:
        self.size = size
        self.every = every
        self._layouts: dict[bytes, _Layout | _Tensor] = {}
        self._wait = 0  # such requests still to go the whole way before the next try

    def __len__(self) -> int:
        return len(self._layouts)

    def decode(self, body: bytes, numbers: JsonNumbers | None = None) -> InferRequest | None:
        """The request ``body`` is, when its layout is remembered; else ``None`` (and for a
        body that is not ``bytes``: layouts are of ``bytes``; and for one of
        :data:`~dockyard.server.protocols.json_numbers.SMALL_BYTES` or more without
        ``numbers``, which reads those)."""
        if not self._layouts or type(body) is not bytes:
            return None
        split = without_id(body)
        if split is None:
            return None
        body, request_id = split
        first = body.find(_KEY)
        layout = self._layouts.get(body[:first]) if first > 0 else None
        if layout is None:
            return None
        if isinstance(layout, _Tensor):
            tensor = _tensor(body, layout) if len(body) < SMALL_BYTES else None
            if tensor is None:
                return None
            return recalled(layout.request, (tensor,), request_id, finite=True)
        if len(body) < SMALL_BYTES:
            if layout.template is not None:
                values = _matched(body, layout.template, layout)
            else:
                values = _small(body, layout)
                if values is not None:  # a layout its client repeats: match it in one call
                    self._layouts[layout.head] = layout._replace(template=_template(layout))
        else:
            values = None if numbers is None else _large(body, layout, numbers)
        if values is None:
            return None
        block = float_block(layout.names, layout.datatype, layout.shape, values)
        return recalled(layout.request, block, request_id, finite=True)

    def remember(self, body: bytes, request: InferRequest) -> None:
        """Keep ``body``'s layout, if it is one (see the class), with what it decoded to:
        ``request``."""
        inputs = request.inputs
        if type(body) is not bytes:
            return
        if not isinstance(inputs, ColumnBlock) and not _one_small_tensor(inputs, body):
            return
        if self._wait > 0:
            self._wait -= 1
            return
        self._wait = self.every - 1  # one try in so many, learned or not: a try reads the body
        if b"\\" in body or body.count(_KEY) != len(inputs):
            return
        split = without_id(body, remembering=True)
        if split is None:
            return
        body, leading_id = split
        first = body.find(_KEY)  # every "data" is an input's key, a bracket after it
        opening = body[first : body.index(b"[", first) + 1]
        rest = kept(request, leading_id)
        layout = (
            _columns(body, opening, inputs, rest)
            if isinstance(inputs, ColumnBlock)
            else _one_tensor(body, first, opening, inputs[0], rest)
        )
        if layout is None:
            return
        if len(self._layouts) >= self.size:
            self._layouts.clear()
        self._layouts[layout.head] = layout


def _one_small_tensor(inputs: Any, body: bytes) -> bool:
    """Whether ``inputs`` are one float tensor of one or two dimensions, none empty, decoded
    from a small ``body``."""
    if type(inputs) is not tuple or len(inputs) != 1 or len(body) >= SMALL_BYTES:
        return False
    (tensor,) = inputs
    return tensor.datatype in FLOATS and 1 <= len(tensor.shape) <= 2 and all(tensor.shape)


def _columns(body: bytes, opening: bytes, block: ColumnBlock, rest: InferRequest) -> _Layout | None:
    """The layout of a request of float columns, or ``None`` when its inputs are spaced
    apart or a row is an array."""
    pieces = body.split(opening)
    if len(pieces) != len(block.names) + 1:  # another spacing for some input
        return None
    ends = [piece.find(b"]") for piece in pieces[1:]]
    if any(b"[" in piece[:end] for piece, end in zip(pieces[1:], ends, strict=True)):
        return None  # a row an array: its numbers would be in the layout's bytes
    tails = tuple(piece[end:] for piece, end in zip(pieces[1:], ends, strict=True))
    cuts = tuple(slice(None, -len(tail)) for tail in tails)
    names = tuple(map(sys.intern, block.names))  # as the model's columns: compared by identity
    return _Layout(pieces[0], opening, tails, cuts, names, block.datatype, block.shape, rest)


def _one_tensor(
    body: bytes, first: int, opening: bytes, tensor: Tensor, rest: InferRequest
) -> _Tensor | None:
    """The layout of a request of one float tensor: its bytes around its ``data`` array,
    whose contents are numbers and arrays only (it decoded as floats)."""
    at, depth = first + len(opening), 1
    while depth:  # to the bracket that closes the data array
        close = body.find(b"]", at)
        if close < 0:
            return None
        nested = body.find(b"[", at, close)
        depth, at = (depth + 1, nested + 1) if nested >= 0 else (depth - 1, close + 1)
    parameters = MappingProxyType(dict(tensor.parameters)) if tensor.parameters else NO_PARAMETERS
    return _Tensor(
        body[:first],
        opening,
        body[at:],
        tensor.name,
        tensor.datatype,
        tensor.shape,
        parameters,
        rest,
    )


def _tensor(body: bytes, layout: _Tensor) -> Tensor | None:
    """The tensor of a small request in ``layout``: its ``data`` array read by orjson, as
    the whole way reads it, when it is flat or arrays of plain numbers, as many as the
    shape holds; ``None`` otherwise."""
    head, opening, tail, name, datatype, shape, parameters, _ = layout  # one C call
    start = len(head) + len(opening)  # just after the array's bracket
    end = len(body) - len(tail)
    if end < start or not body.startswith(opening, len(head)) or not body.endswith(tail):
        return None
    try:  # one JSON value from the bracket to the tail: the data array alone
        data = orjson.loads(memoryview(body)[start - 1 : end])
    except orjson.JSONDecodeError:
        return None
    values = _flat(data, shape)
    array = None if values is None else plain_array(values, datatype)
    if array is None:
        return None
    if len(shape) == 2:
        array = array.reshape(shape)
    return Tensor(name, datatype, shape, array, parameters)


def _flat(data: Any, shape: tuple[int, ...]) -> list[Any] | None:
    """A tensor's ``data`` as its values in order: flat as sent, or arrays (rows) of values
    joined, as the whole way joins them whatever the rows' lengths; ``None`` for any other
    nesting (the whole way flattens it, or refuses it) or another count."""
    if type(data) is not list:
        return None
    if data and type(data[0]) is list:
        if len(data) == 1:  # one row
            data = data[0]
        elif set(map(type, data)) == _LIST:  # map() with C callables: no frame per row
            data = list(chain.from_iterable(data))
        else:
            return None
    return data if len(data) == math.prod(shape) else None


def _small(body: bytes, layout: _Layout) -> NDArray[Any] | None:
    """The values of a small request in ``layout`` (its ``data`` arrays' contents, one
    after another), read by orjson, as the whole way reads them; ``None`` when it is not in
    that layout or they are not plain numbers, as many as the shape holds."""
    pieces = body.split(layout.opening)
    tails = layout.tails
    if len(pieces) != len(tails) + 1:
        return None
    contents = pieces[1:]
    if not all(map(bytes.endswith, contents, tails)):
        return None
    return _numbers(list(map(bytes.__getitem__, contents, layout.cuts)), layout)


def _template(layout: _Layout) -> re.Pattern[bytes]:
    """``layout`` as one pattern: its fixed bytes, and a group for each ``data`` array's
    contents (no closing bracket in them). Compiled (about a millisecond for twenty
    columns) once a request has matched the layout by :func:`_small`, so a layout no request
    repeats costs nothing; matching then costs less than finding the pieces by a split."""
    group = re.escape(layout.opening) + rb"([^\]]*)"
    return re.compile(re.escape(layout.head) + b"".join(group + re.escape(t) for t in layout.tails))


def _matched(body: bytes, template: re.Pattern[bytes], layout: _Layout) -> NDArray[Any] | None:
    """As :func:`_small`, with the layout's :func:`_template`."""
    match = template.fullmatch(body)
    return None if match is None else _numbers(match.groups(), layout)


def _numbers(contents: Sequence[bytes], layout: _Layout) -> NDArray[Any] | None:
    """The ``data`` arrays' ``contents`` of a small request in ``layout`` as its values:
    each as many plain numbers as the shape's rows, read by orjson; ``None`` otherwise."""
    rows = layout.shape[0]
    if rows > 1 and not all(part.count(b",") == rows - 1 for part in contents):
        return None
    joined = b",".join(contents)
    if joined.translate(None, _NUMBER_BYTES):  # a byte left: true, false, null, a string...
        return None
    try:
        numbers = orjson.loads(b"[" + joined + b"]")
    except orjson.JSONDecodeError:
        return None
    if len(numbers) != rows * len(contents):  # rows > 1: each had rows - 1 commas
        return None
    if layout.datatype == "FP64":  # JSON numbers only (the byte check): no type to look at
        return np.array(numbers, dtype=np.float64)
    return plain_array(numbers, layout.datatype)


def _large(body: bytes, layout: _Layout, numbers: JsonNumbers) -> NDArray[Any] | None:
    """The values of a large request in ``layout``, read by simdjson as the whole way
    reads them (:meth:`~dockyard.server.protocols.json_numbers.JsonNumbers.arrays`). Its
    fixed bytes are compared where they must be, a C call each, rather than found by a
    split (which copies the body); each ``data`` array's contents end at the first ``]``
    after its opening, so a nested array leaves its brackets unbalanced in the contents
    joined, which simdjson refuses."""
    opening, view, at = layout.opening, memoryview(body), len(layout.head)
    contents = []
    for tail in layout.tails:
        start = at + len(opening)
        end = body.find(b"]", start)
        if end < 0 or not body.startswith(opening, at) or not body.startswith(tail, end):
            return None
        contents.append(view[start:end])
        at = end + len(tail)
    if at != len(body):
        return None
    joined = b"[[" + b"],[".join(contents) + b"]]"
    values = numbers.arrays(joined, len(contents), layout.shape[0])
    if values is None or layout.datatype == "FP64":
        return values
    with np.errstate(over="raise"):
        try:
            return values.astype(np.float32)
        except FloatingPointError:  # beyond FP32: the whole way names it
            return None
