"""Console page times on a large registry: 10,000 versions and 50 endpoints.

A registry with 100 models of 50 versions each and one model (``many``) of 5,000, 50
endpoints deployed, served by a real ``dockyard serve`` on loopback (auth off). Each console
page is fetched ``--repeat`` times one after another with httpx; the p50 and p95 of the
whole request (the client's wall time) are reported beside two baselines fetched the same
way in the same run: ``/healthz`` (the server's cheapest route) and ``/api/models`` (the
API's unpaged list of the same models, JSON).

Run:  .venv/bin/python benchmarks/console.py [--repeat 40] [--small 100] [--many 5000]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
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
]


def build(home: Path, small: int, many: int, endpoints: int) -> int:
    """The registry: one real model (what the endpoints serve), ``small`` models of 50
    metadata-only versions and ``many`` versions of ``many``; returns the version count."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry
    from dockyard.registry.types import NewVersion
    from dockyard.settings import Settings

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    y = (X[:, 0] > 0).astype(int)
    count = 0
    with Registry.open(Settings(home=home, user="bench")) as registry:
        seed = registry.register(LogisticRegression().fit(X, y), "seed", sample=X, y=y)
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
            store.put(f"ep-{e:02d}", spec, actor="bench")
    return count


def measure(url: str, repeat: int, many: int) -> list[dict[str, Any]]:
    import httpx

    rows = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for page in PAGES:
            path = page.format(last=many - 1, pages=max(1, many // 25))
            answer = client.get(path)  # warm: templates compiled, caches filled
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
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
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--small", type=int, default=100, help="models of 50 versions")
    parser.add_argument("--many", type=int, default=5000, help="versions of 'many'")
    parser.add_argument("--endpoints", type=int, default=50)
    args = parser.parse_args()

    from _server import ServerProcess

    home = Path(tempfile.mkdtemp(prefix="dockyard-console-bench-"))
    try:
        start = time.perf_counter()
        versions = build(home, args.small, args.many, args.endpoints)
        built_s = time.perf_counter() - start
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
        f"(built in {built_s:.0f} s); {args.repeat} sequential requests per page"
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


if __name__ == "__main__":
    main()
