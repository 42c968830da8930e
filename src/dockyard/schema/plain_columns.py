"""The validator's fast path for records and columns of plain JSON values.

What clients send a model fitted on a DataFrame of mixed columns — text, numbers, flags — is
mostly records (``df.to_dict("records")``) or columns of plain JSON values, with nothing
wrong in them. :class:`PlainColumns` checks such input column by column in bulk and builds
each column's array as the full path would; anything else it hands back to the full path
(:class:`~dockyard.schema.validation.Validator`), which checks it and lists every problem.
Each input gets the same answer either way; only the clean case is faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema._columns import target_dtype
from dockyard.schema._pandas import is_text_dtype
from dockyard.schema.numeric_rows import RecordValues
from dockyard.schema.signature import ColumnSpec, Signature

__all__ = ["PlainColumns"]

Check = Callable[[Any], "NDArray[Any] | None"]
_NUMBERS = frozenset({float, int})
_NUMBERS_OR_NULL = _NUMBERS | {type(None)}
_INTEGERS = frozenset({int})
_TEXT = frozenset({str})
_TEXT_OR_NULL = _TEXT | {type(None)}
_FLAGS = frozenset({bool})
_FEW = 32
"""Values up to which a numpy column is checked for NaN in Python (one-row requests' v2
columns), not with numpy's ufunc and reduction (~1.3 µs whatever the size)."""


class PlainColumns:
    """The fast path for signatures whose every column is ``float64``, ``int64``, text (of
    dtype ``object``, or pandas' ``str`` or ``string``) or ``bool``, fed as records (a list of
    them, or one) or as a dict of column lists (a column may also be a 1-D numpy array of
    numbers or flags, as the v2 protocol's tensors arrive).

    It takes only what the full path accepts as it is — each record with exactly the
    signature's keys, plain ``float``/``int`` numbers (no integer beyond the column's type,
    no ``bool``), ``str`` text (a known category where unseen ones are refused), ``bool``
    flags, and ``null`` where a float or text column takes nulls (NaN, as the full path
    makes it) — and returns ``None`` for anything else: a null elsewhere, an extra or
    missing key, a value of another type, numpy scalars, uneven columns.
    """

    def __init__(self, signature: Signature, checks: tuple[Check, ...]) -> None:
        self._records = RecordValues(signature.column_names)
        self.width = self._records.width
        self._checks = checks
        self._array_checks = tuple(_array_check_for(column) for column in signature.columns)

    @classmethod
    def for_signature(cls, signature: Signature) -> PlainColumns | None:
        """The fast path for ``signature``, or ``None`` when a column is of another kind."""
        checks = [_check_for(column) for column in signature.columns]
        if not checks or any(check is None for check in checks):
            return None
        return cls(signature, tuple(check for check in checks if check is not None))

    def decode(self, data: Any) -> tuple[list[NDArray[Any]], int] | None:
        """Each signature column's array and the row count, or ``None``: "take the full
        path"."""
        if type(data) is dict:
            if data and type(next(iter(data.values()))) in (list, np.ndarray):
                return self._from_columns(data)
            data = (data,)
        elif type(data) is not list or not data:
            return None
        rows = self._records.rows(data)
        if rows is None:
            return None
        return self._checked(list(zip(*rows, strict=True)), len(rows))

    def _from_columns(self, data: dict[str, Any]) -> tuple[list[NDArray[Any]], int] | None:
        if len(data) != self.width:
            return None
        try:
            columns = self._records.of(data)
        except KeyError:
            return None
        lists = [type(column) is list for column in columns]
        for listed, column in zip(lists, columns, strict=True):
            if not listed and not (type(column) is np.ndarray and column.ndim == 1):
                return None
        rows = len(columns[0])
        if not rows or any(len(column) != rows for column in columns):
            return None
        checks = [
            (self._checks if listed else self._array_checks)[position]
            for position, listed in enumerate(lists)
        ]
        return self._checked(columns, rows, checks)

    def _checked(
        self, columns: Any, rows: int, checks: Sequence[Check] | None = None
    ) -> tuple[list[NDArray[Any]], int] | None:
        arrays = []
        for check, values in zip(checks or self._checks, columns, strict=True):
            array = check(values)
            if array is None:
                return None
            arrays.append(array)
        return arrays, rows


