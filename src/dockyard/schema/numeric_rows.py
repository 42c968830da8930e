"""The validator's fast path for all-numeric signatures served as arrays.

:class:`NumericRows` turns requests of plain finite numbers (records, rows, columns, 2-D
arrays) into the model's array in bulk and hands anything else back to the full path
(:class:`~dockyard.schema.validation.Validator`), which checks it and lists every problem:
each shape of the same values gets the same answer, only the clean case is faster.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema._pandas import dtype_of
from dockyard.schema.layout import InputLayout
from dockyard.schema.signature import Signature

__all__ = ["ColumnValues", "NumericRows", "RecordValues", "array_dtype", "plain_numbers"]

_EXACT = 2.0**53
"""From here on a float64 no longer holds every integer."""
_PLAIN_NUMBERS = frozenset({float, int})
_LIST = {list}
_BULK = 64
"""Values from which rows are converted by numpy in one call (see :func:`plain_numbers`);
below, numpy's call overhead costs more than the scan it saves."""


@dataclass(frozen=True, slots=True)
class ColumnValues:
    """Columns of plain numbers read as one block (a JSON reader's): ``block[i]`` holds
    column ``names[i]``'s values, every column as many."""

    names: tuple[str, ...]
    block: NDArray[np.float64]
    """``float64``, one row per column: (columns, rows)."""


