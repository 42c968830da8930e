"""The prediction log's cost inside one server process, paired: no network, no load generator.

``ab.py`` measures whole servers under wrk; on this shared machine its rounds swing 30-50%,
and the server's own cost per request is mostly uvicorn, httptools and the kernel. This
script runs Dockyard's real ASGI app (the same ``create_app`` as ``dockyard serve``: models
warmed, the log's conversion task and writer thread running) in this process, drives the
predict route with ``--concurrency`` coroutines in a loop, and alternates blocks with the
prediction log on and off — the same app, only the log detached — so both halves of each
round share the machine's state. It reports requests/s and the event-loop thread's CPU per
request for each, and the median per-round ratio.

With ``--toggle ranges`` the halves differ in the training-range check instead (the
per-request ``warnings``): the same app with every model's ``ranges`` detached in the off
half, the log on in both.

With ``--toggle latency-version`` the halves differ in the request-duration histogram's
labels: on, the server's own (endpoint, version) children; off, children of an
endpoint-only histogram of the same buckets (how it was labelled before), bound into the
same cached series, so only the label set differs.

Run:  .venv/bin/python benchmarks/inprocess.py [--model lr|rf] [--concurrency 64]
      [--requests 20000] [--rounds 12] [--toggle log|ranges|latency-version]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import harness  # models and registry (benchmarks/harness.py)


async def run(args: argparse.Namespace, home: Path, endpoint: str, body: bytes) -> None:
    os.environ["DOCKYARD_HOME"] = str(home)
    from dockyard.server.app import create_app
    from dockyard.settings import Settings

    app = create_app(Settings())
    server = app.server
    await server.start()
    path = f"/v1/endpoints/{endpoint}/predict"
    log = server.inference.log
    models = []  # (model, its ranges) for --toggle ranges

    metrics = server.metrics
    by_endpoint = None  # --toggle latency-version: the endpoint-only histogram
    bound: dict[tuple[str, str, int], tuple[object, object]] = {}

    def switch(on: bool) -> None:
        if args.toggle == "log":
            server.inference.log = log if on else None
            return
        if args.toggle == "latency-version":
            if not bound:
                bound.update(metrics._request_series)
            for key, (counter, child) in bound.items():
                other = child if on else by_endpoint.labels(key[0])
                metrics._request_series[key] = (counter, other)
            return
        for model, ranges in models:
            model.ranges = ranges if on else None

    try:
        while not server.manager.started:
            await asyncio.sleep(0.1)
        for endpoint_ in server.manager.endpoints.values():
            models.extend((model, model.ranges) for model, _ in endpoint_.routes)
        if args.toggle == "ranges" and not any(ranges for _, ranges in models):
            raise SystemExit("the served model has no training ranges to check")
        await harness.drive(app, path, body, args.requests // 4, args.concurrency)  # warm
        if args.toggle == "latency-version":
            import prometheus_client as prom

            from dockyard.server.metrics import LATENCY_BUCKETS

            by_endpoint = prom.Histogram(
                "endpoint_only_seconds",
                "The request duration labelled by endpoint only.",
                ["endpoint"],
                buckets=LATENCY_BUCKETS,
                registry=prom.CollectorRegistry(),
            )
        figures: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for round_ in range(1, args.rounds + 1):
            for mode in ("on", "off") if round_ % 2 else ("off", "on"):
                switch(mode == "on")
                cpu = time.thread_time()
                seconds = await harness.drive(app, path, body, args.requests, args.concurrency)
                cpu_us = (time.thread_time() - cpu) / args.requests * 1e6
                figures[mode].append((args.requests / seconds, cpu_us))
                await asyncio.sleep(args.settle)  # the writer's last flush, outside the block
            on, off = figures["on"][-1], figures["off"][-1]
            print(
                f"  round {round_}: {args.toggle} on {on[0]:,.0f}/s ({on[1]:.1f} µs), "
                f"off {off[0]:,.0f}/s ({off[1]:.1f} µs)",
                flush=True,
            )
    finally:
        switch(True)
        await server.stop()
    ratios = [a[0] / b[0] for a, b in zip(figures["on"], figures["off"], strict=True)]
    print()
    print(
        f"{args.model.upper()}, {args.concurrency} concurrent requests, {args.rounds} rounds of "
        f"{args.requests:,} requests per mode, in one process"
    )
    print()
    what = {"log": "prediction log", "ranges": "range check"}.get(
        args.toggle, "duration histogram labelled by version"
    )
    print(f"| {what} | median req/s | median loop CPU µs/request |")
    print("|---|---|---|")
    for mode, values in figures.items():
        print(
            f"| {mode} | {statistics.median(v[0] for v in values):,.0f} | "
            f"{statistics.median(v[1] for v in values):.1f} |"
        )
    print()
    print(
        f"- {args.toggle} on ÷ off, median of rounds: {statistics.median(ratios):.3f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("lr", "rf"), default="lr")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20_000, help="Requests per block.")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--settle", type=float, default=1.2)
    parser.add_argument("--toggle", choices=("log", "ranges", "latency-version"), default="log")
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work")
    args = parser.parse_args()
    args.work = args.work.resolve()
    print(harness.describe_machine(), flush=True)

    models, X, y = harness.fit_models(args.work)
    body = harness.bodies(harness.row(X))["records"]
    base = harness.register_dockyard(args.work, models, X, y)
    endpoint = f"inprocess-{args.model}"
    spec = {
        "routes": [{"model": f"{args.model}@1.0.0"}],
        "batching": {"max_batch_size": 64, "max_wait_ms": 0},
        "monitoring": {"log": True},
    }
    home = harness.dockyard_home(base, args.work, endpoint, spec)
    asyncio.run(run(args, home, endpoint, body))


if __name__ == "__main__":
    main()
