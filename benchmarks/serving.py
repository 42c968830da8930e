"""Serving under wrk: every input shape Dockyard takes, beside baselines and MLServer, with
the same request bodies for every server.

Servers, one at a time, each pinned to one core with ``taskset`` (wrk on another):

* baselines (``benchmarks/baselines/``, uvicorn with uvloop and httptools, one process): a
  bare ASGI app returning a constant, Starlette returning a constant, and the naive server
  (``starlette_onnx.py``: Starlette + onnxruntime, no validation) on the same ONNX file
  Dockyard serves. They get the v1 records body.
* Dockyard (``python -m dockyard serve``; validation, metrics and the prediction log on,
  default batching), each model's endpoint fed every input shape: v1 records, v1 row arrays,
  v1 columns, v2 JSON one 2-D tensor, v2 JSON one tensor per column, v2 binary 2-D, v2
  binary per column (``shapes.bodies``, the same bodies ``shapes.py`` sends in process).
* MLServer, when ``--mlserver-venv`` holds it (defaults, and adaptive batching of 64 rows
  within 2 ms), fed its native body: the v2 JSON 2-D tensor, byte for byte the body Dockyard
  gets for that shape. Install it outside the repository, e.g.
  ``python3 -m venv /tmp/mlserver-venv && /tmp/mlserver-venv/bin/pip install 'mlserver==1.7.*'
  'mlserver-sklearn==1.7.*' 'uvloop<0.22' scikit-learn==<this venv's version>``; without it
  the peer is skipped with a note.

For each server: ready time (process start to its first correct answer) and the peak RSS
over its process tree; for each body and row count: req/s, p50/p99 and errors. Ratios are
taken within this run: each shape against the fastest shape at its row count, Dockyard
against the naive server, and Dockyard's v2 JSON tensor against MLServer on the same body.

With ``--rounds 2`` every server runs twice, interleaved (all servers, then all again, a
fresh process each time), its bodies in reverse order the second time: what happens at a
moment of a server's life (Dockyard's first monitor pass, 30 s after its start, which
starts its monitor process) falls on other bodies in each round. A figure is then the mean
of its rounds' req/s (each round's beside it), the mean p50 and the highest p99.

Run:  .venv/bin/python benchmarks/serving.py [--duration 4] [--rows 1 100] [--models lr rf]
      [--connections 16] [--rounds 2] [--mlserver-venv /tmp/mlserver-venv]   (needs wrk)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness  # the shared benchmark library (benchmarks/harness.py)
import shapes  # every input shape's body (benchmarks/shapes.py)

CONSTANT_ASGI = "bare ASGI app returning a constant"
CONSTANT_STARLETTE = "Starlette returning a constant"
NAIVE = "naive Starlette + onnxruntime (no validation)"
DOCKYARD = "Dockyard"
MLSERVER = "MLServer 1.7 (defaults)"
MLSERVER_BATCHING = "MLServer 1.7 (adaptive batching 64, 2 ms)"
RECORDS, TENSOR = "v1 records", "v2 JSON 2-D tensor"

Body = tuple[str, bytes, list[tuple[bytes, bytes]]]


@dataclass
class Figure:
    server: str
    model: str
    shape: str
    rows: int
    connections: int
    requests_per_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    rounds: list[float] = field(default_factory=list)  # each round's req/s


@dataclass
class Target:
    """One server to start and the bodies to send it."""

    server: str
    model: str
    command: list[str]
    port: int
    bodies: dict[tuple[str, int], Body]  # (shape, rows) -> (path, body, headers)
    answer: tuple[str | int, ...] | None  # where the first label is in the JSON answer
    env: dict[str, str] = field(default_factory=dict)
    prepare: Any = None
    ready_s: list[float] = field(default_factory=list)  # a round each
    rss_mib: float = 0.0


# --- load -------------------------------------------------------------------------------------


def wrk_script(work: Path, name: str, body: Body) -> Path:
    """A wrk script that sends ``body`` read from a file (binary bodies hold any byte)."""
    folder = work / "wrk"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.body"
    data.write_bytes(body[1])
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k.decode()}"] = "{v.decode()}"' for k, v in body[2]]
    lines += [f'local f = io.open("{data}", "rb")', "wrk.body = f:read('*a')", "f:close()"]
    script = folder / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def post(url: str, body: Body) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    headers.update({k.decode(): v.decode() for k, v in body[2]})
    request = urllib.request.Request(url, data=body[1], headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError) as exc:
        return 0, str(exc).encode()


def label_at(answer: bytes, path: tuple[str | int, ...]) -> Any:
    value: Any = json.loads(answer)
    for key in path:
        value = value[key]
    return value


# --- servers ----------------------------------------------------------------------------------


def pinned(command: list[str], cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu, *command] if cpu and shutil.which("taskset") else command


def run_target(
    target: Target,
    args: argparse.Namespace,
    expected: dict[str, int],
    out: list[Figure],
    reverse: bool = False,
) -> None:
    if target.prepare is not None:
        target.prepare()
    log = args.work / "logs" / f"{target.server[:20]}-{target.model}.log".replace(" ", "-")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **target.env}
    base = f"http://127.0.0.1:{target.port}"
    first = next(iter(target.bodies.values()))
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            pinned(target.command, args.server_cpu),
            env=env,
            cwd=harness.HERE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = harness.Server(target.command, env={}, cwd=harness.HERE, log=log)
    server.process = process
    try:
        status, answer = 0, b""
        while time.monotonic() - started < args.start_timeout:
            if process.poll() is not None:
                raise RuntimeError(f"exited: {server.tail()}")
            status, answer = post(base + first[0], first)
            if status == 200:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"not answering ({status}: {answer[:200]!r}); {server.tail()}")
        target.ready_s.append(time.monotonic() - started)
        peak = [server.rss()]
        bodies = list(target.bodies.items())
        for (shape, rows), body in reversed(bodies) if reverse else bodies:
            status, answer = post(base + body[0], body)
            if status != 200:
                raise RuntimeError(f"{shape} × {rows}: HTTP {status}: {answer[:300]!r}")
            if target.answer is not None:
                where = ("outputs", 0, "data", 0) if body[0].startswith("/v2/") else target.answer
                label = label_at(answer, where)
                if label != expected[target.model]:
                    raise RuntimeError(f"{shape}: predicted {label!r}")
            script = wrk_script(args.work, f"{target.model}-{shape}-{rows}".replace(" ", "_"), body)
            for connections in args.connections:
                figure = Figure(target.server, target.model, shape, rows, connections)
                stop = threading.Event()

                def sample(stop: threading.Event = stop) -> None:
                    while not stop.wait(0.25):
                        peak.append(server.rss())

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                try:
                    if args.warmup:
                        load(base + body[0], script, connections, args.warmup, args)
                    output = load(base + body[0], script, connections, args.duration, args)
                finally:
                    stop.set()
                    sampler.join()
                run = harness.Run(target.server, target.model, connections)
                harness.parse_wrk(output, run)
                figure.requests_per_s, figure.p50_ms, figure.p99_ms = (
                    run.requests_per_s,
                    run.p50_ms,
                    run.p99_ms,
                )
                figure.errors = run.errors
                out.append(figure)
                print(
                    f"  {target.server[:44]:<44} {target.model} {shape:<22} ×{rows:<4} "
                    f"c={connections:<3} {figure.requests_per_s:>9,.0f} req/s  "
                    f"p99 {figure.p99_ms:7.2f} ms  errors {figure.errors}",
                    flush=True,
                )
        target.rss_mib = max(target.rss_mib, *peak)
    finally:
        server.stop()


def load(url: str, script: Path, connections: int, seconds: float, args: argparse.Namespace) -> str:
    return harness.wrk(url, script, connections, seconds, 1, 0, cpus=args.load_cpu)  # type: ignore[arg-type]


def targets(args: argparse.Namespace, X: Any, base: Path) -> list[Target]:
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(harness.HERE / "baselines")]
    flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level"]
    flags += ["warning", "--host", "127.0.0.1", "--port"]
    found: list[Target] = []
    for model in args.models:
        every = {
            (shape, rows): body
            for rows in args.rows
            for shape, body in shapes.bodies(X, rows, True, endpoint=model).items()
        }
        records = {key: ("/predict", *body[1:]) for key, body in every.items() if key[0] == RECORDS}
        if model == args.models[0]:
            for label, module in (
                (CONSTANT_ASGI, "constant_asgi:app"),
                (CONSTANT_STARLETTE, "starlette_constant:app"),
            ):
                port = harness.free_port()
                found.append(
                    Target(label, "-", [*uvicorn, module, *flags, str(port)], port, records, None)
                )
        port = harness.free_port()
        onnx = args.work / "models" / f"{model}.onnx"
        found.append(
            Target(
                NAIVE,
                model,
                [*uvicorn, "starlette_onnx:app", *flags, str(port)],
                port,
                records,
                ("predictions", 0),
                env={"BASELINE_ONNX": str(onnx)},
            )
        )
        port = harness.free_port()
        home = harness.dockyard_home(
            base, args.work, model, {"routes": [{"model": f"{model}@1.0.0"}]}
        )
        command = [sys.executable, "-m", "dockyard", "serve", "--port", str(port)]
        found.append(
            Target(
                DOCKYARD,
                model,
                [*command, "--log-level", "warning"],
                port,
                dict(every),
                ("predictions", 0),
                env={"DOCKYARD_HOME": str(home)},
            )
        )
        mlserver = args.mlserver_venv / "bin" / "mlserver"
        if not mlserver.exists():
            if model == args.models[0]:
                print(f"  MLServer skipped: no {mlserver} (see this script's docstring)")
            continue
        tensor = {key: body for key, body in every.items() if key[0] == TENSOR}
        for label, batching in ((MLSERVER, {}), (MLSERVER_BATCHING, {"max_batch_size": 64})):
            if batching:
                batching["max_batch_time"] = 0.002
            port = harness.free_port()
            folder = args.work / "mlserver" / f"{model}-{'batch' if batching else 'default'}"
            v2 = {key: ("/v2/models/model/infer", *body[1:]) for key, body in tensor.items()}
            found.append(
                Target(
                    label,
                    model,
                    [str(mlserver), "start", str(folder)],
                    port,
                    v2,
                    ("outputs", 0, "data", 0),
                    prepare=mlserver_folder(folder, port, args.work / "models", model, batching),
                )
            )
    return found


def mlserver_folder(folder: Path, port: int, models: Path, model: str, batching: dict) -> Any:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "model").mkdir(parents=True)
        settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": harness.free_port()}
        settings["metrics_port"] = harness.free_port()
        (folder / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": "model",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(models / f"{model}.joblib"), "version": "v1"},
            **batching,
        }
        (folder / "model" / "model-settings.json").write_text(json.dumps(model_settings))

    return prepare


def export_onnx(base: Path, work: Path, models: list[str]) -> None:
    """The ONNX twin Dockyard built for each model, for the naive server to load."""
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    with Registry.open(Settings(home=base, user="bench")) as registry:
        for model in models:
            twin = registry.get_version(f"{model}@1.0.0").accelerated or {}
            data = registry.artifacts.get(str(twin["digest"]))
            (work / "models" / f"{model}.onnx").write_bytes(data)


# --- report -----------------------------------------------------------------------------------


def merged(figures: list[Figure]) -> list[Figure]:
    """One figure per server, model, body, rows and connections, over its rounds: the mean
    req/s and p50, the highest p99, every error; in the order of the first round."""
    groups: dict[tuple[str, str, str, int, int], list[Figure]] = {}
    for f in figures:
        groups.setdefault((f.server, f.model, f.shape, f.rows, f.connections), []).append(f)
    out = []
    for key, runs in groups.items():
        rates = [f.requests_per_s for f in runs]
        out.append(
            Figure(
                *key,
                requests_per_s=sum(rates) / len(rates),
                p50_ms=sum(f.p50_ms for f in runs) / len(runs),
                p99_ms=max(f.p99_ms for f in runs),
                errors=sum(f.errors for f in runs),
                rounds=rates,
            )
        )
    return out


def report(figures: list[Figure], found: list[Target], args: argparse.Namespace) -> str:
    def find(server: str, model: str, shape: str, rows: int, c: int) -> Figure | None:
        key = (server, model, shape, rows, c)
        for f in figures:
            if (f.server, f.model, f.shape, f.rows, f.connections) == key:
                return f
        return None

    def ratio(a: Figure | None, b: Figure | None) -> str:
        if a is None or b is None or not b.requests_per_s:
            return "—"
        return f"{a.requests_per_s / b.requests_per_s:.2f}"

    by_round = args.rounds > 1
    lines = [
        "| server | model | body | rows | conn | req/s "
        + ("| by round " if by_round else "")
        + "| p50 ms | p99 ms | errors "
        "| ÷ fastest shape | ÷ naive | ÷ Starlette constant | ÷ MLServer adaptive |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if by_round else ""),
    ]
    for f in figures:
        group = (f.server, f.model, f.rows, f.connections)
        same = [g for g in figures if (g.server, g.model, g.rows, g.connections) == group]
        fastest = max(same, key=lambda g: g.requests_per_s)
        naive = find(NAIVE, f.model, RECORDS, f.rows, f.connections)
        constant = find(CONSTANT_STARLETTE, "-", RECORDS, f.rows, f.connections)
        peer = find(MLSERVER_BATCHING, f.model, TENSOR, f.rows, f.connections)
        dockyard = f.server == DOCKYARD
        rounds = f"| {', '.join(f'{r:,.0f}' for r in f.rounds)} " if by_round else ""
        lines.append(
            f"| {f.server} | {f.model} | {f.shape} | {f.rows} | {f.connections} "
            f"| {f.requests_per_s:,.0f} {rounds}| {f.p50_ms:.2f} | {f.p99_ms:.2f} | {f.errors} "
            f"| {ratio(f, fastest) if dockyard else '—'} "
            f"| {ratio(f, naive) if f.server != NAIVE else '—'} | {ratio(f, constant)} "
            f"| {ratio(f, peer) if dockyard and f.shape == TENSOR else '—'} |"
        )
    lines += ["", "| server | model | ready s (start → first answer) | peak RSS MiB |"]
    lines += ["|---|---|---|---|"]
    for t in found:
        ready = ", ".join(f"{r:.2f}" for r in t.ready_s)
        lines.append(f"| {t.server} | {t.model} | {ready} | {t.rss_mib:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=4, help="Seconds of wrk per figure.")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--models", nargs="+", default=["lr"], choices=sorted(harness.MODELS))
    parser.add_argument("--connections", type=int, nargs="+", default=[16])
    parser.add_argument(
        "--rounds", type=int, default=1, help="Every server this many times, interleaved."
    )
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the server.")
    parser.add_argument("--load-cpu", default="1", help="taskset CPU list for wrk.")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--mlserver-venv", type=Path, default=Path("/tmp/mlserver-venv"))
    parser.add_argument("--only", nargs="*", default=None, help="Run only these servers.")
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "serving")
    args = parser.parse_args()
    args.work = args.work.resolve()
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install -y wrk)")
    print(harness.describe_machine(), flush=True)
    models, X, y = harness.fit_models(args.work)
    expected = {name: int(models[name].predict(X[:1])[0]) for name in args.models}
    base = harness.register_dockyard(args.work, {m: models[m] for m in args.models}, X, y)
    export_onnx(base, args.work, args.models)
    found = targets(args, X[: max(args.rows)], base)
    if args.only:
        found = [t for t in found if any(word in t.server for word in args.only)]
    figures: list[Figure] = []
    for round in range(args.rounds):
        for target in found:
            try:
                run_target(target, args, expected, figures, reverse=round % 2 == 1)
            except Exception as exc:
                print(f"  {target.server} / {target.model}: could not run: {exc}", flush=True)
    print()
    print(
        f"{args.duration:g} s of wrk per figure after {args.warmup:g} s of warm-up, "
        f"{args.rounds} round(s); server on CPU {args.server_cpu}, wrk (1 thread) on CPU "
        f"{args.load_cpu}"
    )
    print(report(merged(figures), found, args))


if __name__ == "__main__":
    main()