class RecordValues:
    """Records' values in the signature's column order, a tuple each: how the fast paths
    (:class:`NumericRows`, :class:`~dockyard.schema.plain_columns.PlainColumns`) read
    records and dicts of columns, one ``operator.itemgetter`` call each."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.width = len(names)
        if len(names) == 1:
            only = names[0]
            self.of: Any = lambda record: (record[only],)
        else:
            self.of = operator.itemgetter(*names)

    def rows(self, records: Any) -> list[tuple[Any, ...]] | None:
        """Each record's values; ``None`` when one is not a record, or lacks or adds a key
        (the full path reports or notes it)."""
        try:
            rows = list(map(self.of, records))  # map() with C callables: no frame per row
            if set(map(len, records)) != {self.width}:  # extra keys
                return None
        except (KeyError, TypeError):
            return None
        return rows


class NumericRows:
    """The validator's fast path for all-numeric signatures (``float64``/``int64`` columns)
    served as arrays: records, rows, columns (lists, 1-D numeric arrays or one
    :class:`ColumnValues` block) and 2-D numeric arrays of plain finite numbers become the
    model's array (the validator's ``array`` dtype) in bulk.

    It takes only what the full path would accept unchanged and returns ``None`` for
    anything else — a missing or extra key, a row of the wrong length, a string, a bool, a
    null or NaN or infinity, a fraction or a float past 2**53 in an integer column, an
    integer beyond float64, an unsigned 64-bit array — which the full path then checks and
    reports. Tuples, Series and DataFrames also take the full path.
    """

    def __init__(self, signature: Signature, dtype: np.dtype[Any]) -> None:
        names = signature.column_names
        self.names = names
        self.width = len(names)
        self.dtype = dtype
        integers = [i for i, c in enumerate(signature.columns) if c.dtype == "integer"]
        self._integers = np.asarray(integers, dtype=np.intp) if integers else None
        self._integer_set = frozenset(integers)
        self._records = RecordValues(names)

    @classmethod
    def for_signature(
        cls, signature: Signature, *, layout: InputLayout | None = None
    ) -> NumericRows | None:
        """The fast path for ``signature``, or ``None`` when it has none; ``layout`` is the
        one the caller feeds its model (the signature's unless said: a model behind a
        ``frame`` signature may take an array, as a one-input ONNX twin does)."""
        numeric = all(
            column.dtype in ("float", "integer") and column.pandas_dtype in ("float64", "int64")
            for column in signature.columns
        )
        if (layout or signature.layout) != "array" or not signature.columns or not numeric:
            return None
        return cls(signature, array_dtype(signature))

    def decode(self, data: Any, *, finite: bool = False) -> NDArray[Any] | None:
        """The model's array for ``data``, or ``None``: "take the full path". ``finite``:
        the values are known to hold no NaN or infinity (a JSON reader of plain numbers
        made them: lists from orjson included), so that check is skipped; columns of numpy
        arrays are checked whatever it says."""
        kind = type(data)
        if kind is np.ndarray:
            return self._from_array(data, finite)
        if kind is ColumnValues:
            return self._from_block(data, finite)
        if kind is dict:
            if data and type(next(iter(data.values()))) in (list, np.ndarray):
                return self._from_columns(data, finite)
            data = (data,)
        elif kind is not list or not data:
            return None
        if type(data[0]) is list:  # map() with C callables: no Python frame per row
            if set(map(type, data)) != _LIST or set(map(len, data)) != {self.width}:
                return None
            return self._from_lists(data, finite)
        rows = self._records.rows(data)
        return None if rows is None else self._from_lists(rows, finite)

    def clean_columns(self, data: Mapping[str, Any]) -> bool:
        """Whether ``data`` (one 1-D numeric array per signature column, nothing else) passes
        :meth:`decode`'s checks as it is, checked column by column without building the 2-D
        array — for a model fed column by column. ``False``: take the full path."""
        if len(data) != self.width:
            return False
        try:
            columns = self._records.of(data)
        except KeyError:
            return False
        rows = len(columns[0]) if type(columns[0]) is np.ndarray else 0
        for position, column in enumerate(columns):
            if type(column) is not np.ndarray or column.ndim != 1 or len(column) != rows:
                return False
            kind, size = column.dtype.kind, column.dtype.itemsize
            if kind not in "fiu" or (kind == "u" and size == 8):
                return False
            if kind != "f":
                continue
            if not np.isfinite(column).all():
                return False
            whole = (
                position not in self._integer_set
                or ((np.abs(column) < _EXACT) & (column == np.trunc(column))).all()
            )
            if not whole:
                return False
        return rows > 0

    def _from_columns(self, data: dict[str, Any], finite: bool = False) -> NDArray[Any] | None:
        if len(data) != self.width:  # extra columns: a note
            return None
        try:
            columns = self._records.of(data)
        except KeyError:
            return None
        lists = set(map(type, columns)) == _LIST  # map() with C callables: no frame a column
        if not lists and not all(
            type(column) is np.ndarray and column.ndim == 1 for column in columns
        ):
            return None
        rows = len(columns[0])
        if not rows or set(map(len, columns)) != {rows}:
            return None
        if lists:
            bulk = plain_numbers(columns) if rows * self.width >= _BULK else None
            if bulk is not None:
                bulk = bulk.astype(np.float64, copy=False)
                return self._from_floats(np.ascontiguousarray(bulk.T), finite)
            flat = list(chain.from_iterable(columns))  # numpy reads a flat list faster
            if not _PLAIN_NUMBERS.issuperset(map(type, flat)):
                return None
            try:
                by_column = np.array(flat, dtype=np.float64).reshape(self.width, rows)
            except OverflowError:
                return None
            return self._from_floats(np.ascontiguousarray(by_column.T), finite)
        kinds = {(column.dtype.kind, column.dtype.itemsize) for column in columns}
        if any(kind not in "fiu" or (kind == "u" and size == 8) for kind, size in kinds):
            return None
        return self._from_array(np.column_stack(columns))

    def _from_block(self, columns: ColumnValues, finite: bool = False) -> NDArray[Any] | None:
        block = columns.block
        if columns.names != self.names:  # in another order, or not these columns
            if len(columns.names) != self.width:  # extra columns: a note
                return None
            where = {name: i for i, name in enumerate(columns.names)}
            try:
                block = block[[where[name] for name in self.names]]
            except KeyError:
                return None
        if block.ndim != 2 or not block.shape[1]:
            return None
        return self._from_floats(np.ascontiguousarray(block.T), finite)

    def _from_lists(self, rows: Any, finite: bool = False) -> NDArray[Any] | None:
        if len(rows) * self.width >= _BULK:
            bulk = plain_numbers(rows)
            if bulk is not None:
                return self._from_floats(bulk.astype(np.float64, copy=False), finite)
        if not _PLAIN_NUMBERS.issuperset(map(type, chain.from_iterable(rows))):
            return None
        try:
            array = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            return None
        return self._from_floats(array, finite)

    def _from_array(self, array: NDArray[Any], finite: bool = False) -> NDArray[Any] | None:
        if array.ndim != 2 or array.shape[1] != self.width or not array.shape[0]:
            return None
        kind = array.dtype.kind
        if kind == "f":
            return self._from_floats(array.astype(np.float64, copy=False), finite)
        if kind == "i" or (kind == "u" and array.dtype.itemsize < 8):
            return array.astype(self.dtype, copy=False)
        return None

    def _from_floats(self, array: NDArray[np.float64], finite: bool = False) -> NDArray[Any] | None:
        if not finite and not np.isfinite(array).all():
            return None
        if self._integers is not None:
            block = array[:, self._integers]
            if not ((np.abs(block) < _EXACT) & (block == np.trunc(block))).all():
                return None
        return array if self.dtype == array.dtype else array.astype(self.dtype)


def plain_numbers(values: Any) -> NDArray[Any] | None:
    """Plain numbers — a flat list, or rows of one length — as numpy reads them in one call
    (``float64``, or ``int64`` when every value is an integer), without first scanning every
    value's type in Python; ``None`` when numpy's answer could hide what that scan catches:
    anything but a numeric array (a string, a null, an integer beyond int64), or a ``true``
    or ``false``, which numpy reads as 1 and 0. Only the values equal to 0 or 1 are looked
    at for those (every value when they are many), so data of flags and one-hot columns
    stays on this path."""
    try:
        array = np.array(values)
    except (ValueError, OverflowError):
        return None
    if array.dtype.kind not in "fi" or array.ndim > 2:
        return None
    suspects = (array == 0) | (array == 1)
    if suspects.any() and not _plain_at(values, suspects):
        return None
    return array


def _plain_at(values: Any, where: NDArray[np.bool_]) -> bool:
    """Whether the values at ``where`` (a mask the shape of their array) are plain ``int``
    or ``float`` (not ``bool``, nor numpy's scalars: the checked path judges those)."""
    if np.count_nonzero(where) * 4 > where.size:  # many: one scan of every value is cheaper
        every = values if where.ndim == 1 else chain.from_iterable(values)
        return _PLAIN_NUMBERS.issuperset(map(type, every))
    if where.ndim == 1:
        picked = [values[i] for i in np.flatnonzero(where).tolist()]
    else:
        rows, columns = np.nonzero(where)
        picked = [values[i][j] for i, j in zip(rows.tolist(), columns.tolist(), strict=True)]
    return _PLAIN_NUMBERS.issuperset(map(type, picked))


def array_dtype(signature: Signature) -> np.dtype[Any]:
    """The dtype of ``array``-layout output (see :class:`~dockyard.schema.validation.Validator`)."""
    if not all(column.dtype in ("float", "integer", "boolean") for column in signature.columns):
        return np.dtype(object)
    dtypes = {column.pandas_dtype for column in signature.columns}
    if len(dtypes) == 1:
        dtype = dtype_of(dtypes.pop())
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return dtype
    return np.dtype(np.float64)
