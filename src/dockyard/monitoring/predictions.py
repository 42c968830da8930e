"""The prediction log: every answered prediction recorded off the request path.

The request path only appends a small tuple to a bounded in-memory buffer (no conversion, no
I/O, no lock held for longer than a deque append). A background thread wakes every
``flush_interval_s`` seconds (or sooner, once ``flush_rows`` rows wait), turns the buffered
requests into one Arrow table per endpoint and hour, and writes them as Parquet segments
through :class:`~dockyard.monitoring.store.MonitoringStore`.

Guarantees, and their limits:

- **Never blocks or fails a request.** When ``buffer_rows`` rows are already waiting, new
  records are dropped and counted (:attr:`PredictionLog.dropped`, exported as
  ``dockyard_prediction_log_dropped_total``). A failed write is retried at the next flush
  while the buffer has room, then dropped and counted the same way.
- **Durability.** Graceful shutdown (SIGTERM) flushes everything buffered. A process killed
  without warning (SIGKILL, power loss) loses at most what was buffered: at most
  ``buffer_rows`` rows, and at most about ``flush_interval_s`` seconds of traffic (default
  1 s; settings ``DOCKYARD_LOG_BUFFER_ROWS`` and ``DOCKYARD_LOG_FLUSH_INTERVAL_S``).
- **Sampling.** Per endpoint (``monitoring.sample_rate`` in the deployment spec, carried by
  each model's :class:`Source`), decided per request so a request's rows stay together;
  failed requests are always recorded.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from dockyard.monitoring.store import INPUT_PREFIX, MonitoringStore, label_text

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


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


# One buffered request: (source, request id, unix time, status, latency s, input, rows,
# predictions, probabilities). Kept as a plain tuple: building it is the whole hot-path cost.
Entry = tuple[Source, str, float, int, float, Any, int, Any, Any]


class PredictionLog:
    """A bounded buffer of answered requests, flushed to Parquet segments in the background."""

    def __init__(
        self,
        store: MonitoringStore,
        *,
        buffer_rows: int = 100_000,
        flush_interval_s: float = 1.0,
        flush_rows: int = 20_000,
        on_flush: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.buffer_rows = buffer_rows
        self.flush_interval_s = flush_interval_s
        self.flush_rows = flush_rows
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        self._on_flush = on_flush  # (rows written, rows dropped) since the last call
        self._reported_dropped = 0
        self._entries: deque[Entry] = deque()
        self._rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def buffered(self) -> int:
        """Rows waiting to be written."""
        return self._rows

    # --- the request path ------------------------------------------------------------------

    def record(
        self,
        source: Source,
        request_id: str,
        status: int,
        latency_s: float,
        model_input: Any = None,
        rows: int = 0,
        predictions: Any = None,
        probabilities: Any = None,
    ) -> bool:
        """Buffer one answered request; ``False`` when sampled out or dropped."""
        if status == 200 and source.sample_rate < 1.0 and random.random() >= source.sample_rate:
            return False
        weight = rows or 1
        if self._rows + weight > self.buffer_rows:
            self.dropped += weight
            return False
        self._entries.append(
            (
                source,
                request_id,
                time.time(),
                status,
                latency_s,
                model_input,
                rows,
                predictions,
                probabilities,
            )
        )
        self._rows += weight
        if self._rows >= self.flush_rows:
            self._wake.set()
        return True

    # --- background flushing ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="dockyard-prediction-log", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the thread and flush everything buffered (graceful shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.flush()

    def flush(self) -> int:
        """Write what is buffered now; returns the rows written. Safe from any thread."""
        with self._flush_lock:
            taken: list[Entry] = []
            while self._entries:
                taken.append(self._entries.popleft())
            if not taken:
                if self._on_flush is not None and self.dropped != self._reported_dropped:
                    dropped, self._reported_dropped = (
                        self.dropped - self._reported_dropped,
                        self.dropped,
                    )
                    self._on_flush(0, dropped)
                return 0
            groups: dict[tuple[str, int], list[Entry]] = {}
            for entry in taken:
                hour = int(entry[2] // 3600)
                groups.setdefault((entry[0].endpoint, hour), []).append(entry)
            written = 0
            for (endpoint, hour), entries in groups.items():
                rows = sum(entry[6] or 1 for entry in entries)
                try:
                    table = to_table(entries)
                    self.store.write_predictions(
                        endpoint, table, datetime.fromtimestamp(hour * 3600, UTC)
                    )
                except Exception as exc:  # storage down, or a record we cannot convert
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._rows -= rows
                    if self._rows + rows <= self.buffer_rows and not self._stop.is_set():
                        self._entries.extendleft(reversed(entries))  # retry next flush
                        self._rows += rows
                    else:
                        self.dropped += rows
                    continue
                self._rows -= rows
                written += table.num_rows
            self.written += written
            if self._on_flush is not None:
                dropped, self._reported_dropped = (
                    self.dropped - self._reported_dropped,
                    self.dropped,
                )
                self._on_flush(written, dropped)
            return written


def to_table(entries: Sequence[Entry]) -> pa.Table:
    """Buffered requests (all of one endpoint) as one Arrow table, one row per predicted row."""
    import pyarrow as pa

    request_ids: list[str] = []
    row_numbers: list[int] = []
    times: list[float] = []
    revisions: list[int] = []
    models: list[str] = []
    versions: list[str] = []
    statuses: list[int] = []
    latencies: list[float] = []
    prediction_text: list[str | None] = []
    scores: list[float | None] = []
    probas: list[list[float] | None] = []
    classes: list[str | None] = []
    blocks: list[tuple[tuple[str, ...] | None, Any, int]] = []
    total = 0
    for source, request_id, at, status, latency, model_input, rows, predicted, proba in entries:
        count = rows if status == 200 and predicted is not None else 1
        request_ids.extend([request_id] * count)
        row_numbers.extend(range(count))
        times.extend([at] * count)
        revisions.extend([source.revision] * count)
        models.extend([source.model] * count)
        versions.extend([source.version] * count)
        statuses.extend([status] * count)
        latencies.extend([latency * 1000.0] * count)
        if status == 200 and predicted is not None:
            _outputs(source, predicted, proba, count, prediction_text, scores, probas, classes)
            blocks.append((source.columns, model_input, count))
        else:
            blocks.append((None, None, 1))
            prediction_text.append(None)
            scores.append(None)
            probas.append(None)
            classes.append(None)
        total += count
    columns: dict[str, Any] = {
        "request_id": pa.array(request_ids, pa.string()),
        "row": pa.array(row_numbers, pa.int32()),
        "time": pa.array((np.asarray(times) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
        "endpoint": pa.array([entries[0][0].endpoint] * total, pa.string()),
        "revision": pa.array(revisions, pa.int32()),
        "model": pa.array(models, pa.string()),
        "version": pa.array(versions, pa.string()),
        "status": pa.array(statuses, pa.int16()),
        "latency_ms": pa.array(latencies, pa.float32()),
        "prediction": pa.array(prediction_text, pa.string()),
        "score": pa.array(scores, pa.float64()),
        "proba": pa.array(probas, pa.list_(pa.float64())),
        "classes": pa.array(classes, pa.string()),
    }
    frame = _input_frame(blocks)
    if len(frame) != total:
        raise ValueError(f"{len(frame)} input rows for {total} predicted rows")
    for name in frame.columns:
        columns[INPUT_PREFIX + str(name)] = _input_array(frame[name])
    return pa.table(columns)


def _outputs(
    source: Source,
    predicted: Any,
    proba: Any,
    count: int,
    text: list[str | None],
    scores: list[float | None],
    probas: list[list[float] | None],
    classes: list[str | None],
) -> None:
    values = np.asarray(predicted).reshape(count, -1)[:, 0]
    if values.dtype.kind in "fiu":
        text.extend(label_text(v) for v in values.tolist())
    else:
        text.extend(None if v is None else label_text(v) for v in values.tolist())
    if proba is not None:
        matrix = np.asarray(proba, dtype=np.float64).reshape(count, -1)
        probas.extend(matrix.tolist())
        if source.positive is not None and matrix.shape[1] > source.positive:
            scores.extend(matrix[:, source.positive].tolist())
        else:
            scores.extend([None] * count)
        names = None if source.classes is None else _classes_json(source.classes)
        classes.extend([names] * count)
        return
    probas.extend([None] * count)
    classes.extend([None] * count)
    if values.dtype.kind in "fiu" and source.classes is None:
        scores.extend(values.astype(np.float64).tolist())
    else:
        scores.extend([None] * count)


_CLASSES_JSON: dict[tuple[str, ...], str] = {}


def _classes_json(names: tuple[str, ...]) -> str:
    cached = _CLASSES_JSON.get(names)
    if cached is None:
        import orjson

        cached = _CLASSES_JSON.setdefault(names, orjson.dumps(list(names)).decode())
    return cached


def _input_frame(blocks: list[tuple[tuple[str, ...] | None, Any, int]]) -> pd.DataFrame:
    """Input blocks of consecutive requests as one frame: runs of numeric arrays with the same
    columns are stacked first (one copy, not one object per request); requests without
    inputs (failures) are null rows."""
    import pandas as pd

    frames: list[pd.DataFrame] = []
    run: list[np.ndarray[Any, Any]] = []
    run_names: tuple[str, ...] | None = None

    def close_run() -> None:
        if run:
            stacked = np.concatenate(run) if len(run) > 1 else run[0]
            frames.append(pd.DataFrame(stacked, columns=list(run_names or ())))
            run.clear()

    for names, block, rows in blocks:
        if isinstance(block, np.ndarray) and block.ndim == 2:
            width = block.shape[1]
            block_names = (names or tuple(f"x{i}" for i in range(width)))[:width]
            if run and (block_names != run_names or block.dtype != run[0].dtype):
                close_run()
            run_names = block_names
            run.append(block)
            continue
        close_run()
        if hasattr(block, "columns") and hasattr(block, "iloc"):  # a DataFrame
            frame = block.reset_index(drop=True)
            frame.columns = [str(c) for c in frame.columns]
            frames.append(frame)
        else:
            frames.append(pd.DataFrame(index=range(rows)))
    close_run()
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _input_array(series: pd.Series) -> pa.Array:
    """One input column as Arrow: numbers, booleans, or text (anything else as its text)."""
    import pandas as pd
    import pyarrow as pa

    if series.dtype == object:
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("floating", "integer", "mixed-integer-float"):
            series = pd.to_numeric(series, errors="coerce")
        elif inferred == "boolean":
            series = series.astype("boolean")
        else:
            series = series.map(lambda v: None if v is None or v != v else str(v))
    elif isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object).map(lambda v: None if v is None or v != v else str(v))
    return pa.Array.from_pandas(series)
