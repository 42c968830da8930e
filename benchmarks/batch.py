"""Batch scoring benchmark: ``dockyard score`` against the loops it replaces, same files.

Inputs are generated Parquet files (``--rows`` × 20 float features, row groups of 65,536
rows) in ``benchmarks/.work/batch``; the models are a logistic regression and a 100-tree
random forest (depth 10), registered in a fresh Dockyard home (their ONNX twins built and
checked at registration). Every figure is a ratio against a baseline measured in the same
run, on the same file and cores (median of ``--repeat``):

* **hand loop** (the practical limit): pyarrow reads record batches, onnxruntime runs the
  very ONNX twin Dockyard serves, pyarrow writes prediction and probabilities to Parquet;
  no validation, no rejects, no order bookkeeping.
* **pandas chunks**: the same batches as pandas DataFrames, scikit-learn's
  ``predict`` and ``predict_proba``, written with pyarrow (what a plain script does;
  faster than reading the whole file into pandas, which also holds it all in memory).
* **workers**: ``dockyard score --workers 2`` ÷ ``--workers 1`` on the native forest
  (``--no-accelerate``), each a whole process (start and model load included);
  ``--workers-rounds N`` alternates only these two, N times, for paired ratios.
* **Ray**: ``--engine ray`` on a local Ray ÷ the local engine (Ray's start included).
* **peak RSS**: ``dockyard score`` as a process (its whole process tree, polled), on the
  ``--rows`` file and on the ``--big-rows`` one.

Run:  .venv/bin/python benchmarks/batch.py [--rows 1000000] [--big-rows 10000000]
      [--repeat 3] [--skip-ray] [--skip-big] [--only-lr] [--workers-rounds N]
      [--scorer-rounds N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import process_tree, rss_mib  # noqa: E402

WORK = HERE / ".work" / "batch"
FEATURES = [f"f{i}" for i in range(20)]
BATCH_ROWS = 65_536


def generate(path: Path, rows: int) -> Path:
    """``rows`` rows of 20 normal features, written a million at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    rng = np.random.default_rng(1)
    schema = pa.schema([pa.field(name, pa.float64()) for name in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - start)
            block = rng.normal(size=(n, len(FEATURES)))
            table = pa.table({name: block[:, i] for i, name in enumerate(FEATURES)})
            writer.write_table(table, row_group_size=BATCH_ROWS)
    return path


def register(home: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from dockyard.registry import Registry
    from dockyard.settings import Settings

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(5000, len(FEATURES))), columns=FEATURES)
    y = ((X["f0"] + X["f1"] * X["f2"] + rng.normal(size=5000)) > 0).astype(int)
    models = {
        "lr": LogisticRegression(max_iter=1000).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(
            X, y
        ),
    }
    shutil.rmtree(home, ignore_errors=True)
    twins: dict[str, Any] = {}
    with Registry.open(Settings(home=home, user="bench")) as registry:
        for name, model in models.items():
            version = registry.register(model, name, sample=X, y=y)
            twin = version.accelerated or {}
            assert twin.get("digest"), f"{name} has no ONNX twin: {twin}"
            twins[name] = registry.artifacts.get(str(twin["digest"]))
    return {"models": models, "twins": twins}


