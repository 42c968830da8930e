"""Where monitoring data lives: Parquet segments of predictions and feedback, read with DuckDB.

Layout under the monitoring URL (a folder, or ``s3://bucket/prefix``), never chosen by a
client::

    predictions/{endpoint}/{YYYY-MM-DD}/{HH}/{writer}-{seq}.parquet     one row per predicted row
    feedback/{endpoint}/{YYYY-MM-DD}/{writer}-{seq}.parquet             one row per label

Segments are append-only and immutable: every flush of a writer (one per server process,
``writer`` = host, pid and a random suffix) writes new files, so several processes and
replicas never write the same file. Local segments are written to a hidden temporary name and
renamed, so a reader never sees half a file; on S3 a PUT is atomic already. The hour folder is
the UTC hour of the records' time, so a time window reads only the folders it overlaps.

Prediction columns (see :data:`PREDICTION_COLUMNS`): ``request_id``, ``row`` (row number within
the request), ``time`` (UTC), ``endpoint``, ``revision`` (deployment revision), ``model``,
``version``, ``status`` (HTTP status; failed requests are one row with no inputs or outputs),
``role`` (``primary``, or ``shadow`` for a mirrored copy whose answer was only compared),
``latency_ms``, ``prediction`` (as text: the class label, or the number), ``score`` (the number
for regression, P(positive class) for binary classifiers), ``proba`` (class probabilities),
``classes`` (their labels as JSON) and one ``input.{feature}`` column per input feature.

Feedback columns: ``request_id``, ``row``, ``label`` (text, normalised like predictions),
``label_value`` (the number, when it is one) and ``time``. The latest label for a
(request id, row) wins.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import socket
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dockyard.errors import StorageError
from dockyard.windows import Window

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

INPUT_PREFIX = "input."
PREDICTION_COLUMNS = (
    "request_id",
    "row",
    "time",
    "endpoint",
    "revision",
    "model",
    "version",
    "status",
    "role",
    "latency_ms",
    "prediction",
    "score",
    "proba",
    "classes",
)
INPUT_COLUMNS = "COLUMNS('^input\\.')"
"""DuckDB's expression for every input column (it is an error when none matches)."""
STATISTICS_COLUMNS = ("time", "status")
"""Columns whose min/max each segment keeps: the ones reads filter on."""

_HOUR_SPAN = timedelta(hours=1)
_DAY_SPAN = timedelta(days=1)

SAMPLE_OVERREAD = 4
"""A sampled read takes whole segments, picked at random, holding about this many times the
rows asked for, and draws its reservoir sample from those."""

_HOUR_FOLDER = re.compile(r"/(\d{4}-\d{2}-\d{2})/(\d{2})$")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_HOUR = re.compile(r"[01]\d|2[0-3]")


