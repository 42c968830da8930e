"""The hot path per input shape, in one process: the event loop's CPU per request and req/s.

A prediction can arrive in several shapes: v1 ``instances`` as records (one object per row)
or as row arrays, v1 ``inputs`` as columns, a v2 2-D tensor, or one v2 tensor per column —
the v2 ones in JSON or with the binary extension (``Inference-Header-Content-Length``: a JSON
header, then the raw little-endian bytes). Each takes its own decoding path before the shared
validation and the model. This script runs Dockyard's real ASGI app (the same ``create_app``
as ``dockyard serve``: models warmed, the prediction log's conversion task and writer thread
running) in this process, with the logistic regression of ``harness.py`` (20 features)
deployed alone (log on, batches of up to 64, no wait), and drives each shape with
``--concurrency`` coroutines, for each row count in ``--rows``; with ``--lane`` each
request calls the app's ``predict`` as the HTTP protocol's prediction lane does (how
``dockyard serve`` answers predictions), without the ASGI scope and messages.

Every round sends every shape once; a 1-row shape gets ``--requests`` requests, a larger one
a tenth of that. It reports, per shape and row count, the loop thread's CPU per request (the
median of rounds, and the least: on a shared VM the least moves less between runs) and the
requests per second (the median of rounds). Trust the CPU figure:
the requests per second move with whatever else the machine is doing.

``--fitted-on frame`` fits the same logistic regression on a DataFrame of the same columns
instead of an array, as most scikit-learn users do: its ONNX twin then takes one input per
column, and ``--native`` serves the scikit-learn model itself rather than the twin.
``--flags N`` sends the first N features as 0/1 flags (one-hot and indicator columns): the
bulk paths look at values equal to 0 or 1 on their own (numpy reads ``true`` as 1).

Run:  .venv/bin/python benchmarks/shapes.py [--requests 2000] [--rounds 2] [--rows 1 100]
      [--concurrency 16] [--fitted-on array|frame] [--native] [--flags 5] [--lane]
      [--shapes "v1 records" "v2 JSON 2-D tensor"]

Comparing two commits: check each out in its own worktree and run this script (from either
one, or a copy) with ``PYTHONPATH`` pointing at each tree's ``src``, interleaved A B B A so
that both see the machine in the same states; then compare the tables row by row::

    git worktree add /tmp/before <commit>~1
    git worktree add /tmp/after <commit>
    for order in "before after" "after before" "before after" "after before"; do
      for tree in $order; do
        echo "## $tree"
        PYTHONPATH=/tmp/$tree/src .venv/bin/python benchmarks/shapes.py --rounds 2
      done
    done > shapes.out

The first line of each run prints where ``dockyard`` was imported from, to confirm which
tree ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import harness  # models and registry (benchmarks/harness.py)

ENDPOINT = "shapes-lr"

# label -> (path, body, extra headers)
Body = tuple[str, bytes, list[tuple[bytes, bytes]]]


def bodies(X: Any, rows: int, binary: bool, endpoint: str = ENDPOINT) -> dict[str, Body]:
    """Every shape's request for the first ``rows`` rows of ``X`` (to ``endpoint``)."""
    import numpy as np

    v1, v2 = f"/v1/endpoints/{endpoint}/predict", f"/v2/models/{endpoint}/infer"

    block = [[float(v) for v in row] for row in X[:rows]]
    names = [f"x{i}" for i in range(len(block[0]))]
    columns = {name: [row[i] for row in block] for i, name in enumerate(names)}
    tensor = [("input-0", [rows, len(names)], block)]
    per_column = [(name, [rows], columns[name]) for name in names]

    def v2_json(inputs: list[tuple[str, list[int], Any]]) -> Body:
        body = {
            "inputs": [{"name": n, "shape": s, "datatype": "FP64", "data": v} for n, s, v in inputs]
        }
        return v2, json.dumps(body).encode(), []

    def v2_binary(inputs: list[tuple[str, list[int], Any]]) -> Body:
        blobs = [np.asarray(v, dtype="<f8").tobytes() for _, _, v in inputs]
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": n,
                        "shape": s,
                        "datatype": "FP64",
                        "parameters": {"binary_data_size": len(blob)},
                    }
                    for (n, s, _), blob in zip(inputs, blobs, strict=True)
                ]
            }
        ).encode()
        length = (b"inference-header-content-length", str(len(header)).encode())
        return v2, header + b"".join(blobs), [length]

    shapes: dict[str, Body] = {
        "v1 records": (
            v1,
            json.dumps({"instances": [dict(zip(names, r, strict=True)) for r in block]}).encode(),
            [],
        ),
        "v1 row arrays": (v1, json.dumps({"instances": block}).encode(), []),
        "v1 columns": (v1, json.dumps({"inputs": columns}).encode(), []),
        "v2 JSON 2-D tensor": v2_json(tensor),
        "v2 JSON per column": v2_json(per_column),
    }
    if binary:
        shapes["v2 binary 2-D tensor"] = v2_binary(tensor)
        shapes["v2 binary per column"] = v2_binary(per_column)
    return shapes