def timed(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def dockyard_job(
    home: Path, ref: str, source: Path, out: Path, **options: Any
) -> Callable[[], Any]:
    from dockyard.batch.service import score
    from dockyard.settings import Settings

    settings = Settings(home=home, user="bench")

    def run() -> None:
        score(ref, str(source), out=str(out), settings=settings, **options)

    return run


def cli_job(home: Path, source: Path, out: Path, *flags: str) -> Callable[[], Any]:
    """``dockyard score`` as its own process: each run pays its start and the model's load,
    as a user's does (worker processes cannot reuse this process's imports)."""
    env = {**os.environ, "DOCKYARD_HOME": str(home)}
    argv = [sys.executable, "-m", "dockyard", "score", *flags, str(source), "--out", str(out),
            "--quiet"]  # fmt: skip

    def run() -> None:
        subprocess.run(argv, env=env, check=True)

    return run


def hand_loop(twin: bytes, source: Path, out: Path) -> Callable[[], Any]:
    """pyarrow → onnxruntime → pyarrow, nothing else."""
    import numpy as np
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(twin, options, providers=["CPUExecutionProvider"])
    inputs = [item.name for item in session.get_inputs()]  # one per column, or one matrix
    dtype = np.float32 if "float)" in session.get_inputs()[0].type else np.float64

    def feed(batch: pa.RecordBatch) -> dict[str, Any]:
        if len(inputs) == 1:
            x = np.column_stack([c.to_numpy() for c in batch.columns]).astype(dtype)
            return {inputs[0]: x}
        return {n: batch.column(n).to_numpy().astype(dtype).reshape(-1, 1) for n in inputs}

    def run() -> None:
        writer = None
        for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS):
            label, proba = session.run(None, feed(batch))
            proba = np.asarray(proba)
            table = pa.table({"prediction": label, "proba_0": proba[:, 0], "proba_1": proba[:, 1]})
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()

    return run


