"""Serving benchmarks: Dockyard beside its ceilings and its peers, under the same wrk load.

One row of 20 floats per request, to a server on loopback, one server at a time:

* ceilings (``benchmarks/baselines/``, uvicorn with uvloop and httptools, one process): a
  bare ASGI app returning a constant, a Starlette endpoint returning a constant, and a
  Starlette endpoint calling scikit-learn ``predict`` inline;
* Dockyard (``python -m dockyard serve``, one process, validation, metrics and the prediction
  log on): logistic regression and a random forest (100 trees, depth 10) served by default
  (ONNX twin, batching up to 64 rows, no wait), the same with the prediction log off (its
  overhead), and the forest in its native runtime with and without batching
  (``max_batch_size`` 1);
* peers, each installed by this script into its own virtualenv under
  ``benchmarks/.work/venvs/`` (cached between runs): MLServer (defaults, and with adaptive
  batching), BentoML, ``mlflow models serve`` and Ray Serve. A peer that cannot be installed
  or started is reported with the reason; the run goes on.

Each figure comes with p50/p99 latency, error counts (a run with any is flagged) and the
server's RSS (VmRSS summed over its process tree, the peak sampled during the run). The
targets of issue 3 are checked as ratios measured in this same run.

Run:  .venv/bin/python benchmarks/serving.py [--duration 10] [--peers mlserver,bentoml,...]
      [--skip-peers] [--connections 16,64]    (needs wrk: apt-get install -y wrk)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import (  # the library the serving benchmarks share (benchmarks/harness.py)
    HERE,
    MODELS,
    Run,
    Server,
    bodies,
    busy_seconds,
    describe_machine,
    dockyard_home,
    fit_models,
    free_port,
    own_seconds,
    parse_wrk,
    register_dockyard,
    row,
    wrk,
    wrk_script,
)

PEERS = ("mlserver", "bentoml", "mlflow", "ray")
PEER_REQUIREMENTS = {
    # MLServer 1.7's inference-pool workers call asyncio.get_event_loop() in a fresh process,
    # which uvloop 0.22+ refuses ("There is no current event loop"): its workers die at load.
    "mlserver": ["mlserver==1.7.*", "mlserver-sklearn==1.7.*", "uvloop<0.22"],
    "bentoml": ["bentoml==1.4.*"],
    "mlflow": ["mlflow==3.*"],
    "ray": ["ray[serve]==2.*"],
}


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def find(self, server: str, model: str, connections: int) -> Run | None:
        """The run of this configuration with the median throughput over the rounds."""
        key = (server, model, connections)
        found = sorted(
            (r for r in self.runs if (r.server, r.model, r.connections) == key),
            key=lambda r: r.requests_per_s,
        )
        return found[(len(found) - 1) // 2] if found else None

    def ratio(self, a: tuple[str, str, int], b: tuple[str, str, int]) -> float | None:
        """The median over rounds of a's throughput ÷ b's, each pair from one round: the
        machine's drift between rounds cancels out."""
        ratios = []
        for run in self.runs:
            if (run.server, run.model, run.connections) != a:
                continue
            ratios += [
                run.requests_per_s / other.requests_per_s
                for other in self.runs
                if (other.server, other.model, other.connections) == b
                and other.round == run.round
                and other.requests_per_s > 0
            ]
        return statistics.median(ratios) if ratios else None


