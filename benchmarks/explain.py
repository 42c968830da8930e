"""Explanations: how fast, and whether they slow predictions.

1. Exact tree explanations, rows per second: ``RegisteredModel.explain`` (validation, the
   method's choice, the additivity check, the JSON-ready result) against calling ``shap``'s
   tree explainer directly on the same model in the same process — a 100-tree forest
   (shap's TreeExplainer on both sides) and a 100-tree XGBoost model (XGBoost's own
   ``pred_contribs`` for Dockyard). Also native ``pred_contribs`` against shap's
   ``TreeExplainer`` on the XGBoost model.
2. Predict latency on one ``dockyard serve`` with and without explain load: closed-loop
   one-row predictions from ``--clients`` threads, p50/p99, while another thread sends
   ``--explain-rows``-row explain requests back to back (or nothing). ``--rounds`` pairs of
   phases, alone and loaded in turn (ABAB), after an uncounted warm-up; p99 per phase and
   over each side's pooled requests.

Run: ``.venv/bin/python benchmarks/explain.py [--only-latency] [--rounds 3] [--seconds 15]``
(about three minutes). The machine is shared:
read the ratios, measured side by side in one run, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Server, free_port

FEATURES = 20


def _best_rate(fn: Any, rows: int, repeats: int) -> float:
    """Rows per second of the median of ``repeats`` timed calls (after a warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def throughput(registry: Any, X: Any, shap: Any, rows: int, repeats: int) -> list[dict[str, Any]]:
    sample = X.iloc[:rows]
    results = []
    for name in ("rf", "xgb"):
        registered = registry.load(name)
        model = registered.model.estimator if name == "rf" else registered.model.predictor
        explainer = shap.TreeExplainer(model)

        def direct(explainer: Any = explainer) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return explainer.shap_values(sample, check_additivity=False)

        ours = _best_rate(lambda registered=registered: registered.explain(sample), rows, repeats)
        theirs = _best_rate(direct, rows, repeats)
        method = registered.explain(sample.iloc[:1]).method
        results.append(
            {"model": name, "method": method, "dockyard_rows_s": ours, "shap_rows_s": theirs}
        )
    return results


def latency(
    home: Path, clients: int, seconds: float, explain_rows: int, X: Any, rounds: int
) -> dict[str, Any]:
    """``rounds`` pairs of phases, alone then with explain load (ABAB...), after a warm-up
    phase that is not counted: interleaving spreads the machine's drift over both sides."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1/endpoints/rf"
    row = {"instances": [X.iloc[0].to_dict()]}
    batch = {"instances": X.iloc[:explain_rows].to_dict(orient="records")}
    server = Server(
        [sys.executable, "-m", "dockyard", "serve", "--port", str(port), "--log-level", "warning"],
        env={"DOCKYARD_HOME": str(home), "DOCKYARD_EXPLAIN_MAX_ROWS": str(explain_rows)},
        cwd=home,
        log=home / "serve.log",
    )
    server.start(f"{base}/predict", json.dumps(row).encode(), timeout_s=120)
    pooled: dict[str, list[float]] = {"alone": [], "with explain load": []}
    phases: list[dict[str, Any]] = []
    try:
        warm, _ = _phase(base, row, batch, clients, min(seconds, 5.0))  # starts the worker
        print(f"  warm-up (not counted): {warm}", flush=True)
        for k in range(rounds):
            for label, load in (("alone", False), ("with explain load", True)):
                summary, flat = _phase(base, row, batch if load else None, clients, seconds)
                pooled[label].extend(flat)
                phases.append({"round": k + 1, "phase": label, **summary})
                print(f"  round {k + 1}, {label}: {summary}", flush=True)
    finally:
        server.stop()
    return {"phases": phases, "pooled": {k: _summary(v) for k, v in pooled.items()}}


def _summary(latencies_ms: list[float]) -> dict[str, float | int]:
    flat = sorted(latencies_ms)
    return {
        "requests": len(flat),
        "p50_ms": round(flat[len(flat) // 2], 2),
        "p99_ms": round(flat[int(len(flat) * 0.99)], 2),
    }


def _phase(
    base: str, row: Any, batch: Any, clients: int, seconds: float
) -> tuple[dict[str, float | int | None], list[float]]:
    """Closed-loop predictions from ``clients`` threads for ``seconds``; with ``batch``, one
    more thread sends explain requests back to back."""
    import httpx

    stop = threading.Event()
    explained = [0]
    samples: list[list[float]] = [[] for _ in range(clients)]

    def explain_loop() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                answer = client.post(f"{base}/explain", json=batch)
                assert answer.status_code == 200, answer.text
                explained[0] += len(batch["instances"])

    def predict_loop(k: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                answer = client.post(f"{base}/predict", json=row)
                samples[k].append(time.perf_counter() - started)
                assert answer.status_code == 200

    threads = [threading.Thread(target=predict_loop, args=(k,)) for k in range(clients)]
    if batch is not None:
        threads.append(threading.Thread(target=explain_loop))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    flat = [s * 1000 for part in samples for s in part]
    summary: dict[str, float | int | None] = {**_summary(flat)}
    summary["explained_rows_s"] = round(explained[0] / seconds, 1) if batch is not None else None
    return summary, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="Rows per explain call (part 1).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--explain-rows", type=int, default=50)
    parser.add_argument(
        "--rounds", type=int, default=3, help="Alone / with-load phase pairs (part 2)."
    )
    parser.add_argument("--only-latency", action="store_true", help="Part 2 only.")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import xgboost
    from sklearn.ensemble import RandomForestClassifier

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.explain.methods import import_shap
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    shap = import_shap()
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, FEATURES)), columns=[f"x{i}" for i in range(FEATURES)])
    y = (X.x0 + X.x1 * X.x2 + rng.normal(size=len(X)) > 0).astype(int)
    models = {
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0).fit(X, y),
        "xgb": xgboost.XGBClassifier(n_estimators=100, max_depth=6).fit(X, y),
    }
    with tempfile.TemporaryDirectory() as work:
        home = Path(work) / "home"
        with Registry.open(Settings(home=home, user="bench")) as registry:
            for name, model in models.items():
                started = time.perf_counter()
                registry.register(model, name, sample=X, y=y)
                print(f"registered {name} in {time.perf_counter() - started:.1f} s", flush=True)
            DeploymentStore(registry.db).put(
                "rf",
                DeploymentSpec.parse({"routes": [{"model": "rf@1.0.0", "weight": 100}]}),
                actor="bench",
            )
            measured = (
                [] if args.only_latency else throughput(registry, X, shap, args.rows, args.repeats)
            )
            if measured:
                print("1. exact tree explanations, rows/s (median of repeats)", flush=True)
            for found in measured:
                ratio = found["dockyard_rows_s"] / found["shap_rows_s"]
                print(
                    f"  {found['model']}: dockyard {found['dockyard_rows_s']:,.0f} "
                    f"({found['method']}), shap TreeExplainer {found['shap_rows_s']:,.0f}, "
                    f"ratio {ratio:.2f}",
                    flush=True,
                )
        print("2. predict latency with and without explain load", flush=True)
        result = latency(home, args.clients, args.seconds, args.explain_rows, X, args.rounds)
        alone = [p["p99_ms"] for p in result["phases"] if p["phase"] == "alone"]
        loaded = [p["p99_ms"] for p in result["phases"] if p["phase"] != "alone"]
        pooled = result["pooled"]
        ratio = pooled["with explain load"]["p99_ms"] / pooled["alone"]["p99_ms"]
        print(
            f"  pooled: alone {pooled['alone']}, with explain load {pooled['with explain load']}; "
            f"p99 ratio {ratio:.2f}",
            flush=True,
        )
        print(
            f"  p99 per phase, alone: {alone} (spread {max(alone) / min(alone):.2f}×); "
            f"with load: {loaded}; per round (load / alone): "
            f"{[round(b / a, 2) for a, b in zip(alone, loaded, strict=True)]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
