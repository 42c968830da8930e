"""The prediction log's passes on the event loop under 100-row load, from both sides: the p99
of consecutive wrk slices on a fresh server (its first seconds included, when the log's
first passes run cold), and the CPU of every ``PredictionLog.convert`` call over 5 ms.

The server's side is timed by a ``sitecustomize`` module this script writes to a temporary
folder and puts on the server's ``PYTHONPATH``: it wraps ``PredictionLog.convert`` with
``time.thread_time`` and appends each call over 5 ms to a file. Nothing of it is in the
product.

One fresh server per round (``python -m dockyard serve``, defaults: validation, metrics and
the log on), the logistic regression of ``harness.py`` (20 features) deployed alone, fed
100-row v2 binary 2-D tensor bodies (``shapes.bodies``; the cheapest shape to decode, so
the most rows a second reach the log) at 16 connections; the server pinned to CPU 0 with
``taskset``, wrk to CPU 1. ``--before SRC`` interleaves another tree (A B B A).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/log_stalls.py [--slices 4] [--seconds 5]
      [--before /tmp/before/src]   (needs wrk)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import harness  # models, registry, servers and wrk (benchmarks/harness.py)
import serving  # wrk scripts for bodies with headers (benchmarks/serving.py)
import shapes  # every input shape's body (benchmarks/shapes.py)

SHAPE = "v2 binary 2-D tensor"
ROWS = 100
SLOW_MS = 5.0
PINNED = ("taskset", "-c", "0")
QUIET = ("--log-level", "warning")

PROBE = """
import time
from pathlib import Path

import dockyard.monitoring.predictions as predictions

_out = Path({out!r})
_convert = predictions.PredictionLog.convert


def convert(self, *args, **kwargs):
    started = time.thread_time()
    try:
        return _convert(self, *args, **kwargs)
    finally:
        used = (time.thread_time() - started) * 1e3
        if used > {slow}:
            with _out.open("a") as out:
                out.write(f"{{used:.2f}}\\n")


predictions.PredictionLog.convert = convert
"""


def round_(
    args: argparse.Namespace, home: Path, src: str, script: Path
) -> tuple[list[tuple[float, float, int]], list[float]]:
    """One fresh server: each slice's (req/s, p99 ms, errors), and the CPU ms of its slow
    convert calls."""
    with tempfile.TemporaryDirectory() as probe:
        out = Path(probe) / "slow.txt"
        out.touch()
        (Path(probe) / "sitecustomize.py").write_text(PROBE.format(out=str(out), slow=SLOW_MS))
        port = harness.free_port()
        server = harness.Server(
            [*PINNED, sys.executable, "-m", "dockyard", "serve", "--port", str(port), *QUIET],
            env={"DOCKYARD_HOME": str(home), "PYTHONPATH": f"{src}{os.pathsep}{probe}"},
            cwd=harness.HERE,
            log=args.work / "logs" / "server.log",
        )
        url = f"http://127.0.0.1:{port}/v2/models/lr/infer"
        try:
            server.start(f"http://127.0.0.1:{port}/v1/endpoints/lr/predict", args.one, 60)
            slices = []
            for _ in range(args.slices):
                output = harness.wrk(url, script, 16, args.seconds, 1, 0, cpus="1")
                run = harness.Run("Dockyard", "lr", 16)
                harness.parse_wrk(output, run)
                slices.append((run.requests_per_s, run.p99_ms, run.errors))
        finally:
            server.stop()
        slow = [float(line) for line in out.read_text().split()]
        return slices, slow


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=4, help="wrk slices a server")
    parser.add_argument("--seconds", type=int, default=5, help="seconds a slice")
    parser.add_argument("--before", default=None, help="Another tree's src, interleaved.")
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "log_stalls")
    args = parser.parse_args()
    harness.require_wrk("log_stalls.py")
    args.work = args.work.resolve()
    home, X = harness.lr_alone(args.work)
    args.X = X
    args.one = harness.bodies(harness.row(X))["records"]
    _, body, headers = shapes.bodies(X, ROWS, True, "lr")[SHAPE]
    script = serving.wrk_script(args.work, "log-stalls", ("", body, headers))
    trees = {"this tree": str(Path(__file__).resolve().parents[1] / "src")}
    if args.before:
        trees = {"before": args.before, **trees}
    order = list(trees) if len(trees) == 1 else [*trees, *reversed(list(trees))]
    print(f"{harness.describe_machine()}; {ROWS}-row {SHAPE}, 16 connections")
    print(
        f"| tree | p99 ms per {args.seconds}-s slice | req/s per slice | errors | convert "
        f"calls over {SLOW_MS:g} ms: count, median, max CPU ms |"
    )
    print("|---|---|---|---|---|")
    for name in order:
        slices, slow = round_(args, home, trees[name], script)
        p99s = ", ".join(f"{p99:.1f}" for _, p99, _ in slices)
        rates = ", ".join(f"{rate:,.0f}" for rate, _, _ in slices)
        errors = sum(count for _, _, count in slices)
        over = f"{len(slow)}, {statistics.median(slow):.1f}, {max(slow):.1f}" if slow else "0"
        print(f"| {name} | {p99s} | {rates} | {errors} | {over} |", flush=True)


if __name__ == "__main__":
    main()