def measure(
    server: Server,
    url: str,
    script: Path,
    run: Run,
    args: argparse.Namespace,
) -> Run:
    """Warm up, then one wrk run while a thread samples the server's RSS and CPU (so that
    what else ran on the machine meanwhile is on record beside the figure)."""
    if args.warmup > 0:
        wrk(url, script, run.connections, args.warmup, args.threads, args.nice)
    peak = [server.rss()]
    stop = threading.Event()
    started, busy, own, served = time.monotonic(), busy_seconds(), own_seconds(), server.cpu()

    def sample() -> None:
        while not stop.wait(0.25):
            peak.append(server.rss())
            server.cpu()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output = wrk(url, script, run.connections, args.duration, args.threads, args.nice)
    finally:
        stop.set()
        sampler.join()
    elapsed = time.monotonic() - started
    served = server.cpu() - served
    run.server_cores = served / elapsed
    run.other_cores = max(0.0, busy_seconds() - busy - served - (own_seconds() - own)) / elapsed
    parse_wrk(output, run)
    run.rss_mib = max(peak)
    flag = "  ⚠ ERRORS" if run.errors else ""
    print(
        f"  {run.server:<44} {run.model} c={run.connections:<3} "
        f"{run.requests_per_s:>9,.0f} req/s  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms"
        f"  RSS {run.rss_mib:6.0f} MiB  non-2xx {run.non_2xx} socket {run.socket_errors}"
        f"  CPU server {run.server_cores:.2f} other {run.other_cores:.2f}{flag}",
        flush=True,
    )
    return run


@dataclass
class Config:
    """One server to start and the loads to put on it."""

    server: str  # the row label
    model: str  # "lr", "rf", or "-" for constant servers
    command: list[str]
    url: str
    body: bytes
    connections: list[int]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = HERE
    start_timeout_s: float = 120
    prepare: Callable[[], None] | None = None
    check: Callable[[str], str] | None = None  # answer -> note, raises if wrong


def run_config(config: Config, args: argparse.Namespace, results: Results, round_: int = 1) -> None:
    key = f"{config.server} / {config.model}"
    log = args.work / "logs" / (re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") + ".log")
    server = Server(config.command, env=config.env, cwd=config.cwd, log=log, nice=args.nice)
    try:
        if config.prepare is not None:
            config.prepare()
        answer = server.start(config.url, config.body, config.start_timeout_s)
        note = config.check(answer) if config.check is not None else ""
        script = wrk_script(args.work, config.body)
        for connections in config.connections:
            run = Run(config.server, config.model, connections, note=note, round=round_)
            results.runs.append(measure(server, config.url, script, run, args))
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        results.unavailable[key] = reason
        print(f"  {key}: could not run: {reason[:600]}", flush=True)
    finally:
        server.stop()


def expect(label: int, *path: str | int) -> Callable[[str], str]:
    """A check that the server's first answer, at ``path`` in its JSON, is the class that
    scikit-learn predicts for the row."""

    def check(answer: str) -> str:
        value: Any = json.loads(answer)
        try:
            for key in path:
                value = value[key]
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"no prediction at {path} in: {answer[:300]}") from None
        if value != label:
            raise RuntimeError(f"predicted {value!r}, scikit-learn says {label}: {answer[:300]}")
        return ""

    return check


# --- the servers ---------------------------------------------------------------------------


def baseline_configs(args: argparse.Namespace, body: bytes, expected: dict[str, int]) -> list:
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE / "baselines")]
    flags = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    flags += ["--log-level", "warning", "--host", "127.0.0.1"]
    configs = []
    for label, module in (
        ("bare ASGI app returning a constant", "constant_asgi:app"),
        ("Starlette endpoint returning a constant", "starlette_constant:app"),
    ):
        port = free_port()
        configs.append(
            Config(
                label,
                "-",
                [*uvicorn, module, *flags, "--port", str(port)],
                f"http://127.0.0.1:{port}/predict",
                body,
                args.connections,
            )
        )
    for model in MODELS:
        port = free_port()
        configs.append(
            Config(
                "Starlette endpoint calling sklearn predict",
                model,
                [*uvicorn, "starlette_sklearn:app", *flags, "--port", str(port)],
                f"http://127.0.0.1:{port}/predict",
                body,
                args.connections,
                env={"BASELINE_MODEL": str(args.work / "models" / f"{model}.joblib")},
                check=expect(expected[model], "predictions", 0),
            )
        )
    return configs


NO_LOG = "Dockyard (ONNX, batching 64, prediction log off)"


