"""Requests of many plain columns taken whole: one numpy call per datatype, not a tensor's
checks and conversion per input.

:func:`~dockyard.server.protocols.v2.decode.decode_request` tries these first when a
request has several inputs. Each takes only what the input-by-input path would accept
unchanged, and gives what that path would give; anything else (a parameter, a null, a value
of another type, a datatype other than FP32/FP64/INT32/INT64/BOOL/BYTES, columns of
different lengths) gets ``None``, and the input-by-input path then decodes it or refuses it
naming what is wrong. They exist because that path's checks, made once per input, cost
~2.5 µs each: 20 one-value columns cost seven times a 2-D tensor of the same values before
it (``benchmarks/decode_stages.py``, RESULTS.md), and a DataFrame's columns (numbers, text,
flags) arrive as one tensor each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema.numeric_rows import plain_numbers
from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    NO_PARAMETERS,
    ColumnBlock,
    Tensor,
)

__all__ = [
    "BULK",
    "FLOATS",
    "binary_block",
    "column_block",
    "column_view",
    "float_block",
    "plain_array",
    "plain_floats",
]

FLOATS = frozenset({"FP32", "FP64"})
BULK = 64
"""Values from which a nested float tensor goes to numpy in bulk (below, the checks on the
Python list cost less than numpy's own call overhead; flat data always takes them)."""
PLAIN_NUMBERS = frozenset({int, float})
PLAIN_JSON: dict[str, frozenset[type]] = {
    "FP64": PLAIN_NUMBERS,
    "FP32": PLAIN_NUMBERS,
    "INT64": frozenset({int}),
    "INT32": frozenset({int}),
    "BOOL": frozenset({bool}),
    "BYTES": frozenset({str}),
}
"""The datatypes a column of plain JSON values takes in bulk, and its values' types."""


def column_block(inputs: list[Any]) -> ColumnBlock | tuple[Tensor, ...] | None:
    """Every input at once when they are all plain JSON columns: objects of exactly
    ``name``, ``datatype``, ``shape`` and ``data``, one shape ``[rows]`` or ``[rows, 1]``,
    flat data of that many plain values of their datatype (numbers for ``FP32``/``FP64``,
    integers for ``INT32``/``INT64``, ``true``/``false`` for ``BOOL``, strings for
    ``BYTES``; no ``null``), distinct names. Their values go to numpy in one call per
    datatype: a :class:`ColumnBlock` when they share one float datatype, else the tensors
    the per-input path would make. ``None`` for anything else, which the per-input path then
    decodes (and refuses, naming what is wrong): this only takes what that path would accept
    unchanged."""
    layout = _layout(inputs[0])
    if layout is None:
        return None
    shape, rows = layout
    names: list[Any] = []
    groups: dict[Any, list[Any]] = {}  # datatype: its inputs' values, in order
    for item in inputs:
        if not _alike(item, shape):
            return None
        data = item.get("data")
        if type(data) is not list or len(data) != rows:
            return None
        values = groups.get(datatype := item.get("datatype"))
        if values is None:
            if datatype not in PLAIN_JSON:
                return None
            values = groups[datatype] = []
        values += data
        names.append(item.get("name"))
    if not _distinct(names):
        return None
    arrays = {}
    for datatype, values in groups.items():
        array = plain_array(values, datatype)
        if array is None:
            return None
        arrays[datatype] = array
    only = next(iter(arrays)) if len(arrays) == 1 else None
    if only in FLOATS:  # one float block: the model's input as it is
        return float_block(tuple(names), only, tuple(shape), arrays[only])
    return _tensors(inputs, names, arrays, tuple(shape))


def float_block(
    names: tuple[str, ...], datatype: str, shape: tuple[int, ...], values: NDArray[Any]
) -> ColumnBlock:
    """The block of float columns ``names`` whose ``values`` (each column's in turn, as
    :func:`plain_array` read them) are laid one column after the other."""
    columns = values.reshape(len(names), shape[0])
    block = columns.T if shape[0] == 1 else np.ascontiguousarray(columns.T)
    return ColumnBlock(names, datatype, shape, block)


def plain_array(values: list[Any], datatype: str) -> NDArray[Any] | None:
    """``values`` as ``datatype``'s array when each is a plain value of it (as the per-input
    path converts them); ``None`` for another type, or a number out of the datatype's range
    (the per-input path names it). Many float values are read by numpy without a scan of
    every value's type first (:func:`~dockyard.schema.numeric_rows.plain_numbers`)."""
    dtype = DATATYPES[datatype]
    if datatype in FLOATS and len(values) >= BULK:
        bulk = plain_floats(values, datatype)
        if bulk is not None:
            return bulk
    try:
        if not PLAIN_JSON[datatype].issuperset(map(type, values)):
            return None
        if datatype in ("FP32", "INT32"):
            with np.errstate(over="raise"):
                return np.array(values, dtype=dtype)
        return np.array(values, dtype=dtype)
    except (OverflowError, FloatingPointError):  # beyond the datatype (or float64)
        return None


def plain_floats(values: list[Any], datatype: str) -> NDArray[Any] | None:
    """Plain numbers (flat, or rows of one length) as the float ``datatype``'s array in one
    numpy call, without a scan of every value's type
    (:func:`~dockyard.schema.numeric_rows.plain_numbers`); ``None`` for anything the
    checked path must look at and name, an FP32 overflow included."""
    array = plain_numbers(values)
    if array is None or datatype == "FP64":  # Python's numbers fit float64: no overflow
        return None if array is None else array.astype(np.float64, copy=False)
    with np.errstate(over="raise"):
        try:
            return array.astype(DATATYPES[datatype])
        except FloatingPointError:
            return None


def _tensors(
    inputs: list[Any], names: list[Any], arrays: dict[Any, NDArray[Any]], shape: tuple[int, ...]
) -> tuple[Tensor, ...]:
    """Each input's tensor, in request order, its data a row of its datatype's array."""
    rows = {datatype: iter(array.reshape(-1, shape[0])) for datatype, array in arrays.items()}
    tensors = []
    for item, name in zip(inputs, names, strict=True):
        datatype = item["datatype"]
        data = next(rows[datatype])
        if len(shape) == 2:
            data = data.reshape(shape)
        tensors.append(Tensor(name, datatype, shape, data, NO_PARAMETERS))
    return tuple(tensors)


def binary_block(inputs: list[Any], binary: memoryview) -> ColumnBlock | None:
    """Every input at once when they are all plain binary columns: JSON objects of exactly
    ``name``, ``datatype``, ``shape`` and ``parameters`` (only ``binary_data_size``, the
    shape's bytes), one float datatype and one shape ``[rows]`` or ``[rows, 1]``, distinct
    names, their bytes filling the binary part; one ``numpy`` view of it. ``None`` for
    anything else (the per-input path decodes or refuses it, as before)."""
    layout = _layout(inputs[0])
    datatype = inputs[0].get("datatype") if layout is not None else None
    if layout is None or datatype not in FLOATS:
        return None
    shape, rows = layout
    dtype = DATATYPES[datatype]
    assert dtype is not None
    size = rows * dtype.itemsize
    if len(binary) != size * len(inputs):
        return None
    names: list[Any] = []
    for item in inputs:
        if not _alike(item, shape, datatype):
            return None
        parameters = item.get("parameters")
        if type(parameters) is not dict or len(parameters) != 1:
            return None
        declared = parameters.get("binary_data_size")
        if type(declared) is not int or declared != size:
            return None
        names.append(item.get("name"))
    if not _distinct(names):
        return None
    return column_view(tuple(names), datatype, tuple(shape), binary)


def column_view(
    names: tuple[str, ...], datatype: str, shape: tuple[int, ...], binary: memoryview
) -> ColumnBlock:
    """The block of ``names``' float columns of ``shape``, laid one after the other in
    ``binary`` (which holds exactly them): a view of it when one row needs no copy."""
    rows = shape[0]
    columns = np.frombuffer(binary, dtype=DATATYPES[datatype]).reshape(len(names), rows)
    block = columns.T if rows == 1 and columns.flags.aligned else np.ascontiguousarray(columns.T)
    return ColumnBlock(names, datatype, shape, block)


def _layout(first: Any) -> tuple[list[int], int] | None:
    """The first input's shape ``[rows]`` or ``[rows, 1]``, and rows."""
    if type(first) is not dict:
        return None
    shape = first.get("shape")
    if type(shape) is not list or not 1 <= len(shape) <= 2:
        return None
    rows = shape[0]
    if type(rows) is not int or rows < 1 or (len(shape) == 2 and shape[1] != 1):
        return None
    return shape, rows


def _alike(item: Any, shape: list[int], datatype: str | None = None) -> bool:
    """An object of four keys with the first input's shape, in integers (``1.0`` and
    ``true`` equal ``1`` in Python; the per-input path refuses them), and ``datatype`` when
    one is given."""
    return (
        type(item) is dict
        and len(item) == 4
        and (datatype is None or item.get("datatype") == datatype)
        and (own := item.get("shape")) == shape
        and type(own[0]) is int
        and type(own[-1]) is int
    )


def _distinct(names: list[Any]) -> bool:
    return all(type(name) is str and name for name in names) and len(set(names)) == len(names)