class MonitoringStore:
    """Reads and writes the prediction log and feedback segments under one fsspec URL."""

    def __init__(
        self, url: str, options: dict[str, Any] | None = None, *, threads: int | None = None
    ) -> None:
        """``threads`` caps DuckDB's worker threads (default: every core); a server sets 1 so
        that its periodic queries never compete with serving for more than one core."""
        import fsspec

        self.threads = threads
        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url, **(options or {}))
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        self.writer = f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(3)}"
        self._seq = 0
        self._lock = threading.Lock()
        self._unmerged: set[str] = set()  # hour folders this writer wrote to, not compacted
        self._duck: duckdb.DuckDBPyConnection | None = None

    # --- writing ---------------------------------------------------------------------------

    def write_predictions(self, endpoint: str, table: pa.Table, hour: datetime) -> str:
        """Write one segment of prediction rows (all in the UTC ``hour``); returns its path."""
        folder = f"{self.root}/predictions/{endpoint}/{hour:%Y-%m-%d}/{hour:%H}"
        path = self._write(folder, table, compression="lz4")
        with self._lock:
            self._unmerged.add(folder)
        return path

    def write_feedback(self, endpoint: str, table: pa.Table, day: datetime) -> str:
        folder = f"{self.root}/feedback/{endpoint}/{day:%Y-%m-%d}"
        return self._write(folder, table)

    def _write(
        self, folder: str, table: pa.Table, suffix: str = "", compression: str = "zstd"
    ) -> str:
        """Write a new segment atomically. The prediction log's flushes use LZ4, which spends
        less CPU on the serving process than zstd for more bytes; compaction rewrites closed
        hours with zstd."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Dictionary-encode only repeated text (names, versions, classes; not request ids,
        # which never repeat) and keep min/max only where reads filter (time, status):
        # dictionaries on float inputs and statistics for every column make encoding
        # several times dearer on the writer thread.
        options = {
            "compression": compression,
            "use_dictionary": [
                f.name
                for f in table.schema
                if pa.types.is_string(f.type) and f.name != "request_id"
            ],
            "write_statistics": [c for c in STATISTICS_COLUMNS if c in table.column_names],
        }
        with self._lock:
            self._seq += 1
            name = f"{self.writer}-{self._seq:08d}{suffix}.parquet"
        path = f"{folder}/{name}"
        try:
            if self.local:
                os.makedirs(folder, exist_ok=True)
                temporary = f"{folder}/.{name}.tmp"
                pq.write_table(table, temporary, **options)
                os.replace(temporary, path)
            else:
                with self.fs.open(path, "wb") as handle:
                    pq.write_table(table, handle, **options)
        except OSError as exc:
            raise StorageError(
                f"Could not write monitoring data to {self.url}: {exc}",
                hint="Check DOCKYARD_MONITORING_URL and that the location is writable.",
            ) from exc
        return path

    # --- finding segments ------------------------------------------------------------------

    def endpoints(self) -> list[str]:
        """Endpoints that have logged predictions."""
        folder = f"{self.root}/predictions"
        if not self.fs.exists(folder):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False))

    def prediction_segments(
        self, endpoint: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[str]:
        """Segment paths whose hour overlaps [since, until), oldest first: only the folders
        of those hours are listed."""
        low = _floor_hour(since) if since is not None else None
        paths = []
        for day, day_folder in self._days(f"{self.root}/predictions/{endpoint}"):
            if (until is not None and day >= until) or (low is not None and day + _DAY_SPAN <= low):
                continue
            for hour, folder in self._hours(day, day_folder):
                if (low is None or hour >= low) and (until is None or hour < until):
                    paths += self._segments(folder)
        return paths

    def feedback_segments(self, endpoint: str) -> list[str]:
        return [
            path
            for _, folder in self._days(f"{self.root}/feedback/{endpoint}")
            for path in self._segments(folder)
        ]

    def _names(self, folder: str) -> list[str]:
        """The names in ``folder``, sorted; none when it is missing. A listing of that one
        folder (``ls``), not a search below it: a busy hour holds thousands of segments, and
        fsspec's ``glob`` looks at every file under its root (locally a ``stat`` each) on
        the thread of a monitor pass, holding the GIL from the event loop."""
        if not self.local:  # other processes (replicas) write here: no cached listing
            self.fs.invalidate_cache()
        try:
            found = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return sorted(path.rstrip("/").rsplit("/", 1)[-1] for path in found)

    def _segments(self, folder: str) -> list[str]:
        """The segments in one hour's (or day's) folder, oldest first (hidden temporary files
        left out)."""
        return [
            f"{folder}/{name}"
            for name in self._names(folder)
            if name.endswith(".parquet") and not name.startswith(".")
        ]

    def _days(self, folder: str) -> list[tuple[datetime, str]]:
        """The day folders under ``folder``, with the day each starts, oldest first."""
        days = []
        for name in self._names(folder):
            if _DAY.fullmatch(name):
                with contextlib.suppress(ValueError):  # 2026-02-30: not ours
                    days.append((datetime.fromisoformat(f"{name}T00:00+00:00"), f"{folder}/{name}"))
        return days

    def _hours(self, day: datetime, folder: str) -> list[tuple[datetime, str]]:
        """The hour folders of a day's folder, with the hour each starts, oldest first."""
        return [
            (day + timedelta(hours=int(name)), f"{folder}/{name}")
            for name in self._names(folder)
            if _HOUR.fullmatch(name)
        ]

    # --- reading ---------------------------------------------------------------------------

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor that reads this store (fsspec filesystems registered for S3)."""
        import duckdb

        with self._lock:
            if self._duck is None:
                config: dict[str, str | bool | int | float | list[str]] = (
                    {} if self.threads is None else {"threads": self.threads}
                )
                self._duck = duckdb.connect(config=config)
                if not self.local:
                    self._duck.register_filesystem(self.fs)
            return self._duck.cursor()

    def _source(self, paths: Sequence[str]) -> str:
        """A ``read_parquet`` expression over ``paths``."""
        prefix = "" if self.local else _protocol_prefix(self.fs)
        listed = ", ".join(_quote(prefix + path) for path in paths)
        return f"read_parquet([{listed}], union_by_name = true)"

    def predictions(
        self,
        endpoint: str,
        window: Window,
        *,
        columns: Iterable[str] | None = None,
        with_feedback: bool = False,
        only_ok: bool = True,
        sample: int | None = None,
        role: str | None = "primary",
        labelled_only: Iterable[str] = (),
        inputs: bool = False,
    ) -> pd.DataFrame:
        """The prediction rows in ``window`` (oldest first), optionally joined with the latest
        feedback label (``label``, ``label_value``; null where none arrived). ``sample`` caps
        the rows, for periodic checks on busy endpoints: a repeatable reservoir sample drawn
        from whole segments picked at random (:meth:`_sampled_segments`), so the read costs
        a bounded amount however much the window logged.

        With feedback, ``labelled_only`` columns are read only on rows that have a label
        (null elsewhere): probabilities become one Python array per row in pandas, and
        performance needs them only where a label arrived.

        ``inputs`` adds every ``input.*`` column to ``columns`` (drift reads the inputs and a
        few outputs, not the request ids, probabilities and classes: those become one Python
        object per row, most of a read's cost). A window whose segments hold no input
        column (every request failed) is read without them."""
        import duckdb
        import pandas as pd

        paths = self._window_segments(endpoint, window)
        if sample is not None and window.last is None:
            paths = self._sampled_segments(paths, sample)
        if not paths:
            empty = list(columns or PREDICTION_COLUMNS)
            return pd.DataFrame(
                columns=[*empty, "label", "label_value"] if with_feedback else empty
            )
        db = self.connection()
        conditions = ["status = 200"] if only_ok else []
        params: list[Any] = []
        if role is not None:
            conditions.append("coalesce(role, 'primary') = ?")
            params.append(role)
        if window.since is not None:
            conditions.append("time >= ?")
            params.append(window.since)
        if window.until is not None:
            conditions.append("time < ?")
            params.append(window.until)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        wanted = None if columns is None else list(columns)
        if wanted is not None and with_feedback:  # the join's keys, whether wanted or not
            wanted += [key for key in ("request_id", "row") if key not in wanted]
        selected = "*" if wanted is None else ", ".join(_ident(c) for c in wanted)
        pattern = inputs and wanted is not None
        if pattern:
            selected += f", {INPUT_COLUMNS}"
        query = f"SELECT {selected} FROM {self._source(paths)} {where}"
        if window.last is not None:
            query = f"SELECT * FROM ({query} ORDER BY time DESC LIMIT {int(window.last)})"
        if sample is not None:
            query = (
                f"SELECT * FROM ({query}) USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE (7)"
            )
        feedback = self.feedback_segments(endpoint) if with_feedback else []
        if not feedback:
            query = f"SELECT * FROM ({query}) ORDER BY time"  # sorted once, after any join
        if with_feedback:
            hidden = set(labelled_only)
            if columns is None:
                kept = "p.*" if not hidden else f"p.* EXCLUDE ({_idents(hidden)})"
                only = list(hidden)
            else:  # what was asked for: not the join's keys unless asked
                kept = ", ".join(f"p.{_ident(c)}" for c in columns if c not in hidden)
                kept += f", {INPUT_COLUMNS}" if pattern else ""
                only = [c for c in columns if c in hidden]
            if feedback:
                latest = (
                    "SELECT request_id, row, arg_max(label, time) AS label, "
                    "arg_max(label_value, time) AS label_value "
                    f"FROM {self._source(feedback)} GROUP BY request_id, row"
                )
                labelled = "".join(
                    f", CASE WHEN f.label IS NOT NULL THEN p.{_ident(c)} END AS {_ident(c)}"
                    for c in only
                )
                query = (
                    f"SELECT {kept}{labelled}, f.label, f.label_value FROM ({query}) p "
                    f"LEFT JOIN ({latest}) f USING (request_id, row) ORDER BY p.time"
                )
            else:
                nulls = "".join(f", NULL AS {_ident(c)}" for c in only)
                query = (
                    f"SELECT {kept}{nulls}, NULL::VARCHAR AS label, NULL::DOUBLE AS label_value "
                    f"FROM ({query}) p"
                )
        try:
            frame: pd.DataFrame = db.execute(query, params).df()
        except duckdb.BinderException:
            if not pattern:
                raise
            return self.predictions(
                endpoint,
                window,
                columns=columns,
                with_feedback=with_feedback,
                only_ok=only_ok,
                sample=sample,
                role=role,
                labelled_only=labelled_only,
            )
        return frame

    def _sampled_segments(self, paths: list[str], rows: int) -> list[str]:
        """Segments picked at random (repeatably) until they hold about ``SAMPLE_OVERREAD``
        × ``rows`` rows, estimated from their sizes and one segment's row count; all of them
        when they hold fewer. Segments are a second or a compacted hour of traffic, spread
        over the window, so the sample still spans it."""
        if len(paths) < 2:
            return paths
        order = list(paths)
        random.Random(7).shuffle(order)
        counted = self.connection().execute(f"SELECT count(*) FROM {self._source(order[:1])}")
        first = counted.fetchone()
        size = self.fs.size(order[0])
        rows_per_byte = (int(first[0]) if first else 0) / max(size, 1)
        wanted = SAMPLE_OVERREAD * rows
        chosen = [order[0]]
        held = size * rows_per_byte
        for path in order[1:]:
            if held >= wanted:
                break
            chosen.append(path)
            held += self.fs.size(path) * rows_per_byte
        return paths if len(chosen) == len(paths) else sorted(chosen, key=_hour_key)

    def _window_segments(self, endpoint: str, window: Window) -> list[str]:
        """The segments a window needs; for "last N" the newest hours holding N rows."""
        paths = self.prediction_segments(endpoint, window.since, window.until)
        if window.last is None or not paths:
            return paths
        chosen: list[str] = []
        rows = 0
        db = self.connection()
        hours: dict[str, list[str]] = {}
        for path in paths:
            hours.setdefault(path.rsplit("/", 1)[0], []).append(path)
        for folder in sorted(hours, reverse=True):
            chosen = hours[folder] + chosen
            count = db.execute(
                f"SELECT count(*) FROM {self._source(hours[folder])} WHERE status = 200"
            ).fetchone()
            rows += int(count[0]) if count else 0
            if rows >= window.last:
                break
        return chosen

    def known_request_ids(self, endpoint: str, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` appear in the endpoint's prediction log."""
        import pyarrow as pa

        paths = self.prediction_segments(endpoint)
        if not paths or not request_ids:
            return set()
        db = self.connection()
        wanted = pa.table({"request_id": pa.array(list(set(request_ids)), pa.string())})
        db.register("wanted_ids", wanted)
        try:
            rows = db.execute(
                f"SELECT DISTINCT p.request_id FROM {self._source(paths)} p "
                "JOIN wanted_ids w USING (request_id)"
            ).fetchall()
        finally:
            db.unregister("wanted_ids")
        return {row[0] for row in rows}

    # --- compaction ------------------------------------------------------------------------

    def compact(self, endpoint: str, *, before: datetime, max_rows: int = 500_000) -> int:
        """Merge this writer's segments of each hour that ended before ``before`` into files of
        up to ``max_rows`` rows; returns how many segments were merged away.

        A server flushing every second writes thousands of small files an hour; reading a day
        of them costs far more than reading a few large ones. Only this writer's own files are
        merged (so processes never merge the same file), only in closed hours (so no flush
        adds to them meanwhile). The merged file is in place before the small ones go, so a
        reader in between may see those rows twice for a moment, never lose them.

        The hours looked at are those this store wrote a segment to since their last
        compaction (remembered at each write; a late flush into a closed hour marks it
        again), and only their folders are listed: not the log, whose open hour holds
        thousands of segments on a busy server."""
        due = self.take_due(endpoint, before)
        merged = done = 0
        try:
            for folder in due:
                merged += self._merge(folder, max_rows, self.writer)
                done += 1
        finally:
            self.give_back(due[done:])  # a folder not merged (storage away): the next pass
        return merged

    def take_due(self, endpoint: str, before: datetime) -> list[str]:
        """The endpoint's hour folders that closed at or before ``before`` and that this
        store wrote to since their last compaction, forgotten as they are taken: the caller
        merges them (:meth:`merge`, perhaps in another process) or gives them back
        (:meth:`give_back`). A later write marks its hour again."""
        prefix = f"{self.root}/predictions/{endpoint}/"
        with self._lock:
            due = sorted(f for f in self._unmerged if f.startswith(prefix) and _closed(f, before))
            self._unmerged.difference_update(due)
        return due

    def give_back(self, folders: Iterable[str]) -> None:
        """Mark ``folders`` as still to be compacted (their merge failed or never ran)."""
        with self._lock:
            self._unmerged.update(folders)

    def merge(self, folders: Sequence[str], writer: str, max_rows: int = 500_000) -> int:
        """Merge ``writer``'s segments in each of the closed hours' ``folders`` (another
        store's, a server's, taken with :meth:`take_due`); returns how many went."""
        return sum(self._merge(folder, max_rows, writer) for folder in folders)

    def _merge(self, folder: str, max_rows: int, writer: str) -> int:
        """Merge ``writer``'s segments in one closed hour's ``folder``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        mine = f"{writer}-"
        paths = [
            path
            for path in self._segments(folder)
            if path.rsplit("/", 1)[-1].startswith(mine) and not path.endswith("-merged.parquet")
        ]
        if len(paths) < 2:
            return 0
        merged = 0
        batch: list[pa.Table] = []
        inputs: list[str] = []
        for index, path in enumerate(paths):
            with self.fs.open(path, "rb") as handle:
                batch.append(pq.read_table(handle))
            inputs.append(path)
            if sum(t.num_rows for t in batch) >= max_rows or index == len(paths) - 1:
                table = pa.concat_tables(batch, promote_options="default")
                self._write(folder, table, suffix="-merged")
                for done in inputs:
                    self.fs.rm(done)
                merged += len(inputs)
                batch, inputs = [], []
        return merged

    # --- retention -------------------------------------------------------------------------

    def delete_before(self, endpoint: str, cutoff: datetime) -> int:
        """Delete the endpoint's segments from hours (predictions) and days (feedback) that
        ended before ``cutoff``, with their folders; returns how many segments went. Only
        the day folders are listed, and the hours of the day the cutoff falls in: never the
        segments of the hours kept (a busy hour holds thousands)."""
        removed = 0
        for day, folder in self._days(f"{self.root}/predictions/{endpoint}"):
            if day + _DAY_SPAN <= cutoff:
                removed += self._remove(folder)
            elif day < cutoff:  # the cutoff's own day: the hours that ended before it
                for hour, hour_folder in self._hours(day, folder):
                    if hour + _HOUR_SPAN <= cutoff:
                        removed += self._remove(hour_folder)
        for day, folder in self._days(f"{self.root}/feedback/{endpoint}"):
            if day + _DAY_SPAN <= cutoff:
                removed += self._remove(folder)
        return removed

    def _remove(self, folder: str) -> int:
        """Delete an expired folder and all in it; returns the segments it held."""
        segments = [path for path in self.fs.find(folder) if path.endswith(".parquet")]
        self.fs.rm(folder, recursive=True)
        return len(segments)


def _floor_hour(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _closed(folder: str, before: datetime) -> bool:
    """Whether an hour folder's hour ended at or before ``before``."""
    start = _hour_start(folder)
    return start is not None and start + _HOUR_SPAN <= before


def _hour_start(folder: str) -> datetime | None:
    """When the hour of a prediction hour folder (``.../YYYY-MM-DD/HH``) starts."""
    match = _HOUR_FOLDER.search(folder)
    if match is None:
        return None
    return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}:00+00:00")


def _hour_key(path: str) -> tuple[datetime, str]:
    """A segment's sort key: its hour (from its folder), then its path."""
    start = _hour_start(path.rsplit("/", 1)[0])
    return (start or datetime.min.replace(tzinfo=UTC), path)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _protocol_prefix(fs: Any) -> str:
    return f"{_protocols(fs)[0]}://"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _idents(names: Iterable[str]) -> str:
    return ", ".join(_ident(name) for name in sorted(names))
