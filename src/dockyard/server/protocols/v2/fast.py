"""Requests of many plain columns taken whole: one numpy block instead of a tensor per input.

:func:`~dockyard.server.protocols.v2.decode.decode_request` tries these first when a
request has several inputs. Each takes only what the input-by-input path would accept
unchanged, and gives what that path would give; anything else (a parameter, a null, a
boolean, a datatype other than FP32/FP64, columns of different lengths) gets ``None``, and
the input-by-input path then decodes it or refuses it naming what is wrong. They exist
because that path's checks, made once per input, cost ~2.5 µs each: 20 one-value columns
cost seven times a 2-D tensor of the same values before it
(``benchmarks/decode_stages.py``, RESULTS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
    ColumnBlock,
)

__all__ = ["BULK", "FLOATS", "binary_block", "column_block"]

FLOATS = frozenset({"FP32", "FP64"})
BULK = 64
"""Values from which a nested float tensor goes to numpy in bulk (below, the checks on the
Python list cost less than numpy's own call overhead; flat data always takes them)."""
PLAIN_NUMBERS = frozenset({int, float})


def column_block(inputs: list[Any]) -> ColumnBlock | None:
    """Every input at once when they are all plain columns (:class:`ColumnBlock`): JSON
    objects of exactly ``name``, ``datatype``, ``shape`` and ``data``, one float datatype,
    one shape ``[rows]`` or ``[rows, 1]``, flat data of that many numbers (no ``null``, no
    booleans), distinct names; their values go to numpy in one call. ``None`` for anything
    else, which the per-input path then decodes (and refuses, naming what is wrong): this
    only takes what that path would accept unchanged."""
    layout = _layout(inputs[0])
    if layout is None:
        return None
    datatype, shape, rows = layout
    names: list[Any] = []
    values: list[Any] = []
    for item in inputs:
        if not _alike(item, datatype, shape):
            return None
        data = item.get("data")
        if type(data) is not list or len(data) != rows:
            return None
        names.append(item.get("name"))
        values += data
    if not PLAIN_NUMBERS.issuperset(map(type, values)) or not _distinct(names):
        return None
    try:
        if datatype == "FP64":  # Python's floats are float64: nothing to overflow
            array = np.array(values, dtype=np.float64)
        else:
            with np.errstate(over="raise"):
                array = np.array(values, dtype=DATATYPES[datatype])
    except (OverflowError, FloatingPointError):  # an integer beyond float64; FP32 overflow
        return None
    columns = array.reshape(len(names), rows)
    block = columns.T if rows == 1 else np.ascontiguousarray(columns.T)
    return ColumnBlock(tuple(names), datatype, tuple(shape), block)


def binary_block(inputs: list[Any], binary: memoryview) -> ColumnBlock | None:
    """Every input at once when they are all plain binary columns: JSON objects of exactly
    ``name``, ``datatype``, ``shape`` and ``parameters`` (only ``binary_data_size``, the
    shape's bytes), one float datatype and one shape ``[rows]`` or ``[rows, 1]``, distinct
    names, their bytes filling the binary part; one ``numpy`` view of it. ``None`` for
    anything else (the per-input path decodes or refuses it, as before)."""
    layout = _layout(inputs[0])
    if layout is None:
        return None
    datatype, shape, rows = layout
    dtype = DATATYPES[datatype]
    assert dtype is not None
    size = rows * dtype.itemsize
    if len(binary) != size * len(inputs):
        return None
    names: list[Any] = []
    for item in inputs:
        if not _alike(item, datatype, shape):
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
    columns = np.frombuffer(binary, dtype=dtype).reshape(len(names), rows)
    block = columns.T if rows == 1 and columns.flags.aligned else np.ascontiguousarray(columns.T)
    return ColumnBlock(tuple(names), datatype, tuple(shape), block)


def _layout(first: Any) -> tuple[str, list[int], int] | None:
    """The first input's float datatype, shape ``[rows]`` or ``[rows, 1]``, and rows."""
    if type(first) is not dict:
        return None
    datatype, shape = first.get("datatype"), first.get("shape")
    if datatype not in FLOATS or type(shape) is not list or not 1 <= len(shape) <= 2:
        return None
    rows = shape[0]
    if type(rows) is not int or rows < 1 or (len(shape) == 2 and shape[1] != 1):
        return None
    return datatype, shape, rows


def _alike(item: Any, datatype: str, shape: list[int]) -> bool:
    """An object of four keys with the first input's datatype and shape, in integers (``1.0``
    and ``true`` equal ``1`` in Python; the per-input path refuses them)."""
    return (
        type(item) is dict
        and len(item) == 4
        and item.get("datatype") == datatype
        and (own := item.get("shape")) == shape
        and type(own[0]) is int
        and type(own[-1]) is int
    )


def _distinct(names: list[Any]) -> bool:
    return all(type(name) is str and name for name in names) and len(set(names)) == len(names)
