"""The prediction log's table pass, alone: the CPU it takes to turn 0.2 s of logged
100-row requests into one Arrow table (``monitoring.encoding.chunks_table``), as a server
runs it on its event loop five times a second (``PredictionLog.convert``).

The chunks are what the log's conversion slices make of a logistic regression's 100-row
requests (20 float64 features, two classes, one id a request): ``--parts`` slices of
``--rows`` rows each (8 × 7,500 is 0.2 s at ~300,000 logged rows a second, what
``serving.py``'s 100-row bodies send one core). Each figure is the best of ``--repeats``
rounds of ``--calls`` passes, in ``time.thread_time`` (this thread's CPU). With ``--before
SRC`` the script runs itself once per tree, alternating A B B A.

Run:  taskset -c 1 .venv/bin/python benchmarks/log_pass.py [--before /tmp/before/src]
      [--parts 8] [--rows 7500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FEATURES = 20
ROWS_PER_REQUEST = 100


def measure(parts: int, rows: int, calls: int, repeats: int) -> float:
    import numpy as np

    from dockyard.monitoring.encoding import Chunk, chunks_table
    from dockyard.monitoring.records import Source

    rng = np.random.default_rng(0)
    source = Source(
        endpoint="lr",
        revision=1,
        model="lr",
        version="1.0.0",
        columns=tuple(f"x{i}" for i in range(FEATURES)),
        classes=("0", "1"),
        positive=1,
    )
    requests = rows // ROWS_PER_REQUEST
    chunks = []
    for part in range(parts):
        scores = rng.random(rows)
        chunks.append(
            Chunk(
                source=source,
                request_ids=tuple(f"{part:04x}{i:010x}" for i in range(requests)),
                repeats=np.full(requests, ROWS_PER_REQUEST, np.int64),
                rows=np.tile(np.arange(ROWS_PER_REQUEST, dtype=np.int32), requests),
                times=time.time() + np.arange(rows) * 1e-6,
                latencies=np.full(rows, 0.004),
                predicted=(scores > 0.5).astype(np.int64),
                probabilities=np.column_stack([1 - scores, scores]),
                inputs=rng.normal(size=(rows, FEATURES)),
            )
        )
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(calls):
            chunks_table(chunks)
        best = min(best, (time.thread_time() - started) / calls)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--rows", type=int, default=7500, help="Rows a slice (100 a request).")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", default=None, help="Another tree's src, interleaved.")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.parts, args.rows, args.calls, args.repeats)))
        return
    trees = {"this tree": str(Path(__file__).resolve().parents[1] / "src")}
    if args.before:
        trees = {"before": args.before, **trees}
    order = list(trees) if len(trees) == 1 else [*trees, *reversed(list(trees))]
    figures: dict[str, list[float]] = {name: [] for name in trees}
    for name in order:
        command = [sys.executable, __file__, "--json", *_passed(args)]
        env = {**os.environ, "PYTHONPATH": trees[name]}
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        figures[name].append(json.loads(out.stdout))
    total = args.parts * args.rows
    print(f"table pass over {args.parts} slices x {args.rows:,} rows ({total:,} rows), CPU ms")
    print("| tree | ms (each run) |")
    print("|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} |")


def _passed(args: Any) -> list[str]:
    return [
        *("--parts", str(args.parts), "--rows", str(args.rows)),
        *("--calls", str(args.calls), "--repeats", str(args.repeats)),
    ]


if __name__ == "__main__":
    main()
