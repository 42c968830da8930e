"""Prediction-log benchmark: 10,000,000 logged predictions on one machine, windowed queries.

A binary classifier (``LogisticRegression`` on ``--features`` numeric features, registered
with a sample and labels, so its reference profile and calibration exist) is deployed as
endpoint ``bench`` in a temporary home. ``--records`` predictions are then written through
the prediction log's own path: each request is added to a :class:`Batch` (what
``PredictionLog.record`` does on the request path, with the server's :class:`Source`, one
row per request, the server's request-id shape), converted with ``to_table`` and written as
one Parquet segment per ``--segment-rows`` rows with ``MonitoringStore.write_predictions``
(what the flush does). Timestamps are spread evenly over the last 48 hours; in the last 3
hours ``f0``, ``f1`` and ``f2`` are shifted by 1.0, 0.5 and 0.25 σ. Inputs are generated
segment by segment, so the process never holds more than one segment of records.

Then 10% of the requests get a label through ``record_feedback`` (chunks of 100,000), and
windowed queries are timed: median of ``--repeat`` after one warm-up (a query whose warm-up
takes longer than ``--slow`` seconds is timed once more only, and marked so).

Run:  .venv/bin/python benchmarks/monitoring.py [--records 10000000] [--features 20]
      [--segment-rows 10000] [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HOURS = 48
DRIFT_HOURS = 3
SHIFTS = {0: 1.0, 1: 0.5, 2: 0.25}  # feature index -> mean shift in σ, last DRIFT_HOURS
LABELLED_EVERY = 10  # one request in ten gets feedback
FEEDBACK_CHUNK = 100_000
ENDPOINT = "bench"
MODEL_BATCH = 32  # requests answered by one model call, as the server batches them
TRUTH = {True: ("1", 1.0), False: ("0", 0.0)}  # (label, label value), as parse_feedback stores


def timed(fn: Callable[[], Any], repeat: int, slow: float) -> tuple[float, int, Any]:
    """(median seconds over ``repeat`` runs after one warm-up, runs timed, last result); a
    call whose warm-up exceeds ``slow`` seconds is timed once more only."""
    start = time.perf_counter()
    result = fn()
    runs = 1 if time.perf_counter() - start > slow else repeat
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), runs, result


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(bytes, files) of the Parquet files under ``folder``."""
    size = files = 0
    for path in folder.rglob("*.parquet"):
        size += path.stat().st_size
        files += 1
    return size, files