async def run(args: argparse.Namespace, home: Path, X: Any) -> None:
    os.environ["DOCKYARD_HOME"] = str(home)
    from dockyard.server.app import create_app
    from dockyard.settings import Settings

    app = create_app(Settings())
    server = app.server
    await server.start()
    plan: list[tuple[str, int, Body, int]] = []
    for rows in args.rows:
        count = args.requests if rows == 1 else max(args.requests // 10, 1)
        for shape, request in bodies(X, rows, not args.no_binary).items():
            if not args.shapes or shape in args.shapes:
                plan.append((shape, rows, request, count))
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        while not server.manager.started:
            await asyncio.sleep(0.1)
        for _, _, request, count in plan:  # warm every path
            await harness.drive(
                app, *request[:2], max(count // 4, 1), args.concurrency, request[2], lane=args.lane
            )
        for round_ in range(1, args.rounds + 1):
            for shape, rows, request, count in plan:
                cpu = time.thread_time()
                seconds = await harness.drive(
                    app, *request[:2], count, args.concurrency, request[2], lane=args.lane
                )
                cpu_us = (time.thread_time() - cpu) / count * 1e6
                figures.setdefault((shape, rows), []).append((count / seconds, cpu_us))
            print(f"  round {round_} of {args.rounds} done", flush=True)
    finally:
        await server.stop()

    def median(values: list[tuple[float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    print()
    fitted = "a DataFrame" if args.fitted_on == "frame" else "an array"
    served = "scikit-learn" if args.native else "its ONNX twin"
    print(
        f"LR ({harness.FEATURES} features, fitted on {fitted}, served by {served}), "
        f"{args.concurrency} concurrent requests "
        + ("by the prediction lane, " if args.lane else "through ASGI, ")
        + f"{args.rounds} rounds; {args.requests:,} requests per 1-row shape, "
        f"{max(args.requests // 10, 1):,} per larger one; log on, max batch 64"
        + (f"; the first {args.flags} features sent as 0/1 flags" if args.flags else "")
    )
    print()
    print("| shape | rows | loop CPU µs/request (median) | (least) | req/s (median) |")
    print("|---|---|---|---|---|")
    for (shape, rows), values in figures.items():
        least = min(v[1] for v in values)
        print(
            f"| {shape} | {rows} | {median(values, 1):.1f} | {least:.1f} | "
            f"{median(values, 0):,.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=2_000,
        help="Requests per 1-row shape and round; a larger shape gets a tenth of it.",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1, 100], help="Rows per request (several)."
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--no-binary",
        action="store_true",
        help="Leave out the v2 binary shapes (for a tree without the binary extension).",
    )
    parser.add_argument(
        "--fitted-on",
        choices=("array", "frame"),
        default="array",
        help="Fit the model on a float array or on a DataFrame of the same columns.",
    )
    parser.add_argument(
        "--native", action="store_true", help="Serve the scikit-learn model, not its ONNX twin."
    )
    parser.add_argument(
        "--flags",
        type=int,
        default=0,
        help="Send the first N features as 0/1 flags (one-hot or indicator columns, as many "
        "users' data has): values equal to 0 or 1 take their own checks on the bulk paths.",
    )
    parser.add_argument(
        "--lane",
        action="store_true",
        help="Call the app's predict as the prediction lane does (dockyard serve's way), not "
        "through ASGI.",
    )
    parser.add_argument(
        "--shapes", nargs="+", metavar="SHAPE", help="Only these shapes (their labels, quoted)."
    )
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "shapes")
    args = parser.parse_args()
    if min(args.rows) < 1 or args.requests < 1 or args.rounds < 1 or args.concurrency < 1:
        parser.error("--requests, --rounds, --rows and --concurrency must be at least 1")
    args.work = args.work.resolve()

    import dockyard

    print(f"dockyard from {Path(dockyard.__file__).parent}", flush=True)
    models, X, y = harness.fit_models(args.work)
    model, sample = models["lr"], X
    if args.fitted_on == "frame":
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        sample = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        model = LogisticRegression(max_iter=1000).fit(sample, y)
    base = harness.register_dockyard(
        args.work, {"lr": model}, sample, y, accelerate=not args.native
    )
    spec = {
        "routes": [{"model": "lr@1.0.0"}],
        "batching": {"max_batch_size": 64, "max_wait_ms": 0},
        "monitoring": {"log": True},
    }
    home = harness.dockyard_home(base, args.work, ENDPOINT, spec)
    sent = X[: max(args.rows)].copy()
    sent[:, : args.flags] = sent[:, : args.flags] > 0  # 0.0 or 1.0
    asyncio.run(run(args, home, sent))


if __name__ == "__main__":
    main()
