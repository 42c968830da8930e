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
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema.signature import ColumnSpec, Signature

__all__ = ["PlainColumns"]

Check = Callable[[tuple[Any, ...]], "NDArray[Any] | None"]
_NUMBERS = frozenset({float, int})
_INTEGERS = frozenset({int})
_TEXT = frozenset({str})
_FLAGS = frozenset({bool})


class PlainColumns:
    """The fast path for signatures whose every column is ``float64``, ``int64``, text kept
    as ``object`` or ``bool``, fed as records (a list of them, or one) or as a dict of column
    lists.

    It takes only what the full path accepts unchanged — each record with exactly the
    signature's keys, plain ``float``/``int`` numbers (no NaN where nulls are refused, no
    integer beyond the column's type, no ``bool``), ``str`` text (a known category where
    unseen ones are refused), ``bool`` flags — and returns ``None`` for anything else: a
    null, an extra or missing key, a value of another type, numpy scalars, uneven columns.
    """

    def __init__(self, signature: Signature, checks: tuple[Check, ...]) -> None:
        names = signature.column_names
        self.width = len(names)
        self._checks = checks
        if len(names) == 1:
            only = names[0]
            self._values: Any = lambda record: (record[only],)
        else:
            self._values = operator.itemgetter(*names)

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
            if data and type(next(iter(data.values()))) is list:
                return self._from_columns(data)
            data = (data,)
        elif type(data) is not list or not data:
            return None
        try:
            rows = list(map(self._values, data))  # not a record, or a key missing: an error
            if set(map(len, data)) != {self.width}:  # extra keys
                return None
        except (KeyError, TypeError):
            return None
        return self._checked(list(zip(*rows, strict=True)), len(rows))

    def _from_columns(self, data: dict[str, Any]) -> tuple[list[NDArray[Any]], int] | None:
        if len(data) != self.width:
            return None
        try:
            columns = self._values(data)
        except KeyError:
            return None
        if any(type(column) is not list for column in columns):
            return None
        rows = len(columns[0])
        if not rows or any(len(column) != rows for column in columns):
            return None
        return self._checked(columns, rows)

    def _checked(self, columns: Any, rows: int) -> tuple[list[NDArray[Any]], int] | None:
        arrays = []
        for check, values in zip(self._checks, columns, strict=True):
            array = check(values)
            if array is None:
                return None
            arrays.append(array)
        return arrays, rows


def _check_for(column: ColumnSpec) -> Check | None:
    """The bulk check and conversion of one column's values; ``None`` for a column kind this
    path leaves to the full one (categories, datetimes, pandas' nullable and text dtypes,
    narrower numbers)."""
    kind = (column.dtype, column.pandas_dtype)
    if kind == ("float", "float64"):
        return _floats if column.nullable else _finite_floats
    if kind == ("integer", "int64"):
        return _integers
    if kind == ("boolean", "bool"):
        return _flags
    if kind == ("string", "object"):
        if column.unseen == "reject" and column.categories is not None:
            return _known_text(frozenset(column.categories))
        return _text
    return None


def _floats(values: Any) -> NDArray[Any] | None:
    if not _NUMBERS.issuperset(map(type, values)):
        return None
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return None


def _finite_floats(values: Any) -> NDArray[Any] | None:
    array = _floats(values)  # below: no value is past float64's range any more
    return None if array is None or any(map(math.isnan, values)) else array  # NaN is a null


def _integers(values: Any) -> NDArray[Any] | None:
    if not _INTEGERS.issuperset(map(type, values)):
        return None
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:  # beyond int64
        return None


def _flags(values: Any) -> NDArray[Any] | None:
    return np.array(values, dtype=np.bool_) if _FLAGS.issuperset(map(type, values)) else None


def _text(values: Any) -> NDArray[Any] | None:
    if not _TEXT.issuperset(map(type, values)):
        return None
    return np.fromiter(values, dtype=object, count=len(values))


def _known_text(categories: frozenset[Any]) -> Check:
    def check(values: Any) -> NDArray[Any] | None:
        array = _text(values)
        return array if array is not None and categories.issuperset(values) else None

    return check
