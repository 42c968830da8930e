"""JSON requests of many numbers, read by simdjson (records: msgspec) straight into numpy.

A 100-row request of 20 features is 2,000 numbers: orjson makes a Python float of each
(~55 µs for the body), and numpy reads them back from those objects (~40 µs more) before
anything is checked. simdjson (``pysimdjson``) parses the body into its own tape and copies
a whole array of numbers out as doubles in one C loop (``Array.as_buffer``), with no Python
object per value. :class:`JsonNumbers` reads two kinds of body this way:

* **v2** (:meth:`JsonNumbers.v2_request`): a JSON object of ``inputs`` (and an ``id``,
  nothing else), each input an object of exactly ``name``, ``datatype`` (``FP32`` or
  ``FP64``), ``shape`` (one or two integers) and ``data`` (numbers only, flat or one array a
  row, as many as the shape holds), distinct names: their values, of which the v2 decoder
  (:func:`~dockyard.server.protocols.v2.decode.decode_request`) makes what its full path
  makes.
* **v1** (:meth:`JsonNumbers.v1_values`): ``{"instances": [[...], ...]}`` alone, rows of
  numbers only, all of one length, as their 2-D ``float64`` array; or ``{"inputs":
  {"column": [...], ...}}`` alone, columns of numbers only, all of one length, as one
  block of them (:class:`~dockyard.schema.numeric_rows.ColumnValues`); or, given the
  model's column names, ``{"instances": [{"column": ...}, ...]}`` alone, records of
  exactly those columns and numbers only, as one 2-D array in their order. The caller
  hands them to the validator's numeric path (which takes integers and floats alike, as
  it does from lists) and otherwise decodes the body the whole way.

Records are objects, which simdjson reads one key at a time from Python: msgspec decodes
them instead, into rows of a struct typed for those columns (a float each: it refuses
``true``, ``null`` and strings as it parses, and any key missing or added), with a Python
float per value but no dict per record.

Anything else gets ``None`` and goes the whole way, where it is decoded or refused naming
what is wrong: ``null`` (NaN), booleans, strings, integers past 64 bits, an FP32 overflow,
parameters, requested outputs, three dimensions, other keys.

simdjson flattens nested arrays on its own, so an array where a number belongs (``[[1, [2]],
[3, 4]]``, which the full decoder refuses) would pass a count of the values. The checks
count the arrays instead: the body's ``[`` characters, less those inside the strings read,
must be exactly the arrays the checks saw.

Bodies under :data:`SMALL_BYTES` are left to orjson, which is as fast on a few numbers and
already loaded: simdjson (and msgspec) are imported on the first large body.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from dockyard.schema.numeric_rows import ColumnValues

if TYPE_CHECKING:
    import msgspec
    import simdjson

__all__ = ["KEPT_BYTES", "SMALL_BYTES", "JsonNumbers", "Tensors", "V1Values"]

SMALL_BYTES = 4096
"""Bodies shorter than this are decoded by orjson (a one-row request is ~400–800 bytes)."""

KEPT_BYTES = 1 << 20
"""After a body larger than this the parser is let go: simdjson's buffers grow to a few
times the largest document read (~22 MiB after a 9.4 MiB body) and stay while it lives."""

_REQUEST_KEYS = frozenset({"id", "inputs"})
_FLOATS = frozenset({"FP32", "FP64"})
_OPEN = ord("[")
_INT64 = 2.0**63
_RECORDS = re.compile(rb'\s*\{\s*"instances"\s*:\s*\[\s*\{')
"""The head of v1 records (msgspec's, given the columns; never simdjson's)."""
T = TypeVar("T")
V1Values = NDArray[np.float64] | ColumnValues
"""v1 rows (or records) as one 2-D array, or v1 columns as one block, a row a column."""


@dataclass(frozen=True, slots=True)
class Tensors:
    """A v2 request's id and inputs as :meth:`JsonNumbers.v2_request` read them: each
    input's flat values, in its datatype (the v2 decoder makes its tensors of them)."""

    id: str | None
    names: list[str]
    datatypes: list[str]
    shapes: list[tuple[int, ...]]
    values: list[NDArray[Any]]
    flat: NDArray[np.float64]
    """Every input's values one after another, as read (``values`` are its pieces, or
    their ``float32`` copies): several FP64 columns of one length are one reshape of it."""


