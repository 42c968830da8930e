"""The prediction log: every answered prediction recorded off the request path.

The request path only appends one tuple per request to the log's list (no lock, no
conversion, no I/O): the model that answered, the request's id, time and latency, and which
rows of the :class:`ModelCall` that answered it (the batch's inputs and outputs, shared by its
requests, so a batch's arrays are stacked once rather than one small array per request). The
server's event loop groups those tuples by model (:class:`Batch`) and turns them into numpy
:class:`Chunk` s every :data:`CONVERT_INTERVAL_S` and the chunks into Arrow
tables every :data:`TABULATE_INTERVAL_S`; a background thread wakes every
``flush_interval_s`` seconds (or sooner, once ``flush_rows`` rows wait) and only writes the
tables, as Parquet segments, one per endpoint and hour, through
:class:`~dockyard.monitoring.store.MonitoringStore` (Parquet encoding releases the GIL).
Two readers also flush before they read, so they see every answered request: the monitor
pass (every ``monitor_interval_s``: alerts, gauges) and the feedback route.
Converting on the loop is deliberate: a writer thread converting holds the GIL in long
stretches that stall the loop (a GIL convoy) and cost it more CPU in all.

Guarantees, and their limits:

- **Never blocks or fails a request.** When ``buffer_rows`` rows are already waiting, new
  records are dropped and counted (:attr:`PredictionLog.dropped`, exported as
  ``dockyard_prediction_log_dropped_total``). A failed write is retried at the next flush
  while the buffer has room, then dropped and counted the same way.
- **Durability.** Graceful shutdown (SIGTERM) flushes everything buffered. A process killed
  without warning (SIGKILL, power loss) loses at most what was buffered: at most
  ``buffer_rows`` rows, and at most about ``flush_interval_s`` + :data:`TABULATE_INTERVAL_S`
  seconds of traffic (default 1 s + 0.2 s; settings ``DOCKYARD_LOG_BUFFER_ROWS`` and
  ``DOCKYARD_LOG_FLUSH_INTERVAL_S``).
- **Sampling.** Per endpoint (``monitoring.sample_rate`` in the deployment spec, carried by
  each model's :class:`Source`), decided per request so a request's rows stay together;
  failed requests are always recorded.
"""

from __future__ import annotations

import functools
import operator
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from dockyard.monitoring.store import INPUT_PREFIX, MonitoringStore
from dockyard.schema.labels import label_text

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
    role: str = "primary"  # or "shadow": mirrored traffic, never answered to the caller


@dataclass(frozen=True, slots=True, eq=False)
class ModelCall:
    """One call of a model: the rows it was given and its answers, shared by every request
    answered in it. The log keeps a reference per request and converts each call's rows
    once (one array per batch, not one per request)."""

    inputs: Any
    predictions: Any
    probabilities: Any = None
    outside: Any = None
    """Which rows have an input outside the model's training range (a bool array), or
    ``None`` when none does: checked once per call (``dockyard.serving.ranges``)."""


T = TypeVar("T")

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


CONVERT_INTERVAL_S = 0.025
"""How often a server turns buffered requests into numpy chunks on its event loop (see
:meth:`PredictionLog.convert`): often, so each slice is small and holds the loop briefly."""

TABULATE_INTERVAL_S = 0.2
"""How often the chunks gathered become Arrow tables, on the loop too: seldom enough that
a table's fixed cost is paid a few times a second rather than in every slice, often enough
that one pass stays short."""

