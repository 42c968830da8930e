"""What the serving benchmarks share: the two models and their request bodies, a Dockyard
registry holding them, server processes watched through /proc (CPU, RSS), and wrk.

``serving.py`` (Dockyard beside its ceilings and peers), ``ab.py`` (paired A/B rounds) and
``inprocess.py`` (the prediction log inside one process) build on it; it runs nothing itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FEATURES = 20


MODELS = {"lr": "logistic regression", "rf": "random forest (100 trees, depth 10)"}


# --- a measurement -------------------------------------------------------------------------------


@dataclass
class Run:
    """One wrk measurement of one server configuration."""

    server: str
    model: str
    connections: int
    requests_per_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    rss_mib: float = 0.0
    server_cores: float = 0.0  # CPU the server's process tree used, in cores
    other_cores: float = 0.0  # CPU used by anything but the server, wrk and this script
    note: str = ""
    round: int = 1

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """User plus system CPU time of one process (or one of its threads), or None once it
    is gone."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def busy_seconds() -> float:
    """CPU time the whole machine spent busy (user, nice, system, irq, softirq)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / _TICK


def own_seconds() -> float:
    """CPU time of this script and its waited-for children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rss_mib(pids: Sequence[int]) -> float:
    """The processes' resident set sizes summed (``VmRSS``)."""
    return _summed_kib(pids, "status", "VmRSS:") / 1024


def pss_mib(pids: Sequence[int]) -> float:
    """The processes' proportional set size summed (``/proc/PID/smaps_rollup``): a page
    shared by several of them (the same libraries, mapped by a server and its children)
    counted once among them, where summed RSS counts it in each."""
    return _summed_kib(pids, "smaps_rollup", "Pss:") / 1024


def _summed_kib(pids: Sequence[int], name: str, key: str) -> int:
    """The kB figure on the ``key`` line of ``/proc/PID/<name>``, summed over ``pids`` (a
    process gone meanwhile counts nothing)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                if line.startswith(key):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Server:
    """A server process in its own session: started, probed until it answers, stopped."""

    def __init__(
        self, command: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path, nice: int = 0
    ):
        self.command = list(command) if not nice else ["nice", "-n", str(nice), *command]
        self.env = {**os.environ, **env}
        bin_ = str(Path(command[0]).parent)
        if not bin_.startswith(sys.prefix):  # a peer's venv first on PATH, as if activated
            self.env["PATH"] = bin_ + os.pathsep + self.env.get("PATH", "")
        self.cwd = cwd
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()
        self.cpu_seen: dict[int, float] = {}

    def start(self, url: str, body: bytes, timeout_s: float) -> str:
        """Start and wait until ``POST url body`` answers 200; return that answer."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}: {self.tail()}")
            status, answer = post(url, body)
            if status == 200:
                self.seen.update(process_tree(self.process.pid))
                return answer
            last = f"HTTP {status}: {answer[:200]}" if status else answer
            time.sleep(0.5)
        raise RuntimeError(f"not answering after {timeout_s:.0f} s ({last}); {self.tail()}")

    def rss(self) -> float:
        assert self.process is not None
        tree = process_tree(self.process.pid)
        self.seen.update(tree)
        return rss_mib(tree)

    def cpu(self) -> float:
        """CPU seconds used so far by every process of the tree seen alive."""
        assert self.process is not None
        for pid in process_tree(self.process.pid):
            used = cpu_seconds(pid)
            if used is not None:
                self.cpu_seen[pid] = used
        return sum(self.cpu_seen.values())

    def tail(self, lines: int = 6) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip()[:200] for line in text[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        self.seen.update(process_tree(self.process.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        for pid in [self.process.pid, *self.seen]:  # stragglers that left the session
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def post(url: str, body: bytes, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"


# --- load ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk_script(work: Path, body: bytes) -> Path:
    path = work / "wrk" / f"{hashlib.sha1(body).hexdigest()[:12]}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
    )
    return path


def wrk(
    url: str,
    script: Path,
    connections: int,
    seconds: int,
    threads: int,
    nice: int,
    cpus: str | None = None,
) -> str:
    """One wrk run's output (``cpus``: a ``taskset`` CPU list to keep it on)."""
    command = [
        *(["taskset", "-c", cpus] if cpus else []),
        *(["nice", "-n", str(nice)] if nice else []),
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def parse_wrk(output: str, run: Run) -> None:
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    run.requests_per_s = float(found.group(1)) if found else 0.0
    found = re.search(r"(\d+) requests in", output)
    run.requests = int(found.group(1)) if found else 0
    for percent, attribute in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s+{percent}%\s+(\S+)", output, re.MULTILINE)
        if found:
            setattr(run, attribute, _ms(found.group(1)))
    found = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    run.non_2xx = int(found.group(1)) if found else 0
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    run.socket_errors = sum(int(n) for n in found.groups()) if found else 0


# --- models --------------------------------------------------------------------------------


def fit_models(work: Path) -> tuple[dict[str, Any], Any, Any]:
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, FEATURES))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=5000) > 0).astype(int)
    models = {
        "lr": LogisticRegression(max_iter=1000).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(
            X, y
        ),
    }
    (work / "models").mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        joblib.dump(model, work / "models" / f"{name}.joblib")
    return models, X, y


