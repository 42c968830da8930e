"""One model call of the server's ONNX twins, timed alone: what Dockyard's runtime adds to
onnxruntime's own ``run``.

The logistic regression and the random forest of ``harness.py``, converted to ONNX as
Dockyard converts them (skl2onnx, no ZipMap), loaded by Dockyard's ONNX runtime with one
intra-op thread (the server's default), called on ``--rows`` rows of float32, as the
serving path calls them (``predict_with_proba``: labels and probabilities from one run),
beside the same session's ``run`` for the same two outputs, with and without a
``RunOptions`` (onnxruntime builds default options in every call given none). Each figure
is µs per call, the least of 5 repeats of ``--calls`` calls, in one thread.

Run:  PYTHONPATH=src .venv/bin/python benchmarks/model_call.py [--rows 1] [--calls 20000]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

import harness  # the models (benchmarks/harness.py)


def per_call_us(call: Any, calls: int) -> float:
    return min(timeit.repeat(call, number=calls, repeat=5)) / calls * 1e6


def figures(model: Any, x: Any, calls: int) -> list[float]:
    """Dockyard's call, then the session's bare ``run`` without and with options."""
    import onnxruntime as ort
    from skl2onnx import to_onnx

    from dockyard.runtimes.onnx import OnnxRuntime

    proto = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    loaded: Any = OnnxRuntime(intra_op_threads=1).load(proto.SerializeToString(), {})
    session = loaded.session
    outputs = [node.name for node in session.get_outputs()[:2]]
    feeds = {session.get_inputs()[0].name: x}
    options = ort.RunOptions()
    return [
        per_call_us(lambda: loaded.predict_with_proba(x), calls),
        per_call_us(lambda: session.run(outputs, feeds), calls),
        per_call_us(lambda: session.run(outputs, feeds, options), calls),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    import numpy as np

    work = harness.HERE / ".work" / "model_call"
    models, X, _ = harness.fit_models(work)
    x = X[: args.rows].astype(np.float32)
    print(f"{harness.describe_machine()}; {args.rows} row(s), µs per call, least of 5 repeats")
    print()
    print("| model | Dockyard `predict_with_proba` | `session.run`, no options | with options |")
    print("|---|---|---|---|")
    for name, model in models.items():
        timed = figures(model, x, args.calls)
        print(f"| {name} | " + " | ".join(f"{f:.2f}" for f in timed) + " |")


if __name__ == "__main__":
    main()
