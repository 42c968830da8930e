"""gRPC against HTTP on the same model, and native against ONNX against compressed ONNX.

1. **Protocols.** One ``dockyard serve --grpc-port`` process serving the logistic regression
   (``harness.fit_models``: 20 features, its ONNX twin) and, when MLServer 1.7 is installed in
   a separate venv (``--mlserver-venv``, default ``/tmp/mlserver-venv``; never the repo's
   dependencies), MLServer on the same joblib model. The unmodified ``tritonclient`` clients
   (``.grpc``; ``.http`` with binary tensors, JSON for MLServer, which lacks the binary
   extension; one client, requests one after another) send
   1-row and 100-row requests: per-request latency (median, p99) and requests per second,
   each server over both protocols in the same run. Baseline: Dockyard over HTTP.
2. **Compressed models.** For the logistic regression and the random forest (100 trees,
   depth 10): file size and one-row latency in this process of the native scikit-learn model,
   the exported ONNX file (``dockyard export``) and its int8 and fp16 variants, each timed
   through onnxruntime directly. Baseline: the native model.

Short runs (the machine is shared with other work): ``--seconds`` per cell (default 3).

(Not named grpc.py: run as a script, its folder comes first on sys.path and the file would
shadow the grpc package.)

Run:  .venv/bin/python benchmarks/grpc_serving.py [--seconds 3] [--mlserver-venv /tmp/mlserver-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

WORK = harness.HERE / ".work" / "grpc"


def timed(call: Callable[[], Any], seconds: float) -> dict[str, float]:
    """Call ``call`` one after another for ``seconds`` (after a short warm-up)."""
    for _ in range(20):
        call()
    latencies: list[float] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {
        "median_us": statistics.median(latencies) * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99) - 1] * 1e6,
        "per_s": len(latencies) / sum(latencies),
        "n": len(latencies),
    }


def clients(
    http_port: int, grpc_port: int, model: str, rows: Any, binary: bool
) -> dict[str, Callable[[], Any]]:
    """One call over each protocol; HTTP in binary tensors, or JSON for a server without the
    binary extension (MLServer 1.7)."""
    import tritonclient.grpc as tgrpc
    import tritonclient.http as thttp

    http = thttp.InferenceServerClient(f"127.0.0.1:{http_port}")
    grpc = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    http_input = thttp.InferInput("input-0", list(rows.shape), "FP64")
    http_input.set_data_from_numpy(rows, binary_data=binary)
    wanted = [thttp.InferRequestedOutput("predict", binary_data=binary)]
    grpc_input = tgrpc.InferInput("input-0", list(rows.shape), "FP64")
    grpc_input.set_data_from_numpy(rows)

    def over_http() -> Any:
        return http.infer(model, [http_input], outputs=wanted).as_numpy("predict")

    def over_grpc() -> Any:
        return grpc.infer(model, [grpc_input]).as_numpy("predict")

    return {"HTTP": over_http, "gRPC": over_grpc}


def protocols(args: argparse.Namespace, X: Any, joblib_path: Path, base: Path) -> list[str]:
    import numpy as np

    lines = [
        "| server, protocol | rows | median µs | p99 µs | req/s | ÷ Dockyard HTTP (req/s) |",
        "|---|---|---|---|---|---|",
    ]
    servers: list[tuple[str, harness.Server, int, int, str]] = []
    http_port, grpc_port = harness.free_port(), harness.free_port()
    home = harness.dockyard_home(base, WORK, "lr", {"routes": [{"model": "lr@1.0.0"}]})
    dockyard = harness.Server(
        [
            *(sys.executable, "-m", "dockyard", "serve", "--port", str(http_port)),
            *("--grpc-port", str(grpc_port), "--log-level", "warning"),
        ],
        env={"DOCKYARD_HOME": str(home)},
        cwd=WORK,
        log=WORK / "logs" / "dockyard.log",
    )
    one = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": list(X[0])}]}
    ).encode()
    dockyard.start(f"http://127.0.0.1:{http_port}/v2/models/lr/infer", one, 120)
    servers.append(("Dockyard", dockyard, http_port, grpc_port, "lr"))
    mlserver_bin = args.mlserver_venv / "bin" / "mlserver"
    if mlserver_bin.exists():
        folder = WORK / "mlserver"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "model").mkdir(parents=True)
        m_http, m_grpc = harness.free_port(), harness.free_port()
        settings = {"host": "127.0.0.1", "http_port": m_http, "grpc_port": m_grpc}
        settings["metrics_port"] = harness.free_port()
        (folder / "settings.json").write_text(json.dumps(settings))
        (folder / "model" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "model",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(joblib_path), "version": "v1"},
                }
            )
        )
        mlserver = harness.Server(
            [str(mlserver_bin), "start", str(folder)],
            env={},
            cwd=folder,
            log=WORK / "logs" / "mlserver.log",
        )
        mlserver.start(f"http://127.0.0.1:{m_http}/v2/models/model/infer", one, 180)
        servers.append(("MLServer 1.7", mlserver, m_http, m_grpc, "model"))
    else:
        print(f"  (no MLServer at {mlserver_bin}: Dockyard only)", flush=True)
    try:
        for count in (1, 100):
            rows = np.ascontiguousarray(X[:count], dtype=np.float64)
            baseline = None
            for name, _, h_port, g_port, model in servers:
                binary = name == "Dockyard"
                for protocol, call in clients(h_port, g_port, model, rows, binary).items():
                    result = timed(call, args.seconds)
                    if baseline is None:
                        baseline = result["per_s"]
                    lines.append(
                        f"| {name}, {protocol} | {count} | {result['median_us']:,.0f} | "
                        f"{result['p99_us']:,.0f} | {result['per_s']:,.0f} | "
                        f"{result['per_s'] / baseline:.2f}× |"
                    )
                    print(lines[-1], flush=True)
    finally:
        for _, server, *_ in servers:
            server.stop()
    return lines


def compressed(args: argparse.Namespace, X: Any, models: dict[str, Any], base: Path) -> list[str]:
    import numpy as np
    import onnxruntime as ort

    from dockyard.registry import Registry
    from dockyard.registry.export import export_onnx
    from dockyard.settings import Settings

    lines = [
        "| model | form | size | one-row median µs | ÷ native (latency) | max proba diff |",
        "|---|---|---|---|---|---|",
    ]
    one = np.ascontiguousarray(X[:1])
    with Registry.open(Settings(home=base, user="bench")) as registry:
        for name, model in models.items():
            native = timed(lambda m=model: m.predict_proba(one), args.seconds)
            native_size = registry.get_version(f"{name}@1.0.0").size
            lines.append(
                f"| {harness.MODELS[name]} | native (skops) | {native_size / 1024:,.0f} KiB | "
                f"{native['median_us']:,.1f} | 1.00× | — |"
            )
            print(lines[-1], flush=True)
            for quantization in (None, "int8", "fp16"):
                try:
                    exported = export_onnx(registry, f"{name}@1.0.0", quantization=quantization)
                except Exception as exc:  # a compression the converter cannot do: say so
                    lines.append(f"| {harness.MODELS[name]} | {quantization} | refused: {exc} |")
                    continue
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                session = ort.InferenceSession(
                    exported.data, options, providers=["CPUExecutionProvider"]
                )
                feed = {session.get_inputs()[0].name: one.astype(_dtype(session))}
                result = timed(lambda s=session, f=feed: s.run(None, f), args.seconds)
                diff = exported.comparison.max_proba_diff
                lines.append(
                    f"| {harness.MODELS[name]} | ONNX{f' {quantization}' if quantization else ''} "
                    f"| {len(exported.data) / 1024:,.1f} KiB | {result['median_us']:,.1f} | "
                    f"{result['median_us'] / native['median_us']:.3f}× | "
                    f"{'—' if diff is None else f'{diff:.2g}'} |"
                )
                print(lines[-1], flush=True)
    return lines


def _dtype(session: Any) -> str:
    return "float32" if session.get_inputs()[0].type == "tensor(float)" else "float64"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measured cell")
    parser.add_argument("--mlserver-venv", type=Path, default=Path("/tmp/mlserver-venv"))
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(harness.describe_machine(), flush=True)
    models, X, y = harness.fit_models(WORK)
    base = harness.register_dockyard(WORK, models, X, y)
    report = ["## Protocols", ""]
    report += protocols(args, X, WORK / "models" / "lr.joblib", base)
    report += ["", "## Compressed models", ""]
    report += compressed(args, X, models, base)
    (WORK / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