def pandas_chunks(model: Any, source: Path, out: Path) -> Callable[[], Any]:
    """pandas DataFrames per batch, scikit-learn's predict and predict_proba."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def run() -> None:
        writer = None
        for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS):
            frame = batch.to_pandas()
            proba = model.predict_proba(frame)
            table = pa.table(
                {
                    "prediction": model.predict(frame),
                    "proba_0": proba[:, 0],
                    "proba_1": proba[:, 1],
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()

    return run


def scorer_rounds(home: Path, twin: bytes, source: Path, rounds: int) -> None:
    """Per-batch time of ``Scorer.score`` (the LR twin) with the Arrow fast path and with it
    off (pandas + the full validator), and of the hand loop's feed + session run, on the
    same batches, interleaved batch by batch: what each path costs, read and write left out."""
    import numpy as np
    import onnxruntime as ort
    import pyarrow.parquet as pq

    from dockyard.batch.scorer import Scorer
    from dockyard.registry import Registry
    from dockyard.settings import Settings

    with Registry.open(Settings(home=home, user="bench")) as registry:
        fast = Scorer.open(registry, "lr@1.0.0")
        full = Scorer.open(registry, "lr@1.0.0")
    full._rows = None  # the path every batch took before the fast path
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(twin, options, providers=["CPUExecutionProvider"])
    names = [item.name for item in session.get_inputs()]

    def hand(batch: Any) -> None:
        feeds = {n: batch.column(n).to_numpy().astype(np.float32).reshape(-1, 1) for n in names}
        session.run(None, feeds)

    batches = list(pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS))[:8]
    times: dict[str, list[float]] = {"fast": [], "full": [], "hand": []}
    for _ in range(rounds):
        for batch in batches:
            for name, action in (("fast", lambda b: fast.score(b, 0)),
                                 ("full", lambda b: full.score(b, 0)), ("hand", hand)):  # fmt: skip
                started = time.perf_counter()
                action(batch)
                times[name].append(time.perf_counter() - started)
    fast_s, full_s, hand_s = (statistics.median(times[k]) for k in ("fast", "full", "hand"))
    print(f"per {BATCH_ROWS:,}-row batch (median of {len(times['fast'])}): fast path "
          f"{fast_s * 1000:.1f} ms, full path {full_s * 1000:.1f} ms, hand loop "
          f"{hand_s * 1000:.1f} ms; hand ÷ fast {hand_s / fast_s:.2f}×, hand ÷ full "
          f"{hand_s / full_s:.2f}×, full ÷ fast {full_s / fast_s:.2f}×", flush=True)  # fmt: skip


def peak_rss(home: Path, source: Path, out: Path) -> tuple[float, float]:
    """(peak MiB of the ``dockyard score`` process tree, seconds), polled every 20 ms."""
    env = {**os.environ, "DOCKYARD_HOME": str(home)}
    argv = [sys.executable, "-m", "dockyard", "score", "lr@1.0.0", str(source), "--out", str(out),
            "--workers", "1", "--quiet"]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, rss_mib(process_tree(process.pid)))
        time.sleep(0.02)
    assert process.returncode == 0
    return peak, time.perf_counter() - started


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument(
        "--scorer-rounds",
        type=int,
        default=0,
        help="Only the LR scorer's per-batch cost, fast path vs full path vs hand loop, "
        "interleaved over 8 batches this many times.",
    )
    parser.add_argument(
        "--only-lr",
        action="store_true",
        help="Only the logistic regression against the hand loop and pandas chunks.",
    )
    parser.add_argument(
        "--workers-rounds",
        type=int,
        default=0,
        help="Only --workers 2 vs 1 on the native forest, alternated this many rounds "
        "(paired ratios for a noisy machine).",
    )
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    home = WORK / "home"
    print(f"machine: {machine()}", flush=True)
    source = generate(WORK / f"in-{args.rows}.parquet", args.rows)
    fitted = register(home)
    out = WORK / "out.parquet"
    rows = args.rows
    lines: list[tuple[str, float, str, float]] = []
    if args.scorer_rounds:
        scorer_rounds(home, fitted["twins"]["lr"], source, args.scorer_rounds)
        return
    if args.workers_rounds:
        one = cli_job(home, source, out, "rf@1.0.0", "--no-accelerate", "--workers", "1")
        two = cli_job(home, source, out, "rf@1.0.0", "--no-accelerate", "--workers", "2")
        ratios = []
        for round_ in range(args.workers_rounds):
            first, second = timed(one, 1), timed(two, 1)
            ratios.append(first / second)
            print(f"round {round_ + 1}: --workers 1 {first:.2f} s, --workers 2 {second:.2f} s: "
                  f"{first / second:.2f}×", flush=True)  # fmt: skip
        print(f"median --workers 2 ÷ 1: {statistics.median(ratios):.2f}×", flush=True)
        return

    def compare(label: str, ours: Callable[[], Any], name: str, base: Callable[[], Any]) -> None:
        ours()  # warm: first reads, imports
        mine, theirs = timed(ours, args.repeat), timed(base, args.repeat)
        lines.append((label, mine, name, theirs))
        print(
            f"{label}: {rows / mine:,.0f} rows/s ({mine:.2f} s) vs {name} "
            f"{rows / theirs:,.0f} rows/s ({theirs:.2f} s): {theirs / mine:.2f}×",
            flush=True,
        )

    for model in ("lr",) if args.only_lr else ("lr", "rf"):
        job = dockyard_job(home, f"{model}@1.0.0", source, out, workers=1)
        label = f"{model} dockyard (twin, 1 worker)"
        hand = hand_loop(fitted["twins"][model], source, WORK / "hand.parquet")
        compare(label, job, "hand loop", hand)
        chunks = pandas_chunks(fitted["models"][model], source, WORK / "pandas.parquet")
        compare(label, job, "pandas chunks + sklearn", chunks)
    if args.only_lr:
        return
    one = cli_job(home, source, out, "rf@1.0.0", "--no-accelerate", "--workers", "1")
    two = cli_job(home, source, out, "rf@1.0.0", "--no-accelerate", "--workers", "2")
    compare("rf native, --workers 2 (whole processes)", two, "--workers 1", one)
    if not args.skip_ray:
        local = dockyard_job(home, "lr@1.0.0", source, out, workers=1)
        on_ray = dockyard_job(home, "lr@1.0.0", source, out, workers=1, engine="ray")
        compare("lr --engine ray (start included)", on_ray, "local engine", local)
    small_rss, small_s = peak_rss(home, source, out)
    print(f"peak RSS, {rows:,} rows: {small_rss:.0f} MiB ({small_s:.1f} s)", flush=True)
    if not args.skip_big:
        big = generate(WORK / f"in-{args.big_rows}.parquet", args.big_rows)
        big_rss, big_s = peak_rss(home, big, out)
        print(
            f"peak RSS, {args.big_rows:,} rows: {big_rss:.0f} MiB ({big_s:.1f} s): "
            f"{big_rss / small_rss:.2f}× the {rows:,}-row figure",
            flush=True,
        )


if __name__ == "__main__":
    main()
