"""Start time and memory of ``dockyard serve`` with two ONNX-served models.

Registers the logistic regression and the random forest of ``harness.py`` (each with its
ONNX twin), deploys both, then starts ``python -m dockyard serve`` ``--runs`` times and
reports, per run, the seconds from process start until the forest's endpoint answers a
prediction, the RSS of its process tree half a second later (VmRSS summed), and its steady
RSS: after ``--requests`` one-row predictions to each model (v1 records and the v2 2-D
tensor, one at a time) and two monitor passes (the server runs with
``DOCKYARD_MONITOR_INTERVAL_S=2``, so the passes' libraries and their drift over the logged
rows are in it), for the tree (summed RSS, and PSS: a library's pages mapped by the
server and its children counted once) and for the serving process alone (the tree adds
the monitor process and multiprocessing's resource tracker). With ``--workers N`` the
server runs N workers and, after the steady figure, ``--reads`` monitoring reads
(``/api/monitoring/lr/drift``, each on a fresh connection, so they land on any worker) are
sent and the tree is read again, with how many of its processes map DuckDB (monitor
processes). ``--before SRC`` runs
another tree's ``src`` interleaved with this one (A B A B...), for an A/B of a change; run
the script itself with ``PYTHONPATH=SRC`` then, so the registry is written by the older
code (a newer deployment spec may carry settings the older server refuses).

Run:  PYTHONPATH=src .venv/bin/python benchmarks/start.py [--runs 3]
      [--before /tmp/before/src] [--workers 2 --reads 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import harness  # models and registry (benchmarks/harness.py)


def prepare(work: Path) -> Path:
    home = work / "home"
    if home.exists():
        return home
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    models, X, y = harness.fit_models(work)
    base = harness.register_dockyard(work, models, X, y)
    shutil.copytree(base, home)
    with Registry.open(Settings(home=home, user="bench")) as registry:
        for name in models:
            spec = DeploymentSpec.parse({"routes": [{"model": f"{name}@1.0.0"}]})
            DeploymentStore(registry.db).put(name, spec, actor="bench")
    return home


def start(
    home: Path, src: str | None, requests: int, workers: int = 1, reads: int = 0
) -> tuple[float, float, float, float, float, str]:
    """(seconds to the first answer, RSS MiB half a second later, RSS MiB at steady state,
    the same as PSS, the serving process's RSS alone, and with ``reads`` what they left);
    RSS and PSS count the server's whole process tree (its monitor process and
    multiprocessing's resource tracker included)."""
    port = harness.free_port()
    env = {**os.environ, "DOCKYARD_HOME": str(home), "DOCKYARD_MONITOR_INTERVAL_S": "2"}
    if src:
        env["PYTHONPATH"] = src
    command = [sys.executable, "-m", "dockyard", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    body = json.dumps({"instances": [{f"x{i}": 0.1 for i in range(harness.FEATURES)}]}).encode()
    url = f"http://127.0.0.1:{port}/v1/endpoints/rf/predict"
    started = time.monotonic()
    process = subprocess.Popen(
        [*command, "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            request = urllib.request.Request(
                url, data=body, headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.01)
        ready = time.monotonic() - started
        time.sleep(0.5)
        first = harness.rss_mib(harness.process_tree(process.pid))
        traffic(port, requests)
        time.sleep(4.5)  # two monitor passes over what was logged
        tree = harness.process_tree(process.pid)
        steady, shared = harness.rss_mib(tree), harness.pss_mib(tree)
        after = monitoring_reads(port, process.pid, reads) if reads else ""
        return ready, first, steady, shared, harness.rss_mib([process.pid]), after
    finally:
        process.terminate()
        process.wait()


def monitoring_reads(port: int, root: int, reads: int) -> str:
    """Send ``reads`` drift reads, each on its own connection; say what they answered and
    what the tree holds 8 s later."""
    statuses: dict[int, int] = {}
    for _ in range(reads):
        url = f"http://127.0.0.1:{port}/api/monitoring/lr/drift?window=all"
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        statuses[status] = statuses.get(status, 0) + 1
    time.sleep(8)
    tree = harness.process_tree(root)
    monitors = 0
    for pid in tree:
        try:
            monitors += "_duckdb" in Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
    return (
        f"; after {reads} reads ({statuses}): tree {harness.rss_mib(tree):.0f} MiB, "
        f"{monitors} process(es) mapping DuckDB"
    )


def traffic(port: int, requests: int) -> None:
    row = [0.1 * i for i in range(harness.FEATURES)]
    v1 = json.dumps({"instances": [{f"x{i}": v for i, v in enumerate(row)}]}).encode()
    v2 = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, len(row)], "datatype": "FP64", "data": [row]}]}
    ).encode()
    for model in ("lr", "rf"):
        for path, body in (
            (f"/v1/endpoints/{model}/predict", v1),
            (f"/v2/models/{model}/infer", v2),
        ):
            for _ in range(requests // 2):
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{path}",
                    data=body,
                    headers={"content-type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="Per model, before steady.")
    parser.add_argument("--before", default=None, help="Another tree's src, interleaved.")
    parser.add_argument("--workers", type=int, default=1, help="dockyard serve --workers.")
    parser.add_argument("--reads", type=int, default=0, help="Monitoring reads after steady.")
    parser.add_argument("--work", type=Path, default=harness.HERE / ".work" / "start")
    args = parser.parse_args()
    home = prepare(args.work.resolve())
    here = str(harness.HERE.parent / "src")
    trees = [("before", args.before), ("this tree", here)] if args.before else [("", here)]
    for _ in range(args.runs):
        for label, src in trees:
            ready, rss, steady, shared, serving, after = start(
                home, src, args.requests, args.workers, args.reads
            )
            print(
                f"{label:>9} ready {ready:.2f} s, RSS {rss:.0f} MiB, steady {steady:.0f} MiB "
                f"(PSS {shared:.0f} MiB; serving process {serving:.1f} MiB){after}",
                flush=True,
            )


if __name__ == "__main__":
    main()