def train(features: int) -> tuple[Any, Any, Any]:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, features)), columns=[f"f{i}" for i in range(features)])
    y = (X["f0"] + X["f1"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    return LogisticRegression().fit(X, y), X, y


def segments(records: int, segment_rows: int, end: float) -> Iterator[tuple[int, Any, int]]:
    """(first record, unix times, UTC hour) per segment: at most ``segment_rows`` records
    spread evenly over the ``HOURS`` before ``end``, never across an hour boundary (the log
    writes one segment per endpoint and hour)."""
    import numpy as np

    step = HOURS * 3600 / records
    start = end - HOURS * 3600
    for first in range(0, records, segment_rows):
        numbers = np.arange(first, min(first + segment_rows, records))
        times = start + (numbers + 0.5) * step
        hours = (times * 1e6).astype(np.int64) // 3_600_000_000  # as the store files them
        for hour in np.unique(hours):
            part = np.flatnonzero(hours == hour)
            yield first + int(part[0]), times[part], int(hour)


def request_id(prefix: str, number: int) -> str:
    return f"{prefix}{number:010x}"  # the server's shape: per-process prefix + counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--segment-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow", type=float, default=60.0)
    parser.add_argument(
        "--threads", type=int, default=None, help="DuckDB threads (default: every core)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()

    import duckdb
    import numpy as np
    import pyarrow

    from dockyard.deploy.service import Deployments
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.feedback import Label, record_feedback
    from dockyard.monitoring.records import Batch, ModelCall, Source
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry
    from dockyard.schema.labels import label_text
    from dockyard.schema.signature import Signature
    from dockyard.settings import Settings
    from dockyard.windows import Window

    home = Path(tempfile.mkdtemp(prefix="dockyard-monitoring-bench-"))
    settings = Settings(home=home, user="bench")
    if args.keep:
        print(f"home: {home} (kept)", file=sys.stderr)
    rows: list[tuple[str, str, str]] = []
    try:
        with Registry.open(settings) as registry:
            model, X_train, y_train = train(args.features)
            version = registry.register(model, "clf", sample=X_train, y=y_train)
            deployment = DeploymentStore(registry.db).put(
                ENDPOINT,
                DeploymentSpec.parse({"routes": [{"model": version.ref}]}),
                actor="bench",
            )
            assert version.signature is not None
            signature = Signature.from_dict(version.signature)
            classes = tuple(str(label_text(c)) for c in model.classes_)
            source = Source(  # as LiveModel.source_for builds it for a logged endpoint
                endpoint=ENDPOINT,
                revision=deployment.revision,
                model=version.model,
                version=version.version,
                columns=signature.column_names,
                classes=classes,
                positive=1,
            )
            store = MonitoringStore(settings.resolved_monitoring_url, threads=args.threads)

            # --- write ---------------------------------------------------------------------
            rng = np.random.default_rng(1)
            prefix = secrets.token_hex(6)
            end = time.time()
            drift_from = end - DRIFT_HOURS * 3600
            weights, bias = model.coef_[0], model.intercept_[0]
            labels = np.zeros(args.records, np.bool_)  # true class, kept for feedback (1 B each)
            generate_s = record_s = convert_s = flush_s = 0.0
            count = 0
            for first, times, hour in segments(args.records, args.segment_rows, end):
                tick = time.perf_counter()
                n = len(times)
                X = rng.normal(size=(n, args.features))
                drifted = times >= drift_from
                for index, shift in SHIFTS.items():
                    if index < args.features:
                        X[drifted, index] += shift
                proba = 1.0 / (1.0 + np.exp(-(X @ weights + bias)))
                probabilities = np.column_stack([1.0 - proba, proba])
                predicted = (proba >= 0.5).astype(np.int64)
                truth = X[:, 0] + X[:, 1] + rng.normal(scale=0.5, size=n) > 0
                labels[first : first + n] = truth
                latencies = rng.exponential(0.002, n)
                ids = [request_id(prefix, number) for number in range(first, first + n)]
                at = times.tolist()
                lat = latencies.tolist()
                tock = time.perf_counter()
                batch = Batch(source)
                for start in range(0, n, MODEL_BATCH):  # one model call per server batch
                    end_ = min(start + MODEL_BATCH, n)
                    call = ModelCall(
                        X[start:end_], predicted[start:end_], probabilities[start:end_]
                    )
                    for i in range(start, end_):  # the request path: one add per request
                        batch.add(ids[i], at[i], lat[i], call, i - start, 1)
                recorded = time.perf_counter()
                table = to_table(batch)
                converted = time.perf_counter()
                store.write_predictions(ENDPOINT, table, datetime.fromtimestamp(hour * 3600, UTC))
                flushed = time.perf_counter()
                generate_s += tock - tick
                record_s += recorded - tock
                convert_s += converted - recorded
                flush_s += flushed - converted
                count += n
            assert count == args.records
            write_s = record_s + convert_s + flush_s
            disk, files = folder_bytes(Path(settings.resolved_monitoring_url) / "predictions")
            rows.append(
                (
                    f"write {args.records:,} records: record + convert + flush "
                    f"({files:,} segments)",
                    f"{write_s:.1f} s",
                    f"{args.records / write_s:,.0f} records/s (record {record_s:.1f} s, "
                    f"convert {convert_s:.1f} s, flush {flush_s:.1f} s; "
                    f"generating the data {generate_s:.1f} s more)",
                )
            )
            rows.append(
                (
                    "disk size of the prediction log",
                    f"{disk / 2**30:.2f} GiB",
                    f"{disk / args.records:.0f} bytes/record "
                    f"({args.features} float64 inputs, LZ4 as flushed; compaction rewrites zstd)",
                )
            )

            # --- feedback ------------------------------------------------------------------
            labelled = np.arange(0, args.records, LABELLED_EVERY)
            start = time.perf_counter()
            accepted = 0
            for low in range(0, len(labelled), FEEDBACK_CHUNK):
                chunk = labelled[low : low + FEEDBACK_CHUNK]
                accepted += record_feedback(
                    store,
                    ENDPOINT,
                    [Label(request_id(prefix, int(n)), 0, *TRUTH[bool(labels[n])]) for n in chunk],
                ).accepted
            feedback_s = time.perf_counter() - start
            chunks = -(-len(labelled) // FEEDBACK_CHUNK)
            rows.append(
                (
                    f"`record_feedback`: {accepted:,} labels in {chunks} calls of ≤ 100,000",
                    f"{feedback_s:.1f} s",
                    f"{accepted / feedback_s:,.0f} labels/s, {feedback_s / chunks:.2f} s per call "
                    "(each checks its ids against the whole log)",
                )
            )
            del labels

            # --- queries -------------------------------------------------------------------
            now = datetime.fromtimestamp(end, UTC)
            hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(hours=24)
            policies = Deployments(registry)
            monitor = Monitor(registry, store, policies=policies, clock=lambda: now)
            watch_store = MonitoringStore(settings.resolved_monitoring_url, threads=1)
            watcher = Monitor(
                registry, watch_store, policies=policies, clock=lambda: now, max_rows=20_000
            )

            def count_last_hour() -> int:
                paths = store.prediction_segments(ENDPOINT, hour_ago, now)
                listed = ", ".join(f"'{path}'" for path in paths)
                found = (
                    store.connection()
                    .execute(
                        f"SELECT count(*) FROM read_parquet([{listed}], union_by_name = true) "
                        "WHERE status = 200 AND time >= ? AND time < ?",
                        [hour_ago, now],
                    )
                    .fetchone()
                )
                return int(found[0]) if found else 0

            wanted = [request_id(prefix, int(n)) for n in np.linspace(0, args.records - 1, 900)] + [
                request_id("unknown00000", n) for n in range(100)
            ]

            def drift_rows(report: dict[str, Any]) -> str:
                body = report["report"]
                drifted = [f["feature"] for f in body["features"] if f["drifted"]]
                return f"{report['window']['rows']:,} rows; drifted: {', '.join(drifted) or 'none'}"

            def performance_rows(report: dict[str, Any]) -> str:
                figures = report["versions"][version.version]
                return (
                    f"{report['window']['rows']:,} rows, {figures['labelled']:,} labelled; "
                    f"accuracy {figures['accuracy']:.3f}"
                )

            queries: list[tuple[str, Callable[[], Any], Callable[[Any], str]]] = [
                (
                    "count(*) of the last hour (DuckDB over its segments)",
                    count_last_hour,
                    lambda n: f"{n:,} rows",
                ),
                (
                    "`predictions(Window(since=1 h ago))`, all columns",
                    lambda: store.predictions(ENDPOINT, Window(since=hour_ago, until=now)),
                    lambda frame: f"{len(frame):,} rows × {frame.shape[1]} columns",
                ),
                (
                    "`predictions(Window(last=100_000))`, all columns",
                    lambda: store.predictions(ENDPOINT, Window(last=100_000)),
                    lambda frame: f"{len(frame):,} rows × {frame.shape[1]} columns",
                ),
                (
                    "`predictions(Window(since=24 h ago), columns=[4])`",
                    lambda: store.predictions(
                        ENDPOINT,
                        Window(since=day_ago, until=now),
                        columns=["request_id", "time", "prediction", "score"],
                    ),
                    lambda frame: f"{len(frame):,} rows × {frame.shape[1]} columns",
                ),
                (
                    "`known_request_ids`, 1,000 ids (900 known) against the whole log",
                    lambda: store.known_request_ids(ENDPOINT, wanted),
                    lambda found: f"{len(found):,} found",
                ),
                (
                    "`Monitor.drift`, last hour",
                    lambda: monitor.drift(ENDPOINT, monitor.window("1h")),
                    drift_rows,
                ),
                (
                    "`Monitor.drift`, `last:1000000`",
                    lambda: monitor.drift(ENDPOINT, monitor.window("last:1000000")),
                    drift_rows,
                ),
                (
                    "`Monitor.performance`, last 24 h (feedback join)",
                    lambda: monitor.performance(ENDPOINT, monitor.window("24h")),
                    performance_rows,
                ),
                (
                    "`Monitor(max_rows=20_000).drift`, last 24 h, 1 DuckDB thread (the watcher)",
                    lambda: watcher.drift(ENDPOINT, watcher.window("24h")),
                    drift_rows,
                ),
            ]
            for label, query, describe in queries:
                seconds, runs, result = timed(query, args.repeat, args.slow)
                median = f"median of {runs}" if runs > 1 else "1 run after warm-up"
                rows.append((label, f"{seconds:.2f} s", f"{describe(result)} ({median})"))
                del result
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    threads = args.threads or os.cpu_count()
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {_memory_gib():.0f} GiB RAM, Python "
        f"{platform.python_version()}, DuckDB {duckdb.__version__} ({threads} threads), "
        f"pyarrow {pyarrow.__version__}; {args.records:,} records × {args.features} features "
        f"over {HOURS} h, {args.segment_rows:,} rows per segment; peak RSS "
        f"{peak_rss_mib():,.0f} MiB"
    )
    print("| measurement | time | result |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


if __name__ == "__main__":
    main()
