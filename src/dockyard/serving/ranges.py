"""Inputs outside the training range: a per-request warning, not a refusal. Pure code.

A model answers a bill length of 460 mm as confidently as one of 45, though it never saw
anything above 59.6. :class:`Ranges` holds, once per served version, the ``[min, max]`` its
reference profile recorded for each numeric (float or integer) column, as two arrays
aligned with the signature's columns. The check runs once per model call, on the whole
batch (:meth:`Ranges.rows_outside`, from ``LiveModel``'s call: two vectorised comparisons
and one ``any`` for a numeric array, the ranged columns picked first from a DataFrame; a
float batch of a row or two compared in Python, where numpy's calls cost more), so
a request pays one attribute read when nothing is outside; only a request with rows outside
is looked at again (:meth:`Ranges.check`) to say which columns and values. NaN (a missing
value) is never outside.

What it reports (:class:`OutOfRange`): the columns with a value outside their range, each
with the range and the extreme values seen, and how many rows had at least one. The server
adds these to the v1 response as ``warnings`` and counts the rows in
``dockyard_out_of_range_rows_total``; the alert metric ``out_of_range_rate`` computes the
same share from the prediction log (``dockyard.monitoring.service``).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema import Signature

NUMERIC = ("float", "integer")
"""Signature dtypes whose training range is checked (datetimes and categories are not)."""
FEW_ROWS = 2
"""Float batches of up to this many rows are compared in Python: a row's comparisons cost
less than numpy's four calls, whose cost is the same at any size (figures in RESULTS)."""


@dataclass(frozen=True)
class OutOfRange:
    """What one request sent outside the training range."""

    warnings: tuple[str, ...]
    """One line per column: its value(s) outside, and the range it was trained on."""
    columns: tuple[str, ...]
    rows: int
    """Rows with at least one value outside."""


class Ranges:
    """The training ranges of one version's numeric columns, checked per request."""

    def __init__(
        self,
        names: Sequence[str],
        positions: Sequence[int],
        width: int,
        low: Sequence[float],
        high: Sequence[float],
    ) -> None:
        self.names = tuple(names)
        self.positions = np.asarray(positions, dtype=np.intp)
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self._low, self._high = self.low.tolist(), self.high.tolist()
        self.every_column = list(positions) == list(range(width))
        """The array input needs no column selection (every column is numeric)."""

    @classmethod
    def from_profile(
        cls, signature: Signature | None, profile: Mapping[str, Any] | None
    ) -> Ranges | None:
        """Ranges from a version's signature and reference profile; ``None`` when the version
        has no signature, no profile, or no numeric column with a finite range."""
        if signature is None or not profile:
            return None
        features = profile.get("features") or {}
        names, positions, low, high = [], [], [], []
        for position, column in enumerate(signature.columns):
            feature = features.get(column.name)
            if column.dtype not in NUMERIC or not isinstance(feature, Mapping):
                continue
            bottom, top = feature.get("min"), feature.get("max")
            if isinstance(bottom, int | float) and isinstance(top, int | float):
                names.append(column.name)
                positions.append(position)
                low.append(float(bottom))
                high.append(float(top))
        if not names:
            return None
        return cls(names, positions, len(signature.columns), low, high)

    def rows_outside(self, model_input: Any) -> NDArray[np.bool_] | None:
        """For one model call's input: which rows have a value outside the ranges, or
        ``None`` when no row does (the usual case, and the cheap one)."""
        values = self._values(model_input)
        if values is None:
            return None
        if len(values) <= FEW_ROWS and values.dtype.kind == "f" and not self._any_outside(values):
            return None
        outside = (values < self.low) | (values > self.high)  # NaN: False, no warning
        if not outside.any():
            return None
        return np.asarray(outside.any(axis=1), dtype=np.bool_)

    def _any_outside(self, values: NDArray[np.floating[Any]]) -> bool:
        """Whether a row of a few has a value outside, compared as Python floats (exact,
        as numpy's comparison of float32 or float64 with the float64 bounds is; NaN never
        outside)."""
        low, high = self._low, self._high
        return any(
            any(map(operator.lt, row, low)) or any(map(operator.gt, row, high))
            for row in values.tolist()
        )

    def check(self, model_input: Any) -> OutOfRange | None:
        """What ``model_input`` (one request's rows) has outside the ranges, or ``None``."""
        values = self._values(model_input)
        if values is None:
            return None
        outside = (values < self.low) | (values > self.high)
        if not outside.any():
            return None
        return self._report(values, outside)

    def _values(self, model_input: Any) -> NDArray[np.float64] | None:
        """The ranged columns as one 2-D array (rows x ranged columns), or ``None`` for
        input that is neither a numeric array nor a DataFrame with numeric columns."""
        if isinstance(model_input, np.ndarray):
            if model_input.ndim != 2 or model_input.dtype.kind not in "iuf":
                return None
            return model_input if self.every_column else model_input[:, self.positions]
        iloc = getattr(model_input, "iloc", None)  # a DataFrame in signature order
        if iloc is None:
            return None
        try:
            picked = [_floats(iloc[:, p]) for p in self.positions.tolist()]
        except (IndexError, TypeError, ValueError):
            return None
        if any(part is None for part in picked):
            return None
        return np.column_stack(picked)  # type: ignore[arg-type]  # no None left

    def _report(self, values: NDArray[Any], outside: NDArray[np.bool_]) -> OutOfRange:
        found = outside.any(axis=0)
        warnings, names = [], []
        for i in np.flatnonzero(found).tolist():
            column = values[:, i][outside[:, i]]
            seen = ", ".join(f"{v:g}" for v in sorted({float(column.min()), float(column.max())}))
            count = int(outside[:, i].sum())
            names.append(self.names[i])
            warnings.append(
                f"{self.names[i]!r} is {seen}, outside its training range "
                f"[{self.low[i]:g}, {self.high[i]:g}]" + (f" in {count} rows" if count > 1 else "")
            )
        return OutOfRange(tuple(warnings), tuple(names), int(outside.any(axis=1).sum()))


def _floats(values: Any) -> NDArray[np.float64] | None:
    """One column as float64 (NaN for missing), or ``None`` when it is not numeric."""
    if isinstance(values, np.ndarray):
        return values if values.dtype.kind in "iuf" else None
    to_numpy = getattr(values, "to_numpy", None)
    if to_numpy is None:
        return None
    try:
        array: NDArray[np.float64] = to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        return None
    return array
