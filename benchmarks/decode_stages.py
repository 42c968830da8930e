"""The v2 input path stage by stage, in thread CPU time: decoding, the tabular input and
validation, for one 2-D tensor and one tensor per column (JSON and binary), and one JSON
tensor per column of a DataFrame of mixed columns (6 ``FP64``, 2 ``INT64``, 3 ``BYTES``,
1 ``BOOL``, as ``frames.py`` sends them) to a model fitted on that frame; and the encoding of
the usual one-row answer (a label and two probabilities, all JSON).

Each stage runs ``--calls`` times, ``--repeats`` times; the figure is the best repeat's
µs per call in ``time.thread_time`` (what this thread spent, whatever else the machine
does). The body is one row of 20 FP64 features, as ``shapes.py`` sends it, decoded as the
server decodes it (its remembered binary headers and JSON layouts, and its JSON numbers
reader, in a tree that has them). With ``--before SRC`` the script runs itself once per
tree, alternating A B B A, so both trees see the machine in the same states; pin it with
``taskset -c 1`` for steadier figures.

Three more bodies are clients' own: kserve's (binary and JSON per column), a fresh ``id``
first in each, decoded over 64 of them in turn, as a server sees them; and MLServer's
pandas codec (JSON per column, the request's content type in its parameters).

``--bulk`` measures 100-row requests instead (and the same stages for one row), as they are
and with five of the 20 features 0/1 flags (one-hot or indicator columns): validating v1
row arrays and records; decoding and validating v1 row arrays, columns and records, and
decoding a v2 JSON 2-D tensor and one tensor per column (also in kserve's form, a fresh
``id`` first in each of 64 bodies taken in turn), as the server does (with ``JsonNumbers``
and ``JsonLayouts`` in a tree that has them, and the model's columns for records where it
takes them).

Run:  taskset -c 1 .venv/bin/python benchmarks/decode_stages.py [--before /tmp/before/src]
      [--bulk]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FEATURES = 20


def measure(calls: int, repeats: int) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    from dockyard.schema import Validator, infer_signature
    from dockyard.server.protocols import v2

    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(FEATURES)]
    row = rng.normal(size=FEATURES).tolist()
    per_column = [
        {"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
        for n, v in zip(names, row, strict=True)
    ]
    bodies: dict[str, tuple[bytes, int | None]] = {
        "JSON 2-D tensor": (
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": [1, FEATURES],
                            "datatype": "FP64",
                            "data": [row],
                        }
                    ]
                }
            ).encode(),
            None,
        ),
        "JSON per column": (json.dumps({"inputs": per_column}).encode(), None),
    }
    header = json.dumps(
        {
            "inputs": [
                {"name": n, "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
                for n in names
            ]
        }
    ).encode()
    bodies["binary per column"] = (header + np.asarray(row, dtype="<f8").tobytes(), len(header))
    sample = pd.DataFrame(rng.normal(size=(50, FEATURES)), columns=names)
    signature = infer_signature(
        sample, layout="array", predictions=np.zeros(50), classes=None, has_proba=False
    )
    validator = Validator(signature)
    plans = {label: (body, length, names, validator) for label, (body, length) in bodies.items()}
    frame = pd.DataFrame({f"f{i}": rng.normal(size=50) for i in range(6)})
    frame["n0"], frame["n1"] = rng.integers(0, 10, 50), rng.integers(0, 100, 50)
    for name, words in (("color", ["red", "blue"]), ("city", ["oslo", "lima"]), ("plan", ["a"])):
        frame[name] = rng.choice(words, 50).astype(object)
    frame["member"] = rng.random(50) < 0.5
    mixed = Validator(
        infer_signature(
            frame, layout="frame", predictions=np.zeros(50), classes=None, has_proba=False
        )
    )
    kinds = {"f": "FP64", "i": "INT64", "O": "BYTES", "b": "BOOL"}
    first = frame.iloc[:1].astype(object).to_dict("list")
    tensors = [
        {"name": n, "shape": [1], "datatype": kinds[frame[n].dtype.kind],
         "data": [v.item() if hasattr(v, "item") else v for v in values]}
        for n, values in first.items()
    ]  # fmt: skip
    body = json.dumps({"inputs": tensors}).encode()
    plans["JSON per column, mixed"] = (body, None, list(frame.columns), mixed)

    def best(fn: Callable[[], Any]) -> float:
        return _best(fn, calls, repeats)

    # as the server decodes: with its remembered binary headers and JSON layouts, and its
    # JSON numbers reader
    extra: dict[str, Any] = {"headers": v2.BinaryHeaders()}
    if hasattr(v2, "JsonLayouts"):  # a tree before it has none
        extra["layouts"] = v2.JsonLayouts()
    try:
        from dockyard.server.protocols.json_numbers import JsonNumbers

        extra["numbers"] = JsonNumbers()
    except ImportError:  # a tree before it
        pass
    figures: dict[str, float] = {}
    for label, (body, length, columns, check) in plans.items():
        request = v2.decode_request(body, header_length=length, **extra)
        data = v2.tabular_input(request, columns)
        figures[f"{label}: decode_request"] = best(
            lambda body=body, length=length: v2.decode_request(body, header_length=length, **extra)
        )
        figures[f"{label}: tabular_input"] = best(
            lambda request=request, columns=columns: v2.tabular_input(request, columns)
        )
        figures[f"{label}: validate"] = best(
            lambda data=data, check=check: check.validate(data, as_columns=True)
        )
    outputs = [  # a one-row answer of the logistic regression, as the plane widens it
        v2.OutputTensor("predict", np.array([1])),
        v2.OutputTensor("predict_proba", np.array([[0.2, 0.8]])),
    ]
    figures["the answer: encode_response"] = best(
        lambda: v2.encode_response(
            model_name="lr", model_version="1.0.0", request_id="0123456789abcdef", outputs=outputs
        )
    )
    for label, (many, length) in client_bodies(per_column, row).items():
        for body in many:  # each id once first, as the server sees a client's requests
            v2.decode_request(body, header_length=length, **extra)
        turn = itertools.cycle(many)
        figures[f"{label}: decode_request"] = best(
            lambda turn=turn, length=length: v2.decode_request(
                next(turn), header_length=length, **extra
            )
        )
    return figures


def kserve_json(inputs: list[dict[str, Any]]) -> bytes:
    """A v2 request (or binary header) of ``inputs`` as kserve's client writes it: a fresh
    uuid4 ``id`` first, then ``model_name``, compact JSON."""
    import uuid

    document = {"id": str(uuid.uuid4()), "model_name": "lr", "inputs": inputs}
    return json.dumps(document, separators=(",", ":")).encode()


def client_bodies(
    per_column: list[dict[str, Any]], row: list[float]
) -> dict[str, tuple[list[bytes], int | None]]:
    """One row of per-column FP64 tensors as clients send them: kserve's, binary and JSON, a
    fresh uuid4 ``id`` first in every request, then ``model_name`` (compact JSON, as orjson
    writes it; 64 requests each, which the measured calls take in turn); and MLServer's
    pandas codec (``{"content_type": "pd"}`` and columns of shape ``[1, 1]``, compact)."""
    import numpy as np

    binary_inputs = [
        {
            "name": column["name"],
            "shape": [1],
            "datatype": "FP64",
            "parameters": {"binary_data_size": 8},
        }
        for column in per_column
    ]
    values = np.asarray(row, dtype="<f8").tobytes()
    headers = [kserve_json(binary_inputs) for _ in range(64)]
    return {
        "binary per column, an id each (kserve)": (
            [h + values for h in headers],
            len(headers[0]),
        ),
        "JSON per column, an id each (kserve)": (
            [kserve_json(per_column) for _ in range(64)],
            None,
        ),
        "JSON per column (MLServer's pandas codec)": (
            [
                json.dumps(
                    {
                        "parameters": {"content_type": "pd"},
                        "inputs": [{**column, "shape": [1, 1]} for column in per_column],
                    },
                    separators=(",", ":"),
                ).encode()
            ],
            None,
        ),
    }


def _best(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """µs per call of ``fn``: the best of ``repeats`` runs of ``calls`` calls, thread time."""
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        for _ in range(calls):
            fn()
        times.append((time.thread_time() - started) / calls)
    return min(times) * 1e6


def measure_bulk(calls: int, repeats: int) -> dict[str, float]:
    """100-row requests of the 20 features, as they are and with 5 of them 0/1 flags
    (one-hot or indicator columns; numpy reads ``true`` as 1, so the bulk paths look at
    values equal to 0 or 1): validating v1 row arrays and records, decoding a v2 JSON 2-D
    tensor and one tensor per column."""
    import numpy as np
    import orjson
    import pandas as pd

    from dockyard.schema import Validator, infer_signature
    from dockyard.server.protocols import v1, v2

    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(FEATURES)]
    values = rng.normal(size=(100, FEATURES))
    flagged = values.copy()
    flagged[:, :5] = values[:, :5] > 0
    sample = pd.DataFrame(rng.normal(size=(50, FEATURES)), columns=names)
    validator = Validator(
        infer_signature(
            sample, layout="array", predictions=np.zeros(50), classes=None, has_proba=False
        )
    )
    # as the server decodes: JSON of many numbers read by simdjson, and the JSON layouts it
    # remembers (of large bodies too, in trees that remember those), in trees that have them
    try:
        from dockyard.server.protocols.json_numbers import JsonNumbers

        extra: dict[str, Any] = {"numbers": JsonNumbers()}
    except ImportError:  # a tree before it
        extra = {}
    if extra and hasattr(v2, "JsonLayouts"):
        extra["layouts"] = v2.JsonLayouts()

    names = tuple(names)
    try:  # records read by msgspec given the model's columns, in trees that have it
        extra and extra["numbers"].v1_values(b"{}", names)
        columns_named: tuple[tuple[str, ...], ...] = (names,)
    except TypeError:
        columns_named = ()

    try:  # a v1 body's numbers taken as finite (orjson refuses NaN), in trees that do
        validator.validate([[0.0] * FEATURES], finite=True)
        finite: dict[str, bool] = {"finite": True}
    except TypeError:
        finite = {}

    def v1_in(body: bytes) -> Any:
        """A v1 body decoded and validated as the server does it."""
        if extra and validator.numeric is not None:
            found = extra["numbers"].v1_values(body, *columns_named)
            array = None if found is None else validator.numeric.decode(found)
            if array is not None:
                return array
        return validator.validate(v1.decode_request(body)[1], **finite)

    figures: dict[str, float] = {}
    cases = (("1 row", values[:1]), ("100 rows", values), ("100 rows, 5 flag columns", flagged))
    for label, data in cases:
        rows = data.tolist()
        records = [dict(zip(names, row, strict=True)) for row in rows]
        shape = [len(rows), FEATURES]
        tensor = [{"name": "input-0", "shape": shape, "datatype": "FP64", "data": rows}]
        columns = [
            {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": data[:, i].tolist()}
            for i, n in enumerate(names)
        ]
        per_column, two_d = (orjson.dumps({"inputs": inputs}) for inputs in (columns, tensor))
        v1_rows = orjson.dumps({"instances": rows})
        v1_records = orjson.dumps({"instances": records})
        v1_columns = orjson.dumps({"inputs": {n: data[:, i].tolist() for i, n in enumerate(names)}})
        stages: dict[str, Callable[[], Any]] = {
            "v1 row arrays: validate": lambda rows=rows: validator.validate(rows),
            "v1 records: validate": lambda records=records: validator.validate(records),
            "v1 row arrays: decode + validate": lambda body=v1_rows: v1_in(body),
            "v1 columns: decode + validate": lambda body=v1_columns: v1_in(body),
            "v1 records: decode + validate": lambda body=v1_records: v1_in(body),
            "v2 JSON 2-D tensor: decode_request": lambda body=two_d: v2.decode_request(
                body, **extra
            ),
            "v2 JSON per column: decode_request": lambda body=per_column: v2.decode_request(
                body, **extra
            ),
            # kserve's form: a fresh uuid4 id first in each, 64 bodies taken in turn
            "v2 JSON per column, an id each (kserve): decode_request": functools.partial(
                lambda turn: v2.decode_request(next(turn), **extra),
                itertools.cycle([kserve_json(columns) for _ in range(64)]),
            ),
        }
        for stage, fn in stages.items():
            figures[f"{label}, {stage}"] = _best(fn, calls, repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--before", default=None, help="Another tree's src, interleaved.")
    parser.add_argument(
        "--bulk",
        action="store_true",
        help="100-row requests, with and without 0/1 flag columns (measure_bulk).",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        chosen = measure_bulk if args.bulk else measure
        print(json.dumps(chosen(args.calls, args.repeats)))
        return
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = [("before", args.before), ("this tree", here)] if args.before else [("", here)]
    order = trees + trees[::-1] if args.before else trees
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    for label, src in order:
        env = {**os.environ, "PYTHONPATH": str(src)}
        command = [sys.executable, __file__, "--json", "--calls", str(args.calls)]
        command += ["--bulk"] if args.bulk else []
        out = subprocess.run(
            [*command, "--repeats", str(args.repeats)], env=env, capture_output=True, check=True
        )
        results[label].append(json.loads(out.stdout))
    print(f"| stage | {' | '.join(label or 'µs' for label, _ in trees)} |")
    print(f"|---|{'---|' * len(trees)}")
    for stage in results[trees[0][0]][0]:
        cells = [", ".join(f"{run[stage]:.2f}" for run in results[label]) for label, _ in trees]
        print(f"| {stage} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
