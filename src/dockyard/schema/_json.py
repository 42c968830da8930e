"""Turning numpy, pandas and datetime values into plain JSON values."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np

from dockyard.schema._pandas import is_missing_marker


def to_json_value(value: Any) -> Any:
    """A JSON-safe equivalent of one scalar.

    numpy scalars become Python numbers, NaN, infinities and pandas' missing markers become
    ``None``, timestamps become ISO 8601 strings. Anything else is returned unchanged.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or is_missing_marker(value):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def to_json_list(values: Any) -> list[Any]:
    """:func:`to_json_value` over an iterable."""
    return [to_json_value(v) for v in values]


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or ``None`` when it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
