"""Windows of logged predictions: the text every surface accepts, and the rows it covers.

One grammar everywhere (alert rules, a deployment's monitoring window, ``dockyard monitor
--window``, the monitoring API): a duration back from now (``"15m"``, ``"1h"``, ``"1d"``;
units s, m, h, d, w) or a row count (``"last:1000"``); reading the log also takes ``"all"``.
:func:`parse_lookback` reads the text as written (a :class:`Lookback`, what an alert rule
keeps); :func:`parse_window` resolves it against the clock into the :class:`Window` the
prediction log is read with.

Pure and cheap to import (no I/O; the clock is passed in), so every layer may use it: a
deployment spec checks its window without importing monitoring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockyard.errors import InvalidRequestError

__all__ = [
    "MAX_WINDOW_ROWS",
    "MAX_WINDOW_SECONDS",
    "Lookback",
    "Window",
    "parse_lookback",
    "parse_window",
    "window_before",
]

MAX_WINDOW_SECONDS = 366 * 86_400.0
MAX_WINDOW_ROWS = 10_000_000

_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)(?P<unit>[smhdw])")
_LAST = re.compile(r"last:(?P<rows>\d+)")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


@dataclass(frozen=True)
class Lookback:
    """A window as written: the rows of the last ``seconds``, or the last ``last`` rows.

    Exactly one of the two is set.
    """

    seconds: float | None = None
    last: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.last is None):
            raise ValueError("a window has either seconds or last, not both or neither")

    def start(self, now: float) -> float | None:
        """The oldest timestamp inside a duration window; ``None`` for a row-count window."""
        return None if self.seconds is None else now - self.seconds


def parse_lookback(text: str) -> Lookback:
    """Parse ``"15m"``, ``"1h"``, ``"1d"`` (units s, m, h, d, w) or ``"last:1000"``.

    Raises InvalidRequestError naming the ``window`` field when the text is not one of these,
    is zero, or exceeds 366 days / 10,000,000 rows.
    """
    raw = text.strip().lower() if isinstance(text, str) else ""
    hint = 'Use a duration such as "15m", "1h", "1d" or a row count such as "last:1000".'
    if match := _DURATION.fullmatch(raw):
        seconds = float(match["amount"]) * _UNIT_SECONDS[match["unit"]]
        if 0 < seconds <= MAX_WINDOW_SECONDS:
            return Lookback(seconds=seconds)
        raise InvalidRequestError(
            f"window: {text!r} must be longer than 0s and at most 366d.", hint=hint
        )
    if match := _LAST.fullmatch(raw):
        rows = int(match["rows"])
        if 0 < rows <= MAX_WINDOW_ROWS:
            return Lookback(last=rows)
        raise InvalidRequestError(
            f"window: {text!r} must count between 1 and {MAX_WINDOW_ROWS:,} rows.", hint=hint
        )
    raise InvalidRequestError(f"window: {text!r} is not a window.", hint=hint)


@dataclass(frozen=True)
class Window:
    """Which predictions to read: a time range, or the last ``last`` predictions."""

    since: datetime | None = None
    until: datetime | None = None
    last: int | None = None

    def describe(self) -> str:
        if self.last is not None:
            return f"last {self.last:,} predictions"
        if self.since is not None and self.until is not None:
            start, end = (t.isoformat(timespec="seconds") for t in (self.since, self.until))
            return f"{start} to {end}"
        if self.since is not None:
            return f"since {self.since.isoformat(timespec='seconds')}"
        return "all predictions"


def parse_window(text: str, *, now: datetime | None = None) -> Window:
    """``"1h"``, ``"30m"``, ``"7d"`` (back from ``now``), ``"last:1000"`` — the grammar of
    :func:`parse_lookback` — or ``"all"``."""
    if text.strip().lower() == "all":
        return Window()
    parsed = parse_lookback(text)
    if parsed.last is not None:
        return Window(last=parsed.last)
    assert parsed.seconds is not None
    now = now or datetime.now(UTC)
    return Window(since=now - timedelta(seconds=parsed.seconds), until=now)


def window_before(baseline: Window, current: Window) -> Window:
    """A baseline given as a duration ("1d") placed right before the current window starts;
    a "last N" or open baseline is used as it is."""
    if baseline.last is not None or baseline.since is None or baseline.until is None:
        return baseline
    if current.since is None:
        return baseline
    return Window(since=current.since - (baseline.until - baseline.since), until=current.since)
