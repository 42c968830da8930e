"""Models fitted on a DataFrame of mixed columns (text, numbers, flags): the usual
scikit-learn pipeline, which the numeric fast path does not take.

A pipeline (one-hot text, scaled numbers, a passthrough flag, then logistic regression) is
fitted on 12 columns: 6 floats, 2 integers, 3 text, 1 boolean, and served natively.

``components`` (this tree only; interleaved, median of ``--rounds``): what one batch costs,
for 64 one-row requests and for 4 requests of 100 rows, per step — validating each request,
joining the batch, the model's predictions and probabilities — by the path the server took
before (a DataFrame per request, pandas' concat of them, the loaded model's ``predict`` then
``predict_proba``) and the one it takes now (each request's columns, joined column by
column into one DataFrame per batch: ``FrameColumns``; ``predict_with_proba``, one pass
through the pipeline's transformers).

``admission`` (any tree): the queue's estimate after one-row traffic. Each of ``--rounds``
× 5 cycles sends ``--requests`` one-row requests (v1 records, ``--concurrency`` at a time:
enough that the previous burst's batches weigh nothing left in the queue's fit), reads the
model's queue estimate for fifteen 100-row requests queued (what the last of a burst of 16
meets: each is a call of its own), then sends that burst, 16 requests of 100 rows at once,
and counts the 503s. Reports the estimates and the bursts' real time.

``--text-dtype str`` fits the pipeline on text columns of pandas 3's default ``str`` dtype
(on pandas 2.3 with its ``future.infer_string`` option, which pandas 3 makes the default),
not ``object``.

``server`` (any tree, for an A/B: run with ``PYTHONPATH`` at each tree's ``src``, as
``shapes.py`` says): the real ASGI app in this process with the model deployed alone (log
on, batches of up to 64), each of ``--shapes`` (v1 records by default; v1 columns, and one
v2 JSON tensor per column) of ``--rows`` rows (1 and 100) from ``--concurrency`` coroutines;
the loop thread's CPU per request and req/s, medians of rounds.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/frames.py [--rounds 5] [--requests 1000]
      [--only components|server|admission] [--rows 1 100] [--shapes "v1 records" "v1 columns" ...]
      [--text-dtype object|str]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import harness  # the in-process driver (benchmarks/harness.py)

ENDPOINT = "frames"
TEXT = {"color": ["red", "green", "blue"], "city": ["oslo", "lima", "pune", "kobe"]}


def fit(text_dtype: str = "object") -> tuple[Any, Any, Any]:
    """The pipeline, its training frame (text columns of ``text_dtype``) and labels."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(6)})
    frame["n0"] = rng.integers(0, 10, n)
    frame["n1"] = rng.integers(0, 100, n)
    frame["color"] = rng.choice(TEXT["color"], n).astype(object)
    frame["city"] = rng.choice(TEXT["city"], n).astype(object)
    frame["plan"] = rng.choice(["free", "pro"], n).astype(object)
    frame = frame.astype({"color": text_dtype, "city": text_dtype, "plan": text_dtype})
    frame["member"] = rng.random(n) < 0.5
    labels = ((frame["f0"] > 0) ^ frame["member"]).astype(int)
    numbers = [*(f"f{i}" for i in range(6)), "n0", "n1"]
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["color", "city", "plan"]),
            ("numbers", StandardScaler(), numbers),
            ("flags", "passthrough", ["member"]),
        ]
    )
    return make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, labels), frame, labels


def records(frame: Any, rows: int, start: int = 0) -> list[dict[str, Any]]:
    part = frame.iloc[start : start + rows].astype(object)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in
            part.to_dict("records")]  # fmt: skip