def row(X: Any) -> list[float]:
    return [float(v) for v in X[0]]


def bodies(values: list[float]) -> dict[str, bytes]:
    records = {"instances": [{f"x{i}": v for i, v in enumerate(values)}]}
    tensor = {"inputs": [{"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64"}]}
    tensor["inputs"][0]["data"] = values
    return {
        "records": json.dumps(records).encode(),
        "v2": json.dumps(tensor).encode(),
        "matrix": json.dumps({"instances": [values]}).encode(),
        "mlflow": json.dumps({"inputs": [values]}).encode(),
    }


def register_dockyard(
    work: Path, models: dict[str, Any], X: Any, y: Any, *, accelerate: bool = True
) -> Path:
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    base = work / "dockyard" / "base"
    shutil.rmtree(work / "dockyard", ignore_errors=True)
    with Registry.open(Settings(home=base, user="bench")) as registry:
        for name, model in models.items():
            version = registry.register(model, name, sample=X, y=y, accelerate=accelerate)
            print(f"  registered {version.ref}", flush=True)
    return base


def dockyard_home(base: Path, work: Path, endpoint: str, spec: dict[str, Any]) -> Path:
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    home = work / "dockyard" / endpoint
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base, home)
    with Registry.open(Settings(home=home, user="bench")) as registry:
        DeploymentStore(registry.db).put(endpoint, DeploymentSpec.parse(spec), actor="bench")
    return home


def require_wrk(script: str) -> None:
    """Stop ``script`` with the one line that says how to install wrk, where it is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit(f"{script} needs wrk (apt-get install wrk)")


def lr_alone(work: Path, monitoring: dict[str, Any] | None = None) -> tuple[Path, Any]:
    """The logistic regression of :func:`fit_models` registered and deployed alone (endpoint
    ``lr``, with the deployment spec's ``monitoring`` section when given): the Dockyard home
    to serve, and the features."""
    models, X, y = fit_models(work)
    base = register_dockyard(work, {"lr": models["lr"]}, X, y)
    spec: dict[str, Any] = {"routes": [{"model": "lr@1.0.0"}]}
    if monitoring is not None:
        spec["monitoring"] = monitoring
    return dockyard_home(base, work, "lr", spec), X


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
    return (
        f"machine: {os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}; {' '.join(wrk_version[:2])}"
    )


# --- driving an app in this process (inprocess.py, shapes.py) ---------------------------


async def drive(
    app: Any,
    path: str,
    body: bytes,
    requests: int,
    concurrency: int,
    headers: Sequence[tuple[bytes, bytes]] = (),
    refused: list[int] | None = None,
    *,
    lane: bool = False,
) -> float:
    """Send ``requests`` copies of one POST through an ASGI app in this process, ``concurrency``
    at a time; returns the seconds taken, and stops the run on the first non-200 answer
    (unless ``refused`` is given: the non-200 statuses are added to it). With ``lane`` the
    app's ``predict`` is called as the HTTP protocol's prediction lane calls it (no ASGI
    scope, messages or response events: ``dockyard serve`` answers predictions so)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}
    failures: list[int] = []
    answers: list[bytes] = []
    left = requests

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start" and event["status"] != 200:
            failures.append(event["status"])
        elif event["type"] == "http.response.body" and failures and not answers:
            answers.append(event.get("body", b"")[:300])

    route = app.route(path) if lane else None

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if route is None:
                await app(scope, receive, send)
                continue
            reply = await app.predict(route, "POST", scope["headers"], receive)
            if reply.status != 200:
                failures.append(reply.status)
                answers.append(reply.body[:300])

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    if refused is not None:
        refused.extend(failures)
    elif failures:
        raise SystemExit(
            f"{path}: {len(failures)} requests failed (first status {failures[0]}: "
            f"{answers[0] if answers else b''!r})"
        )
    return time.perf_counter() - started