# A failed request: (source, request id, unix time, status, latency s).
Failure = tuple[Source, str, float, int, float]


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
        # Appended by the recording thread without a lock, taken with an atomic slice.
        self._records: list[Record] = []
        self._failed: list[Failure] = []
        self._chunks: list[tuple[str, Chunk, int]] = []  # converted to numpy
        self._ready: list[tuple[str, pa.Table, int]] = []  # to Arrow: waiting to be written
        self._tabulated = time.monotonic()
        self._converting = False
        # Rows buffered = recorded - released: each counter has one writer (the recording
        # thread; code holding the lock), so neither needs a lock on the request path.
        self._recorded = 0
        self._released = 0
        self._lock = threading.Lock()  # guards the converted parts and the released count
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def buffered(self) -> int:
        """Rows waiting to be written."""
        return self._recorded - self._released

    # --- the request path ------------------------------------------------------------------

    def record(
        self,
        source: Source,
        request_id: str,
        status: int,
        latency_s: float,
        call: ModelCall | None = None,
        start: int = 0,
        rows: int | None = None,
    ) -> bool:
        """Buffer one request; ``False`` when sampled out or dropped. An answered request
        (status 200) brings the model ``call`` that answered it, and which of its rows were
        the request's (``start``, ``rows``: by default all of them).

        Called from one thread at a time (the server's event loop): it takes no lock, so a
        request pays one tuple append, less than a lock and a per-model list would cost.
        """
        waiting = self._recorded - self._released
        if status != 200 or call is None:
            if waiting >= self.buffer_rows:
                return self._drop(1)
            self._recorded += 1
            self._failed.append((source, request_id, time.time(), status, latency_s))
        else:
            if source.sample_rate < 1.0 and random.random() >= source.sample_rate:
                return False
            if rows is None:
                rows = len(call.predictions) - start
            if waiting + rows > self.buffer_rows:
                return self._drop(rows)
            self._recorded += rows
            self._records.append((source, request_id, time.time(), latency_s, call, start, rows))
        if waiting >= self.flush_rows and not self._wake.is_set():  # set() takes a lock
            self._wake.set()
        return True

    def _drop(self, rows: int) -> bool:
        with self._lock:
            self.dropped += rows
        return False

    # --- background flushing ---------------------------------------------------------------

    def start(self, *, converting: bool = False) -> None:
        """Start the writer thread. ``converting``: the caller calls :meth:`convert` every
        :data:`CONVERT_INTERVAL_S` (the server does, on its event loop), so the writer only
        writes tables; otherwise it converts what is buffered itself before each write."""
        self._converting = converting
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
                self.flush(convert=not self._converting)

    def convert(self, *, tabulate: bool | None = None) -> None:
        """Turn the buffered requests into numpy chunks and, every :data:`TABULATE_INTERVAL_S`
        (or when ``tabulate``), the chunks gathered so far into Arrow tables, ready to write.

        The server calls this on its event loop every :data:`CONVERT_INTERVAL_S`, so the
        conversion (which holds the GIL) runs in short slices on the loop: the same work on
        the writer thread costs the loop more than on the loop itself (every GIL hand-over
        stalls it), and Arrow tables are built in one pass over a few slices, not in every
        slice, because pyarrow's code is cold between slices and its fixed cost per table
        would dominate.
        """
        with self._lock:  # one taker at a time (the watcher's flush runs on a thread)
            records, failed = _take(self._records), _take(self._failed)
        chunks: list[tuple[str, Chunk, int]] = []
        for batch in _batches(records):
            chunks += self._converted(batch.source.endpoint, chunk, batch, batch.rows)
        tables: list[tuple[str, pa.Table, int]] = []
        by_endpoint: dict[str, list[Failure]] = {}
        for failure in failed:
            by_endpoint.setdefault(failure[0].endpoint, []).append(failure)
        for endpoint, items in by_endpoint.items():
            tables += self._converted(endpoint, failures_table, items, len(items))
        now = time.monotonic()
        if tabulate is None:
            tabulate = now - self._tabulated >= TABULATE_INTERVAL_S
        with self._lock:
            self._chunks += chunks
            if tabulate:
                chunks, self._chunks = self._chunks, []
                self._tabulated = now
            else:
                chunks = []
        for endpoint, parts in _by_endpoint(chunks).items():
            rows = sum(count for _, count in parts)
            tables += self._converted(endpoint, chunks_table, [p for p, _ in parts], rows)
        if tables:
            with self._lock:
                self._ready += tables

    def _converted(
        self, endpoint: str, convert: Callable[[Any], Any], part: Any, rows: int
    ) -> list[tuple[str, Any, int]]:
        try:
            return [(endpoint, convert(part), rows)]
        except Exception as exc:  # a record we cannot convert: retrying would not help
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._released += rows
                self.dropped += rows
            return []

    def flush(self, *, convert: bool = True) -> int:
        """Write what is buffered now (with ``convert=False``: only what is already
        converted); returns the rows written. Safe from any thread."""
        import pyarrow as pa

        with self._flush_lock:
            if convert:
                self.convert(tabulate=True)
            with self._lock:
                ready, self._ready = self._ready, []
            written = 0
            for endpoint, parts in _by_endpoint(ready).items():
                rows = sum(count for _, count in parts)
                try:
                    tables = [table for table, _ in parts]
                    table = (
                        tables[0]
                        if len(tables) == 1
                        else pa.concat_tables(tables, promote_options="default")
                    )
                    for hour, piece in _by_hour(table):
                        self.store.write_predictions(endpoint, piece, hour)
                except Exception as exc:  # storage down: keep the tables for the next flush
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    with self._lock:
                        if self._stop.is_set():
                            self._released += rows
                            self.dropped += rows
                        else:
                            self._ready = [(endpoint, t, n) for t, n in parts] + self._ready
                    continue
                with self._lock:
                    self._released += rows
                written += table.num_rows
            self.written += written
            if self._on_flush is not None and (written or self.dropped != self._reported_dropped):
                dropped, self._reported_dropped = (
                    self.dropped - self._reported_dropped,
                    self.dropped,
                )
                self._on_flush(written, dropped)
            return written