class JsonNumbers:
    """A simdjson parser for the event loop's requests (one per inference plane: a parser
    serves one thread, one document at a time)."""

    def __init__(self) -> None:
        self._parser: simdjson.Parser | None = None

    def v2_request(self, body: bytes) -> Tensors | None:
        """``body``'s inputs, when it is a v2 request of float tensors this path takes (see
        the module docstring); ``None`` for anything else, to be decoded the whole way."""
        return None if len(body) < SMALL_BYTES else self._read(body, _request)

    def arrays(self, text: bytes, count: int, rows: int) -> NDArray[np.float64] | None:
        """The numbers of ``text``, one after another, when it is a JSON array of ``count``
        arrays of ``rows`` numbers each (as the v2 path reads them: integers as floats,
        none past 64 bits); ``None`` for anything else. What a remembered layout of a
        large v2 request (:class:`~dockyard.server.protocols.v2.layouts.JsonLayouts`)
        reads of its ``data`` arrays' contents, joined."""
        return self._read(text, functools.partial(_arrays, count=count, rows=rows))

    def v1_values(self, body: bytes, names: tuple[str, ...] | None = None) -> V1Values | None:
        """The values of ``{"instances": [[...], ...]}`` (rows of plain numbers of one
        length) as one 2-D array, or of ``{"inputs": {"column": [...], ...}}`` (columns of
        plain numbers of one length) as one block of them, or of ``{"instances":
        [{"column": number, ...}, ...]}`` (records of exactly the columns ``names``, in any
        order) as one 2-D array in the order of ``names``, when the body is that and nothing
        else; ``None`` otherwise (records at once, unparsed, when ``names`` is ``None``)."""
        if len(body) < SMALL_BYTES:
            return None
        if _RECORDS.match(body):
            return None if names is None else _records(body, names)
        return cast("V1Values | None", self._read(body, _v1_values))  # a union: mypy joins it

    def _read(self, body: bytes, read: Callable[[Any, bytes], T | None]) -> T | None:
        import simdjson

        if self._parser is None:
            self._parser = simdjson.Parser()
        try:
            return read(self._parser.parse(body), body)
        except RuntimeError:  # an integer past 64 bits, or a document of this parser still
            self._parser = None  # referenced (which would refuse every later one): a new one
            return None
        except (KeyError, TypeError, ValueError, FloatingPointError):
            return None  # not JSON simdjson reads (NaN literals, 1e400), a key missing, a
            # value that is no double, an FP32 overflow: the whole way
        finally:
            if len(body) > KEPT_BYTES:  # its buffers grew to a few times the body: let go
                self._parser = None


def _v1_values(document: Any, body: bytes) -> V1Values | None:
    import simdjson

    if type(document) is not simdjson.Object or len(document) != 1:
        return None
    (key,) = document.keys()
    if key == "instances":
        return _rows(document[key], body)
    return _columns(document[key], body) if key == "inputs" else None


def _rows(instances: Any, body: bytes) -> NDArray[np.float64] | None:
    import simdjson

    if type(instances) is not simdjson.Array or not len(instances):
        return None
    widths = [len(row) if type(row) is simdjson.Array else -1 for row in instances]
    width = widths[0]
    if width < 1 or widths.count(width) != len(widths):
        return None
    flat = np.frombuffer(instances.as_buffer(of_type="d"), np.float64)
    if len(flat) != width * len(widths) or _brackets(body) != 1 + len(widths):
        return None  # an array where a number belongs
    return flat.reshape(len(widths), width)


def _columns(columns: Any, body: bytes) -> ColumnValues | None:
    import simdjson

    if type(columns) is not simdjson.Object or not len(columns):
        return None
    names = tuple(columns.keys())
    if len(set(names)) != len(names):
        return None
    buffers = []
    lengths = []
    for name in names:  # not items(): it gives bytes keys and every value as Python lists
        column = columns[name]
        if type(column) is not simdjson.Array:
            return None
        lengths.append(len(column))
        buffers.append(column.as_buffer(of_type="d"))
    rows = lengths[0]
    if not rows or lengths.count(rows) != len(lengths):
        return None
    if _brackets(body) - sum(name.count("[") for name in names) != len(names):
        return None  # an array where a number belongs (so each column holds its len values)
    flat = np.frombuffer(bytearray().join(buffers), np.float64)  # one copy, writable
    return ColumnValues(names, flat.reshape(len(names), rows))


def _records(body: bytes, names: tuple[str, ...]) -> NDArray[np.float64] | None:
    import msgspec

    try:
        rows = _records_decoder(names).decode(body).instances
    except msgspec.MsgspecError:  # not JSON, or not records of these columns' numbers
        return None
    if not rows:
        return None
    values = chain.from_iterable(map(msgspec.structs.astuple, rows))
    flat = np.fromiter(values, np.float64, count=len(rows) * len(names))
    if not (np.abs(flat) < _INT64).all():  # msgspec reads any integer as a float, orjson
        return None  # refuses one past 64 bits: the whole way decides
    return flat.reshape(len(rows), len(names))


