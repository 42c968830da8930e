"""Feedback: ground-truth labels for logged predictions, arriving later, joined by request id.

One item is ``{"request_id": ..., "label": ...}``; for a request with several rows either
``"row": n`` picks one, or ``"label"`` is a list with one label per row. Labels are stored as
text normalised like predictions (``1``, ``1.0`` and ``"1"`` are the same class) plus their
number when they are one, so regression metrics need no parsing. Request ids the log does
not know are reported back and not stored; sending a label again replaces the earlier one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.errors import InvalidRequestError
from dockyard.monitoring.store import MonitoringStore
from dockyard.schema.labels import label_text

MAX_ITEMS = 100_000
_HINT = 'Send {"request_id": "...", "label": ...} or a list of them (at most 100,000).'


@dataclass(frozen=True)
class Label:
    request_id: str
    row: int
    label: str | None
    value: float | None


@dataclass(frozen=True)
class FeedbackResult:
    accepted: int
    unknown: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "unknown_request_ids": list(self.unknown)}


def parse_feedback(payload: Any) -> list[Label]:
    """Validate feedback items (one dict, a list, or ``{"feedback": [...]}``); every problem
    is reported at once and nothing is stored when any item is malformed."""
    if isinstance(payload, Mapping) and "feedback" in payload:
        payload = payload["feedback"]
    items = [payload] if isinstance(payload, Mapping) else payload
    if not isinstance(items, list) or not items:
        raise InvalidRequestError("Feedback must be an item or a non-empty list.", hint=_HINT)
    if len(items) > MAX_ITEMS:
        raise InvalidRequestError(f"{len(items):,} feedback items in one call.", hint=_HINT)
    labels: list[Label] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"item {index}: not an object")
            continue
        unknown_keys = sorted(set(item) - {"request_id", "label", "row"})
        request_id = item.get("request_id")
        if unknown_keys:
            problems.append(f"item {index}: unknown fields {unknown_keys}")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 256:
            problems.append(f"item {index}: request_id must be a non-empty string")
            continue
        if "label" not in item:
            problems.append(f"item {index}: label is missing")
            continue
        row = item.get("row")
        value = item["label"]
        if isinstance(value, list):
            if row is not None:
                problems.append(f"item {index}: give row or a list of labels, not both")
                continue
            pairs = list(enumerate(value))
        elif row is None or (isinstance(row, int) and not isinstance(row, bool) and row >= 0):
            pairs = [(row or 0, value)]
        else:
            problems.append(f"item {index}: row must be a non-negative integer")
            continue
        for number, label in pairs:
            if label is not None and not isinstance(label, str | int | float | bool):
                problems.append(f"item {index}: label must be a string, number or boolean")
                break
            labels.append(Label(request_id, number, label_text(label), _number(label)))
    if problems:
        raise InvalidRequestError(
            f"{len(problems)} problem(s) in the feedback: {'; '.join(problems[:10])}.",
            hint=_HINT,
            details={"problems": problems},
        )
    return labels


def record_feedback(
    store: MonitoringStore, endpoint: str, labels: Sequence[Label], *, now: datetime | None = None
) -> FeedbackResult:
    """Store the labels whose request ids the endpoint's log knows; report the others."""
    import pyarrow as pa

    ids = [label.request_id for label in labels]
    known = store.known_request_ids(endpoint, ids)
    kept = [label for label in labels if label.request_id in known]
    unknown = tuple(sorted({i for i in ids if i not in known}))
    if kept:
        now = now or datetime.now(UTC)
        table = pa.table(
            {
                "request_id": pa.array([label.request_id for label in kept], pa.string()),
                "row": pa.array([label.row for label in kept], pa.int32()),
                "label": pa.array([label.label for label in kept], pa.string()),
                "label_value": pa.array([label.value for label in kept], pa.float64()),
                "time": pa.array([now] * len(kept), pa.timestamp("us", tz="UTC")),
            }
        )
        store.write_feedback(endpoint, table, now)
    return FeedbackResult(len(kept), unknown)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return float(value) if isinstance(value, bool) else None
    if isinstance(value, int | float):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None
