"""Checking request input against a signature and rebuilding what the model was trained on.

A :class:`Validator` is built once per served version and sits on the request path. It
accepts the shapes requests come in — a list of records, a single record, a dict of
columns, a DataFrame, a 2-D array or a list of rows (columns by position) — reports every
problem at once in one :class:`~dockyard.errors.SchemaValidationError`, and otherwise hands
the model exactly the dtypes of its training sample.

This is the one validation path: the protocols hand it what the client sent (a v2 2-D
tensor arrives as the 2-D array it already is, v1 rows as the rows), never split into
columns first. For all-numeric signatures served as arrays, :class:`NumericRows` turns the
common case — plain finite numbers — into the model's array in bulk, and gives anything
else to the full path, which checks it and reports every problem: each shape of the same
values gets the same answer, only the clean case is faster.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dockyard.errors import SchemaValidationError
from dockyard.schema._columns import ColumnCoercer
from dockyard.schema.layout import InputLayout
from dockyard.schema.problems import PROBLEM_LIMIT, ProblemLog, describe_value
from dockyard.schema.signature import Signature

__all__ = ["NumericRows", "ValidatedInput", "Validator"]

_SEQUENCES = (list, tuple, np.ndarray, pd.Series, pd.Index, pd.api.extensions.ExtensionArray)
_NOTE_LIMIT = 20
_EXACT = 2.0**53
"""From here on a float64 no longer holds every integer."""
_PLAIN_NUMBERS = frozenset({float, int})
_LIST = {list}
_BULK = 64
"""Values from which rows are converted by numpy in one call (see :func:`_plain_numbers`);
below, numpy's call overhead costs more than the scan it saves."""


@dataclass(frozen=True, slots=True)
class ValidatedInput:
    """What the model's ``predict`` gets, how many rows, and what was ignored on the way."""

    data: Any
    rows: int
    notes: tuple[str, ...]


@dataclass
class _Columns:
    """Input split into columns: name -> values, row count, and original row numbers."""

    values: dict[str, Any]
    rows: int
    row_ids: NDArray[np.intp] | None = None
    array: NDArray[Any] | None = None
    usable: bool = True
    """False when the input's shape was wrong, so per-column checks would only add noise."""
    reported: frozenset[str] = frozenset()
    """Columns whose problem is already logged (not to be called missing as well)."""


