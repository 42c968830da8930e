"""Throughput of 1, 2 and 3 ``dockyard serve`` replicas behind HAProxy on loopback.

A report, not a target: on a two-core machine three replicas, HAProxy and wrk share the same
two cores, so more replicas cannot mean more throughput here; what the figures show is
what the balancer costs (one replica direct against one replica behind HAProxy, in the same
run) and that adding replicas does not fall over. On a machine with a core per replica the
same script measures scale-out.

The replicas follow one registry folder (SQLite, WAL) and one artifact folder: the hot path
never reads the registry (each replica loads the model once and polls for changes), so the
shared PostgreSQL + S3 setup of ``tests/e2e/test_replicas.py`` would measure the same path
with more processes on the cores. HAProxy's configuration is the test's
(``tests/_balancer.py``: round robin, health checks on ``/readyz``, retries).

Each configuration is started, warmed, loaded for ``--seconds`` with wrk, and stopped, in
the order direct, 1, 2, 3 — then again in ``--rounds`` rounds, and the median is reported
with its ratio to one replica direct from the same round.

Run:  .venv/bin/python benchmarks/replicas.py [--model lr|rf] [--connections 32]
      [--seconds 8] [--rounds 2]   (needs wrk and haproxy: scripts/ensure-haproxy.sh)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import harness

sys.path.insert(0, str(harness.HERE.parent / "tests"))
from _balancer import Balancer

REPLICAS = (1, 2, 3)


def _start(home: Path, work: Path, endpoint: str, body: bytes, count: int) -> list[harness.Server]:
    servers = []
    for i in range(count):
        port = harness.free_port()
        command = [sys.executable, "-m", "dockyard", "serve", "--port", str(port)]
        command += ["--log-level", "warning"]
        server = harness.Server(
            command,
            env={"DOCKYARD_HOME": str(home)},
            cwd=harness.HERE,
            log=work / "logs" / f"replica-{count}-{i}.log",
        )
        server.start(f"http://127.0.0.1:{port}/v1/endpoints/{endpoint}/predict", body, 180)
        server.port = port  # type: ignore[attr-defined]
        servers.append(server)
    return servers


def _measure(url: str, script: Path, args: argparse.Namespace, label: str) -> harness.Run:
    harness.wrk(url, script, args.connections, 2, 2, 0)  # warm
    run = harness.Run(server=label, model=args.model, connections=args.connections)
    harness.parse_wrk(harness.wrk(url, script, args.connections, args.seconds, 2, 0), run)
    print(
        f"  {label:>22}: {run.requests_per_s:9.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
        f"p99 {run.p99_ms:6.2f} ms  non-2xx {run.non_2xx}  socket errors {run.socket_errors}",
        flush=True,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("lr", "rf"), default="lr")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work")
    args = parser.parse_args()
    print(harness.describe_machine(), flush=True)
    models, X, y = harness.fit_models(args.work)
    body = harness.bodies(harness.row(X))["records"]
    base = harness.register_dockyard(args.work, {args.model: models[args.model]}, X, y)
    endpoint = f"replicas-{args.model}"
    spec = {"routes": [{"model": f"{args.model}@1.0.0"}]}
    home = harness.dockyard_home(base, args.work, endpoint, spec)
    script = harness.wrk_script(args.work, body)
    path = f"/v1/endpoints/{endpoint}/predict"
    results: dict[str, list[tuple[float, float]]] = {}
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}", flush=True)
        (direct,) = _start(home, args.work, endpoint, body, 1)
        try:
            baseline = _measure(
                f"http://127.0.0.1:{direct.port}{path}", script, args, "1 replica, direct"
            )  # type: ignore[attr-defined]
        finally:
            direct.stop()
        results.setdefault("1 replica, direct", []).append((baseline.requests_per_s, 1.0))
        for count in REPLICAS:
            servers = _start(home, args.work, endpoint, body, count)
            folder = Path(tempfile.mkdtemp(prefix="dockyard-haproxy-"))
            balancer = Balancer(folder, harness.free_port(), [s.port for s in servers])  # type: ignore[attr-defined]
            try:
                label = f"{count} replica(s), HAProxy"
                run = _measure(f"{balancer.url}{path}", script, args, label)
                ratio = run.requests_per_s / baseline.requests_per_s
                results.setdefault(label, []).append((run.requests_per_s, ratio))
            finally:
                balancer.stop()
                for server in servers:
                    server.stop()
    print(f"\nmedians over {args.rounds} round(s), model {args.model}, "
          f"{args.connections} connections, {args.seconds} s per run:")  # fmt: skip
    print("| configuration | req/s | ÷ 1 replica direct (same round) |")
    print("|---|---|---|")
    for label, figures in results.items():
        rate = statistics.median(f[0] for f in figures)
        ratio = statistics.median(f[1] for f in figures)
        print(f"| {label} | {rate:,.0f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
