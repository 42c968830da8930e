"""CLI benchmark: each ``dockyard`` command as a user runs it, a fresh process every time.

Builds a temporary registry (two versions of a logistic regression on 20 features, an
endpoint with two revisions, a prediction log of ``--rows`` rows with labels for one in ten,
a 143-row labelled file for ``gate``, a random-forest file to register), then times each
command over ``--repeat`` runs, each in a new process (imports included: that is what a user
waits for), against ``python -c pass``: wall time and the process's CPU time (user +
system), which a loaded machine distorts less.

Read commands aim at < 0.3 s. ``--trees`` sizes the random forest that ``models register``
registers from a file (the issue's figure was a 200-tree forest).

Run:  .venv/bin/python benchmarks/cli.py [--repeat 5] [--rows 5000] [--trees 200]
      [--only 'models list'] [--importtime] [--keep]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FEATURES = 20
ENDPOINT = "bench"
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))


def build(home: Path, rows: int, trees: int) -> dict[str, Path]:
    """Registry, deployment, prediction log, feedback, and the files commands read."""
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore
    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.feedback import Label, record_feedback
    from dockyard.monitoring.records import Batch, ModelCall, Source
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry
    from dockyard.schema.labels import label_text
    from dockyard.schema.signature import Signature
    from dockyard.settings import Settings

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(FEATURES)]
    X = pd.DataFrame(rng.normal(size=(2000, FEATURES)), columns=columns)
    y = (X["f0"] + X["f1"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    settings = Settings(home=home, user="bench")
    files: dict[str, Path] = {}
    with Registry.open(settings) as registry:
        first = registry.register(LogisticRegression(C=0.1).fit(X, y), "clf", sample=X, y=y)
        model = LogisticRegression(C=1.0).fit(X, y)
        second = registry.register(model, "clf", sample=X, y=y, bump="minor")
        deployments = DeploymentStore(registry.db)
        deployments.put(
            ENDPOINT, DeploymentSpec.parse({"routes": [{"model": first.ref}]}), actor="bench"
        )
        deployment = deployments.put(
            ENDPOINT, DeploymentSpec.parse({"routes": [{"model": second.ref}]}), actor="bench"
        )
        assert second.signature is not None
        source = Source(
            endpoint=ENDPOINT,
            revision=deployment.revision,
            model=second.model,
            version=second.version,
            columns=Signature.from_dict(second.signature).column_names,
            classes=tuple(str(label_text(c)) for c in model.classes_),
            positive=1,
        )
        store = MonitoringStore(settings.resolved_monitoring_url)
        live = rng.normal(size=(rows, FEATURES))
        live[:, 0] += 0.5  # one drifted feature
        probabilities = model.predict_proba(pd.DataFrame(live, columns=columns))
        predicted = probabilities.argmax(axis=1)
        batch = Batch(source)
        call = ModelCall(live, predicted, probabilities)
        now = time.time()
        ids = [f"req-{i:08d}" for i in range(rows)]
        for i in range(rows):
            batch.add(ids[i], now - (rows - i) * 0.1, 0.002, call, i, 1)
        hour = datetime.fromtimestamp(now, UTC).replace(minute=0, second=0, microsecond=0)
        store.write_predictions(ENDPOINT, to_table(batch), hour)
        truth = live[:, 0] + live[:, 1] > 0
        record_feedback(
            store,
            ENDPOINT,
            [Label(ids[i], 0, str(int(truth[i])), None) for i in range(0, rows, 10)],
        )

    gate_rows = X.head(143).assign(label=y.head(143))
    files["gate"] = home / "gate.parquet"
    gate_rows.to_parquet(files["gate"])
    files["sample"] = home / "sample.parquet"
    X.to_parquet(files["sample"])
    forest = RandomForestClassifier(n_estimators=trees, max_depth=8, random_state=0, n_jobs=1)
    files["forest"] = home / "forest.skops"
    files["forest"].write_bytes(skops.io.dumps(forest.fit(X, y)))
    files["report"] = home / "report.html"
    return files


def commands(files: dict[str, Path], trees: int) -> list[tuple[str, list[str], str]]:
    """(label, argv, kind): ``read`` commands aim at < 0.3 s."""
    return [
        ("--help", ["--help"], "read"),
        ("models list", ["models", "list"], "read"),
        ("models show clf", ["models", "show", "clf"], "read"),
        ("models show clf@1.1.0", ["models", "show", "clf@1.1.0"], "read"),
        ("events", ["events"], "read"),
        ("deployments history bench", ["deployments", "history", ENDPOINT], "read"),
        ("deployments", ["deployments"], "read"),
        ("tokens list", ["tokens", "list"], "read"),
        (
            "gate clf@1.1.0 --against clf@1.0.0 (143 rows) --require 'accuracy>=0'",
            [
                "gate",
                "clf@1.1.0",
                "--against",
                "clf@1.0.0",
                "--target",
                "label",
                "--data",
                str(files["gate"]),
                "--require",
                "accuracy>=0",
            ],
            "work",
        ),
        ("monitor drift bench", ["monitor", "drift", ENDPOINT, "--window", "all"], "work"),
        (
            "monitor performance bench",
            ["monitor", "performance", ENDPOINT, "--window", "all"],
            "work",
        ),
        (
            "monitor report bench",
            ["monitor", "report", ENDPOINT, "--window", "all", "--out", str(files["report"])],
            "work",
        ),
        (
            f"models register ({trees}-tree forest file, 2,000-row sample)",
            [
                "models",
                "register",
                "forest",
                str(files["forest"]),
                "--trusted",
                "--sample",
                str(files["sample"]),
            ],
            "work",
        ),
    ]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process; CPU is what a shared, loaded
    machine distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # gate exits 1 when it fails; anything else is a bug
        raise SystemExit(f"{argv} exited {done.returncode}:\n{done.stderr.decode()[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=5000, help="rows in the prediction log")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--only", action="append", help="time only commands with this label")
    parser.add_argument(
        "--importtime", action="store_true", help="print each command's 12 dearest imports"
    )
    parser.add_argument("--keep", action="store_true", help="keep the registry (for profiling)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dockyard-cli-bench-"))
    env = {**os.environ, "DOCKYARD_HOME": str(home), "DOCKYARD_USER": "bench", "COLUMNS": "120"}
    try:
        start = time.perf_counter()
        files = build(home, args.rows, args.trees)
        built = time.perf_counter() - start
        baseline = statistics.median(
            run_once([sys.executable, "-c", "pass"], env)[0] for _ in range(args.repeat)
        )
        table: list[tuple[str, str, float, float, list[float]]] = []
        for label, argv, kind in commands(files, args.trees):
            if args.only and not any(text in label for text in args.only):
                continue
            samples = [run_once([DOCKYARD, *argv], env) for _ in range(args.repeat)]
            walls = [wall for wall, _ in samples]
            cpu = statistics.median(cpu for _, cpu in samples)
            table.append((label, kind, statistics.median(walls), cpu, walls))
            if args.importtime:
                print_imports(label, argv, env)
        print(
            f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}; registry "
            f"built in {built:.1f} s ({args.rows:,} logged rows); median of {args.repeat} "
            f"fresh processes; python -c pass {baseline * 1000:.0f} ms\n"
        )
        print("| command | kind | wall (median) | CPU (median) | wall, each run |")
        print("|---|---|---|---|---|")
        for label, kind, wall, cpu, walls in table:
            aim = " ✓" if kind == "read" and wall < 0.3 else ""
            runs = ", ".join(f"{s:.2f}" for s in walls)
            print(f"| `dockyard {label}` | {kind} | {wall:.2f} s{aim} | {cpu:.2f} s | {runs} |")
    finally:
        if args.keep:
            print(f"\nregistry kept: DOCKYARD_HOME={home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def print_imports(label: str, argv: list[str], env: dict[str, str]) -> None:
    """The dearest top-level imports of one run (``python -X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dockyard", *argv],
        env=env,
        capture_output=True,
        check=False,
    )
    rows: list[tuple[int, str]] = []
    for line in done.stderr.decode().splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):
            rows.append((int(cumulative), name.strip()))
    top: Any = sorted(rows, reverse=True)[:12]
    print(f"{label}: " + ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in top))


if __name__ == "__main__":
    main()
