"""Two source trees against each other on one input shape under wrk: a change to the hot path
measured whole, where ``decode_stages.py`` measures its stage alone.

One fresh server per run (``python -m dockyard serve``, defaults: validation, metrics and
the log on), the logistic regression of ``harness.py`` (20 features) deployed alone, fed one
shape's body (``shapes.bodies``: ``--rows`` rows) at 16 connections; the server pinned to
CPU 0 with ``taskset``, wrk to CPU 1; ``--warmup`` seconds of load, then ``--seconds``
measured. The trees run A B B A (``--rounds`` times over), so both see the machine in the
same states: read each tree's figures side by side, not one run's, and with several rounds
the medians (single runs spread ±5%).

With ``--fresh-ids`` a v2 body opens with an ``"id"`` that wrk makes afresh for every
request, as kserve's client does (a uuid4 each time). With ``--open-segments N`` each
server starts with N (empty) prediction log segments in the open hour, as a busy server's
log holds after a while, and ``--monitor-interval S`` runs its monitor pass every S seconds:
what the pass's upkeep of the log costs the serving process under load. With
``--drift-rule`` the endpoint has an alert rule on its drift share (evaluated every pass),
and ``--server-cpus 0,1`` lets the server and its helper processes use both CPUs (wrk
stays on CPU 1). Each run also gives the serving process's RSS at its end.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/trees_ab.py --before /tmp/before/src
      [--shapes "v1 records" "v2 JSON per column"] [--rows 100] [--seconds 5] [--rounds 1]
      [--fresh-ids] [--open-segments 20000 --monitor-interval 2] [--drift-rule]
      [--server-cpus 0,1]
      (needs wrk; check out the tree before with ``git worktree add /tmp/before HEAD~1``)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import harness  # models, registry, servers and wrk (benchmarks/harness.py)
import serving  # wrk scripts for bodies with headers (benchmarks/serving.py)
import shapes  # every input shape's body (benchmarks/shapes.py)

DRIFT_RULE = {
    "alerts": [{"name": "drifted", "metric": "drift_share", "threshold": 0.99, "window": "1h"}]
}
QUIET = ("--log-level", "warning")
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
"""The id a ``--fresh-ids`` body is written with, which its wrk script replaces."""


def run_once(
    args: argparse.Namespace, home: Path, src: str, path: str, script: Path
) -> tuple[float, float, int, float]:
    """One fresh server of the tree at ``src``: (req/s, p99 ms, errors) of the measured load
    and the serving process's RSS (MiB) at its end."""
    port = harness.free_port()
    env = {"DOCKYARD_HOME": str(home), "PYTHONPATH": src}
    if args.monitor_interval is not None:
        env["DOCKYARD_MONITOR_INTERVAL_S"] = str(args.monitor_interval)
    open_segments(home, args.open_segments)
    command = ["taskset", "-c", args.server_cpus, sys.executable, "-m", "dockyard", "serve"]
    server = harness.Server(
        [*command, "--port", str(port), *QUIET],
        env=env,
        cwd=harness.HERE,
        log=args.work / "logs" / "server.log",
    )
    url = f"http://127.0.0.1:{port}{path}"
    try:
        server.start(f"http://127.0.0.1:{port}/v1/endpoints/lr/predict", args.one, 60)
        harness.wrk(url, script, 16, args.warmup, 1, 0, cpus="1")
        output = harness.wrk(url, script, 16, args.seconds, 1, 0, cpus="1")
        assert server.process is not None
        rss = harness.rss_mib([server.process.pid])
    finally:
        server.stop()
    run = harness.Run("Dockyard", "lr", 16)
    harness.parse_wrk(output, run)
    return run.requests_per_s, run.p99_ms, run.errors, rss


def open_segments(home: Path, count: int) -> None:
    """Leave ``count`` empty segments (another writer's) in the log's open hour, and none
    there when it is 0."""
    hour = datetime.now(UTC)
    folder = home / "monitoring" / "predictions" / "lr" / f"{hour:%Y-%m-%d}" / f"{hour:%H}"
    if folder.exists():
        for path in folder.glob("vm-placed-*.parquet"):
            path.unlink()
    if count:
        folder.mkdir(parents=True, exist_ok=True)
        for seq in range(count):
            (folder / f"vm-placed-{seq:08d}.parquet").touch()