@functools.lru_cache(maxsize=64)
def _records_decoder(names: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """A decoder of ``{"instances": [...]}`` alone, each record exactly ``names`` (fields
    named ``f0``, ``f1``, ... encoded as the columns: a column's name need not be a Python
    identifier), each value a JSON number."""
    import msgspec

    fields = [f"f{i}" for i in range(len(names))]
    record = msgspec.defstruct(
        "Record",
        [(field, float) for field in fields],
        rename=dict(zip(fields, names, strict=True)),
        forbid_unknown_fields=True,
        gc=False,  # of floats only: no cycles to track
    )
    rows = list[record]  # type: ignore[valid-type]  # a class made at run time
    request = msgspec.defstruct("Records", [("instances", rows)], forbid_unknown_fields=True)
    return msgspec.json.Decoder(request)


def _arrays(document: Any, body: bytes, *, count: int, rows: int) -> NDArray[np.float64] | None:
    import simdjson

    if type(document) is not simdjson.Array or len(document) != count:
        return None
    if any(type(row) is not simdjson.Array or len(row) != rows for row in document):
        return None  # a row short, another long (a nested array unbalances the brackets)
    flat = np.frombuffer(document.as_buffer(of_type="d"), np.float64)  # its own copy
    return flat if len(flat) == count * rows else None


def _brackets(body: bytes) -> int:
    """The ``[`` in ``body`` (numpy: three times faster than ``bytes.count``)."""
    return int(np.count_nonzero(np.frombuffer(body, np.uint8) == _OPEN))


def _request(document: Any, body: bytes) -> Tensors | None:
    import simdjson

    if type(document) is not simdjson.Object:
        return None
    keys = list(document.keys())
    if not _REQUEST_KEYS.issuperset(keys) or len(set(keys)) != len(keys):
        return None
    # by the keys read, not get(): simdjson finds a missing key by a C++ exception, dearer
    # than the rest of these checks, and more so in a busy server (its unwinding tables cold)
    request_id = document["id"] if "id" in keys else None
    inputs = document["inputs"] if "inputs" in keys else None
    if request_id is not None and type(request_id) is not str:
        return None
    if type(inputs) is not simdjson.Array or not len(inputs):
        return None
    arrays = 1  # "inputs"
    texts = [] if request_id is None else [request_id]
    names: list[str] = []
    datatypes: list[str] = []
    shapes: list[tuple[int, ...]] = []
    buffers = []
    ends = [0]
    for item in inputs:
        if type(item) is not simdjson.Object:
            return None
        if len(item) != 4:  # four keys, each found below: exactly these, none twice
            return None
        name, datatype, shape, data = item["name"], item["datatype"], item["shape"], item["data"]
        if type(name) is not str or not name or datatype not in _FLOATS:
            return None
        if type(shape) is not simdjson.Array or type(data) is not simdjson.Array:
            return None
        dims = _dims(shape.as_list())
        if dims is None:
            return None
        size = math.prod(dims)
        buffer = data.as_buffer(of_type="d")  # every number in it, nested arrays flattened
        if len(data) and type(data[0]) is simdjson.Array:  # one array a row
            rows = [type(row) is simdjson.Array for row in data]
            if not all(rows) or memoryview(buffer).nbytes != 8 * size:
                return None
            arrays += len(rows)
        elif len(data) != size:  # numbers only (no other array: counted below)
            return None
        arrays += 2  # its "shape" and "data"
        names.append(name)
        datatypes.append(datatype)
        shapes.append(dims)
        buffers.append(buffer)
        ends.append(ends[-1] + size)
        texts.append(name)
    if len(set(names)) != len(names):
        return None
    if _brackets(body) - sum(text.count("[") for text in texts) != arrays:
        return None  # an array where the checks above saw none
    joined = buffers[0] if len(buffers) == 1 else bytearray().join(buffers)
    flat = np.frombuffer(joined, np.float64)  # one writable copy of every value
    if len(flat) != ends[-1]:
        return None
    values: list[NDArray[Any]] = [flat[ends[i] : ends[i + 1]] for i in range(len(names))]
    for i, datatype in enumerate(datatypes):
        if datatype == "FP32":
            with np.errstate(over="raise"):
                values[i] = values[i].astype(np.float32)
    return Tensors(request_id, names, datatypes, shapes, values, flat)


def _dims(listed: list[Any]) -> tuple[int, ...] | None:
    """A shape of one or two sizes (integers, not below 0), or ``None``."""
    if len(listed) == 1:
        (size,) = listed
        return (size,) if type(size) is int and size >= 0 else None
    if len(listed) == 2:
        rows, width = listed
        if type(rows) is int and type(width) is int and rows >= 0 and width >= 0:
            return rows, width
    return None