def components(model: Any, validator: Any, frame: Any, rounds: int) -> None:
    from dockyard.schema.validation import FrameColumns
    from dockyard.serving.calls import concat_rows

    cases = {
        "64 requests of 1 row": [records(frame, 1, i) for i in range(64)],
        "4 requests of 100 rows": [records(frame, 100, 100 * i) for i in range(4)],
    }
    times: dict[tuple[str, str, str], list[float]] = {}

    def timed(key: tuple[str, str, str], step: Any) -> Any:
        started = time.perf_counter()
        out = step()
        times.setdefault(key, []).append((time.perf_counter() - started) * 1e3)
        return out

    for _ in range(rounds + 1):  # the first round warms
        for case, requests in cases.items():
            for path in ("before", "now"):
                if path == "before":
                    parts = timed((case, path, "validate"), lambda r=requests: [
                        validator.validate(x).data for x in r])  # fmt: skip
                    joined = timed((case, path, "join"), lambda p=parts: concat_rows(p))
                else:
                    parts = timed((case, path, "validate"), lambda r=requests: [
                        validator.validate(x, as_columns=True).data for x in r])  # fmt: skip
                    joined = timed(
                        (case, path, "join"), lambda p=parts: FrameColumns.join(p).frame()
                    )
                if path == "before":
                    timed((case, path, "model"), lambda j=joined: (model.predict(j),
                          model.predict_proba(j)))  # fmt: skip
                else:
                    timed((case, path, "model"), lambda j=joined: model.predict_with_proba(j))
    print(f"One batch, ms (median of {rounds} interleaved rounds):\n")
    print("| batch | step | before | now | now ÷ before |")
    print("|---|---|---|---|---|")
    for case in cases:
        total = {"before": 0.0, "now": 0.0}
        for step in ("validate", "join", "model"):
            before, now = (statistics.median(times[(case, p, step)][1:]) for p in total)
            total["before"] += before
            total["now"] += now
            print(f"| {case} | {step} | {before:.2f} | {now:.2f} | {now / before:.2f} |")
        before, now = total["before"], total["now"]
        print(f"| {case} | **all** | {before:.2f} | {now:.2f} | {now / before:.2f} |")
    print()


async def _started(home: Path) -> Any:
    """The app ``dockyard serve`` runs, on the registry at ``home``, started."""
    os.environ["DOCKYARD_HOME"] = str(home)
    import dockyard
    from dockyard.server.app import create_app
    from dockyard.settings import Settings

    print(f"dockyard from {Path(dockyard.__file__).parent}")
    app = create_app(Settings())
    await app.server.start()
    return app