class Validator:
    """Validates input for one signature; build once, call :meth:`validate` per request.

    Output follows ``signature.layout``: ``frame`` gives a DataFrame with exactly the
    signature's columns, in order, each with its ``pandas_dtype`` (categories in the
    signature's order); ``array`` gives a 2-D numpy array in column order — the columns'
    common dtype when they share one numpy dtype (so an all-``float32`` sample stays
    ``float32``), else ``float64`` when every column is numeric or boolean, else ``object``.

    Integer and boolean columns that allow nulls and receive one come out as ``float64`` and
    ``object`` respectively (what pandas itself makes), unless their dtype is a nullable
    pandas one (``Int64``, ``boolean``). Nulls in ``object`` columns are ``NaN`` (what pandas'
    readers and scikit-learn's imputers use). Values outside the sample's range are accepted.
    """

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self._names = signature.column_names
        self._name_list = list(self._names)
        self._known = frozenset(self._names)
        self._order = {name: position for position, name in enumerate(self._names)}
        self._coercers = tuple(ColumnCoercer(column) for column in signature.columns)
        self._array_dtype = _array_dtype(signature)
        self._numeric = NumericRows.for_signature(signature)
        self._positional_names = tuple(str(i) for i in range(len(self._names)))
        # For the fast DataFrame path: non-nullable numpy float columns are checked as one
        # block; numpy int/bool columns cannot hold nulls; everything else is inspected.
        self._float_block = [c.name for c in self._coercers if _never_null_float(c)]
        self._inspected = tuple(
            c
            for c in self._coercers
            if c.spec.dtype == "string" or (not c.spec.nullable and not _numpy_kind(c, "biuf"))
        )
        shown = ", ".join(repr(name) for name in self._names[:10])
        more = f" and {len(self._names) - 10} more" if len(self._names) > 10 else ""
        self._hint = (
            f"Send the model's columns ({shown}{more}) with the types its signature lists; "
            "details.problems lists every problem."
        )

    def validate(self, data: Any) -> ValidatedInput:
        """Check ``data`` and return it rebuilt; raise :class:`SchemaValidationError` if not."""
        if self._numeric is not None:
            array = self._numeric.decode(data)
            if array is not None:
                return ValidatedInput(array, len(array), ())
        if isinstance(data, pd.DataFrame):
            fast = self._fast_frame(data)
            if fast is not None:
                return fast
        log = ProblemLog(self._order)
        notes: list[str] = []
        columns = self._split(data, log, notes)
        if columns.rows == 0:
            if log.total == 0:
                log.add(
                    row=None, column=None, expected="at least one row", got="0 rows",
                    message="the input has no rows",
                )  # fmt: skip
            raise self._error(log, notes)
        arrays: list[Any] = []
        for coercer in self._coercers:
            values = columns.values.get(coercer.name)
            if values is None:
                if columns.usable and coercer.name not in columns.reported:
                    log.add(
                        row=None, column=coercer.name,
                        expected=f"a column {coercer.name!r} ({coercer.expected})",
                        got="missing", message=f"missing column {coercer.name!r}",
                    )  # fmt: skip
                continue
            arrays.append(coercer.coerce(values, log, columns.row_ids))
        if log.total:
            raise self._error(log, notes)
        return ValidatedInput(self._assemble(arrays, columns), columns.rows, tuple(notes))

    def _fast_frame(self, frame: pd.DataFrame) -> ValidatedInput | None:
        """A DataFrame that already has the signature's dtypes and no problem, checked in bulk.

        ``None`` means "take the full path", which also finds and reports any problem.
        """
        if len(frame) == 0 or frame.columns.has_duplicates:
            return None
        dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
        for coercer in self._coercers:
            dtype = dtypes.get(coercer.name)
            if dtype is None or not coercer.matches(dtype):
                return None
        if self._float_block and np.isnan(frame[self._float_block].to_numpy()).any():
            return None
        for coercer in self._inspected:
            if not coercer.clean(frame[coercer.name]):
                return None
        notes: list[str] = []
        if len(dtypes) != len(self._names):
            self._note_extras(dtypes.keys(), notes)
        selected = frame if list(frame.columns) == self._name_list else frame[self._name_list]
        if self.signature.layout == "array":
            data: Any = (
                selected.to_numpy(dtype=self._array_dtype, na_value=np.nan)
                if self._array_dtype.kind == "f"
                else selected.to_numpy(dtype=self._array_dtype)
            )
        elif _default_index(selected.index):
            data = selected
        else:
            data = selected.reset_index(drop=True)
        return ValidatedInput(data, len(frame), tuple(notes))

    # -- splitting the input into columns ------------------------------------------------

    def _split(self, data: Any, log: ProblemLog, notes: list[str]) -> _Columns:
        if isinstance(data, pd.DataFrame):
            return self._from_frame(data, log, notes)
        if isinstance(data, np.ndarray):
            return self._from_array(data, log)
        if isinstance(data, pd.Series):  # one row, indexed by column name
            return self._from_records([data.to_dict()], log, notes)
        if isinstance(data, Mapping):
            if not data:
                return _Columns({}, 0, usable=False)
            if any(isinstance(value, _SEQUENCES) for value in data.values()):
                return self._from_columns(data, log, notes)
            return self._from_records([data], log, notes)
        if isinstance(data, (list, tuple)):
            if not data:
                return _Columns({}, 0, usable=False)
            if isinstance(data[0], Mapping):
                return self._from_records(data, log, notes)
            if isinstance(data[0], (list, tuple, np.ndarray)):
                return self._from_rows(data, log)
        to_pandas = getattr(data, "to_pandas", None)
        if callable(to_pandas):  # pyarrow and polars tables
            frame = to_pandas()
            if isinstance(frame, pd.DataFrame):
                return self._from_frame(frame, log, notes)
        if isinstance(data, (list, tuple)):
            got = f"a list of {describe_value(data[0])}"
        else:
            got = describe_value(data)
        log.add(
            row=None, column=None,
            expected="records, a record, columns, a DataFrame or a 2-D array", got=got,
            message="the input is not records, columns, a DataFrame or a 2-D array",
        )  # fmt: skip
        return _Columns({}, 0, usable=False)

    def _from_frame(self, frame: pd.DataFrame, log: ProblemLog, notes: list[str]) -> _Columns:
        if isinstance(frame.columns, pd.RangeIndex) and self._names != self._positional_names:
            if frame.shape[1] != len(self._names):
                self._log_width(log, None, frame.shape[1])
                return _Columns({}, len(frame), usable=False)
            values = {name: frame.iloc[:, i] for i, name in enumerate(self._names)}
            return _Columns(values, len(frame))
        names = [str(column) for column in frame.columns]
        duplicated = (
            {name for name in names if names.count(name) > 1}
            if frame.columns.has_duplicates
            else set()
        )
        for name in sorted(duplicated & self._known):
            log.add(
                row=None, column=name, expected="one column per name",
                got="duplicate columns", message=f"column {name!r} appears more than once",
            )  # fmt: skip
        self._note_extras(names, notes)
        values = {
            name: frame.iloc[:, i]
            for i, name in enumerate(names)
            if name in self._known and name not in duplicated
        }
        return _Columns(values, len(frame))

    def _from_array(self, array: NDArray[Any], log: ProblemLog) -> _Columns:
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            log.add(
                row=None, column=None, expected="a 2-D array (rows, columns)",
                got=f"{array.ndim}-D array", message="the input array is not 2-D",
            )  # fmt: skip
            return _Columns({}, 0, usable=False)
        if array.shape[1] != len(self._names):
            self._log_width(log, None, array.shape[1])
            return _Columns({}, array.shape[0], usable=False)
        values = {name: array[:, i] for i, name in enumerate(self._names)}
        return _Columns(values, array.shape[0], array=array)

    def _from_rows(self, rows: Any, log: ProblemLog) -> _Columns:
        width = len(self._names)
        good: list[Any] = []
        ids: list[int] = []
        for number, row in enumerate(rows):
            if not isinstance(row, (list, tuple, np.ndarray)):
                log.add(
                    row=number, column=None, expected=f"a row of {width} values",
                    got=describe_value(row), message=f"row {number} is not a list of values",
                )  # fmt: skip
            elif len(row) != width:
                self._log_width(log, number, len(row))
            else:
                good.append(row)
                ids.append(number)
        by_column = list(zip(*good, strict=True)) if good else [()] * width
        values = {name: list(column) for name, column in zip(self._names, by_column, strict=True)}
        row_ids = None if len(good) == len(rows) else np.asarray(ids, dtype=np.intp)
        return _Columns(values, len(rows), row_ids, usable=bool(good))

    def _from_records(self, records: Any, log: ProblemLog, notes: list[str]) -> _Columns:
        good: list[Mapping[str, Any]] = []
        ids: list[int] = []
        for number, record in enumerate(records):
            if isinstance(record, Mapping):
                good.append(record)
                ids.append(number)
            else:
                log.add(
                    row=number, column=None, expected="a record (column: value)",
                    got=describe_value(record), message=f"row {number} is not a record",
                )  # fmt: skip
        keys: set[str] = set().union(*good)
        self._note_extras(keys, notes)
        values = {
            name: [record.get(name) for record in good] for name in self._names if name in keys
        }
        row_ids = None if len(good) == len(records) else np.asarray(ids, dtype=np.intp)
        return _Columns(values, len(records), row_ids, usable=bool(good))

    def _from_columns(self, data: Mapping[str, Any], log: ProblemLog, notes: list[str]) -> _Columns:
        self._note_extras(data.keys(), notes)
        values: dict[str, Any] = {}
        reported: set[str] = set()
        for name in self._names:
            if name not in data:
                continue
            column = data[name]
            if isinstance(column, _SEQUENCES):
                values[name] = column
            else:
                reported.add(name)
                log.add(
                    row=None, column=name, expected="a list of values",
                    got=describe_value(column), message=f"column {name!r} is not a list",
                )  # fmt: skip
        lengths = {name: len(column) for name, column in values.items()}
        counts = list(lengths.values()) or [
            len(column) for column in data.values() if isinstance(column, _SEQUENCES)
        ]
        rows = max(set(counts), key=counts.count) if counts else 0
        for name, length in lengths.items():
            if length != rows:
                log.add(
                    row=None, column=name, expected=f"{rows} values (like the other columns)",
                    got=f"{length} values",
                    message=f"column {name!r} has {length} values but the others have {rows}",
                )  # fmt: skip
        return _Columns(values, rows, reported=frozenset(reported))

    # -- building the output -------------------------------------------------------------

    def _assemble(self, arrays: list[Any], columns: _Columns) -> Any:
        if self.signature.layout == "array":
            source = columns.array
            if (
                source is not None
                and self._array_dtype.kind in "biuf"
                and source.dtype == self._array_dtype
            ):
                return source
            return self._stack(arrays, columns.rows)
        built = {name: _column(array) for name, array in zip(self._names, arrays, strict=True)}
        return pd.DataFrame(built, copy=False)

    def _stack(self, arrays: list[Any], rows: int) -> NDArray[Any]:
        dtype = self._array_dtype
        numpy_arrays = [np.asarray(_to_numpy(array, dtype)) for array in arrays]
        if dtype.kind in "iub" and any(array.dtype != dtype for array in numpy_arrays):
            dtype = np.dtype(np.float64)  # nulls arrived in an integer/boolean column
        out = np.empty((rows, len(numpy_arrays)), dtype=dtype)
        for position, array in enumerate(numpy_arrays):
            out[:, position] = array
        return out

    # -- problems and notes --------------------------------------------------------------

    def _note_extras(self, names: Any, notes: list[str]) -> None:
        extras = sorted(str(name) for name in names if name not in self._known)
        notes.extend(f"ignored extra column {name!r}" for name in extras[:_NOTE_LIMIT])
        if len(extras) > _NOTE_LIMIT:
            notes.append(f"ignored {len(extras) - _NOTE_LIMIT} more extra columns")

    def _log_width(self, log: ProblemLog, row: int | None, width: int) -> None:
        where = "rows have" if row is None else f"row {row} has"
        log.add(
            row=row, column=None, expected=f"{len(self._names)} values per row",
            got=f"{width} values",
            message=f"{where} {width} values but the model takes {len(self._names)} columns",
        )  # fmt: skip

    def _error(self, log: ProblemLog, notes: list[str]) -> SchemaValidationError:
        problems = log.problems()
        count = f"{log.total} problem{'s' if log.total != 1 else ''}"
        return SchemaValidationError(
            f"{count} in the input: {problems[0].message}",
            hint=self._hint,
            details={
                "problems": [problem.to_dict() for problem in problems],
                "total": log.total,
                "shown": len(problems),
                "limit": PROBLEM_LIMIT,
                "notes": notes,
            },
        )


