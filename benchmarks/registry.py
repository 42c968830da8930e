"""Registry benchmarks: register and load a 200-tree random forest, register a logistic
regression, list 10,000 versions.

Each figure is reported beside a baseline measured in the same run, as a ratio, because
shared machines are noisy:

* register  vs. ``skops.io.dumps`` of the same model (the serialisation alone); the
  forest's first registration in the process is reported too (it imports what the
  registration needs the first time, e.g. ``shap`` for global importance)
* load      vs. ``skops.io.loads`` of the same bytes (the deserialisation alone)
* list      vs. the same rows fetched with the stdlib ``sqlite3`` module

To compare trees (before and after a change), run this script from one checkout against
each tree's ``src`` (``PYTHONPATH=TREE/src``), one after the other in the same session.

Run:  .venv/bin/python benchmarks/registry.py [--versions 10000] [--repeat 5] [--no-list]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CPU: dict[int, float] = {}


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time in seconds over ``repeat`` runs (the median CPU time of the process,
    which a loaded machine distorts less, is kept in ``CPU[id(fn)]``)."""
    samples, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        samples.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU[id(fn)] = statistics.median(cpu)
    return statistics.median(samples)


def forest() -> tuple[Any, Any, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 20))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=5000) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=200, max_depth=10, random_state=0, n_jobs=1)
    return model.fit(X, y), X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--no-list", action="store_true", help="only the registrations and the load"
    )
    args = parser.parse_args()

    import skops.io

    from dockyard.registry import Registry
    from dockyard.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    settings = Settings(home=home, user="bench")
    model, X, y = forest()
    rows: list[tuple[str, str, str, str]] = []

    with Registry.open(settings) as registry:
        data = skops.io.dumps(model)
        dump_s = timed(lambda: skops.io.dumps(model), args.repeat)
        baseline = f"skops.io.dumps {dump_s * 1000:.0f} ms"
        registrations = [
            ("register 200-tree forest, accelerate=False, first in the process", "forest-first", 1),
            (
                "register 200-tree forest (5,000-row sample, ONNX twin built and checked)",
                "forest",
                None,
            ),
            ("register the same, accelerate=False", "forest-native", False),
        ]
        for label, name, how in registrations:

            def register(name: str = name, how: Any = how) -> None:
                accelerate = how is None
                registry.register(model, name, sample=X, y=y, accelerate=accelerate)

            seconds = timed(register, 1 if how == 1 else args.repeat)
            cell = f"{seconds * 1000:.0f} ms (CPU {CPU[id(register)] * 1000:.0f} ms)"
            rows.append((label, cell, baseline, f"{seconds / dump_s:.2f}×"))
        from sklearn.linear_model import LogisticRegression

        linear = LogisticRegression(max_iter=1000).fit(X, y)

        def register_linear() -> None:
            registry.register(linear, "linear", sample=X, y=y, accelerate=False)

        linear_s = timed(register_linear, args.repeat)
        linear_dump_s = timed(lambda: skops.io.dumps(linear), args.repeat)
        rows.append(
            (
                "register a logistic regression (20 features, same sample), accelerate=False",
                f"{linear_s * 1000:.0f} ms (CPU {CPU[id(register_linear)] * 1000:.0f} ms)",
                f"skops.io.dumps {linear_dump_s * 1000:.1f} ms",
                f"{linear_s / linear_dump_s:.0f}×",
            )
        )
        trusted = skops.io.get_untrusted_types(data=data)
        load_s = timed(lambda: registry.load("forest"), args.repeat)
        loads_s = timed(lambda: skops.io.loads(data, trusted=trusted), args.repeat)
        rows.append(
            (
                "load 200-tree forest (digest verified)",
                f"{load_s * 1000:.0f} ms",
                f"skops.io.loads {loads_s * 1000:.0f} ms",
                f"{load_s / loads_s:.2f}×",
            )
        )
        artifact_mib = len(data) / 2**20
        if args.no_list:
            _print(rows, f"artifact {artifact_mib:.1f} MiB; median of {args.repeat}")
            return

        # 10,000 versions of one model: metadata rows, one shared artifact.
        from dockyard.registry.types import NewVersion

        signature = registry.get_version("forest").signature
        digest = registry.get_version("forest").digest
        start = time.perf_counter()
        for _ in range(args.versions):
            registry.store.add_version(
                "many",
                NewVersion(
                    runtime="sklearn",
                    digest=digest,
                    size=len(data),
                    signature=signature,
                    metrics={"auc": 0.9},
                ),
                actor="bench",
            )
        fill_s = time.perf_counter() - start
        list_s = timed(lambda: registry.list_versions("many"), args.repeat)
        models_s = timed(registry.list_models, args.repeat)

    db_path = home / "dockyard.db"

    def raw() -> None:
        with sqlite3.connect(db_path) as conn:
            conn.execute(
                "SELECT v.* FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = ?",
                ("many",),
            ).fetchall()

    raw_s = timed(raw, args.repeat)
    rows.append(
        (
            f"list {args.versions:,} versions (Python API)",
            f"{list_s * 1000:.0f} ms",
            f"sqlite3 SELECT * {raw_s * 1000:.0f} ms",
            f"{list_s / raw_s:.2f}×",
        )
    )
    rows.append(
        (
            f"list models (3 models, {args.versions + 2 * args.repeat:,} versions)",
            f"{models_s * 1000:.0f} ms",
            "—",
            "—",
        )
    )

    cli = [sys.executable, "-m", "dockyard", "--home", str(home)]
    bare_s = timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 3)
    for label, command in [
        ("`dockyard models list` (whole process)", ["models", "list"]),
        (
            f"`dockyard models show many` (50 highest of {args.versions:,})",
            ["models", "show", "many"],
        ),
        (
            f"`dockyard models show many --all --json` ({args.versions:,} versions)",
            ["models", "show", "many", "--all", "--json"],
        ),
    ]:
        command_s = timed(
            lambda command=command: subprocess.run(
                [*cli, *command], check=True, capture_output=True
            ),
            3,
        )
        rows.append(
            (
                label,
                f"{command_s * 1000:.0f} ms",
                f"python -c pass {bare_s * 1000:.0f} ms",
                f"{command_s / bare_s:.1f}×",
            )
        )

    _print(
        rows,
        f"artifact {artifact_mib:.1f} MiB; filled {args.versions:,} versions in {fill_s:.1f} s; "
        f"median of {args.repeat}",
    )


def _print(rows: list[tuple[str, str, str, str]], details: str) -> None:
    import dockyard

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; dockyard from {Path(dockyard.__file__).parent}; "
        f"{details}"
    )
    print("| measurement | Dockyard | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
