"""Checking request input against a signature and rebuilding what the model was trained on.

A :class:`Validator` is built once per served version and sits on the request path. It
accepts the shapes requests come in — a list of records, a single record, a dict of
columns, a DataFrame, a 2-D array or a list of rows (columns by position) — reports every
problem at once in one :class:`~dockyard.errors.SchemaValidationError`, and otherwise hands
the model exactly the dtypes of its training sample.

This is the one validation path: the protocols hand it what the client sent (a v2 2-D
tensor arrives as the 2-D array it already is, v1 rows as the rows), never split into
columns first. For all-numeric signatures served as arrays, :class:`NumericRows` turns the
common case — plain finite numbers — into the model's array in bulk; for other signatures of
plain columns (``float64``, ``int64``, text, ``bool``), :class:`PlainColumns` checks records
and columns of plain JSON values in bulk, column by column. Each gives anything else to the
full path, which checks it and reports every problem: each shape of the same values gets the
same answer, only the clean case is faster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from dockyard.errors import SchemaValidationError
from dockyard.schema._columns import ColumnCoercer
from dockyard.schema._pandas import is_frame, is_series, is_text_dtype, loaded
from dockyard.schema.numeric_rows import NumericRows, array_dtype
from dockyard.schema.plain_columns import PlainColumns
from dockyard.schema.problems import PROBLEM_LIMIT, ProblemLog, describe_value
from dockyard.schema.signature import Signature

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FrameColumns", "ValidatedInput", "Validator"]

_SEQUENCES = (list, tuple, np.ndarray)
_NOTE_LIMIT = 20


@dataclass(frozen=True, slots=True)
class ValidatedInput:
    """What the model's ``predict`` gets, how many rows, and what was ignored on the way."""

    data: Any
    rows: int
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class FrameColumns:
    """``frame``-layout input as the validator rebuilt it, one array per signature column,
    before it becomes a DataFrame (:meth:`Validator.validate` with ``as_columns``).

    Requests batched together are joined column by column (:meth:`join`) and become one
    DataFrame per batch: a DataFrame per request, and pandas' concat of them, cost more than
    the validation itself. The prediction log reads the joined columns, not the DataFrame.

    A column of pandas' text dtypes (``str``, pandas 3's default, and ``string``) is held as
    an ``object`` array and ``dtypes`` names the dtype :meth:`frame` gives it (``None`` for a
    column taken as it is): its array is built once per batch, not once per request."""

    names: tuple[str, ...]
    arrays: tuple[Any, ...]
    rows: int
    dtypes: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return self.rows

    def frame(self) -> pd.DataFrame:
        """The DataFrame the model was fitted on: the columns in order, each in its dtype."""
        import pandas as pd

        dtypes = self.dtypes or (None,) * len(self.names)
        built = {
            name: _column(array) if dtype is None else pd.array(array, dtype=dtype)
            for name, array, dtype in zip(self.names, self.arrays, dtypes, strict=True)
        }
        return pd.DataFrame(built, copy=False)

    def rows_in(self, start: int, end: int) -> FrameColumns:
        """Rows ``start`` to ``end`` (views of the arrays)."""
        arrays = tuple(a[start:end] for a in self.arrays)
        return FrameColumns(self.names, arrays, end - start, self.dtypes)

    @staticmethod
    def join(parts: list[FrameColumns]) -> FrameColumns:
        """Consecutive requests' columns joined column by column (:meth:`frame` makes the
        batch's DataFrame). Raises ``ValueError`` when a column's dtype differs between them
        (say an integer column with a null in one request: ``float64`` there), rather than
        let joining change a request's values."""
        first = parts[0]
        if any(
            type(p) is not FrameColumns or p.names != first.names or p.dtypes != first.dtypes
            for p in parts
        ):
            raise ValueError("the requests' columns differ")
        joined = []
        for position, array in enumerate(first.arrays):
            pieces = [array]
            for part in parts[1:]:
                piece = part.arrays[position]
                if type(piece) is not type(array) or piece.dtype != array.dtype:
                    raise ValueError(f"column {first.names[position]!r} differs in dtype")
                pieces.append(piece)
            if isinstance(array, np.ndarray):
                joined.append(np.concatenate(pieces))
            else:  # a pandas extension array: categories, nullable integers, datetimes
                joined.append(type(array)._concat_same_type(pieces))
        return FrameColumns(first.names, tuple(joined), sum(p.rows for p in parts), first.dtypes)


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
        self._array_dtype = array_dtype(signature)
        self._numeric = NumericRows.for_signature(signature)
        self._plain = PlainColumns.for_signature(signature) if self._numeric is None else None
        # columns of pandas' text dtypes: object arrays in FrameColumns, typed per batch
        text = tuple(c.target if is_text_dtype(c.target) else None for c in self._coercers)
        self._text_dtypes = text if any(dtype is not None for dtype in text) else None
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

    @property
    def numeric(self) -> NumericRows | None:
        """The fast path :meth:`validate` tries first for an all-numeric signature served as
        an array (``None`` for any other): what it takes, :meth:`validate` returns as is."""
        return self._numeric

    def validate(
        self, data: Any, *, as_columns: bool = False, finite: bool = False
    ) -> ValidatedInput:
        """Check ``data`` and return it rebuilt; raise :class:`SchemaValidationError` if not.

        With ``as_columns``, ``frame``-layout input that had to be rebuilt comes back as
        :class:`FrameColumns`, for a caller that joins requests before making a DataFrame
        (a DataFrame already in the signature's dtypes still comes back as it is).
        ``finite``: its numbers cannot be NaN or infinite (a JSON parser that refuses them
        made them), which the numeric path then need not check."""
        if self._numeric is not None:
            array = self._numeric.decode(data, finite=finite)
            if array is not None:
                return ValidatedInput(array, len(array), ())
        if self._plain is not None:
            plain = self._plain.decode(data)
            if plain is not None:
                return self._rebuilt(plain[0], _Columns({}, plain[1]), (), as_columns=as_columns)
        if is_frame(data):
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
        return self._rebuilt(arrays, columns, tuple(notes), as_columns=as_columns)

    def _rebuilt(
        self, arrays: list[Any], columns: _Columns, notes: tuple[str, ...], *, as_columns: bool
    ) -> ValidatedInput:
        if as_columns and self.signature.layout == "frame":
            if self._text_dtypes is not None:
                arrays = [
                    a if dtype is None else _objects(a)
                    for a, dtype in zip(arrays, self._text_dtypes, strict=True)
                ]
            rebuilt = FrameColumns(self._names, tuple(arrays), columns.rows, self._text_dtypes)
            return ValidatedInput(rebuilt, columns.rows, notes)
        return ValidatedInput(self._assemble(arrays, columns), columns.rows, notes)

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
        if is_frame(data):
            return self._from_frame(data, log, notes)
        if isinstance(data, np.ndarray):
            return self._from_array(data, log)
        if is_series(data):  # one row, indexed by column name
            return self._from_records([data.to_dict()], log, notes)
        if isinstance(data, Mapping):
            if not data:
                return _Columns({}, 0, usable=False)
            if any(_is_sequence(value) for value in data.values()):
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
            if is_frame(frame):
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
        import pandas as pd

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
            if _is_sequence(column):
                values[name] = column
            else:
                reported.add(name)
                log.add(
                    row=None, column=name, expected="a list of values",
                    got=describe_value(column), message=f"column {name!r} is not a list",
                )  # fmt: skip
        lengths = {name: len(column) for name, column in values.items()}
        counts = list(lengths.values()) or [
            len(column) for column in data.values() if _is_sequence(column)
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
        return FrameColumns(self._names, tuple(arrays), columns.rows, self._text_dtypes).frame()

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


def _numpy_kind(coercer: ColumnCoercer, kinds: str) -> bool:
    return isinstance(coercer.target, np.dtype) and coercer.target.kind in kinds


def _never_null_float(coercer: ColumnCoercer) -> bool:
    return not coercer.spec.nullable and _numpy_kind(coercer, "f")


def _objects(array: Any) -> NDArray[Any]:
    """A text column as an ``object`` array, nulls as NaN (as the fast path makes them)."""
    if type(array) is np.ndarray:
        return array
    return np.asarray(array.to_numpy(dtype=object, na_value=np.nan), dtype=object)


def _column(array: Any) -> Any:
    """An array ready for the DataFrame constructor, object columns kept as object.

    (pandas 3 would otherwise turn an object array of strings into its ``str`` dtype.)
    """
    import pandas as pd

    if isinstance(array, np.ndarray | pd.arrays.NumpyExtensionArray) and array.dtype.kind == "O":
        return pd.Series(np.asarray(array), dtype=object, copy=False)
    return array


def _to_numpy(array: Any, dtype: np.dtype[Any]) -> Any:
    pd = loaded()
    if pd is None:  # no pandas array can exist yet
        return array
    if isinstance(array, pd.api.extensions.ExtensionArray) and not isinstance(
        array, pd.arrays.NumpyExtensionArray
    ):
        if dtype.kind == "f":
            return array.to_numpy(dtype=dtype, na_value=np.nan)
        return array.to_numpy(dtype=object)
    return array


def _is_sequence(value: Any) -> bool:
    """Whether ``value`` is a column of values: a list, tuple, numpy array, or a pandas
    Series, Index or extension array (a 0-d numpy array is one value)."""
    if isinstance(value, _SEQUENCES):
        return not isinstance(value, np.ndarray) or value.ndim > 0
    pd = loaded()
    return pd is not None and isinstance(
        value, pd.Series | pd.Index | pd.api.extensions.ExtensionArray
    )


def _default_index(index: pd.Index) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
