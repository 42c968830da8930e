"""Checking one input column against its :class:`ColumnSpec` and rebuilding its dtype.

A :class:`ColumnCoercer` is built once per signature column (dtype objects, category index,
accepted Python types) and then applied to every request. Values arrive as a pandas Series
(from a DataFrame), a typed numpy array (from a 2-D array) or a list (from JSON records or
columns). Typed arrays are checked with vectorised numpy operations; object arrays take one
``set(map(type, ...))`` pass and fall back to a per-value loop only when some value has an
unexpected type, so that the loop runs only to name the offenders.

Every problem goes to a :class:`~dockyard.schema.problems.ProblemLog`; a coercer returns
``None`` when its column had any, and the caller raises once every column has been looked
at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema._pandas import dtype_of, is_series, isna
from dockyard.schema.problems import ProblemLog, describe_value
from dockyard.schema.signature import ColumnSpec

if TYPE_CHECKING:
    import pandas as pd

Array = Any  # a numpy array or a pandas ExtensionArray: what a DataFrame column is built from

_INT_TYPES: frozenset[type] = frozenset(
    {int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64}
)
_FLOAT_TYPES: frozenset[type] = frozenset({float, np.float16, np.float32, np.float64})
_BOOL_TYPES: frozenset[type] = frozenset({bool, np.bool_})
_STR_TYPES: frozenset[type] = frozenset({str, np.str_})


def target_dtype(spec: ColumnSpec) -> Any:
    """The pandas/numpy dtype a column is rebuilt with."""
    if spec.dtype == "category":
        import pandas as pd

        categories = pd.Index(list(spec.categories or ()), dtype=spec.categories_dtype)
        return pd.CategoricalDtype(categories, ordered=spec.ordered)
    return dtype_of(spec.pandas_dtype)


class ColumnCoercer:
    """Checks values for one column and rebuilds them with the column's dtype."""

    def __init__(self, spec: ColumnSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.target = target_dtype(spec)
        self._numpy_target = isinstance(self.target, np.dtype)
        self._categories: pd.Index | None = None
        if spec.dtype == "category":
            self._categories = self.target.categories
        elif spec.dtype == "string" and spec.categories is not None:
            import pandas as pd

            self._categories = pd.Index(list(spec.categories), dtype=object)
        self._reject_unseen = self._categories is not None and spec.unseen == "reject"
        self._fast_types, self._accepts = _accepted_types(spec)
        self.expected = _expected(spec)
        self._tz = getattr(self.target, "tz", None)
        self._int_range = _int_range(self.target)
        self._float_range = _float_range(*self._int_range)
        self._int_dtype = _int_dtype(self.target)
        self._by_kind: Callable[..., Array | None] = getattr(self, f"_coerce_{spec.dtype}")

    # -- entry points ------------------------------------------------------------------

    def matches(self, dtype: Any) -> bool:
        """Whether values of ``dtype`` need no rebuilding (categories in the same order too)."""
        if self.spec.dtype == "category":
            import pandas as pd

            return bool(
                isinstance(dtype, pd.CategoricalDtype)
                and dtype == self.target
                and dtype.categories.equals(self.target.categories)
            )
        return str(dtype) == self.spec.pandas_dtype

    def clean(self, series: pd.Series) -> bool:
        """For a Series that :meth:`matches`: whether it has no problem at all."""
        if not self.spec.nullable and series.hasnans:
            return False
        if self.spec.dtype != "string":
            return True
        import pandas as pd

        if pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(
            series, skipna=True
        ) not in ("string", "empty"):
            return False
        return not self._reject_unseen or bool(
            series.isin(self.spec.categories or ()).to_numpy()[series.notna().to_numpy()].all()
        )

    def coerce(
        self, values: Any, log: ProblemLog, row_ids: NDArray[np.intp] | None = None
    ) -> Array | None:
        """Check ``values`` and return them rebuilt, or ``None`` if problems were logged."""
        if is_series(values):
            if self.matches(values.dtype):
                return self._coerce_matching(values, log, row_ids)
            values = _series_values(values)
        elif isinstance(values, (list, tuple)):
            values = np.fromiter(values, dtype=object, count=len(values))
        elif not isinstance(values, np.ndarray):
            values = np.asarray(values, dtype=object)
        if values.dtype.kind in "mM" and self.spec.dtype != "datetime":
            import pandas as pd

            values = pd.Series(values).to_numpy(dtype=object)  # Timestamps, not raw integers
        if values.ndim != 1:
            log.add(
                row=None, column=self.name, expected="a flat list of values",
                got=f"{values.ndim}-D values", message=f"column {self.name!r} is not flat",
            )  # fmt: skip
            return None
        return self._by_kind(values, values.dtype.kind, log, row_ids)

    # -- fast path ---------------------------------------------------------------------

    def _coerce_matching(
        self, series: pd.Series, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        import pandas as pd

        if (
            self.spec.dtype == "string"
            and pd.api.types.is_object_dtype(series.dtype)
            and pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty")
        ):
            return self._coerce_string(series.to_numpy(), "O", log, row_ids)
        before = log.total
        null: NDArray[np.bool_] | None = None
        if not self.spec.nullable and series.hasnans:
            null = series.isna().to_numpy()
            self._log_nulls(null, series.to_numpy(dtype=object), log, row_ids)
        if self.spec.dtype == "string" and self._reject_unseen:
            null = series.isna().to_numpy() if null is None else null
            unseen = ~series.isin(self.spec.categories or ()).to_numpy() & ~null
            self._log_unseen(unseen, series.to_numpy(dtype=object), log, row_ids)
        return series.array if log.total == before else None

    # -- one method per column kind ----------------------------------------------------

    def _coerce_float(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        before = log.total
        if kind in "iuf":
            out = values.astype(np.float64, copy=False)
            null = np.isnan(out)
            if not self.spec.nullable and null.any():
                self._log_nulls(null, out, log, row_ids)
        else:
            objects, null, _ok = self._scan(values, log, row_ids)
            if log.total != before:
                return None
            try:
                out = _fill(objects, null, np.nan).astype(np.float64)
            except OverflowError:  # an integer beyond float64: rare, so a loop is fine
                huge = np.fromiter(map(_too_large, objects), dtype=np.bool_, count=len(objects))
                log.add_rows(
                    self.name, huge, objects, row_ids, "a number within float64's range",
                    lambda row, v: (describe_value(v), f"row {row}: {self.name!r} is "
                                    f"{describe_value(v)}, too large for a float"),
                )  # fmt: skip
                return None
        return self._finish(out) if log.total == before else None

    def _coerce_integer(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        before = log.total
        low, high = self._int_range
        if kind in "iu":
            numbers = values
        elif kind == "f":
            null = np.isnan(values)
            if not self.spec.nullable and null.any():
                self._log_nulls(null, values, log, row_ids)
            with np.errstate(invalid="ignore"):
                fractional = ~null & ~(np.isfinite(values) & (values == np.trunc(values)))
            if fractional.any():
                self._log_types(fractional, values, log, row_ids)
            numbers = values
        else:
            objects, null, _ok = self._scan(values, log, row_ids)
            if log.total != before:
                return None
            if high > _EXACT_FLOATS:  # 64-bit: a float past 2**53 inside the range is not exact
                inexact = np.fromiter(
                    (_inexact(v, low, high) for v in objects), dtype=np.bool_, count=len(objects)
                )
                if inexact.any():
                    self._log_inexact(inexact, objects, log, row_ids)
                    return None
            exact = False
            if null.any():
                numbers = _fill(objects, null, np.nan).astype(np.float64)
                exact = bool((np.abs(numbers) >= _EXACT_FLOATS).any())  # floats lost digits
            else:
                try:
                    numbers = objects.astype(np.int64)
                except OverflowError:  # beyond int64 (or in a uint64 column's upper half)
                    exact = True
            if exact:  # Python ints compared exactly; rare, so a loop over the objects is fine
                outside = np.fromiter(
                    (
                        not n and not low <= int(v) <= high
                        for v, n in zip(objects, null, strict=True)
                    ),
                    dtype=bool,
                    count=len(objects),
                )
                if outside.any():
                    self._log_range(outside, objects, log, row_ids)
                    return None
                if not null.any():
                    numbers = objects.astype(self._int_dtype)
                elif not self._numpy_target:  # a nullable dtype holds every value exactly
                    import pandas as pd

                    return pd.array(_fill(objects, null, None).tolist(), dtype=self.target)
                return self._finish(numbers)
        if log.total != before:
            return None
        # a float compared with an int bound is compared as floats, and float(2**63 - 1) is
        # 2**63: float values are held to the floats that lie inside the range
        bottom, top = self._float_range if numbers.dtype.kind == "f" else (low, high)
        with np.errstate(invalid="ignore"):
            outside = (numbers < bottom) | (numbers > top)
        if outside.any():
            self._log_range(outside, numbers, log, row_ids)
            return None
        if kind == "f" and high > _EXACT_FLOATS:
            # a float this large no longer says which integer was meant (a JSON parser turns
            # -2**63 - 1 into the float -2**63): only integers are exact there
            with np.errstate(invalid="ignore"):
                inexact = np.abs(numbers) >= _EXACT_FLOATS
            if inexact.any():
                self._log_inexact(inexact, numbers, log, row_ids)
                return None
        if numbers.dtype.kind == "f" and not np.isnan(numbers).any():
            numbers = numbers.astype(self._int_dtype)
        return self._finish(numbers)

    def _log_inexact(
        self, mask: NDArray[np.bool_], values: Any, log: ProblemLog, row_ids: Any
    ) -> None:
        log.add_rows(
            self.name, mask, values, row_ids, "an integer (a float beyond 2**53 is not exact)",
            lambda row, v: (describe_value(v), f"row {row}: {self.name!r} is the float "
                            f"{describe_value(v)}, too large to be an exact integer; send it "
                            "as an integer"),
        )  # fmt: skip

    def _log_range(
        self, mask: NDArray[np.bool_], values: Any, log: ProblemLog, row_ids: Any
    ) -> None:
        low, high = self._int_range
        log.add_rows(
            self.name, mask, values, row_ids, f"an integer from {low} to {high}",
            lambda row, v: (describe_value(v), f"row {row}: {self.name!r} is "
                            f"{describe_value(v)}, outside {self.spec.pandas_dtype}'s range"),
        )  # fmt: skip

    def _coerce_boolean(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        if kind == "b":
            return self._finish(values)
        before = log.total
        objects, null, _ok = self._scan(values, log, row_ids)
        if log.total != before:
            return None
        if not null.any():
            return self._finish(objects.astype(bool))
        if self._numpy_target:  # bool or object: pandas keeps nulls in an object column
            return _fill(objects, null, np.nan)
        import pandas as pd

        return pd.array(_fill(objects, null, None), dtype=self.target)

    def _coerce_string(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        before = log.total
        objects, null, ok = self._scan(values, log, row_ids)
        if self._reject_unseen and self._categories is not None:
            import pandas as pd

            checked = ok & ~null
            known = (
                self._categories.get_indexer(pd.Index(_fill(objects, ~checked, None), dtype=object))
                != -1
            )
            self._log_unseen(~known & checked, objects, log, row_ids)
        if log.total != before:
            return None
        if self._numpy_target:
            return _fill(objects, null, np.nan) if null.any() else objects
        import pandas as pd

        return pd.array(objects, dtype=self.target)

    def _coerce_category(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        import pandas as pd

        assert self._categories is not None
        before = log.total
        objects, null, ok = self._scan(values, log, row_ids)
        checked = ok & ~null
        codes = np.where(
            checked,
            self._categories.get_indexer(pd.Index(_fill(objects, ~checked, None), dtype=object)),
            -1,
        )
        if self._reject_unseen:
            self._log_unseen((codes == -1) & checked, objects, log, row_ids)
        if log.total != before:
            return None
        return pd.Categorical.from_codes(codes, dtype=self.target)

    def _coerce_datetime(
        self, values: NDArray[Any], kind: str, log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> Array | None:
        import pandas as pd

        before = log.total
        if kind == "M":
            index = pd.DatetimeIndex(values)
            null = np.asarray(index.isna())
            if not self.spec.nullable and null.any():
                self._log_nulls(null, values.astype(object), log, row_ids)
            if log.total != before:
                return None
            if self._tz is not None:
                index = index.tz_localize("UTC").tz_convert(self._tz)
            return index.astype(self.target).array
        objects, null, ok = self._scan(values, log, row_ids)
        stamps: list[Any] = []
        unreadable = np.zeros(len(objects), dtype=bool)
        for position, value in enumerate(objects):
            stamp = pd.NaT if null[position] or not ok[position] else self._timestamp(value)
            unreadable[position] = stamp is None
            stamps.append(stamp)
        if unreadable.any():
            zone = "with time zone" if self._tz is not None else "without time zone"
            log.add_rows(
                self.name, unreadable, objects, row_ids, f"a datetime {zone}",
                lambda row, v: (describe_value(v), f"row {row}: {self.name!r} expected a datetime"
                                f" {zone}, got {describe_value(v)}"),
            )  # fmt: skip
        if log.total != before:
            return None
        index = pd.DatetimeIndex(stamps)
        if self._tz is not None and index.tz is None:
            index = index.tz_localize(self._tz)
        return index.astype(self.target).array

    # -- helpers -----------------------------------------------------------------------

    def _timestamp(self, value: Any) -> Any:
        """A Timestamp in the target's time zone, or None when unreadable or zone-mismatched."""
        import pandas as pd

        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return None
        if (stamp.tz is None) != (self._tz is None):
            return None
        return stamp.tz_convert(self._tz) if self._tz is not None else stamp

    def _scan(
        self, values: NDArray[Any], log: ProblemLog, row_ids: NDArray[np.intp] | None
    ) -> tuple[NDArray[Any], NDArray[np.bool_], NDArray[np.bool_]]:
        """Object values, their null mask and their right-type mask (nulls count as right).

        Logs nulls (where the column is not nullable) and values of the wrong type.
        """
        objects = values if values.dtype.kind == "O" else values.astype(object)
        null = isna(objects)
        if not self.spec.nullable and null.any():
            self._log_nulls(null, objects, log, row_ids)
        ok = self._types_ok(objects, null)
        if not ok.all():
            self._log_types(~ok, objects, log, row_ids)
        return objects, null, ok

    def _types_ok(self, objects: NDArray[Any], null: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Mask of values with an acceptable type (nulls count as acceptable)."""
        accepts = self._accepts
        if accepts is None:
            return np.ones(len(objects), dtype=bool)
        present = objects[~null] if null.any() else objects
        if set(map(type, present)) <= self._fast_types:
            return np.ones(len(objects), dtype=bool)
        ok = np.fromiter((accepts(v) for v in objects), dtype=bool, count=len(objects))
        return ok | null

    def _finish(self, out: NDArray[Any]) -> Array:
        """Numeric values (float64 with NaN where null) cast to the target dtype."""
        if not self._numpy_target:
            import pandas as pd

            return pd.array(out, dtype=self.target)
        if out.dtype.kind == "f" and self.target.kind in "iub" and np.isnan(out).any():
            return out  # an integer column with nulls: float64, as pandas itself would make it
        return out.astype(self.target, copy=False)

    def _log_nulls(
        self, mask: NDArray[np.bool_], values: Any, log: ProblemLog, row_ids: Any
    ) -> None:
        log.add_rows(
            self.name, mask, values, row_ids, f"{self.expected}, not null",
            lambda row, v: ("null", f"row {row}: {self.name!r} is null or missing, and the model "
                            "does not accept nulls there"),
        )  # fmt: skip

    def _log_types(
        self, mask: NDArray[np.bool_], values: Any, log: ProblemLog, row_ids: Any
    ) -> None:
        log.add_rows(
            self.name, mask, values, row_ids, self.expected,
            lambda row, v: (describe_value(v), f"row {row}: {self.name!r} expected "
                            f"{self.expected}, got {describe_value(v)}"),
        )  # fmt: skip

    def _log_unseen(
        self, mask: NDArray[np.bool_], values: Any, log: ProblemLog, row_ids: Any
    ) -> None:
        known = _known_categories(self.spec.categories or ())
        log.add_rows(
            self.name, mask, values, row_ids, f"one of {known}",
            lambda row, v: (describe_value(v), f"row {row}: {self.name!r} has the unseen "
                            f"category {describe_value(v)}; known: {known}"),
        )  # fmt: skip


_EXACT_FLOATS = 2.0**53
"""From here on a float64 no longer holds every integer."""


def _int_range(target: Any) -> tuple[int, int]:
    """The values an integer target dtype holds (int64's for anything else)."""
    dtype = getattr(target, "numpy_dtype", target)  # Int8Dtype and friends carry one
    info = np.iinfo(dtype if isinstance(dtype, np.dtype) and dtype.kind in "iu" else np.int64)
    return int(info.min), int(info.max)


def _inexact(value: object, low: int, high: int) -> bool:
    """Whether ``value`` is a float inside ``[low, high]`` but too large (past 2**53) to say
    which integer was meant; one outside the range is left to the range check."""
    if not isinstance(value, float | np.floating):
        return False
    number = float(value)
    return abs(number) >= _EXACT_FLOATS and low <= number <= high


def _too_large(value: object) -> bool:
    """Whether ``value`` is an integer no float64 holds."""
    try:
        float(value)  # type: ignore[arg-type]
    except OverflowError:
        return True
    except (TypeError, ValueError):
        return False
    return False


def _float_range(low: int, high: int) -> tuple[float, float]:
    """The floats that lie inside ``[low, high]``: ``float(2**63 - 1)`` rounds up to
    ``2**63``, so int64's top float is the one below it."""
    bottom, top = float(low), float(high)
    if int(top) > high:
        top = float(np.nextafter(top, -np.inf))
    if int(bottom) < low:
        bottom = float(np.nextafter(bottom, np.inf))
    return bottom, top


def _int_dtype(target: Any) -> np.dtype[Any]:
    """The numpy integer dtype values of an integer target are built in (int64 by default)."""
    dtype = getattr(target, "numpy_dtype", target)
    return dtype if isinstance(dtype, np.dtype) and dtype.kind in "iu" else np.dtype(np.int64)


def _fill(objects: NDArray[Any], mask: NDArray[np.bool_], value: Any) -> NDArray[Any]:
    """A copy of the object array ``objects`` with ``value`` where ``mask`` is true."""
    out = objects.copy()
    out[mask] = value
    return out


def _series_values(series: pd.Series) -> NDArray[Any]:
    """A Series' values as a numpy array: typed for numpy dtypes, object otherwise."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufM":
        return series.to_numpy()
    return series.to_numpy(dtype=object)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_integral(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and float(value).is_integer()


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _accepted_types(spec: ColumnSpec) -> tuple[frozenset[type], Callable[[Any], bool] | None]:
    """Types accepted without a per-value check, and the per-value check for the rest."""
    if spec.dtype == "float":
        return _INT_TYPES | _FLOAT_TYPES, _is_number
    if spec.dtype == "integer":
        return _INT_TYPES, _is_integral
    if spec.dtype == "boolean":
        return _BOOL_TYPES, lambda v: isinstance(v, (bool, np.bool_))
    if spec.dtype == "string":
        return _STR_TYPES, lambda v: isinstance(v, str)
    if spec.dtype == "datetime":
        import pandas as pd

        return (
            frozenset({str, np.str_, dt.datetime, dt.date, pd.Timestamp, np.datetime64}),
            lambda v: isinstance(v, (str, dt.date, np.datetime64)),
        )
    families = {_family(category) for category in spec.categories or ()}
    if families == {"string"}:
        return _STR_TYPES, lambda v: isinstance(v, str)
    if families == {"integer"}:
        return _INT_TYPES, _is_integral
    if families <= {"integer", "float"} and families:
        return _INT_TYPES | _FLOAT_TYPES, _is_number
    if families == {"boolean"}:
        return _BOOL_TYPES, lambda v: isinstance(v, (bool, np.bool_))
    return frozenset({str, int, float, bool}), _is_hashable


def _family(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, (float, np.floating)):
        return "float"
    return "other"


def _expected(spec: ColumnSpec) -> str:
    if spec.dtype == "category":
        families = {_family(category) for category in spec.categories or ()}
        family = families.pop() if len(families) == 1 else ""
        return {"integer": "an integer category", "float": "a numeric category"}.get(
            family, f"a {family} category" if family else "a category"
        )
    return {
        "float": "a number",
        "integer": "an integer",
        "boolean": "a boolean",
        "string": "a string",
        "datetime": "a datetime",
    }[spec.dtype]


def _known_categories(categories: tuple[Any, ...], shown: int = 10) -> str:
    listed = ", ".join(repr(c) for c in categories[:shown])
    more = f" and {len(categories) - shown} more" if len(categories) > shown else ""
    return f"{listed}{more}" if categories else "(none)"
