"""What a shadow costs the caller: one-row v1 predictions against a served endpoint split
80/20 over two logistic regressions, with a decision tree shadowing every request and
without it, in interleaved rounds (the machine's noise hits both alike).

A shadow answers after the caller's answer is sent, off the event loop, so the caller's
latency should stay about the same; this script measures by how much it does not. (This
figure was once a timing assert in ``tests/e2e/test_deployments.py``; speed claims live
here.) The spec is switched through the control plane (``PUT /api/deployments/clf``) between
rounds, and each round waits until the server serves the new one.

Run:  .venv/bin/python benchmarks/shadow.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

FEATURES = ["a", "b", "c"]
ROUTES = [{"model": "clf@1.0.0", "weight": 80}, {"model": "clf@1.0.1", "weight": 20}]
SPECS: dict[str, dict[str, Any]] = {
    "shadow": {"routes": ROUTES, "shadows": [{"model": "clf@1.0.2"}]},
    "none": {"routes": ROUTES},
}


def registry(home: Path) -> None:
    """Three versions of a classifier over three float columns (two regressions, a tree)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from dockyard.registry import Registry
    from dockyard.settings import Settings

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=FEATURES)
    y = (X["a"] > 0).astype(int)
    with Registry.open(Settings(home=home, user="bench")) as opened:
        opened.register(LogisticRegression().fit(X, y), "clf", sample=X, y=y)
        opened.register(LogisticRegression(C=0.05).fit(X, y), "clf", sample=X, y=y)
        opened.register(DecisionTreeClassifier(max_depth=2).fit(X, y), "clf", sample=X, y=y)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"condition not met in {timeout} s")
        time.sleep(0.05)


def switch(client: httpx.Client, variant: str) -> None:
    """Deploy the variant's spec and wait until the server serves it."""
    answer = client.put("/api/deployments/clf", json={"spec": SPECS[variant]})
    answer.raise_for_status()
    wanted = variant == "shadow"
    wait_for(lambda: bool(client.get("/api/deployments/clf").json()["shadowing"]) == wanted)


def latencies(client: httpx.Client, rows: np.ndarray) -> list[float]:
    """Seconds per request, one row each, each with its own sticky key."""
    took = []
    for i, row in enumerate(rows):
        body = {"instances": [dict(zip(FEATURES, row.tolist(), strict=True))]}
        started = time.perf_counter()
        answer = client.post(
            "/v1/endpoints/clf/predict", json=body, headers={"x-dockyard-key": f"caller-{i}"}
        )
        took.append(time.perf_counter() - started)
        answer.raise_for_status()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dockyard-shadow-") as scratch:
        home = Path(scratch) / "home"
        registry(home)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        env |= {"DOCKYARD_HOME": str(home), "DOCKYARD_POLL_INTERVAL_S": "0.2"}
        server = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _ready(url))
            rows = np.random.default_rng(0).normal(size=(args.requests, 3))
            took: dict[str, list[float]] = {variant: [] for variant in SPECS}
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(args.rounds):
                    for variant in SPECS:
                        switch(client, variant)
                        latencies(client, rows[:20])  # warm the variant's models
                        took[variant] += latencies(client, rows)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

    print(f"{args.rounds} rounds x {args.requests} one-row requests per variant, sequential")
    print(f"{'variant':<8} {'median ms':>10} {'p99 ms':>8}")
    for variant, seconds in took.items():
        p99 = float(np.percentile(seconds, 99))
        print(f"{variant:<8} {statistics.median(seconds) * 1e3:>10.3f} {p99 * 1e3:>8.3f}")
    ratio = statistics.median(took["shadow"]) / statistics.median(took["none"])
    print(f"median with a shadow / without: {ratio:.3f}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
