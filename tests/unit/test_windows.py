"""The window grammar every surface shares, and the windows the prediction log is read with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dockyard.errors import InvalidRequestError
from dockyard.windows import Lookback, Window, parse_lookback, parse_window, window_before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", Lookback(seconds=900)),
        ("1h", Lookback(seconds=3600)),
        ("1d", Lookback(seconds=86_400)),
        ("30s", Lookback(seconds=30)),
        ("1.5h", Lookback(seconds=5400)),
        ("2w", Lookback(seconds=1_209_600)),
        (" 1H ", Lookback(seconds=3600)),
        ("last:1000", Lookback(last=1000)),
    ],
)
def test_parse_lookback_accepts_durations_and_row_counts(text: str, expected: Lookback) -> None:
    assert parse_lookback(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "h", "1y", "-1h", "0m", "last:0", "last:", "last:-5", "400d", "1h30m"]
)
def test_parse_lookback_refuses_bad_text_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"^window: ") as caught:
        parse_lookback(text)
    assert "last:1000" in str(caught.value)  # the hint shows the accepted forms


def test_window_start_is_a_duration_back_from_now() -> None:
    assert parse_lookback("15m").start(10_000.0) == 9100.0
    assert parse_lookback("last:5").start(10_000.0) is None


def test_window_needs_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="either"):
        Lookback()
    with pytest.raises(ValueError, match="either"):
        Lookback(seconds=1, last=1)


NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def test_parse_window_resolves_a_duration_against_the_clock() -> None:
    assert parse_window("90m", now=NOW) == Window(since=NOW - timedelta(minutes=90), until=NOW)
    assert parse_window("last:10", now=NOW) == Window(last=10)
    assert parse_window(" ALL ") == Window()
    with pytest.raises(InvalidRequestError, match=r"^window: "):
        parse_window("forever")


def test_window_describes_itself() -> None:
    assert Window(last=1000).describe() == "last 1,000 predictions"
    assert Window(since=NOW).describe() == "since 2026-01-02T12:00:00+00:00"
    assert Window().describe() == "all predictions"


def test_a_duration_baseline_sits_right_before_the_current_window() -> None:
    current = parse_window("1h", now=NOW)
    baseline = parse_window("1d", now=NOW)
    assert window_before(baseline, current) == Window(
        since=NOW - timedelta(hours=25), until=NOW - timedelta(hours=1)
    )
    assert window_before(Window(last=5), current) == Window(last=5)
    assert window_before(baseline, Window(last=5)) == baseline