class NumericRows:
    """The validator's fast path for all-numeric signatures (``float64``/``int64`` columns)
    served as arrays: records, rows, columns (lists or 1-D numeric arrays) and 2-D numeric
    arrays of plain finite numbers become the model's array (the validator's ``array``
    dtype) in bulk.

    It takes only what the full path would accept unchanged and returns ``None`` for
    anything else — a missing or extra key, a row of the wrong length, a string, a bool, a
    null or NaN or infinity, a fraction or a float past 2**53 in an integer column, an
    integer beyond float64, an unsigned 64-bit array — which the full path then checks and
    reports. Tuples, Series and DataFrames also take the full path.
    """

    def __init__(self, signature: Signature, dtype: np.dtype[Any]) -> None:
        names = signature.column_names
        self.width = len(names)
        self.dtype = dtype
        integers = [i for i, c in enumerate(signature.columns) if c.dtype == "integer"]
        self._integers = np.asarray(integers, dtype=np.intp) if integers else None
        self._integer_set = frozenset(integers)
        if len(names) == 1:
            only = names[0]
            self._values: Any = lambda record: (record[only],)
        else:
            self._values = operator.itemgetter(*names)

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
        return cls(signature, _array_dtype(signature))

    def decode(self, data: Any) -> NDArray[Any] | None:
        """The model's array for ``data``, or ``None``: "take the full path"."""
        kind = type(data)
        if kind is np.ndarray:
            return self._from_array(data)
        if kind is dict:
            if data and type(next(iter(data.values()))) in (list, np.ndarray):
                return self._from_columns(data)
            data = (data,)
        elif kind is not list or not data:
            return None
        # map() with C callables: no Python frame per row
        width = {self.width}
        if type(data[0]) is list:
            if set(map(type, data)) != _LIST or set(map(len, data)) != width:
                return None
            return self._from_lists(data)
        try:
            rows = list(map(self._values, data))  # non-records: TypeError
            if set(map(len, data)) != width:  # extra keys
                return None
        except (KeyError, TypeError):
            return None
        return self._from_lists(rows)

    def clean_columns(self, data: Mapping[str, Any]) -> bool:
        """Whether ``data`` (one 1-D numeric array per signature column, nothing else) passes
        :meth:`decode`'s checks as it is, checked column by column without building the 2-D
        array — for a model fed column by column. ``False``: take the full path."""
        if len(data) != self.width:
            return False
        try:
            columns = self._values(data)
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

    def _from_columns(self, data: dict[str, Any]) -> NDArray[Any] | None:
        if len(data) != self.width:  # extra columns: a note
            return None
        try:
            columns = self._values(data)
        except KeyError:
            return None
        lists = all(type(column) is list for column in columns)
        if not lists and not all(
            type(column) is np.ndarray and column.ndim == 1 for column in columns
        ):
            return None
        rows = len(columns[0])
        if not rows or any(len(column) != rows for column in columns):
            return None
        if lists:
            bulk = _plain_numbers(columns) if rows * self.width >= _BULK else None
            if bulk is not None:
                return self._from_floats(np.ascontiguousarray(bulk.T))
            if not _PLAIN_NUMBERS.issuperset(map(type, chain.from_iterable(columns))):
                return None
            try:
                by_column = np.array(columns, dtype=np.float64)
            except OverflowError:
                return None
            return self._from_floats(np.ascontiguousarray(by_column.T))
        kinds = {(column.dtype.kind, column.dtype.itemsize) for column in columns}
        if any(kind not in "fiu" or (kind == "u" and size == 8) for kind, size in kinds):
            return None
        return self._from_array(np.column_stack(columns))

    def _from_lists(self, rows: Any) -> NDArray[Any] | None:
        if len(rows) * self.width >= _BULK:
            bulk = _plain_numbers(rows)
            if bulk is not None:
                return self._from_floats(bulk)
        if not _PLAIN_NUMBERS.issuperset(map(type, chain.from_iterable(rows))):
            return None
        try:
            array = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64
            return None
        return self._from_floats(array)

    def _from_array(self, array: NDArray[Any]) -> NDArray[Any] | None:
        if array.ndim != 2 or array.shape[1] != self.width or not array.shape[0]:
            return None
        kind = array.dtype.kind
        if kind == "f":
            return self._from_floats(array.astype(np.float64, copy=False))
        if kind == "i" or (kind == "u" and array.dtype.itemsize < 8):
            return array.astype(self.dtype, copy=False)
        return None

    def _from_floats(self, array: NDArray[np.float64]) -> NDArray[Any] | None:
        if not np.isfinite(array).all():
            return None
        if self._integers is not None:
            block = array[:, self._integers]
            if not ((np.abs(block) < _EXACT) & (block == np.trunc(block))).all():
                return None
        return array if self.dtype == array.dtype else array.astype(self.dtype)


