"""Every input shape a client may send answers alike: the same predictions, probabilities
and errors, whether the rows come as v1 records, v1 columns, v1 row arrays, one v2 2-D
tensor or one v2 tensor per column (in JSON or binary).

Correctness, not speed: the shapes take different ways into the one validator (a 2-D
tensor and row arrays straight to its array path, records and columns by name), and this
holds that they end in the same place, the model's own answer. Four real models: one over
float columns served as an array (the validator's all-numeric fast path); one fitted on a
DataFrame of a float and an integer column, served natively as a DataFrame (the full path);
one fitted on a DataFrame of floats, served by its ONNX twin with one input per column, and
one such served natively (for both, plain numbers become one array, fed column by column or
made a DataFrame once per batch, and anything else takes the full path). The app runs in
process (``httpx.ASGITransport``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from dockyard.registry import Registry
from dockyard.server.app import create_app
from dockyard.server.protocols.v2.layouts import LEARN_EVERY
from dockyard.settings import Settings

Rows = list[list[Any]]
Body = tuple[str, bytes, dict[str, str]]

ARRAY_COLUMNS = ["x0", "x1", "x2"]
FRAME_COLUMNS = ["income", "age"]  # float64, int64
NATIVE_COLUMNS = ["height", "weight"]  # float64, float64
COLUMNS = {
    "array": ARRAY_COLUMNS,
    "frame": FRAME_COLUMNS,
    "twin": NATIVE_COLUMNS,
    "native": NATIVE_COLUMNS,
}
TWINS = {"array", "twin"}
"""The models registered with their ONNX twin (and served by it)."""
CLEAN = {
    "array": [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [-2.0, 3.0, 0.0]],
    "frame": [[1200.5, 30], [0.0, 41], [-3.25, 52]],
    "twin": [[1.75, 70.5], [1.6, 55.0], [1.9, 96.25]],
    "native": [[1.75, 70.5], [1.6, 55.0], [1.9, 96.25]],
}
DATATYPES = {
    "array": ["FP64", "FP64", "FP64"],
    "frame": ["FP64", "INT64"],
    "twin": ["FP64", "FP64"],
    "native": ["FP64", "FP64"],
}


def v1_shapes(name: str, columns: list[str], rows: Rows) -> dict[str, Body]:
    path = f"/v1/endpoints/{name}/predict"
    by_name = {column: [row[i] for row in rows] for i, column in enumerate(columns)}
    shapes = {
        "v1 records": {"instances": [dict(zip(columns, row, strict=True)) for row in rows]},
        "v1 columns": {"inputs": by_name},
        "v1 rows": {"instances": rows},
    }
    return {label: (path, _json(body), {}) for label, body in shapes.items()}


def v2_shapes(name: str, columns: list[str], rows: Rows, datatypes: list[str]) -> dict[str, Body]:
    """One 2-D tensor (its datatype the widest of the columns') and one tensor per column,
    each in JSON and binary."""
    path = f"/v2/models/{name}/infer"
    wide = "FP64" if "FP64" in datatypes else datatypes[0]
    tensor = [("input-0", [len(rows), len(columns)], wide, rows)]
    per_column = [
        (column, [len(rows)], datatype, [row[i] for row in rows])
        for i, (column, datatype) in enumerate(zip(columns, datatypes, strict=True))
    ]
    return {
        "v2 tensor json": (path, _v2_json(tensor), {}),
        "v2 tensor binary": (path, *_v2_binary(tensor)),
        "v2 columns json": (path, _v2_json(per_column), {}),
        "v2 columns binary": (path, *_v2_binary(per_column)),
    }


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _v2_json(inputs: list[tuple[str, list[int], str, Any]]) -> bytes:
    return _json(
        {
            "inputs": [
                {"name": n, "shape": s, "datatype": d, "data": _nulls(v)} for n, s, d, v in inputs
            ]
        }
    )


def _nulls(values: Any) -> Any:
    """JSON has no NaN: a missing float is ``null`` on the v2 wire."""
    if isinstance(values, list):
        return [_nulls(value) for value in values]
    return None if isinstance(values, float) and math.isnan(values) else values


def _v2_binary(inputs: list[tuple[str, list[int], str, Any]]) -> tuple[bytes, dict[str, str]]:
    dtypes = {"FP64": "<f8", "INT64": "<i8"}
    blobs = [np.asarray(values, dtype=dtypes[d]).tobytes() for _, _, d, values in inputs]
    header = _json(
        {
            "inputs": [
                {
                    "name": n,
                    "shape": s,
                    "datatype": d,
                    "parameters": {"binary_data_size": len(blob)},
                }
                for (n, s, d, _), blob in zip(inputs, blobs, strict=True)
            ]
        }
    )
    return header + b"".join(blobs), {"inference-header-content-length": str(len(header))}


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    """``array``: a logistic regression fitted on a float array; ``frame``: one fitted on a
    DataFrame of a float and an integer column; ``twin`` and ``native``: one fitted on a
    DataFrame of floats. ``frame`` picks its columns by dtype (scaled floats, one-hot integers),
    so it fails or answers otherwise unless each column arrives with its own dtype."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame = pd.DataFrame(
        {"income": rng.normal(1000, 300, 200), "age": rng.integers(18, 80, 200).astype(np.int64)}
    )
    frame_y = (frame["income"] > 1000).astype(int)
    native = pd.DataFrame({"height": rng.normal(1.7, 0.1, 200), "weight": rng.normal(75, 12, 200)})
    native_y = (native["weight"] / native["height"] ** 2 > 25).astype(int)
    by_dtype = make_column_transformer(
        (StandardScaler(), make_column_selector(dtype_include="float64")),
        (OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include="int64")),
    )
    return {
        name: (model.fit(data, target), data, target)
        for name, model, data, target in (
            ("array", LogisticRegression(), X, y),
            ("frame", make_pipeline(by_dtype, LogisticRegression()), frame, frame_y),
            ("twin", LogisticRegression(), native, native_y),
            ("native", LogisticRegression(), native, native_y),
        )
    }


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, fitted: dict[str, Any]) -> Path:
    """The models registered, those in ``TWINS`` with their ONNX twin; each deployed
    alone."""
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore

    home = tmp_path_factory.mktemp("shapes") / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        for name, (model, data, target) in fitted.items():
            twin = name in TWINS
            version = registry.register(model, name, sample=data, y=target, accelerate=twin)
            assert bool(version.accelerated) is twin, version.accelerated
        store = DeploymentStore(registry.db)
        for name in COLUMNS:
            store.put(
                name, DeploymentSpec.parse({"routes": [{"model": f"{name}@1.0.0"}]}), actor="t"
            )
    return home


