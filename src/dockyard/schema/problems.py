"""What is wrong with an input: one :class:`Problem` per finding, collected in a bounded
:class:`ProblemLog` that counts them all. The validator and the protocols' layout checks
report in this one shape (``details.problems`` of a
:class:`~dockyard.errors.SchemaValidationError`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dockyard.schema._pandas import is_missing_marker

__all__ = ["PROBLEM_LIMIT", "Problem", "ProblemLog", "describe_value"]

PROBLEM_LIMIT = 100
"""At most this many problems are listed (all are counted)."""

_TYPE_NAMES = {
    str: "string", np.str_: "string", bool: "boolean", np.bool_: "boolean", int: "integer",
    float: "float", dict: "object", list: "array", tuple: "array",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input. ``row`` is the 0-based position in the input."""

    row: int | None
    column: str | None
    expected: str
    got: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "row": self.row,
            "column": self.column,
            "expected": self.expected,
            "got": self.got,
            "message": self.message,
        }


class ProblemLog:
    """Counts every problem and keeps the first :data:`PROBLEM_LIMIT` of each column."""

    def __init__(self, column_order: Mapping[str, int], limit: int = PROBLEM_LIMIT) -> None:
        self.total = 0
        self._limit = limit
        self._order = column_order
        self._kept: dict[str | None, int] = {}
        self._items: list[Problem] = []

    def add(
        self, *, row: int | None, column: str | None, expected: str, got: str, message: str
    ) -> None:
        """Record one problem."""
        self.total += 1
        kept = self._kept.get(column, 0)
        if kept < self._limit:
            self._kept[column] = kept + 1
            self._items.append(Problem(row, column, expected, got, message))

    def add_rows(
        self,
        column: str,
        mask: NDArray[np.bool_],
        values: Any,
        row_ids: NDArray[np.intp] | None,
        expected: str,
        describe: Callable[[int, Any], tuple[str, str]],
    ) -> None:
        """Record a problem for every position where ``mask`` is true.

        ``describe(row, value)`` returns ``(got, message)``; it runs only for listed problems.
        """
        positions = np.flatnonzero(mask)
        room = max(self._limit - self._kept.get(column, 0), 0)
        self.total += len(positions) - min(room, len(positions))
        for position in positions[:room]:
            row = int(row_ids[position]) if row_ids is not None else int(position)
            got, message = describe(row, values[position])
            self.add(row=row, column=column, expected=expected, got=got, message=message)

    def problems(self) -> list[Problem]:
        """Input-level problems first, then by row, then in column order; at most the limit."""

        def key(problem: Problem) -> tuple[int, int, int]:
            order = self._order.get(problem.column, -1) if problem.column is not None else -1
            return (problem.row is not None, problem.row or 0, order)

        return sorted(self._items, key=key)[: self._limit]


def describe_value(value: Any) -> str:
    """A short description of a value for error messages: ``'abc' (string)``; a numpy
    scalar is named as the Python value it holds (a 2-D tensor and JSON records read alike)."""
    if value is None or is_missing_marker(value):
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    shown = value.item() if isinstance(value, np.generic) else value
    text = repr(shown)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({_TYPE_NAMES.get(type(shown), type(shown).__name__)})"