def _plain_numbers(rows: Any) -> NDArray[np.float64] | None:
    """Rows of plain numbers converted by numpy in one call, without first scanning every
    value's type in Python; ``None`` when numpy's answer could hide what that scan catches:
    anything but a numeric array (a string, a null, an integer beyond int64), or a value
    equal to 0 or 1 (numpy reads ``True`` and ``False`` as those)."""
    try:
        array = np.array(rows)
    except (ValueError, OverflowError):
        return None
    if array.dtype.kind not in "fi" or ((array == 0) | (array == 1)).any():
        return None
    return array.astype(np.float64, copy=False)


def _numpy_kind(coercer: ColumnCoercer, kinds: str) -> bool:
    return isinstance(coercer.target, np.dtype) and coercer.target.kind in kinds


def _never_null_float(coercer: ColumnCoercer) -> bool:
    return not coercer.spec.nullable and _numpy_kind(coercer, "f")


def _array_dtype(signature: Signature) -> np.dtype[Any]:
    """The dtype of ``array``-layout output (see :class:`Validator`)."""
    if not all(column.dtype in ("float", "integer", "boolean") for column in signature.columns):
        return np.dtype(object)
    dtypes = {column.pandas_dtype for column in signature.columns}
    if len(dtypes) == 1:
        dtype = pd.api.types.pandas_dtype(dtypes.pop())
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return dtype
    return np.dtype(np.float64)


def _column(array: Any) -> Any:
    """An array ready for the DataFrame constructor, object columns kept as object.

    (pandas 3 would otherwise turn an object array of strings into its ``str`` dtype.)
    """
    if isinstance(array, np.ndarray | pd.arrays.NumpyExtensionArray) and array.dtype.kind == "O":
        return pd.Series(np.asarray(array), dtype=object, copy=False)
    return array


def _to_numpy(array: Any, dtype: np.dtype[Any]) -> Any:
    if isinstance(array, pd.api.extensions.ExtensionArray) and not isinstance(
        array, pd.arrays.NumpyExtensionArray
    ):
        if dtype.kind == "f":
            return array.to_numpy(dtype=dtype, na_value=np.nan)
        return array.to_numpy(dtype=object)
    return array


def _default_index(index: pd.Index) -> bool:
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
