"""What a monitor pass does to serving: p99 and throughput with passes in a child process,
on the server's threads, and without passes.

One server at a time, pinned with its whole process tree to CPU 0 (wrk on CPU 1), the two
ONNX models of ``start.py``; the server runs with ``DOCKYARD_MONITOR_INTERVAL_S=5`` so every
measured window holds several passes over the log it is writing (the default is 30 s; five
makes the passes' share six times what it is by default, to make it visible). Each round
starts a fresh copy of the registry (empty log), waits ``--idle`` seconds for start-up work
to end (the monitor process's imports), loads it ``--warmup`` seconds, then measures
``--seconds`` of one-row v1 predictions to the logistic regression at 16 connections.
Configurations, interleaved round by round:

* ``process``: the default, statistics in the monitor process at idle priority;
* ``threads``: ``DOCKYARD_MONITOR_PROCESS=false``, statistics on the server's threads;
* ``no passes``: ``DOCKYARD_MONITOR_INTERVAL_S=3600`` (no pass in the window), the floor.

CPU per request counts the server's whole process tree (the monitor process included).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/passes.py [--rounds 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import harness  # models, servers, wrk (benchmarks/harness.py)
from start import prepare

CONFIGS = {
    "process": {"DOCKYARD_MONITOR_INTERVAL_S": "5"},
    "threads": {"DOCKYARD_MONITOR_INTERVAL_S": "5", "DOCKYARD_MONITOR_PROCESS": "false"},
    "no passes": {"DOCKYARD_MONITOR_INTERVAL_S": "3600"},
}


def measure(home: Path, work: Path, name: str, args: argparse.Namespace) -> harness.Run:
    fresh = work / "round"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(home, fresh, ignore=shutil.ignore_patterns("monitoring"))
    port = harness.free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "dockyard", "serve"]
    server = harness.Server(
        [*command, "--port", str(port), "--log-level", "warning"],
        env={"DOCKYARD_HOME": str(fresh), **CONFIGS[name]},
        cwd=work,
        log=work / "server.log",
    )
    row = {f"x{i}": 0.1 * i for i in range(harness.FEATURES)}
    body = json.dumps({"instances": [row]}).encode()
    url = f"http://127.0.0.1:{port}/v1/endpoints/lr/predict"
    script = harness.wrk_script(work, body)
    run = harness.Run(server=name, model="lr", connections=16)
    try:
        server.start(url, body, timeout_s=60)
        time.sleep(args.idle)
        harness.wrk(url, script, 16, args.warmup, 1, 0, cpus="1")
        used = server.cpu()
        harness.parse_wrk(harness.wrk(url, script, 16, args.seconds, 1, 0, cpus="1"), run)
        run.server_cores = (server.cpu() - used) / args.seconds
        run.rss_mib = server.rss()
    finally:
        server.stop()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--idle", type=float, default=8.0)
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "passes")
    args = parser.parse_args()
    work = args.work.resolve()
    home = prepare(harness.HERE / ".work" / "start")
    print(harness.describe_machine(), flush=True)
    runs: dict[str, list[harness.Run]] = {name: [] for name in CONFIGS}
    for round_ in range(args.rounds):
        for name in CONFIGS:
            run = measure(home, work, name, args)
            runs[name].append(run)
            cpu_us = run.server_cores * args.seconds / max(run.requests, 1) * 1e6
            print(
                f"round {round_ + 1} {name:>9}: {run.requests_per_s:7.0f} req/s, p50 "
                f"{run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, {cpu_us:.0f} µs CPU/request "
                f"(tree), RSS {run.rss_mib:.0f} MiB, errors {run.errors}",
                flush=True,
            )
    print("medians:")
    for name, measured in runs.items():
        p99 = statistics.median(r.p99_ms for r in measured)
        rate = statistics.median(r.requests_per_s for r in measured)
        print(f"  {name:>9}: {rate:7.0f} req/s, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