def dockyard_configs(
    args: argparse.Namespace, base: Path, body: bytes, expected: dict[str, int]
) -> list[Config]:
    """Each plan row (label, model, accelerate, max_batch_size, connections) becomes one
    server over a copy of the base registry with that single deployment."""
    plan = [
        ("Dockyard (ONNX, batching 64)", "lr", True, 64, [*args.connections, 1], True),
        (NO_LOG, "lr", True, 64, args.connections, False),
        ("Dockyard (ONNX, no batching)", "lr", True, 1, [1], True),
        ("Dockyard (ONNX, batching 64)", "rf", True, 64, args.connections, True),
        (NO_LOG, "rf", True, 64, args.connections, False),
        ("Dockyard (native sklearn, batching 64)", "rf", False, 64, [*args.connections, 1], True),
        ("Dockyard (native sklearn, no batching)", "rf", False, 1, [*args.connections, 1], True),
    ]
    configs = []
    for label, model, accelerate, batch, connections, logged in plan:
        spec = {
            "routes": [{"model": f"{model}@1.0.0"}],
            "batching": {"max_batch_size": batch, "max_wait_ms": 0},
            "accelerate": accelerate,
            "monitoring": {"log": logged},
        }
        endpoint = f"{model}-{'onnx' if accelerate else 'native'}-b{batch}" + (
            "" if logged else "-nolog"
        )
        port = free_port()
        home = args.work / "dockyard" / endpoint

        def prepare(endpoint: str = endpoint, spec: dict[str, Any] = spec) -> None:
            dockyard_home(base, args.work, endpoint, spec)

        configs.append(
            Config(
                label,
                model,
                [
                    sys.executable,
                    "-m",
                    "dockyard",
                    "serve",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                f"http://127.0.0.1:{port}/v1/endpoints/{endpoint}/predict",
                body,
                connections,
                env={"DOCKYARD_HOME": str(home)},
                prepare=prepare,
                check=dockyard_check(port, endpoint, accelerate, expected[model]),
            )
        )
    return configs


def dockyard_check(port: int, endpoint: str, accelerate: bool, label: int) -> Callable:
    def check(answer: str) -> str:
        expect(label, "predictions", 0)(answer)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/deployments/{endpoint}", timeout=10
        ) as response:
            runtime = json.loads(response.read())["serving"][0]["runtime"]
        if accelerate != runtime.startswith("onnx"):
            raise RuntimeError(f"expected accelerate={accelerate}, serving {runtime!r}")
        return runtime

    return check


# --- peers ---------------------------------------------------------------------------------


def peer_venv(name: str, args: argparse.Namespace) -> Path:
    """The peer's virtualenv, created and installed on first use, reused after that."""
    import sklearn

    venv = args.work / "venvs" / name
    wanted = " ".join([*PEER_REQUIREMENTS[name], f"scikit-learn=={sklearn.__version__}", "joblib"])
    marker = venv / ".benchmark-requirements"
    if marker.exists() and marker.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = args.work / "venvs" / f"{name}.log"
    print(f"  installing {name} into {venv} (once; cached after): {wanted}", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, stdout=out, stderr=out
        )
        try:
            done = subprocess.run(
                [
                    str(venv / "bin" / "pip"),
                    "install",
                    "--disable-pip-version-check",
                    "-q",
                    *wanted.split(),
                ],
                stdout=out,
                stderr=out,
                timeout=args.install_timeout,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"install took over {args.install_timeout} s; see {log}") from None
    if done.returncode != 0:
        lines = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if line.strip() and not line.startswith("WARNING: Location")
        ]
        raise RuntimeError(f"pip install failed: {' | '.join(lines[-4:])[:500]}")
    marker.write_text(wanted)
    print(f"  installed {name} in {time.monotonic() - started:.0f} s", flush=True)
    return venv


