"""The prediction log: every answered prediction recorded off the request path.

The request path only appends one tuple per request to the log's list (no lock, no
conversion, no I/O): the model that answered, the request's id, time and latency, and which
rows of the :class:`~dockyard.monitoring.records.ModelCall` that answered it (the batch's
inputs and outputs, shared by its requests, so a batch's arrays are stacked once rather than
one small array per request). The server's event loop groups those tuples by model
(:class:`~dockyard.monitoring.records.Batch`) and turns them into numpy chunks every
:data:`CONVERT_INTERVAL_S` and the chunks into Arrow tables every
:data:`TABULATE_INTERVAL_S` (the encoding is :mod:`dockyard.monitoring.encoding`); a
background thread wakes every ``flush_interval_s`` seconds (or sooner, once ``flush_rows``
rows wait) and only writes the tables, as Parquet segments, one per endpoint and hour, through
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
  each model's :class:`~dockyard.monitoring.records.Source`), decided per request so a
  request's rows stay together; failed requests are always recorded.
"""

from __future__ import annotations

import operator
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from dockyard.monitoring.encoding import (
    Chunk,
    chunk,
    chunks_table,
    failures_table,
    numbers,
    numpy_of,
)
from dockyard.monitoring.records import Batch, Failure, ModelCall, Record, Source
from dockyard.monitoring.store import MonitoringStore

if TYPE_CHECKING:
    import pyarrow as pa


T = TypeVar("T")


CONVERT_INTERVAL_S = 0.025
"""How often a server turns buffered requests into numpy chunks on its event loop (see
:meth:`PredictionLog.convert`): often, so each slice is small and holds the loop briefly."""

TABULATE_INTERVAL_S = 0.2
"""How often the chunks gathered become Arrow tables, on the loop too: seldom enough that
a table's fixed cost is paid a few times a second rather than in every slice, often enough
that one pass stays short."""

TABULATE_ROWS = 16_384
"""Rows of chunks that make a table pass before :data:`TABULATE_INTERVAL_S` is up: at a
high volume (100-row requests) one pass over 0.2 s of rows held the loop 5–7 ms; one of
16,384 rows holds it 1–2 ms, and costs less per row."""


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
        self._chunk_rows = 0  # the rows in _chunks
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
        if converting:
            # Arrow's casts (predictions as text) import pyarrow.compute on first use: ~30 ms
            # (pyarrow wraps its ~300 kernels) that the first table pass, on the event loop,
            # would add to the first requests' latency. The server pays it here, at start.
            import pyarrow.compute  # noqa: F401
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
        with self._lock:
            self._chunks += chunks
            self._chunk_rows += sum(rows for _, _, rows in chunks)
            if tabulate is None:
                tabulate = (
                    now - self._tabulated >= TABULATE_INTERVAL_S
                    or self._chunk_rows >= TABULATE_ROWS
                )
            if tabulate:
                chunks, self._chunks = self._chunks, []
                self._chunk_rows = 0
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
    hours = numpy_of(table["time"], np.int64) // 3_600_000_000  # microseconds
    first = int(hours[0])
    if (hours == first).all():
        return [(datetime.fromtimestamp(first * 3600, UTC), table)]
    return [
        (datetime.fromtimestamp(int(hour) * 3600, UTC), table.filter(numbers(hours == hour)))
        for hour in np.unique(hours)
    ]
