"""Drift benchmark: 1,000,000 live rows × 20 numeric features against a training profile.

The current data is written to Parquet once; each timed run reads it with DuckDB and runs
``dockyard.monitoring.drift.compare`` against a reference profile built from a 10,000-row
training sample (features ``f0``–``f4`` are shifted by 1.0, 0.5, 0.2, 0.05 and 0.01 σ, ``f5``
is scaled by 1.5, the rest are drawn from the training distribution).

The baseline is Evidently's ``DataDriftPreset`` on the same reference sample and Parquet
file, read the same way, timed the same way (median of ``--repeat``), in its own virtualenv
at ``benchmarks/.work/evidently`` (installed on first use: ``evidently``, ``duckdb`` and
``pandas<3``, which Evidently 0.7 needs; cached after). If it cannot be installed or run the
reason is printed and the Evidently row is skipped.

Run:  .venv/bin/python benchmarks/drift.py [--rows 1000000] [--features 20] [--repeat 3]
      [--skip-evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORK = Path(__file__).resolve().parent / ".work"
EVIDENTLY_REQUIREMENTS = ["evidently", "duckdb", "pandas<3", "pyarrow"]
SHIFTS = {"f0": 1.0, "f1": 0.5, "f2": 0.2, "f3": 0.05, "f4": 0.01}  # mean shift in σ
SCALED = {"f5": 1.5}

EVIDENTLY_SCRIPT = """
import json, statistics, sys, time
import duckdb
import evidently
from evidently import Report
from evidently.presets import DataDriftPreset

reference_path, current_path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
reference = duckdb.execute(f"select * from read_parquet('{reference_path}')").df()
samples, read_samples = [], []
for _ in range(repeat):
    start = time.perf_counter()
    current = duckdb.execute(f"select * from read_parquet('{current_path}')").df()
    read_samples.append(time.perf_counter() - start)
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    samples.append(time.perf_counter() - start)
scores = {
    m["config"]["column"]: m["value"]
    for m in snapshot.dict()["metrics"]
    if m["config"].get("type", "").endswith("ValueDrift")
}
print(json.dumps({
    "version": evidently.__version__,
    "seconds": statistics.median(samples),
    "read_seconds": statistics.median(read_samples),
    "scores": scores,
}))
"""


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    """Median wall time in seconds over ``repeat`` runs, and the last result."""
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def write_data(folder: Path, rows: int, features: int) -> tuple[Path, Path]:
    """The 10,000-row training sample and the current data, as Parquet."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    means, scales = rng.normal(0, 10, features), rng.uniform(0.5, 5, features)
    training = pd.DataFrame(rng.normal(means, scales, (10_000, features)), columns=names)
    current = pd.DataFrame(rng.normal(means, scales, (rows, features)), columns=names)
    for name, shift in SHIFTS.items():
        if name in current:
            current[name] += shift * scales[names.index(name)]
    for name, factor in SCALED.items():
        if name in current:
            column = current[name]
            current[name] = column.mean() + (column - column.mean()) * factor
    reference_path, current_path = folder / "reference.parquet", folder / "current.parquet"
    training.to_parquet(reference_path, index=False)
    current.to_parquet(current_path, index=False)
    return reference_path, current_path


def evidently_venv() -> Path:
    """Evidently's virtualenv, created and installed on first use."""
    venv = WORK / "evidently"
    wanted = " ".join(EVIDENTLY_REQUIREMENTS)
    marker = venv / ".benchmark-requirements"
    if marker.exists() and marker.read_text() == wanted and (venv / "bin" / "python").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"installing {wanted} into {venv} (once; cached after)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    done = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            *wanted.split(),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(f"pip install failed: {' | '.join(lines[-3:])[:500]}")
    marker.write_text(wanted)
    return venv


def run_evidently(folder: Path, reference: Path, current: Path, repeat: int) -> dict[str, Any]:
    venv = evidently_venv()
    script = folder / "evidently_drift.py"
    script.write_text(EVIDENTLY_SCRIPT)
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(script), str(reference), str(current), str(repeat)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1][:500])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()

    import duckdb

    from dockyard.monitoring.drift import compare, reference_from_frame

    folder = Path(tempfile.mkdtemp(prefix="dockyard-drift-bench-"))
    try:
        reference_path, current_path = write_data(folder, args.rows, args.features)
        sample = duckdb.execute(f"select * from read_parquet('{reference_path}')").df()
        reference = reference_from_frame(sample, dict.fromkeys(sample.columns, "numeric"))

        def read() -> Any:
            return duckdb.execute(f"select * from read_parquet('{current_path}')").df()

        frame = read()
        read_s, _ = timed(read, args.repeat)
        compare_s, report = timed(lambda: compare(reference, frame), args.repeat)
        total_s, _ = timed(lambda: compare(reference, read()), args.repeat)
        evidently: dict[str, Any] | None = None
        skipped = "--skip-evidently"
        if not args.skip_evidently:
            try:
                evidently = run_evidently(folder, reference_path, current_path, args.repeat)
            except (RuntimeError, subprocess.CalledProcessError, ValueError) as error:
                skipped = str(error)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    size = f"{args.rows:,} rows × {args.features} numeric features"
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {size}; "
        f"reference: 10,000-row sample; median of {args.repeat}"
    )
    print("| measurement | seconds | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(f"| DuckDB read of the Parquet file | {read_s:.2f} | — | — |")
    print(f"| `compare()` on the frame in memory | {compare_s:.2f} | — | — |")
    if evidently is None:
        print(f"| read + `compare()` | {total_s:.2f} | Evidently skipped: {skipped} | — |")
    else:
        name = f"Evidently {evidently['version']} DataDriftPreset, read + run"
        ratio = evidently["seconds"] / total_s
        print(
            f"| read + `compare()` | {total_s:.2f} | {name} {evidently['seconds']:.2f} s "
            f"| Evidently takes {ratio:.1f}× as long |"
        )
    print()
    print(
        f"dataset drifted: {report.dataset_drifted} "
        f"({report.drifted_count}/{report.feature_count} features)"
    )
    print("| feature | injected | method | effect size | drifted | Evidently score |")
    print("|---|---|---|---|---|---|")
    scores = {} if evidently is None else evidently["scores"]
    for feature in report.features:
        name = feature.feature
        injected = (
            f"{SHIFTS[name]} σ shift"
            if name in SHIFTS
            else f"std × {SCALED[name]}"
            if name in SCALED
            else "none"
        )
        effect = "—" if feature.effect_size is None else f"{feature.effect_size:.3f}"
        score = f"{scores[name]:.3f}" if name in scores else "—"
        print(
            f"| {name} | {injected} | {feature.method} | {effect} | {feature.drifted} | {score} |"
        )


if __name__ == "__main__":
    main()