async def server(home: Path, frame: Any, args: argparse.Namespace) -> None:
    app = await _started(home)
    live = app.server
    plan = [
        (shape, rows, path, body, count)
        for rows, count in (
            (r, args.requests if r == 1 else max(args.requests // 10, 1)) for r in args.rows
        )
        for shape, (path, body) in bodies(frame, rows).items()
        if shape in args.shapes
    ]
    figures: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        while not live.manager.started:
            await asyncio.sleep(0.1)
        for _, _, path, body, count in plan:
            await harness.drive(app, path, body, max(count // 4, 1), args.concurrency)
        for _ in range(args.rounds):
            for shape, rows, path, body, count in plan:
                cpu = time.thread_time()
                seconds = await harness.drive(app, path, body, count, args.concurrency)
                cpu_us = (time.thread_time() - cpu) / count * 1e6
                figures.setdefault((shape, rows), []).append((count / seconds, cpu_us))
    finally:
        await live.stop()
    print(f"\n{args.concurrency} concurrent, median of {args.rounds} rounds:\n")
    print("| shape | rows | loop CPU µs/request | req/s |")
    print("|---|---|---|---|")
    for (shape, rows), values in figures.items():
        cpu = statistics.median(v[1] for v in values)
        rate = statistics.median(v[0] for v in values)
        print(f"| {shape} | {rows} | {cpu:.0f} | {rate:,.0f} |")


async def admission(home: Path, frame: Any, args: argparse.Namespace) -> None:
    app = await _started(home)
    live = app.server
    one, burst = bodies(frame, 1)["v1 records"], bodies(frame, 100)["v1 records"]
    estimates: list[float] = []
    took: list[float] = []
    refused: list[int] = []
    try:
        while not live.manager.started:
            await asyncio.sleep(0.1)
        queue = live.manager.endpoints[ENDPOINT].routes[0][0].batcher.admission
        for _ in range(args.rounds * 5):
            await harness.drive(app, *one, args.requests, args.concurrency)
            estimates.append(queue.wait_s(1500, 15, 1500))  # fifteen 100-row calls ahead
            took.append(await harness.drive(app, *burst, 16, 16, refused=refused))
    finally:
        await live.stop()
    estimates.sort()
    took.sort()
    print(
        f"\n{len(took)} cycles of {args.requests:,} one-row requests, then 16 requests of 100 "
        "rows at once:"
    )
    median = statistics.median(estimates) * 1e3
    print(
        f"  estimated wait for fifteen 100-row requests: median {median:.0f} ms, max "
        f"{estimates[-1] * 1e3:.0f} ms (the bound: 1,000 ms)"
    )
    print(
        f"  the bursts took: median {statistics.median(took) * 1e3:.0f} ms, max "
        f"{took[-1] * 1e3:.0f} ms; refused: {len(refused)} of {16 * len(took)} requests"
    )


SHAPES = ("v1 records", "v1 columns", "v2 JSON per column")
_V2_TYPES = {"f": "FP64", "i": "INT64", "b": "BOOL", "O": "BYTES"}


def bodies(frame: Any, rows: int) -> dict[str, tuple[str, bytes]]:
    """Every shape's request for the first ``rows`` rows: v1 records and columns, and one v2
    JSON tensor per column (``FP64``, ``INT64``, ``BOOL``, text as ``BYTES``)."""
    part = records(frame, rows)
    columns = {name: [record[name] for record in part] for name in frame.columns}
    v1, v2 = f"/v1/endpoints/{ENDPOINT}/predict", f"/v2/models/{ENDPOINT}/infer"
    tensors = [
        {"name": name, "shape": [rows], "datatype": _V2_TYPES[frame[name].dtype.kind],
         "data": values}
        for name, values in columns.items()
    ]  # fmt: skip
    return {
        "v1 records": (v1, json.dumps({"instances": part}).encode()),
        "v1 columns": (v1, json.dumps({"inputs": columns}).encode()),
        "v2 JSON per column": (v2, json.dumps({"inputs": tensors}).encode()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="Per 1-row run.")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100], help="Server runs.")
    parser.add_argument("--only", choices=["components", "server", "admission"], default=None)
    parser.add_argument(
        "--shapes", nargs="+", choices=SHAPES, default=["v1 records"], help="Server runs."
    )
    parser.add_argument(
        "--text-dtype",
        choices=["object", "str"],
        default="object",
        help="The text columns' dtype: object (pandas 2's default) or str (pandas 3's).",
    )
    args = parser.parse_args()
    if args.text_dtype == "str":
        import pandas as pd

        if pd.__version__ < "3":  # pandas 3's default text dtype, on pandas 2.3
            pd.set_option("future.infer_string", True)

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry
    from dockyard.schema import Signature, Validator
    from dockyard.settings import Settings

    print(harness.describe_machine())
    model, frame, labels = fit(args.text_dtype)
    with tempfile.TemporaryDirectory() as work:
        home = Path(work) / "home"
        with Registry.open(Settings(home=home, user="bench")) as registry:
            version = registry.register(model, "mixed", sample=frame, y=labels, accelerate=False)
            loaded = registry.load(version.ref).model  # what the server calls
            spec = DeploymentSpec.parse({"routes": [{"model": version.ref}]})
            DeploymentStore(registry.db).put(ENDPOINT, spec, actor="bench")
        if args.only in (None, "components"):
            validator = Validator(Signature.from_dict(version.signature))
            components(loaded, validator, frame, args.rounds)
        if args.only in (None, "server"):
            asyncio.run(server(home, frame, args))
        if args.only == "admission":
            asyncio.run(admission(home, frame, args))


if __name__ == "__main__":
    main()