def _take(items: list[T]) -> list[T]:
    """Everything in a list that another thread appends to without a lock, removed: the copy
    and the removal are one C call each, so an append between them lands after the part
    taken and stays. (Takers hold the log's lock: two of them would take the same items.)"""
    taken = items[: len(items)]
    del items[: len(taken)]
    return taken


def _batches(records: list[Record]) -> list[Batch]:
    """Records grouped by the model that answered them, in order of first appearance."""
    if not records:
        return []
    sources = set(map(id, map(operator.itemgetter(0), records)))
    if len(sources) == 1:
        batch = Batch(records[0][0])
        batch.records = records
        return [batch]
    batches: dict[int, Batch] = {}
    for record in records:
        key = id(record[0])
        if key not in batches:
            batches[key] = Batch(record[0])
        batches[key].records.append(record)
    return list(batches.values())


def _by_endpoint(items: list[tuple[str, T, int]]) -> dict[str, list[tuple[T, int]]]:
    """Converted parts (endpoint, part, buffered rows) grouped by endpoint, in order."""
    grouped: dict[str, list[tuple[T, int]]] = {}
    for endpoint, part, rows in items:
        grouped.setdefault(endpoint, []).append((part, rows))
    return grouped


def _by_hour(table: pa.Table) -> list[tuple[datetime, pa.Table]]:
    """Split a table by the UTC hour of its rows (a flush rarely spans two)."""
    import pyarrow.compute as pc

    seconds = pc.divide(pc.cast(table["time"], "int64"), 1_000_000).to_numpy()
    hours = seconds // 3600
    first = int(hours[0])
    if (hours == first).all():
        return [(datetime.fromtimestamp(first * 3600, UTC), table)]
    return [
        (datetime.fromtimestamp(int(hour) * 3600, UTC), table.filter(hours == hour))
        for hour in np.unique(hours)
    ]


@dataclass(slots=True, eq=False)
class Chunk:
    """One model's requests of one conversion slice, as numpy columns, one entry per row (see
    :meth:`PredictionLog.convert`); every :data:`TABULATE_INTERVAL_S` the chunks gathered are
    joined into Arrow tables (:func:`chunks_table`)."""

    source: Source
    request_ids: Any  # a tuple of str, or an object array with each row's request id
    rows: np.ndarray[Any, Any] | None  # each row's index in its request; None: all 0
    times: np.ndarray[Any, Any]  # unix seconds
    latencies: np.ndarray[Any, Any]  # seconds
    predicted: np.ndarray[Any, Any]  # numbers or booleans, or an object array of text
    probabilities: np.ndarray[Any, Any] | None  # (rows, classes), float64
    inputs: np.ndarray[Any, Any] | dict[str, pa.Array]  # a numeric matrix, or Arrow columns

    @property
    def kind(self) -> tuple[Any, ...]:
        """Chunks of one kind are joined by concatenating their columns."""
        inputs = self.inputs
        shape = (
            (inputs.dtype, inputs.shape[1])
            if isinstance(inputs, np.ndarray)
            else tuple((name, column.type) for name, column in inputs.items())
        )
        width = None if self.probabilities is None else self.probabilities.shape[1]
        return (id(self.source), self.predicted.dtype, width, shape)


def chunk(batch: Batch) -> Chunk:
    """One model's buffered requests as numpy columns, one entry per predicted row.

    Each model call's arrays are stacked once; when the requests cover their calls' rows in
    order (every request logged, the usual case) the stacked rows are the chunk's rows,
    otherwise (sampling, a request split over calls) the requests' rows are taken out."""
    _, ids, times_, latencies_, calls, starts, counts_ = zip(*batch.records, strict=True)
    n = len(ids)
    unique = list(dict.fromkeys(calls))  # each call once, in order of first use
    sizes = np.array([len(call.predictions) for call in unique], np.int64)
    counts = np.array(counts_, np.int64)
    total = int(counts.sum())
    where = {call: index for index, call in enumerate(unique)}
    first = (np.cumsum(sizes) - sizes)[[where[call] for call in calls]] + np.array(starts)
    expected = np.cumsum(counts) - counts
    take = None
    if int(sizes.sum()) != total or not np.array_equal(first, expected):
        take = np.repeat(first - expected, counts) + np.arange(total)
    predicted, probabilities, inputs = _answers(batch.source, unique, sizes, take)

    times = np.array(times_, np.float64)
    latencies = np.array(latencies_, np.float64)
    request_ids: Any = ids
    rows = None
    if total != n:
        offsets = np.repeat(expected, counts)
        rows = (np.arange(total) - offsets).astype(np.int32)
        request_ids = np.repeat(np.asarray(ids, dtype=object), counts)
        times = np.repeat(times, counts)
        latencies = np.repeat(latencies, counts)
    return Chunk(
        batch.source, request_ids, rows, times, latencies, predicted, probabilities, inputs
    )


