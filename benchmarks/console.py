"""Console page times on a large registry: 10,000 versions, 50 endpoints and a million
logged predictions.

A registry with 100 models of 50 versions each and one model (``many``) of 5,000, 50
endpoints deployed, and ``--predictions`` predictions logged for endpoint ``ep-07`` over the
last 48 hours, written the way ``benchmarks/monitoring.py`` writes them (the prediction
log's own ``Batch`` → ``to_table`` → ``MonitoringStore.write_predictions`` path, one segment
per hour and ``--segment-rows`` rows). A real ``dockyard serve`` on loopback (auth off)
serves it. Each console page is fetched ``--repeat`` times one after another with httpx;
the p50 and p95 of the whole request (the client's wall time) are reported beside two
baselines fetched the same way in the same run: ``/healthz`` (the server's cheapest route)
and ``/api/models`` (the API's unpaged list of the same models, JSON).

A monitoring page's first visit starts its report off the request path and answers
"computing"; the benchmark times that first answer, then polls the page's
``report.json`` until the report is ready (the time a browser waits for it, and the cost
each request paid before reports were kept), then times the page as above. The server
recomputes a viewed report every ``DOCKYARD_MONITOR_INTERVAL_S`` (30 s) in the background,
so a run that long includes requests answered while a recomputation runs.

Run:  .venv/bin/python benchmarks/console.py [--repeat 40] [--small 100] [--many 5000]
      [--predictions 1000000]
"""

from __future__ import annotations

import argparse
import html
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PAGES = [
    "/healthz",
    "/api/models",
    "/ui",
    "/ui?sort=registered&desc=true",
    "/ui?q=model-04",
    "/ui?page=4",
    "/ui/models/many",
    "/ui/models/many?page={pages}",
    "/ui/models/many?compare=1.0.0&compare=1.0.{last}",
    "/ui/models/many/versions/1.0.{last}",
    "/ui/deployments",
    "/ui/deployments/ep-07",
    "/ui/events",
    "/ui/events?endpoint=ep-07",
    "/ui/live.json",
    "/ui/tokens",
    "/ui/monitoring",
    "/ui/monitoring/ep-07?window=2d",
    "/ui/monitoring/ep-07?window=1d&every=day",
]
MONITORED = "ep-07"