def peer_configs(
    name: str, venv: Path, args: argparse.Namespace, body: dict[str, bytes], expected: dict
) -> list[Config]:
    bin_ = venv / "bin"
    configs = []
    for model in MODELS:
        joblib_path = args.work / "models" / f"{model}.joblib"
        label = expected[model]
        check = expect(label, 0) if name == "bentoml" else expect(label, "predictions", 0)
        if name == "mlserver":
            check = expect(label, "outputs", 0, "data", 0)
            for label, batching in (
                ("MLServer 1.7 (defaults)", {}),
                ("MLServer 1.7 (adaptive batching 64, 2 ms)", {"max_batch_size": 64}),
            ):
                if batching:
                    batching["max_batch_time"] = 0.002
                port = free_port()
                folder = args.work / "mlserver" / f"{model}-{'batch' if batching else 'default'}"
                configs.append(
                    Config(
                        label,
                        model,
                        [str(bin_ / "mlserver"), "start", str(folder)],
                        f"http://127.0.0.1:{port}/v2/models/model/infer",
                        body["v2"],
                        args.connections,
                        cwd=folder.parent,
                        start_timeout_s=args.start_timeout,
                        prepare=mlserver_folder(folder, port, joblib_path, batching),
                        check=check,
                    )
                )
        elif name == "bentoml":
            port = free_port()
            configs.append(
                Config(
                    "BentoML 1.4",
                    model,
                    [
                        str(bin_ / "bentoml"),
                        "serve",
                        "bento_service:Classifier",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    f"http://127.0.0.1:{port}/predict",
                    body["matrix"],
                    args.connections,
                    env={
                        "BENCH_MODEL": str(joblib_path),
                        "BENTOML_HOME": str(args.work / "bentoml-home"),
                        "BENTOML_DO_NOT_TRACK": "True",
                    },
                    cwd=HERE / "peers",
                    start_timeout_s=args.start_timeout,
                    check=check,
                )
            )
        elif name == "mlflow":
            port = free_port()
            folder = args.work / "mlflow" / model

            def save(folder: Path = folder, joblib_path: Path = joblib_path) -> None:
                shutil.rmtree(folder, ignore_errors=True)
                folder.parent.mkdir(parents=True, exist_ok=True)
                done = subprocess.run(
                    [
                        str(bin_ / "python"),
                        str(HERE / "peers" / "mlflow_save.py"),
                        str(joblib_path),
                        str(folder),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"saving the MLflow model failed: {done.stderr[-500:]}")

            configs.append(
                Config(
                    "mlflow models serve 3.x",
                    model,
                    [
                        str(bin_ / "mlflow"),
                        "models",
                        "serve",
                        "-m",
                        str(folder),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "--env-manager",
                        "local",
                        "-w",
                        "1",
                    ],
                    f"http://127.0.0.1:{port}/invocations",
                    body["mlflow"],
                    args.connections,
                    env={"MLFLOW_TRACKING_URI": f"file://{args.work / 'mlruns'}"},
                    cwd=args.work,
                    start_timeout_s=args.start_timeout,
                    prepare=save,
                    check=check,
                )
            )
        elif name == "ray":
            port = free_port()
            configs.append(
                Config(
                    "Ray Serve 2.x (defaults, 1 replica)",
                    model,
                    [
                        str(bin_ / "python"),
                        str(HERE / "peers" / "ray_app.py"),
                        "--port",
                        str(port),
                        "--model",
                        str(joblib_path),
                    ],
                    f"http://127.0.0.1:{port}/predict",
                    body["matrix"],
                    args.connections,
                    env={"RAY_USAGE_STATS_ENABLED": "0"},
                    cwd=args.work,
                    start_timeout_s=args.start_timeout,
                    check=check,
                )
            )
    return configs


def mlserver_folder(
    folder: Path, port: int, joblib_path: Path, batching: dict[str, Any]
) -> Callable[[], None]:
    def prepare() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "model").mkdir(parents=True)
        settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port()}
        settings["metrics_port"] = free_port()
        (folder / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": "model",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(joblib_path), "version": "v1"},
            **batching,
        }
        (folder / "model" / "model-settings.json").write_text(json.dumps(model_settings))

    return prepare


# --- report --------------------------------------------------------------------------------


