"""What the prediction log records: the types the request path hands it.

The inference plane builds a :class:`Source` per loaded model and a :class:`ModelCall` per
call of the model, and passes them to :meth:`~dockyard.monitoring.predictions.PredictionLog.record`;
a buffered request is a :data:`Record` tuple (a failed one a :data:`Failure`), grouped by
model into a :class:`Batch` for conversion (:mod:`dockyard.monitoring.encoding`).

Plain data, no numpy, pyarrow or I/O imported, so that serving may import it without loading
the log's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Batch", "Failure", "ModelCall", "Record", "Source"]


@dataclass(frozen=True, slots=True)
class Source:
    """What answered: fixed per loaded model, shared by all its records."""

    endpoint: str
    revision: int
    model: str
    version: str
    columns: tuple[str, ...] | None
    classes: tuple[str, ...] | None
    positive: int | None  # index of the positive class of a binary classifier
    sample_rate: float = 1.0
    role: str = "primary"  # or "shadow": mirrored traffic, never answered to the caller


@dataclass(frozen=True, slots=True, eq=False)
class ModelCall:
    """One call of a model: the rows it was given and its answers, shared by every request
    answered in it. The log keeps a reference per request and converts each call's rows
    once (one array per batch, not one per request)."""

    inputs: Any
    """What the model was given: an array, a DataFrame, or a frame model's joined columns
    (:class:`~dockyard.schema.validation.FrameColumns`, the DataFrame's own arrays)."""
    predictions: Any
    probabilities: Any = None
    outside: Any = None
    """Which rows have an input outside the model's training range (a bool array), or
    ``None`` when none does: checked once per call (``dockyard.serving.ranges``)."""


# A buffered request: (what answered, request id, unix time, latency s, its model call, first
# row, rows).
Record = tuple[Source, str, float, float, ModelCall, int, int]


class Batch:
    """One model's buffered requests, a tuple each, which the conversion turns into columns
    with a few C-level calls per slice (no Python work per request beside the event loop,
    where it would steal the GIL)."""

    __slots__ = ("records", "source")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.records: list[Record] = []

    def add(
        self,
        request_id: str,
        at: float,
        latency_s: float,
        call: ModelCall,
        start: int = 0,
        rows: int | None = None,
    ) -> None:
        """Buffer one request answered by rows ``start`` to ``start + rows`` of ``call`` (by
        default all of its rows)."""
        if rows is None:
            rows = len(call.predictions) - start
        self.records.append((self.source, request_id, at, latency_s, call, start, rows))

    @property
    def rows(self) -> int:
        return sum(record[6] for record in self.records)


# A failed request: (source, request id, unix time, status, latency s).
Failure = tuple[Source, str, float, int, float]
