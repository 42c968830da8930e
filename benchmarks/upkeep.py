"""The prediction log's upkeep in a monitor pass, alone: the CPU that retention
(``MonitoringStore.delete_before``) and compaction (``MonitoringStore.compact``) take per
endpoint, as a server runs them every ``DOCKYARD_MONITOR_INTERVAL_S`` on a thread of its
serving process, where they hold the GIL from the event loop.

The log is a local folder as a busy server leaves it: ``--segments`` segments in the open
hour (a flush a second is 3,600 an hour; 100-row traffic on one core flushes ~20 a second),
written by the store's own writer, and ``--days`` days of closed hours holding one merged
segment each. The segments are empty files: neither step reads the open hour's. Each figure
is the best of ``--repeats`` passes, in ``time.thread_time`` (this thread's CPU). With
``--before SRC`` the script runs itself once per tree, alternating A B B A.

With ``--closed-segments N`` it measures instead what merging one closed hour of N real
segments costs (2,000 rows of 20 features each, as 100-row traffic flushes them): wall
time, this thread's CPU, and how late a thread that asks to run every millisecond (a
stand-in for the event loop) was while the merge ran. A server merges its closed hours in
its idle monitor process (``Statistics.compact_log``); this is what that keeps off the
serving process once an hour.

Run:  taskset -c 1 .venv/bin/python benchmarks/upkeep.py [--before /tmp/before/src]
      [--segments 20000] [--days 7]
      .venv/bin/python benchmarks/upkeep.py --closed-segments 1800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def measure(segments: int, days: int, repeats: int) -> tuple[float, float]:
    from dockyard.monitoring.store import MonitoringStore

    with tempfile.TemporaryDirectory() as folder:
        store = MonitoringStore(folder)
        now = datetime.now(UTC)
        hour = now.replace(minute=0, second=0, microsecond=0)
        root = Path(folder) / "predictions" / "lr"
        for back in range(1, days * 24):
            closed = hour - timedelta(hours=back)
            place = root / f"{closed:%Y-%m-%d}" / f"{closed:%H}"
            place.mkdir(parents=True)
            (place / f"{store.writer}-{back:08d}-merged.parquet").touch()
        place = root / f"{hour:%Y-%m-%d}" / f"{hour:%H}"
        place.mkdir(parents=True, exist_ok=True)
        for seq in range(segments):
            (place / f"{store.writer}-{seq:08d}.parquet").touch()
        retention = compaction = float("inf")
        for _ in range(repeats):
            started = time.thread_time()
            store.delete_before("lr", now - timedelta(days=days))
            middle = time.thread_time()
            store.compact("lr", before=hour)
            retention = min(retention, middle - started)
            compaction = min(compaction, time.thread_time() - middle)
    return retention * 1e3, compaction * 1e3


def merge_cost(segments: int) -> None:
    import threading

    import numpy as np

    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.records import Batch, ModelCall, Source
    from dockyard.monitoring.store import MonitoringStore

    columns = tuple(f"x{i}" for i in range(20))
    source = Source("lr", 1, "lr", "1.0.0", columns, ("0", "1"), 1)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    rng = np.random.default_rng(0)
    batch = Batch(source)
    for request in range(20):  # 20 requests of 100 rows
        scores = rng.random(100)
        call = ModelCall(
            rng.normal(size=(100, 20)),
            (scores > 0.5).astype(np.int64),
            np.column_stack([1 - scores, scores]),
        )
        batch.add(f"r{request}", hour.timestamp() + request, 0.002, call)
    table = to_table(batch)
    with tempfile.TemporaryDirectory() as folder:
        store = MonitoringStore(folder)
        for _ in range(segments):
            store.write_predictions("lr", table, hour)
        late: list[float] = []
        merging = True

        def ticker() -> None:
            while merging:
                asked = time.perf_counter()
                time.sleep(0.001)
                late.append(time.perf_counter() - asked - 0.001)

        thread = threading.Thread(target=ticker)
        thread.start()
        started, cpu = time.perf_counter(), time.thread_time()
        merged = store.compact("lr", before=hour + timedelta(hours=1))
        wall, cpu = time.perf_counter() - started, time.thread_time() - cpu
        merging = False
        thread.join()
    late.sort()
    print(
        f"merged {merged:,} segments of {table.num_rows:,} rows: {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU on its thread; a 1 ms ticker late p50 {late[len(late) // 2] * 1e3:.2f}"
        f" ms, p99 {late[int(len(late) * 0.99)] * 1e3:.2f} ms, at most {late[-1] * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=20_000, help="In the open hour.")
    parser.add_argument("--days", type=int, default=7, help="Of closed hours (retention).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, help="Another tree's src, interleaved.")
    parser.add_argument(
        "--closed-segments", type=int, default=0, help="measure merging a closed hour of N"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.closed_segments:
        merge_cost(args.closed_segments)
        return
    if args.json:
        print(json.dumps(measure(args.segments, args.days, args.repeats)))
        return
    trees = {"this tree": str(Path(__file__).resolve().parents[1] / "src")}
    if args.before:
        trees = {"before": args.before, **trees}
    order = list(trees) if len(trees) == 1 else [*trees, *reversed(list(trees))]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for name in order:
        command = [sys.executable, __file__, "--json", *_passed(args)]
        env = {**os.environ, "PYTHONPATH": trees[name]}
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        figures[name].append(tuple(json.loads(out.stdout)))  # type: ignore[arg-type]
    print(
        f"one endpoint's upkeep: {args.segments:,} segments in the open hour, "
        f"{args.days} days of closed hours; CPU ms a pass (best of {args.repeats})"
    )
    print("| tree | retention ms (each run) | compaction ms (each run) |")
    print("|---|---|---|")
    for name, values in figures.items():
        retention = ", ".join(f"{r:.2f}" for r, _ in values)
        compaction = ", ".join(f"{c:.2f}" for _, c in values)
        print(f"| {name} | {retention} | {compaction} |")


def _passed(args: Any) -> list[str]:
    return [
        "--segments",
        str(args.segments),
        "--days",
        str(args.days),
        "--repeats",
        str(args.repeats),
    ]


if __name__ == "__main__":
    main()