def _check_for(column: ColumnSpec) -> Check | None:
    """The bulk check and conversion of one column's values; ``None`` for a column kind this
    path leaves to the full one (categories, datetimes, pandas' nullable dtypes, narrower
    numbers)."""
    kind = (column.dtype, column.pandas_dtype)
    if kind == ("float", "float64"):
        return _floats_or_nulls if column.nullable else _finite_floats
    if kind == ("integer", "int64"):
        return _integers
    if kind == ("boolean", "bool"):
        return _flags
    if column.dtype == "string" and _text_as_objects(target_dtype(column)):
        refuse_unseen = column.unseen == "reject" and column.categories is not None
        known = frozenset(column.categories or ()) if refuse_unseen else None
        return _text(known, nullable=column.nullable)
    return None


def _text_as_objects(target: Any) -> bool:
    """Whether the validator hands over a text column of dtype ``target`` as an ``object``
    array: numpy's dtypes (``object``, and pandas 2's reading of ``str``), and pandas' text
    dtypes (``str``, pandas 3's default, and ``string``), which the batch's DataFrame gives
    the column (:class:`~dockyard.schema.validation.FrameColumns`)."""
    return isinstance(target, np.dtype) or is_text_dtype(target)


def _array_check_for(column: ColumnSpec) -> Check:
    """The check of a numpy column (signature columns :func:`_check_for` takes): numbers
    cast as the full path casts them, flags as they are; text arrives as lists."""
    if column.dtype == "float":
        return _float_array if column.nullable else _finite_float_array
    if column.dtype == "integer":
        return _integer_array
    if column.dtype == "boolean":
        return _flag_array
    return _refused


def _float_array(values: NDArray[Any]) -> NDArray[Any] | None:
    return values.astype(np.float64, copy=False) if values.dtype.kind in "iuf" else None


def _finite_float_array(values: NDArray[Any]) -> NDArray[Any] | None:
    array = _float_array(values)
    if array is None:
        return None
    if len(array) <= _FEW:  # numpy's two calls cost more than a look at each value
        return None if any(map(math.isnan, array.tolist())) else array  # NaN is a null
    return None if np.isnan(array).any() else array


def _integer_array(values: NDArray[Any]) -> NDArray[Any] | None:
    kind, size = values.dtype.kind, values.dtype.itemsize
    if kind == "i" or (kind == "u" and size < 8):  # every value fits int64
        return values.astype(np.int64, copy=False)
    return None


def _flag_array(values: NDArray[Any]) -> NDArray[Any] | None:
    return values if values.dtype.kind == "b" else None


def _refused(values: Any) -> None:
    return None


def _floats_or_nulls(values: Any) -> NDArray[Any] | None:
    return _floats(values, _NUMBERS_OR_NULL)  # numpy reads None as NaN in a float64 array


def _finite_floats(values: Any) -> NDArray[Any] | None:
    array = _floats(values, _NUMBERS)  # below: no value is past float64's range any more
    return None if array is None or any(map(math.isnan, values)) else array  # NaN is a null


def _floats(values: Any, allowed: frozenset[type]) -> NDArray[Any] | None:
    if not allowed.issuperset(map(type, values)):
        return None
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return None


def _integers(values: Any) -> NDArray[Any] | None:
    if not _INTEGERS.issuperset(map(type, values)):
        return None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:  # beyond int64
        return None


def _flags(values: Any) -> NDArray[Any] | None:
    return np.array(values, dtype=np.bool_) if _FLAGS.issuperset(map(type, values)) else None


def _text(known: frozenset[Any] | None, *, nullable: bool) -> Check:
    """Strings (one of ``known`` where unseen ones are refused); nulls as NaN where the
    column takes them, in an object array, as the full path builds it."""
    allowed = _TEXT_OR_NULL if nullable else _TEXT

    def check(values: Any) -> NDArray[Any] | None:
        types = set(map(type, values))
        if not allowed.issuperset(types):
            return None
        if type(None) in types:
            values = [math.nan if value is None else value for value in values]
            if known is not None and not known.issuperset(v for v in values if type(v) is str):
                return None
        elif known is not None and not known.issuperset(values):
            return None
        return np.fromiter(values, dtype=object, count=len(values))

    return check
