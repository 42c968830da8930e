"""``Monitor.performance`` over a day: probabilities read only where a label arrived, against
the old read of every row's probabilities and request ids, alternated in one process.

Needs a home that ``monitoring.py`` kept (an endpoint ``bench`` with a logged day and
labels for one request in ten)::

    .venv/bin/python benchmarks/monitoring.py --records 2000000 --keep
    .venv/bin/python benchmarks/performance_read.py --home /tmp/dockyard-monitoring-bench-XXXX

Reports each read's median time over ``--repeat`` alternated runs and whether both give the
same result (the JSON of ``performance(..., every="hour")``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from dockyard.deploy.service import Deployments
from dockyard.monitoring import service
from dockyard.monitoring.store import MonitoringStore
from dockyard.registry.service import Registry
from dockyard.settings import Settings

READS = {
    "old: every row's probabilities and request ids": (
        ["request_id", "row", *service.OUTPUT_COLUMNS],
        (),
    ),
    "new: probabilities where labelled": (list(service.OUTPUT_COLUMNS), service.LABELLED_ONLY),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--endpoint", default="bench")
    parser.add_argument("--window", default="24h")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = Settings(home=args.home)
    registry = Registry.open(settings)
    store = MonitoringStore(settings.resolved_monitoring_url, settings.monitoring_options)
    monitor = service.Monitor(registry, store, policies=Deployments(registry))
    window = monitor.window(args.window)
    monitor.performance(args.endpoint, window)  # warm-up: imports, profile, DuckDB
    seconds: dict[str, list[float]] = {name: [] for name in READS}
    results: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, (columns, labelled_only) in READS.items():
            service.OUTPUT_COLUMNS, service.LABELLED_ONLY = columns, labelled_only
            started = time.perf_counter()
            result = monitor.performance(args.endpoint, window, every="hour")
            seconds[name].append(time.perf_counter() - started)
            results[name] = json.dumps(result, sort_keys=True, default=str)
    rows = json.loads(results[next(iter(READS))])["window"]["rows"]
    print(f"`Monitor.performance(every='hour')`, window {args.window}: {rows:,} rows")
    print("| read | median s | runs |")
    print("|---|---|---|")
    for name, values in seconds.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {statistics.median(values):.2f} | {runs} |")
    print(f"same result: {len(set(results.values())) == 1}")


if __name__ == "__main__":
    main()