def cell(run: Run | None) -> str:
    if run is None:
        return "—"
    flag = " ⚠" if run.errors else ""
    return f"{run.requests_per_s:,.0f}{flag}"


def report(results: Results, args: argparse.Namespace, machine: str) -> str:
    lines = [machine, ""]
    conns = args.connections
    header = " | ".join(f"{MODELS[m].split(' (')[0]} c={c}" for m in MODELS for c in conns)
    lines += [f"| server (req/s) | {header} | RSS MiB |", "|---|" + "---|" * (len(conns) * 2 + 1)]
    servers = list(dict.fromkeys(run.server for run in results.runs))
    for server in servers:
        cells = []
        rss = []
        for model in MODELS:
            for c in conns:
                found = results.find(server, model, c) or (
                    results.find(server, "-", c) if model == "lr" else None
                )
                cells.append(cell(found))
                if found:
                    rss.append(found.rss_mib)
        if any(c != "—" for c in cells):
            rss_text = f"{min(rss):.0f}–{max(rss):.0f}" if rss else "—"
            lines.append(f"| {server} | {' | '.join(cells)} | {rss_text} |")
    lines += [
        "",
        "| round | server | model | conns | req/s | p50 ms | p99 ms | non-2xx | socket errors "
        "| RSS MiB | server CPU (cores) | other CPU (cores) | served by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results.runs:
        flag = " ⚠" if run.errors else ""
        lines.append(
            f"| {run.round} | {run.server}{flag} | {run.model} | {run.connections} | "
            f"{run.requests_per_s:,.0f} | {run.p50_ms:.2f} | {run.p99_ms:.2f} | {run.non_2xx} | "
            f"{run.socket_errors} | {run.rss_mib:.0f} | {run.server_cores:.2f} | "
            f"{run.other_cores:.2f} | {run.note} |"
        )
    lines += ["", *targets(results, args)]
    if results.unavailable:
        lines += ["", "Could not run:"]
        lines += [f"- {key}: {reason[:600]}" for key, reason in results.unavailable.items()]
    return "\n".join(lines)


def targets(results: Results, args: argparse.Namespace) -> list[str]:
    lines = ["| target (issue 3) | measured | needed | met |", "|---|---|---|---|"]
    peers = [
        r for r in results.runs if r.server.split()[0] in ("MLServer", "BentoML", "mlflow", "Ray")
    ]
    default = "Dockyard (ONNX, batching 64)"

    def add(name: str, value: float | None, needed: str, ok: bool | None, flag: str = "") -> None:
        shown = "—" if value is None else f"{value:,.2f}{flag}"
        verdict = "—" if ok is None or value is None else ("yes" if ok else "**no**")
        lines.append(f"| {name} | {shown} | {needed} | {verdict} |")

    for model, need in (("lr", 5.0), ("rf", 20.0)):
        for c in args.connections:
            ours = results.find(default, model, c)
            theirs = [r for r in peers if r.model == model and r.connections == c]
            clean = [r for r in theirs if not r.errors] or theirs
            best = max(clean, key=lambda r: r.requests_per_s, default=None)
            value = ours.requests_per_s / best.requests_per_s if ours and best else None
            name = f"{model.upper()} c={c}: Dockyard ÷ best peer" + (
                f" ({best.server})" if best else ""
            )
            flag = " ⚠" if (ours and ours.errors) or (best and best.errors) else ""
            add(name + "", value, f"≥ {need:g}×", value is not None and value >= need, flag)
    for model in MODELS:
        for c in args.connections:
            value = results.ratio(
                (default, model, c), ("Starlette endpoint returning a constant", "-", c)
            )
            add(
                f"{model.upper()} c={c}: Dockyard ÷ Starlette constant",
                value,
                "≥ 0.5×",
                value is not None and value >= 0.5,
            )
    for model in MODELS:
        ours = results.find(default, model, 16)
        add(
            f"{model.upper()} c=16: Dockyard p99 (ms)",
            ours.p99_ms if ours else None,
            "< 5 ms",
            ours is not None and ours.p99_ms < 5,
        )
    value = results.ratio(
        ("Dockyard (native sklearn, batching 64)", "rf", 64),
        ("Dockyard (native sklearn, no batching)", "rf", 64),
    )
    add("RF native c=64: batching ÷ no batching", value, "≥ 3×", value is not None and value >= 3)
    for model in MODELS:
        for c in args.connections:
            value = results.ratio((default, model, c), (NO_LOG, model, c))
            add(
                f"{model.upper()} c={c}: prediction log on ÷ off (issue 4)",
                value,
                "≥ 0.9×",
                value is not None and value >= 0.9,
            )
    for model, on_label, off_label in (
        ("rf", "Dockyard (native sklearn, batching 64)", "Dockyard (native sklearn, no batching)"),
        ("lr", default, "Dockyard (ONNX, no batching)"),
    ):
        on, off = results.find(on_label, model, 1), results.find(off_label, model, 1)
        value = on.p50_ms - off.p50_ms if on and off else None
        add(
            f"{model.upper()} c=1: p50 added by batching (ms)",
            value,
            "≤ 0.2 ms",
            value is not None and value <= 0.2,
        )
    return lines


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument("--warmup", type=int, default=2, help="Seconds of load before each.")
    parser.add_argument("--connections", default="16,64", help="Connection counts to measure.")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores here).")
    parser.add_argument("--peers", default=",".join(PEERS), help="Comma-separated peers.")
    parser.add_argument("--skip-peers", action="store_true", help="Measure no peer.")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="Run every server and wrk at this niceness (e.g. -10 as root on a shared machine, "
        "so that other work disturbs the figures less; every server gets the same).",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="Measure the ceilings and Dockyard this many times, interleaved; tables show the "
        "median run and ratios the median of each round's ratio (peers run once, after).",
    )
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--skip-dockyard", action="store_true")
    parser.add_argument("--start-timeout", type=float, default=180, help="Seconds per start.")
    parser.add_argument("--install-timeout", type=float, default=1500, help="Seconds per pip.")
    parser.add_argument("--work", type=Path, default=HERE / ".work", help="Cache folder.")
    parser.add_argument("--json", type=Path, help="Also write every figure here.")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",") if c]
    args.peers = [] if args.skip_peers else [p for p in args.peers.split(",") if p]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(args.work)
    machine = describe_machine()
    print(machine, flush=True)
    results = Results()
    started = time.monotonic()

    models, X, y = fit_models(args.work)
    expected = {name: int(model.predict(X[:1])[0]) for name, model in models.items()}
    body = bodies(row(X))
    try:
        base = None if args.skip_dockyard else register_dockyard(args.work, models, X, y)
        for round_ in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {round_} of {args.rounds}", flush=True)
            if not args.skip_baselines:
                print("ceilings and baselines", flush=True)
                for config in baseline_configs(args, body["records"], expected):
                    run_config(config, args, results, round_)
            if base is not None:
                print("Dockyard", flush=True)
                for config in dockyard_configs(args, base, body["records"], expected):
                    run_config(config, args, results, round_)
        for peer in args.peers:
            print(peer, flush=True)
            try:
                venv = peer_venv(peer, args)
            except Exception as exc:
                results.unavailable[peer] = f"install: {exc}"
                print(f"  {peer}: could not install: {exc}", flush=True)
                continue
            for config in peer_configs(peer, venv, args, body, expected):
                run_config(config, args, results)
    except KeyboardInterrupt:
        results.notes.append("interrupted: partial results")
    elapsed = time.monotonic() - started
    machine += f"; {args.duration:g} s per wrk run after {args.warmup:g} s warm-up, "
    machine += f"wrk -t{args.threads} --latency; nice {args.nice}; {args.rounds} round(s); "
    machine += f"total {elapsed / 60:.1f} min"
    print()
    print(report(results, args, machine))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "runs": [asdict(r) for r in results.runs],
                    "unavailable": results.unavailable,
                    "notes": results.notes,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