def to_table(batch: Batch) -> pa.Table:
    """One model's buffered requests as an Arrow table, one row per predicted row (the loop's
    and the writer's parts of the conversion in one call)."""
    return chunks_table([chunk(batch)])


def _answers(
    source: Source, calls: list[ModelCall], sizes: np.ndarray[Any, Any], take: Any
) -> tuple[Any, Any, Any]:
    """Every row of the calls (or the rows ``take`` picks): predictions (text as text
    labels), probabilities and inputs."""
    total = int(sizes.sum())
    predicted = _stack([call.predictions for call in calls])
    if predicted.ndim > 1:
        predicted = predicted.reshape(total, -1)[:, 0]
    if predicted.dtype.kind not in "biuf":  # as feedback labels are compared by
        predicted = np.array([label_text(v) for v in predicted.tolist()], dtype=object)
    probabilities = None
    if all(call.probabilities is not None for call in calls):
        stacked = _stack([call.probabilities for call in calls])
        probabilities = stacked.astype(np.float64).reshape(total, -1)
    inputs = _input_columns(source, [call.inputs for call in calls], sizes.tolist(), total)
    if take is not None:
        predicted = predicted[take]
        probabilities = None if probabilities is None else probabilities[take]
        if isinstance(inputs, np.ndarray):
            inputs = inputs[take]
        else:
            import pyarrow as pa

            index = pa.array(take)
            inputs = {name: column.take(index) for name, column in inputs.items()}
    return predicted, probabilities, inputs


def chunks_table(chunks: list[Chunk]) -> pa.Table:
    """Chunks of one endpoint as one Arrow table. Chunks of one kind (the same model, answers
    and inputs of the same types) are concatenated column by column, so a pass over several
    slices costs a few dozen Arrow calls, not a few dozen per slice."""
    import pyarrow as pa

    runs: dict[tuple[Any, ...], list[Chunk]] = {}
    for part in chunks:
        runs.setdefault(part.kind, []).append(part)
    tables = [_run_table(run) for run in runs.values()]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _run_table(run: list[Chunk]) -> pa.Table:
    import pyarrow as pa

    def joined(parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    source = run[0].source
    times = joined([part.times for part in run])
    total = len(times)
    if all(part.rows is None for part in run):
        rows = np.zeros(total, np.int32)
    else:
        rows = joined([np.zeros(len(p.times), np.int32) if p.rows is None else p.rows for p in run])
    request_ids = [request_id for part in run for request_id in part.request_ids]
    latencies = joined([part.latencies for part in run]) * 1000.0
    columns: dict[str, Any] = {
        "request_id": pa.array(request_ids, pa.string()),
        "row": pa.array(rows, pa.int32()),
        "time": pa.array((times * 1e6).astype(np.int64), _time_type()),
        "endpoint": _constant(source.endpoint, total),
        "revision": pa.array(np.full(total, source.revision, np.int32)),
        "model": _constant(source.model, total),
        "version": _constant(source.version, total),
        "status": pa.array(np.full(total, 200, np.int16)),
        "role": _constant(source.role, total),
        "latency_ms": pa.array(latencies.astype(np.float32)),
    }
    predicted = joined([part.predicted for part in run])
    columns["prediction"] = _text(predicted)
    if run[0].probabilities is not None:
        matrix = joined([part.probabilities for part in run])
        width = matrix.shape[1]
        offsets = pa.array(np.arange(0, (total + 1) * width, width, dtype=np.int32))
        scores = matrix[:, source.positive] if source.positive is not None else None
        columns["score"] = pa.array(scores, pa.float64()) if scores is not None else _nulls(total)
        columns["proba"] = pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel()))
        names = None if source.classes is None else _classes_json(source.classes)
        columns["classes"] = _constant(names, total)
    else:
        numeric = predicted.dtype.kind in "fiu" and source.classes is None
        columns["score"] = (
            pa.array(predicted.astype(np.float64)) if numeric else _nulls(total, pa.float64())
        )
        columns["proba"] = _nulls(total, pa.list_(pa.float64()))
        columns["classes"] = _nulls(total, pa.string())
    first = run[0].inputs
    if isinstance(first, np.ndarray):
        stacked = joined([part.inputs for part in run])
        features = stacked.shape[1]
        input_names = source.columns or tuple(f"x{i}" for i in range(features))
        by_column = np.ascontiguousarray(stacked.T)  # one copy; each column zero-copy
        for index, name in enumerate(input_names[:features]):
            columns[INPUT_PREFIX + name] = pa.array(by_column[index])
    else:
        for name in first:
            parts = [part.inputs[name] for part in run]
            columns[INPUT_PREFIX + name] = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
    return pa.table(columns)