def build(home: Path, small: int, many: int, endpoints: int) -> tuple[int, Any, Any]:
    """The registry: one real model (what the endpoints serve), ``small`` models of 50
    metadata-only versions and ``many`` versions of ``many``; returns the version count,
    the model and the :class:`Source` the server would log ``ep-07``'s predictions under."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.monitoring.records import Source
    from dockyard.registry import Registry
    from dockyard.registry.types import NewVersion
    from dockyard.schema.labels import label_text
    from dockyard.schema.signature import Signature
    from dockyard.settings import Settings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    y = (X[:, 0] > 0).astype(int)
    count = 0
    model = LogisticRegression().fit(X, y)
    with Registry.open(Settings(home=home, user="bench")) as registry:
        seed = registry.register(model, "seed", sample=X, y=y)
        count += 1
        new = NewVersion(
            runtime=seed.runtime,
            digest=seed.digest,
            size=seed.size,
            signature=seed.signature,
            metrics={"auc": 0.9, "accuracy": 0.8},
        )
        for i in range(small):
            for _ in range(50):
                registry.store.add_version(f"model-{i:03d}", new, actor="bench")
                count += 1
            registry.set_alias(f"model-{i:03d}@latest", "staging")
        for _ in range(many):
            registry.store.add_version("many", new, actor="bench")
            count += 1
        store = DeploymentStore(registry.db)
        for e in range(endpoints):
            spec = DeploymentSpec.parse({"routes": [{"model": "seed@1.0.0"}], "accelerate": False})
            deployment = store.put(f"ep-{e:02d}", spec, actor="bench")
            if deployment.name == MONITORED:
                revision = deployment.revision
        assert seed.signature is not None
        source = Source(  # as LiveModel.source_for builds it for a logged endpoint
            endpoint=MONITORED,
            revision=revision,
            model=seed.model,
            version=seed.version,
            columns=Signature.from_dict(seed.signature).column_names,
            classes=tuple(str(label_text(c)) for c in model.classes_),
            positive=1,
        )
    return count, model, source


def log_predictions(home: Path, model: Any, source: Any, records: int, segment_rows: int) -> None:
    """``records`` predictions of ``model`` for ``ep-07`` over the last 48 hours, through the
    prediction log's own path (``benchmarks/monitoring.py``'s generator); inputs drift in
    the last 3 hours."""
    import numpy as np
    from monitoring import DRIFT_HOURS, MODEL_BATCH, SHIFTS, request_id, segments

    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.records import Batch, ModelCall
    from dockyard.server.services import monitoring_store
    from dockyard.settings import Settings

    store = monitoring_store(Settings(home=home, user="bench"))
    rng = np.random.default_rng(1)
    end = time.time()
    weights, bias = model.coef_[0], model.intercept_[0]
    features = len(weights)
    for first, times, hour in segments(records, segment_rows, end):
        n = len(times)
        X = rng.normal(size=(n, features))
        for index, shift in SHIFTS.items():
            X[times >= end - DRIFT_HOURS * 3600, index] += shift
        proba = 1.0 / (1.0 + np.exp(-(X @ weights + bias)))
        predicted = (proba >= 0.5).astype(np.int64)
        probabilities = np.column_stack([1.0 - proba, proba])
        latencies = rng.exponential(0.002, n).tolist()
        at = times.tolist()
        batch = Batch(source)
        for start in range(0, n, MODEL_BATCH):  # one model call per server batch
            stop = min(start + MODEL_BATCH, n)
            call = ModelCall(X[start:stop], predicted[start:stop], probabilities[start:stop])
            for i in range(start, stop):  # the request path: one add per request
                batch.add(request_id("bench", first + i), at[i], latencies[i], call, i - start, 1)
        store.write_predictions(
            MONITORED, to_table(batch), datetime.fromtimestamp(hour * 3600, UTC)
        )


def measure(url: str, repeat: int, many: int) -> list[dict[str, Any]]:
    import httpx

    rows = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for page in PAGES:
            path = page.format(last=many - 1, pages=max(1, many // 25))
            start = time.perf_counter()
            answer = client.get(path)  # warm: templates compiled, caches filled
            first_ms = (time.perf_counter() - start) * 1000
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            ready_s = None
            if 'data-poll="' in answer.text:  # a monitoring report computing off the request
                poll = html.unescape(answer.text.split('data-poll="', 1)[1].split('"', 1)[0])
                while not client.get(poll).json()["ready"]:
                    time.sleep(0.05)
                ready_s = time.perf_counter() - start
                answer = client.get(path)
                assert answer.status_code == 200
                assert 'id="report-state"' in answer.text
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                answer = client.get(path)
                samples.append(time.perf_counter() - start)
                assert answer.status_code == 200
            samples.sort()
            rows.append(
                {
                    "path": path,
                    "p50_ms": statistics.median(samples) * 1000,
                    "p95_ms": samples[min(len(samples) - 1, int(0.95 * len(samples)))] * 1000,
                    "bytes": len(answer.content),
                    "first_ms": first_ms,
                    "ready_s": ready_s,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--small", type=int, default=100, help="models of 50 versions")
    parser.add_argument("--many", type=int, default=5000, help="versions of 'many'")
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--predictions", type=int, default=1_000_000, help="logged for ep-07")
    parser.add_argument("--segment-rows", type=int, default=20_000)
    args = parser.parse_args()

    from _server import ServerProcess

    home = Path(tempfile.mkdtemp(prefix="dockyard-console-bench-"))
    try:
        start = time.perf_counter()
        versions, model, source = build(home, args.small, args.many, args.endpoints)
        built_s = time.perf_counter() - start
        start = time.perf_counter()
        log_predictions(home, model, source, args.predictions, args.segment_rows)
        logged_s = time.perf_counter() - start
        server = ServerProcess(home, env={"DOCKYARD_POLL_INTERVAL_S": "5"})
        try:
            server.wait_ready(timeout=300)
            rows = measure(server.url, args.repeat, args.many)
        finally:
            server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    health = next(r for r in rows if r["path"] == "/healthz")
    api = next(r for r in rows if r["path"] == "/api/models")
    print(
        f"{versions:,} versions in {args.small + 2} models, {args.endpoints} endpoints "
        f"(built in {built_s:.0f} s); {args.predictions:,} predictions logged for {MONITORED} "
        f"over 48 h (written in {logged_s:.0f} s); {args.repeat} sequential requests per page"
    )
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print()
    print("| page | p50 ms | p95 ms | p95 ÷ /healthz | p95 ÷ /api/models | bytes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['path']}` | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['p95_ms'] / health['p95_ms']:.1f}× | {r['p95_ms'] / api['p95_ms']:.2f}× | "
            f"{r['bytes']:,} |"
        )
    print()
    print("| monitoring page | first visit ms (answers 'computing') | report ready after s |")
    print("|---|---|---|")
    for r in rows:
        if r["ready_s"] is not None:
            print(f"| `{r['path']}` | {r['first_ms']:.1f} | {r['ready_s']:.2f} |")


if __name__ == "__main__":
    main()