def fresh_id_script(work: Path, name: str, body: serving.Body) -> Path:
    """A wrk script that sends v2 ``body`` with an ``"id"`` first, a new one every request
    (of the placeholder's length, so a binary body's header keeps its length)."""
    path, data, headers = body
    member = f'"id":"{PLACEHOLDER}",'.encode()
    data = data[:1] + member + data[1:]
    headers = [
        (key, str(int(value) + len(member)).encode())
        if key == b"inference-header-content-length"
        else (key, value)
        for key, value in headers
    ]
    script = serving.wrk_script(work, f"{name}-fresh-ids", (path, data, headers))
    script.write_text(
        script.read_text()
        + f"""local s, e = string.find(wrk.body, "{PLACEHOLDER}", 1, true)
local head, tail = string.sub(wrk.body, 1, s - 1), string.sub(wrk.body, e + 1)
local counter = 0
request = function()
  counter = counter + 1
  local id = string.format("%08x-0000-4000-8000-%012x", counter % 4294967296, counter)
  return wrk.format(nil, nil, nil, head .. id .. tail)
end
"""
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="The other tree's src.")
    parser.add_argument("--shapes", nargs="+", default=["v2 JSON 2-D tensor"])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds a run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load first")
    parser.add_argument("--rounds", type=int, default=1, help="A B B A, this many times")
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "trees_ab")
    parser.add_argument(
        "--fresh-ids", action="store_true", help="v2 bodies: an id first, a new one each time"
    )
    parser.add_argument(
        "--open-segments", type=int, default=0, help="empty log segments in the open hour"
    )
    parser.add_argument(
        "--monitor-interval", type=float, default=None, help="seconds between monitor passes"
    )
    parser.add_argument(
        "--drift-rule", action="store_true", help="an alert rule on the drift share"
    )
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the server")
    args = parser.parse_args()
    harness.require_wrk("trees_ab.py")
    args.work = args.work.resolve()
    home, X = harness.lr_alone(args.work, DRIFT_RULE if args.drift_rule else None)
    args.one = harness.bodies(harness.row(X))["records"]
    every = shapes.bodies(X, args.rows, True, "lr")
    unknown = [shape for shape in args.shapes if shape not in every]
    if unknown:
        raise SystemExit(f"unknown shape {unknown[0]!r}: one of {', '.join(every)}")
    trees = {"before": args.before, "this tree": str(Path(__file__).resolve().parents[1] / "src")}
    order = ["before", "this tree", "this tree", "before"] * args.rounds
    fresh = ", a fresh id each request" if args.fresh_ids else ""
    if args.open_segments:
        fresh += f", {args.open_segments:,} segments in the log's open hour"
    if args.monitor_interval is not None:
        fresh += f", a monitor pass every {args.monitor_interval:g} s"
    if args.drift_rule:
        fresh += ", an alert rule on the drift share"
    fresh += f", the server on CPU {args.server_cpus}"
    print(
        f"{harness.describe_machine()}; {args.rows} rows, 16 connections, {args.seconds} s{fresh}"
    )
    print(
        "| shape | before: req/s (p99 ms; serving process MiB) | this tree: the same "
        "| medians | errors |"
    )
    print("|---|---|---|---|---|")
    for shape in args.shapes:
        path, body, headers = every[shape]
        name = shape.replace(" ", "_")
        if args.fresh_ids and path.startswith("/v2/"):
            script = fresh_id_script(args.work, name, (path, body, headers))
        else:
            script = serving.wrk_script(args.work, name, (path, body, headers))
        figures: dict[str, list[str]] = {name: [] for name in trees}
        rates: dict[str, list[float]] = {name: [] for name in trees}
        errors = 0
        for name in order:
            rate, p99, failed, rss = run_once(args, home, trees[name], path, script)
            figures[name].append(f"{rate:,.0f} ({p99:.1f}; {rss:.0f})")
            rates[name].append(rate)
            errors += failed
        before, after = (", ".join(figures[name]) for name in trees)
        medians = " → ".join(f"{statistics.median(rates[name]):,.0f}" for name in trees)
        print(f"| {shape} | {before} | {after} | {medians} | {errors} |", flush=True)


if __name__ == "__main__":
    main()
