"""Paired A/B throughput on a noisy machine: servers up side by side, loaded in turn or at once.

``serving.py`` starts one server at a time; on a shared machine whose speed drifts by 30-50%
within minutes, two figures taken minutes apart cannot resolve a 10% difference. This script
starts every configuration at once (an idle server costs nothing), then runs short wrk
bursts in turn — A, B, C, A, B, C, ... — so each round's figures share the machine's state,
and reports each configuration's median and the median of its per-round ratio to the first.

``--together`` loads every configuration at the same instant instead (one wrk each): the
machine's swings then hit all of them alike, and since they share the cores, the ratio of
their throughputs is the ratio of their cost per request. On this VM it narrowed the spread
of per-round ratios in one run (0.84-1.01 against 0.65-1.13 alternating), not in later
ones: it is a second view, not a cure for the noise. ``--pin``
keeps the servers, with all their threads, on CPU 0 and wrk on CPU 1, so the background
threads' work (the log's writer) lands on the serving core (it did not narrow the spread).

Configurations (one row of 20 floats per request, the models of ``harness.py``):

* ``log-on`` / ``log-off``: Dockyard's default deployment (ONNX twin, batching 64) with the
  prediction log on and off — issue 4's overhead target (on ÷ off ≥ 0.9);
* ``threads``: the same with ``DOCKYARD_INLINE_COMPUTE_US=0`` (every batch handed to a
  compute thread), to show what running cheap models on the loop buys;
* ``starlette``: the Starlette endpoint returning a constant — issue 3's ceiling (≥ 0.5×);
* ``--variant NAME=BASE:KEY=VALUE,...``: one of the above with extra environment, to compare
  a setting (``--variant quiet=log-on:DOCKYARD_MONITOR_INTERVAL_S=3600`` adds ``quiet``).

CPU per request is each server's CPU time over the whole round (its own burst, and its
background work while the others' ran: the log's writer and monitor pass count wherever
they fall) divided by the requests it served in its burst.

Each Dockyard server's batch placement (event loop or threads, decided by timing a batch
at warm-up) is printed after its start and after the rounds: two starts of one
configuration can differ, and a comparison across placements measures that, not the log.

Run:  .venv/bin/python benchmarks/ab.py [--model lr|rf] [--connections 64] [--rounds 8]
      [--seconds 5] [--configs log-on,log-off,threads,starlette] [--variant ...]
      [--together] [--pin]  (needs wrk; --pin needs taskset)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import harness  # models, servers, wrk (benchmarks/harness.py)

CONFIGS = ("log-on", "log-off", "threads", "starlette")


def configs(
    args: argparse.Namespace, base: Path, body: bytes
) -> dict[str, tuple[harness.Server, str]]:
    """One started server per configuration, with its URL."""
    started: dict[str, tuple[harness.Server, str]] = {}
    for name in args.configs:
        kind, extra = args.variants.get(name, (name, {}))
        port = harness.free_port()
        log = args.work / "logs" / f"ab-{name}.log"
        if kind == "starlette":
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(harness.HERE / "baselines"),
                "starlette_constant:app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
            ]
            url, env = f"http://127.0.0.1:{port}/predict", {}
        else:
            endpoint = f"ab-{args.model}-{name}"
            spec = {
                "routes": [{"model": f"{args.model}@1.0.0"}],
                "batching": {"max_batch_size": 64, "max_wait_ms": 0},
                "monitoring": {"log": kind != "log-off"},
            }
            home = harness.dockyard_home(base, args.work, endpoint, spec)
            command = [sys.executable, "-m", "dockyard", "serve", "--port", str(port)]
            command += ["--log-level", "warning"]
            url = f"http://127.0.0.1:{port}/v1/endpoints/{endpoint}/predict"
            env = {"DOCKYARD_HOME": str(home)}
            if kind == "threads":
                env["DOCKYARD_INLINE_COMPUTE_US"] = "0"
        env.update(extra)
        server = harness.Server(command, env=env, cwd=harness.HERE, log=log, nice=args.nice)
        server.start(url, body, 180)
        started[name] = (server, url)
        if args.pin:
            pin(server, {0})
        print(f"  started {name}: {url} ({compute(url)})", flush=True)
    return started


def compute(url: str) -> str:
    """Where a Dockyard server runs its model's batches (``event loop`` or ``threads``: chosen
    by timing a batch at warm-up, so it can differ between two starts of one configuration
    and must be reported beside any comparison of them)."""
    if "/v1/endpoints/" not in url:
        return "constant"
    base = url.split("/v1/endpoints/")[0]
    try:
        with urllib.request.urlopen(f"{base}/api/deployments", timeout=10) as response:
            deployments = json.load(response)
    except (OSError, ValueError) as exc:
        return f"placement unknown: {exc}"
    places = [
        f"{model['compute']}, full batch {model['full_batch_us']} µs"
        for deployment in deployments
        for model in deployment.get("serving") or []
    ]
    return "batches on " + ("; ".join(places) or "?")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("lr", "rf"), default="lr")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5, help="Seconds per wrk burst.")
    parser.add_argument("--warmup", type=int, default=3, help="Seconds of load per server first.")
    parser.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="Seconds after each burst before the next, so one server's trailing work (the "
        "log's last flush) lands in its own CPU figure, not in the next server's burst.",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=BASE:KEY=VALUE,...",
        help="A configuration like BASE with extra environment; run it by adding NAME to "
        "--configs (or it is appended).",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="Load every configuration at the same time in each round (each with its own "
        "wrk and --connections), so the machine's swings hit them alike; the servers then "
        "share the cores, and the ratio compares their cost per request.",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="Keep every server (all its threads) on CPU 0 and wrk on CPU 1: the servers' "
        "whole cost, their background threads included, lands on the serving core.",
    )
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work")
    args = parser.parse_args()
    args.configs = [c for c in args.configs.split(",") if c]
    args.variants = {}
    for text in args.variant:
        name, _, rest = text.partition("=")
        kind, _, pairs = rest.partition(":")
        settings = [pair.partition("=") for pair in pairs.split(",")]
        if not name or kind not in CONFIGS or not all(key and eq for key, eq, _ in settings):
            parser.error(
                f"--variant {text!r}: expected NAME=BASE:KEY=VALUE[,KEY=VALUE] with BASE one "
                f"of {', '.join(CONFIGS)}"
            )
        args.variants[name] = (kind, {key: value for key, _, value in settings})
        if name not in args.configs:
            args.configs.append(name)
    if unknown := set(args.configs) - set(CONFIGS) - set(args.variants):
        parser.error(f"unknown configurations {sorted(unknown)}; choose from {CONFIGS}")
    args.work = args.work.resolve()
    print(harness.describe_machine(), flush=True)

    models, X, y = harness.fit_models(args.work)
    body = harness.bodies(harness.row(X))["records"]
    base = harness.register_dockyard(args.work, models, X, y)
    script = harness.wrk_script(args.work, body)
    started = configs(args, base, body)
    figures: dict[str, list[float]] = {name: [] for name in started}
    p99: dict[str, list[float]] = {name: [] for name in started}
    cpu_us: dict[str, list[float]] = {name: [] for name in started}
    loop_us: dict[str, list[float]] = {name: [] for name in started}
    try:
        for _, url in started.values():
            harness.wrk(url, script, args.connections, args.warmup, 1, args.nice)
        began = time.monotonic()
        for round_ in range(1, args.rounds + 1):
            before = {
                name: (server.cpu(), main_thread_seconds(server))
                for name, (server, _) in started.items()
            }
            outputs = burst(started, script, args)
            line = []
            for name, (server, _) in started.items():
                run = harness.Run(name, args.model, args.connections)
                harness.parse_wrk(outputs[name], run)
                served = max(run.requests_per_s * args.seconds, 1.0)
                cpu, loop = before[name]
                cpu_us[name].append((server.cpu() - cpu) / served * 1e6)
                loop_us[name].append((main_thread_seconds(server) - loop) / served * 1e6)
                if run.errors:
                    sys.exit(f"{name}: {run.errors} errors in round {round_}; see the logs")
                figures[name].append(run.requests_per_s)
                p99[name].append(run.p99_ms)
                line.append(f"{name} {run.requests_per_s:,.0f} ({loop_us[name][-1]:.0f} µs)")
            print(f"  round {round_}: " + ", ".join(line), flush=True)
        elapsed = time.monotonic() - began
        for name, (_, url) in started.items():
            print(f"  after the rounds, {name}: {compute(url)}", flush=True)
    finally:
        for server, _ in started.values():
            server.stop()

    first = next(iter(figures))
    print()
    print(
        f"{args.model.upper()}, {args.connections} connections, {args.rounds} rounds of "
        f"{args.seconds} s per configuration, "
        f"{'all at once' if args.together else 'alternating'} ({elapsed / 60:.1f} min)"
    )
    print()
    print(
        f"| configuration | median req/s | median p99 ms | ÷ {first}, median of rounds | "
        "range of rounds | CPU µs/request: process | of it, main thread |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, values in figures.items():
        ratios = [v / f for v, f in zip(values, figures[first], strict=True) if f > 0]
        print(
            f"| {name} | {statistics.median(values):,.0f} | {statistics.median(p99[name]):.2f} | "
            f"{statistics.median(ratios):.2f} | {min(ratios):.2f}–{max(ratios):.2f} | "
            f"{statistics.median(cpu_us[name]):.1f} | {statistics.median(loop_us[name]):.1f} |"
        )
    pairs = [
        ("log-on", "log-off", "issue 4: log on ÷ off ≥ 0.9"),
        ("log-on", "starlette", "issue 3: Dockyard ÷ Starlette constant ≥ 0.5"),
        ("log-on", "threads", "running cheap batches on the loop ÷ handing them to threads"),
    ]
    print()
    for a, b, label in pairs:
        if a in figures and b in figures:
            ratios = [x / y for x, y in zip(figures[a], figures[b], strict=True) if y > 0]
            print(
                f"- {label}: median {statistics.median(ratios):.2f} "
                f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})"
            )


def burst(
    started: dict[str, tuple[harness.Server, str]], script: Path, args: argparse.Namespace
) -> dict[str, str]:
    """One round's wrk output per configuration: one after the other, each followed by
    ``--settle`` seconds, or with ``--together`` all at once (then settling once)."""

    def load(url: str) -> str:
        cpus = "1" if args.pin else None
        return harness.wrk(url, script, args.connections, args.seconds, 1, args.nice, cpus)

    outputs: dict[str, str] = {}
    if args.together:
        with concurrent.futures.ThreadPoolExecutor(len(started)) as pool:
            running = {name: pool.submit(load, url) for name, (_, url) in started.items()}
            outputs = {name: future.result() for name, future in running.items()}
        time.sleep(args.settle)
        return outputs
    for name, (_, url) in started.items():
        outputs[name] = load(url)
        time.sleep(args.settle)
    return outputs


def pin(server: harness.Server, cpus: set[int]) -> None:
    """Keep every thread of the server on ``cpus`` (threads started later inherit it)."""
    assert server.process is not None
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def main_thread_seconds(server: harness.Server) -> float:
    """CPU time of the server's main thread (its event loop): the serving bottleneck."""
    assert server.process is not None
    pid = server.process.pid
    return harness.cpu_seconds(pid, thread=pid) or 0.0


if __name__ == "__main__":
    main()