def ask_all(home: Path, bodies: dict[str, Body]) -> dict[str, httpx.Response]:
    """Start the app in process, send every body, stop; the answers by label."""

    async def run() -> dict[str, httpx.Response]:
        app = create_app(Settings(home=home, user="tester"))
        server = app.server
        await server.start()
        try:
            for _ in range(600):
                if set(COLUMNS) <= set(server.manager.endpoints):
                    break
                await asyncio.sleep(0.05)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return {
                    label: await client.post(path, content=body, headers=headers)
                    for label, (path, body, headers) in bodies.items()
                }
        finally:
            await server.stop()

    return asyncio.run(run())


def answers(response: httpx.Response) -> tuple[list[Any], list[Any]]:
    """(predictions, probabilities) from a v1 or a v2 answer."""
    assert response.status_code == 200, response.text
    body = response.json()
    if "outputs" in body:
        out = {o["name"]: o for o in body["outputs"]}
        proba = out["predict_proba"]
        data = np.asarray(proba["data"]).reshape(proba["shape"]).tolist()
        return out["predict"]["data"], data
    return body["predictions"], body["probabilities"]


def problems(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "schema_validation", body
    return body["error"], body["details"]["problems"]


MANY = {model: rows * 150 for model, rows in CLEAN.items()}
"""450 rows: bodies past 4 KiB, which the server reads with simdjson (``JsonNumbers``) when
they are plain numbers, and otherwise decodes the whole way."""


AGAIN = {model: rows[::-1] for model, rows in CLEAN.items()}
"""The clean rows in another order, sent after them: the v2 JSON columns of a model are now
in a layout the server decoded before (``JsonLayouts``), read from their numbers alone."""
MANY_AGAIN = {model: rows[::-1] for model, rows in MANY.items()}
"""The same for bodies past 4 KiB: their numbers read by simdjson from the layout."""


def with_value(model: str, row: int, column: int, value: Any, many: bool = False) -> Rows:
    rows = [list(r) for r in (MANY if many else CLEAN)[model]]
    rows[row][column] = value
    return rows


def all_shapes(model: str, rows: Rows, v1: bool = True, v2: bool = True) -> dict[str, Body]:
    columns = COLUMNS[model]
    bodies: dict[str, Body] = {}
    if v1:
        bodies.update({f"{model} {k}": v for k, v in v1_shapes(model, columns, rows).items()})
    if v2:
        shapes = v2_shapes(model, columns, rows, DATATYPES[model])
        bodies.update({f"{model} {k}": v for k, v in shapes.items()})
    return bodies


CASES: dict[str, Callable[[], dict[str, Body]]] = {
    "clean": lambda: {
        label: body for model in COLUMNS for label, body in all_shapes(model, CLEAN[model]).items()
    },
    "clean again": lambda: {
        label: body for model in COLUMNS for label, body in all_shapes(model, AGAIN[model]).items()
    },
    # a null where none is allowed: null in v1, NaN (null in JSON) in v2
    "null": lambda: {
        **all_shapes("array", with_value("array", 1, 2, None), v2=False),
        **all_shapes("array", with_value("array", 1, 2, math.nan), v1=False),
    },
    **{
        f"{model} null": functools.partial(
            lambda model: {
                **all_shapes(model, with_value(model, 1, 0, None), v2=False),
                **all_shapes(model, with_value(model, 1, 0, math.nan), v1=False),
            },
            model,
        )
        for model in ("twin", "native")
    },
    # a fraction in the integer column (v2: only the 2-D FP64 tensor and a FP64 column say it)
    "fraction": lambda: {
        **all_shapes("frame", with_value("frame", 2, 1, 52.5), v2=False),
        **dict(
            v2_shapes(
                "frame", FRAME_COLUMNS, with_value("frame", 2, 1, 52.5), ["FP64", "FP64"]
            ).items()
        ),
    },
    # a string where a number belongs, and a bool (v1 only: a v2 number tensor cannot hold one)
    "wrong type": lambda: all_shapes("array", with_value("array", 0, 1, "abc"), v2=False),
    "frame wrong type": lambda: all_shapes("frame", with_value("frame", 0, 0, "abc"), v2=False),
    "twin wrong type": lambda: all_shapes("twin", with_value("twin", 0, 1, "abc"), v2=False),
    "bool": lambda: all_shapes("array", with_value("array", 2, 0, True), v2=False),
    # the same, in bodies past 4 KiB
    "many clean": lambda: {
        label: body for model in COLUMNS for label, body in all_shapes(model, MANY[model]).items()
    },
    # the v2 JSON columns of those, as many times as the server waits between two tries at
    # learning a layout: it holds each model's when the reversed rows follow
    "many learned": lambda: {
        f"{model} {i}": v2_shapes(model, COLUMNS[model], MANY[model], DATATYPES[model])[
            "v2 columns json"
        ]
        for model in ("array", "twin")
        for i in range(LEARN_EVERY)
    },
    "many clean again": lambda: {
        label: body
        for model in COLUMNS
        for label, body in all_shapes(model, MANY_AGAIN[model]).items()
    },
    "many null": lambda: {
        **all_shapes("array", with_value("array", 301, 2, None, many=True), v2=False),
        **all_shapes("array", with_value("array", 301, 2, math.nan, many=True), v1=False),
    },
    "many fraction": lambda: {
        **all_shapes("frame", with_value("frame", 302, 1, 52.5, many=True), v2=False),
        **dict(
            v2_shapes(
                "frame", FRAME_COLUMNS, with_value("frame", 302, 1, 52.5, many=True), ["FP64"] * 2
            ).items()
        ),
    },
    "many wrong type": lambda: all_shapes(
        "array", with_value("array", 300, 1, "abc", many=True), v2=False
    ),
    "many bool": lambda: all_shapes(
        "array", with_value("array", 302, 0, True, many=True), v2=False
    ),
}


@pytest.fixture(scope="module")
def replies(home: Path) -> dict[str, dict[str, httpx.Response]]:
    bodies = {
        f"{case}|{label}": body for case, make in CASES.items() for label, body in make().items()
    }
    answered = ask_all(home, bodies)
    out: dict[str, dict[str, httpx.Response]] = {}
    for key, response in answered.items():
        case, label = key.split("|")
        out.setdefault(case, {})[label] = response
    return out


@pytest.mark.parametrize("case", ["clean", "clean again", "many clean", "many clean again"])
@pytest.mark.parametrize("model", list(COLUMNS))
def test_every_shape_gets_the_same_predictions_and_probabilities(
    replies: dict[str, dict[str, httpx.Response]], fitted: dict[str, Any], model: str, case: str
) -> None:
    got = {k: answers(r) for k, r in replies[case].items() if k.startswith(f"{model} ")}
    assert len(got) == 7
    first_label, (predictions, probabilities) = next(iter(got.items()))
    # the model's own answers on the DataFrame (or array) it was fitted on
    estimator, data, _ = fitted[model]
    sent = {
        "clean": CLEAN,
        "clean again": AGAIN,
        "many clean": MANY,
        "many clean again": MANY_AGAIN,
    }[case][model]
    rows = (
        np.asarray(sent)
        if model == "array"
        else pd.DataFrame(sent, columns=COLUMNS[model]).astype(data.dtypes)
    )
    assert predictions == estimator.predict(rows).tolist()
    np.testing.assert_allclose(probabilities, estimator.predict_proba(rows), rtol=1e-5, atol=1e-6)
    for label, (p, q) in got.items():
        assert p == predictions, (label, first_label)
        # v1 and v2 write an ONNX twin's float32 as it is (v2 declares it FP64): the same
        # numbers, digit for digit
        assert q == probabilities, label


@pytest.mark.parametrize(
    "case",
    [
        "null",
        "twin null",
        "native null",
        "fraction",
        "wrong type",
        "frame wrong type",
        "twin wrong type",
        "bool",
        "many null",
        "many fraction",
        "many wrong type",
        "many bool",
    ],
)
def test_every_shape_gets_the_same_400_listing_the_same_problems(
    replies: dict[str, dict[str, httpx.Response]], case: str
) -> None:
    got = {label: problems(response) for label, response in replies[case].items()}
    assert len(got) >= 3
    (message, listed), *_ = got.values()
    assert len(listed) == 1
    assert listed[0]["row"] is not None
    assert listed[0]["column"] is not None
    for label, (m, p) in got.items():
        assert (m, p) == (message, listed), label


@pytest.mark.parametrize("model", ["frame", "twin", "native"])
def test_a_dataframe_model_is_fed_what_the_full_path_builds(home: Path, model: str) -> None:
    """Plain numbers for a model fitted on a DataFrame skip the per-request DataFrame; what
    its batch is fed is, column by column, with each column's dtype, what the validator's
    full path builds for the same rows (predictions alone would not show a dtype lost: most
    estimators answer alike for an integer column sent as floats)."""
    from dockyard.runtimes.onnx import OnnxRuntime
    from dockyard.schema import Signature, Validator
    from dockyard.serving.endpoint import numeric_feed

    with Registry.open(Settings(home=home, user="tester")) as registry:
        version = registry.get_version(f"{model}@1.0.0")
        if model in TWINS:
            twin = registry.artifacts.get(str(version.accelerated["digest"]))
            predictor: Any = OnnxRuntime().load(twin, {})
        else:
            predictor = registry.load(version.ref).model
    signature = Signature.from_dict(version.signature)
    numbers, feed = numeric_feed(signature, predictor)
    assert numbers is not None
    assert feed is not None
    records = [dict(zip(COLUMNS[model], row, strict=True)) for row in CLEAN[model]]
    array = numbers.decode(records)
    assert array is not None
    fed = feed(array)
    built = Validator(signature).validate(records).data
    assert list(fed.keys()) == list(built.columns)
    for name in built.columns:
        np.testing.assert_array_equal(np.asarray(fed[name]), built[name].to_numpy(), strict=True)
    if model not in TWINS:
        pd.testing.assert_frame_equal(fed, built)


@pytest.mark.parametrize("model", ["array", "twin"])
def test_layouts_near_the_numeric_shortcut_answer_as_the_whole_way(home: Path, model: str) -> None:
    """One 2-D tensor, or the model's columns in its order, go straight to the numeric path;
    the layouts beside those go the whole way and answer as it does: one 2-D tensor named
    after a column is that column (a 400: the others are missing), the columns in another
    order are reordered (the same answer), a tensor of another width is a 400 naming it."""
    columns, rows = COLUMNS[model], CLEAN[model]
    width = len(columns)
    named = [
        (name, [len(rows)], "FP64", [row[i] for row in rows]) for i, name in enumerate(columns)
    ]
    bodies = {
        "in order": [("input-0", [len(rows), width], "FP64", rows)],
        "named after a column": [(columns[0], [len(rows), width], "FP64", rows)],
        "columns reordered": named[::-1],
        "narrow": [("input-0", [len(rows), width - 1], "FP64", [row[1:] for row in rows])],
    }
    path = f"/v2/models/{model}/infer"
    replies = ask_all(home, {k: (path, _v2_json(v), {}) for k, v in bodies.items()})
    assert answers(replies["columns reordered"]) == answers(replies["in order"])
    listed = problems(replies["named after a column"])[1]
    assert {problem["column"] for problem in listed} >= set(columns[1:]), listed
    listed = problems(replies["narrow"])[1]
    assert f"[rows, {width}]" in str(listed), listed