def failures_table(failures: list[Failure]) -> pa.Table:
    """Failed requests: one row each, no inputs or outputs."""
    import pyarrow as pa

    n = len(failures)
    return pa.table(
        {
            "request_id": pa.array([f[1] for f in failures], pa.string()),
            "row": pa.array(np.zeros(n, np.int32)),
            "time": pa.array(
                (np.array([f[2] for f in failures]) * 1e6).astype(np.int64), _time_type()
            ),
            "endpoint": pa.array([f[0].endpoint for f in failures], pa.string()),
            "revision": pa.array([f[0].revision for f in failures], pa.int32()),
            "model": pa.array([f[0].model for f in failures], pa.string()),
            "version": pa.array([f[0].version for f in failures], pa.string()),
            "status": pa.array([f[3] for f in failures], pa.int16()),
            "role": pa.array([f[0].role for f in failures], pa.string()),
            "latency_ms": pa.array([f[4] * 1000.0 for f in failures], pa.float32()),
            "prediction": _nulls(n, pa.string()),
            "score": _nulls(n, pa.float64()),
            "proba": _nulls(n, pa.list_(pa.float64())),
            "classes": _nulls(n, pa.string()),
        }
    )


def _stack(parts: list[Any]) -> np.ndarray[Any, Any]:
    """The calls' arrays stacked into one, in one call (the common case: ndarrays)."""
    try:
        return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])
    except ValueError:  # ragged (a list, a scalar): one at a time
        return np.concatenate([np.asarray(p).reshape(len(np.asarray(p)), -1) for p in parts])


def _input_columns(
    source: Source, inputs: list[Any], rows: list[int], total: int
) -> np.ndarray[Any, Any] | dict[str, pa.Array]:
    """Inputs as one numeric matrix when every call's are numeric arrays of one width
    (stacked in one call); anything else (frames, mixed shapes, failures to read) as Arrow
    columns, through pandas."""
    first = inputs[0]
    if isinstance(first, np.ndarray) and first.ndim == 2 and first.dtype.kind in "fiu":
        try:
            stacked = np.concatenate(inputs)
        except ValueError:
            stacked = None
        if stacked is not None and stacked.ndim == 2 and len(stacked) == total:
            return stacked
    frame = _input_frame(
        [(source.columns, block, count) for block, count in zip(inputs, rows, strict=True)]
    )
    if len(frame) != total:
        raise ValueError(f"{len(frame)} input rows for {total} predicted rows")
    return {str(name): _input_array(frame[name]) for name in frame.columns}


def _text(values: np.ndarray[Any, Any]) -> pa.Array:
    """Predictions as the text labels and feedback are compared by (see ``label_text``)."""
    import pyarrow as pa

    kind = values.dtype.kind
    if kind == "b":
        return pa.array(np.where(values, "True", "False"), pa.string())
    if kind in "iu":
        return pa.array(values).cast(pa.string())
    if kind == "f":
        finite = np.isfinite(values)
        text = pa.array(np.where(finite, values, 0.0)).cast(pa.string())
        return text if finite.all() else pa.array(np.where(finite, text, None), pa.string())
    return pa.array(values, pa.string())  # text labels (see ``_answers``)


_CLASSES_JSON: dict[tuple[str, ...], str] = {}


@functools.cache
def _time_type() -> pa.DataType:
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC")


def _classes_json(names: tuple[str, ...]) -> str:
    cached = _CLASSES_JSON.get(names)
    if cached is None:
        import orjson

        cached = _CLASSES_JSON.setdefault(names, orjson.dumps(list(names)).decode())
    return cached


def _constant(value: str | None, n: int) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, pa.string()), n)


def _nulls(n: int, kind: Any = None) -> pa.Array:
    import pyarrow as pa

    return pa.nulls(n, kind or pa.float64())


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
