"""How the monitoring service cuts a window of the prediction log: per version, per tumbling
time bucket, the window's description, and one variant's traffic figures (for rollouts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from dockyard.errors import InvalidRequestError
from dockyard.windows import Window

if TYPE_CHECKING:
    import pandas as pd

FREQUENCIES = {"hour": "h", "day": "D"}


def latest(frame: pd.DataFrame, column: str) -> str:
    return str(frame[column].iloc[-1])


def classes_of(part: pd.DataFrame) -> list[str] | None:
    known = part["classes"].dropna()
    if known.empty:
        return None
    classes: list[str] = orjson.loads(known.iloc[-1])
    return classes


def by_version(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if frame.empty:
        return []
    return [(str(version), part) for version, part in frame.groupby("version", sort=True)]


def buckets(frame: pd.DataFrame, every: str) -> list[tuple[str, str, pd.DataFrame]]:
    import pandas as pd

    if every not in FREQUENCIES:
        raise InvalidRequestError(
            f"every={every!r} is not a window size.", hint="Use 'hour' or 'day'."
        )
    if frame.empty:  # nothing logged in the window (its time column has no type then)
        return []
    frequency = FREQUENCIES[every]
    starts = frame["time"].dt.floor(frequency)
    out = []
    for start, part in frame.groupby(starts, sort=True):
        stamp = pd.Timestamp(start)
        end = stamp + pd.Timedelta(1, unit="h" if every == "hour" else "D")
        out.append((stamp.isoformat(), end.isoformat(), part))
    return out


def window_meta(window: Window, frame: pd.DataFrame) -> dict[str, Any]:
    start = window.since
    end = window.until
    if not frame.empty:
        start = start or frame["time"].iloc[0].to_pydatetime()
        end = end or frame["time"].iloc[-1].to_pydatetime()
    return {
        "start": None if start is None else start.isoformat(timespec="seconds"),
        "end": None if end is None else end.isoformat(timespec="seconds"),
        "rows": len(frame),
        "description": window.describe(),
    }


def variant_figures(part: pd.DataFrame) -> dict[str, Any]:
    """One variant's traffic from its log rows (failures included, feedback joined):
    requests, errors (5xx), p50/p99 latency, labelled rows and correct predictions."""
    requests = part[part["row"] == 0]
    answered = part[part["status"] == 200]
    labelled = answered[answered["label"].notna()]
    latency = requests["latency_ms"].to_numpy(np.float64)
    return {
        "requests": len(requests),
        "errors": int((requests["status"] >= 500).sum()),
        "p50_latency_ms": quantile(latency, 0.5),
        "p99_latency_ms": quantile(latency, 0.99),
        "labelled": len(labelled),
        "correct": int((labelled["label"].astype(str) == labelled["prediction"]).sum()),
    }


def quantile(values: np.ndarray[Any, Any], level: float) -> float | None:
    return float(np.quantile(values, level)) if len(values) else None
