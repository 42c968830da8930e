"""Open Inference Protocol conformance, proven with clients nobody here wrote.

The unmodified ``tritonclient.http`` and ``kserve`` REST clients, in their default modes,
against a real ``dockyard serve`` process: health, metadata, inference with one 2-D tensor
and with one tensor per column, strings, booleans and missing values, version addressing,
compression, and the errors they surface. Every answer is compared with the fitted model's
own ``predict`` / ``predict_proba`` (the server may run an ONNX twin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

if TYPE_CHECKING:
    from conftest import ServerProcess, Zoo

T = TypeVar("T")

ENDPOINTS = {"cancer": "cancer@1.0.0", "mixed": "mixed@1.0.0", "diabetes": "diabetes@1.0.0"}

# What a missing value looks like on the wire: NaN in floats, "" in strings (the codec's policy).
MIXED_ROWS = pd.DataFrame(
    {
        "color": np.array(["red", np.nan, "blue", "purple", "green", np.nan], dtype=object),
        "size": [12.5, 8.0, np.nan, 10.0, np.nan, 15.0],
        "member": [True, False, True, False, False, True],
        "count": np.array([1, 0, 9, 4, 7, 2], dtype=np.int64),
    }
)


@pytest.fixture(scope="module")
def server(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = zoo.serve(tmp_path_factory.mktemp("conformance") / "home", ENDPOINTS)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}", network_timeout=30)
    try:
        yield client
    finally:
        client.close()


def kserve(server: ServerProcess, call: Callable[[InferenceRESTClient], Awaitable[T]]) -> T:
    """Run one call with a fresh kserve client that speaks v2 (its default is v1)."""

    async def run() -> T:
        async with InferenceRESTClient(RESTConfig(protocol="v2")) as rest:
            return await call(rest)

    return asyncio.run(run())


def kserve_infer(server: ServerProcess, request: InferRequest, model_name: str) -> Any:
    return kserve(server, lambda rest: rest.infer(server.url, request, model_name=model_name))


def triton_input(name: str, values: np.ndarray[Any, Any], datatype: str) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)  # binary_data=True: the client's default
    return tensor


def wire_columns(frame: pd.DataFrame, metadata: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """One (name, values, datatype) per input the model's metadata lists, in its order.
    Missing strings become "" and missing numbers stay NaN."""
    columns = []
    for spec in metadata["inputs"]:
        name, datatype = spec["name"], spec["datatype"]
        column = frame[name]
        if datatype == "BYTES":
            values = np.array(["" if pd.isna(v) else str(v) for v in column], dtype=np.object_)
        elif datatype == "BOOL":
            values = column.to_numpy(dtype=np.bool_)
        elif datatype == "INT64":
            values = column.to_numpy(dtype=np.int64)
        else:
            values = column.to_numpy(dtype=np.float64)
        columns.append((name, values, datatype))
    return columns


def texts(values: np.ndarray[Any, Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


# --- tritonclient --------------------------------------------------------------------------


def test_triton_health_and_readiness(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    for name in ENDPOINTS:
        assert client.is_model_ready(name)
    assert client.is_model_ready("cancer", model_version="1.0.0")
    assert not client.is_model_ready("cancer", model_version="9.9.9")
    assert not client.is_model_ready("nope")


def test_triton_server_and_model_metadata(client: triton.InferenceServerClient, zoo: Zoo) -> None:
    server = client.get_server_metadata()
    assert server["name"] == "dockyard"
    assert "binary_tensor_data" in server["extensions"]

    mixed = client.get_model_metadata("mixed")
    assert mixed["name"] == "mixed"
    assert mixed["versions"] == ["1.0.0"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in mixed["inputs"]] == [
        ("color", "BYTES", [-1]),
        ("size", "FP64", [-1]),
        ("member", "BOOL", [-1]),
        ("count", "INT64", [-1]),
    ]
    assert [(o["name"], o["datatype"], o["shape"]) for o in mixed["outputs"]] == [
        ("predict", "BYTES", [-1]),
        ("predict_proba", "FP64", [-1, 2]),
    ]
    cancer = client.get_model_metadata("cancer", model_version="1.0.0")
    assert [i["name"] for i in cancer["inputs"]] == list(zoo.samples["cancer"].columns)
    assert {o["name"]: o["datatype"] for o in cancer["outputs"]} == {
        "predict": "INT64",
        "predict_proba": "FP64",
    }
    diabetes = client.get_model_metadata("diabetes")
    assert [(o["name"], o["datatype"]) for o in diabetes["outputs"]] == [("predict", "FP64")]


@pytest.mark.parametrize(
    "requested",
    [None, ["predict", "predict_proba"], ["predict_proba"]],
    ids=["all-outputs", "both-by-name", "proba-only"],
)
def test_triton_2d_tensor_binary_gives_the_models_answers(
    client: triton.InferenceServerClient, zoo: Zoo, requested: list[str] | None
) -> None:
    rows = zoo.samples["cancer"].iloc[::37]
    model = zoo.models["cancer"]
    outputs = None if requested is None else [triton.InferRequestedOutput(n) for n in requested]
    result = client.infer(
        "cancer",
        [triton_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")],
        outputs=outputs,
        request_id="conformance-1",
    )
    response = result.get_response()
    assert response["model_name"] == "cancer"
    assert response["model_version"] == "1.0.0"
    assert response["id"] == "conformance-1"
    names = [o["name"] for o in response["outputs"]]
    assert names == (requested or ["predict", "predict_proba"])
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    declared = {o["name"]: o["datatype"] for o in client.get_model_metadata("cancer")["outputs"]}
    assert {o["name"]: o["datatype"] for o in response["outputs"]} == {
        n: declared[n] for n in names
    }
    if "predict" in names:
        np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (len(rows), 2)
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=0, atol=1e-6)


def test_triton_one_tensor_per_column(client: triton.InferenceServerClient, zoo: Zoo) -> None:
    rows = zoo.samples["cancer"].head(7)
    metadata = client.get_model_metadata("cancer")
    inputs = [triton_input(*column) for column in wire_columns(rows, metadata)]
    assert len(inputs) == 30
    result = client.infer("cancer", inputs)
    model = zoo.models["cancer"]
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), model.predict_proba(rows), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_triton_strings_booleans_and_missing_values(
    client: triton.InferenceServerClient, zoo: Zoo, binary: bool
) -> None:
    """BYTES with "" for missing strings, BOOL, NaN in FP64, INT64; the answer is the
    pipeline's own, with string labels coming back as BYTES."""
    metadata = client.get_model_metadata("mixed")
    inputs = []
    for name, values, datatype in wire_columns(MIXED_ROWS, metadata):
        tensor = triton.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("mixed", inputs, outputs=outputs)
    response = result.get_response()
    assert {o["name"]: o["datatype"] for o in response["outputs"]} == {
        "predict": "BYTES",
        "predict_proba": "FP64",
    }
    model = zoo.models["mixed"]
    assert texts(result.as_numpy("predict")) == model.predict(MIXED_ROWS).tolist()
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), model.predict_proba(MIXED_ROWS), rtol=0, atol=1e-6
    )


def test_triton_regressor_output_matches_its_metadata(
    client: triton.InferenceServerClient, zoo: Zoo
) -> None:
    rows = zoo.samples["diabetes"].head(9)
    result = client.infer(
        "diabetes", [triton_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")]
    )
    (output,) = result.get_response()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("predict", "FP64", [9])
    np.testing.assert_allclose(
        result.as_numpy("predict"), zoo.models["diabetes"].predict(rows), rtol=1e-9
    )


def test_triton_version_addressed_inference(client: triton.InferenceServerClient, zoo: Zoo) -> None:
    rows = zoo.samples["cancer"].head(3)
    tensor = triton_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")
    result = client.infer("cancer", [tensor], model_version="1.0.0")
    assert result.get_response()["model_version"] == "1.0.0"
    np.testing.assert_array_equal(result.as_numpy("predict"), zoo.models["cancer"].predict(rows))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("cancer", [tensor], model_version="9.9.9")
    assert caught.value.status() == "404"
    assert "does not serve version '9.9.9'" in caught.value.message()


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_triton_compressed_requests(
    client: triton.InferenceServerClient, zoo: Zoo, algorithm: str
) -> None:
    rows = zoo.samples["cancer"].tail(4)
    result = client.infer(
        "cancer",
        [triton_input("input-0", rows.to_numpy(dtype=np.float64), "FP64")],
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    np.testing.assert_array_equal(result.as_numpy("predict"), zoo.models["cancer"].predict(rows))


def test_triton_repository_index(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert sorted((m["name"], m["version"], m["state"]) for m in index) == [
        ("cancer", "1.0.0", "READY"),
        ("diabetes", "1.0.0", "READY"),
        ("mixed", "1.0.0", "READY"),
    ]


def test_triton_surfaces_our_error_messages(
    client: triton.InferenceServerClient, server: ServerProcess, zoo: Zoo
) -> None:
    rows = zoo.samples["cancer"].head(2).to_numpy(dtype=np.float64)
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("nope", [triton_input("input-0", rows, "FP64")])
    raw = httpx.post(f"{server.url}/v2/models/nope/infer", content=b'{"inputs": []}').json()
    assert unknown.value.status() == "404"
    assert unknown.value.message() == raw["error"]
    assert raw["error"].startswith("No endpoint named 'nope'.")

    with pytest.raises(InferenceServerException) as metadata:
        client.get_model_metadata("nope")
    assert metadata.value.status() == "404"
    assert metadata.value.message() == raw["error"]

    # A per-column request missing two columns, with a string where a float belongs.
    metadata_inputs = client.get_model_metadata("mixed")["inputs"]
    assert [i["name"] for i in metadata_inputs][:2] == ["color", "size"]
    bad = [
        triton_input("color", np.array(["red"], dtype=np.object_), "BYTES"),
        triton_input("size", np.array(["big"], dtype=np.object_), "BYTES"),
    ]
    with pytest.raises(InferenceServerException) as invalid:
        client.infer("mixed", bad)
    assert invalid.value.status() == "400"
    assert "problems in the input" in invalid.value.message()
    assert "missing column 'member'" in invalid.value.message()

    with pytest.raises(InferenceServerException) as no_output:
        client.infer(
            "cancer",
            [triton_input("input-0", rows, "FP64")],
            outputs=[triton.InferRequestedOutput("logits")],
        )
    assert no_output.value.status() == "400"
    assert "no output 'logits'" in no_output.value.message()


# --- kserve ----------------------------------------------------------------------------------


def test_kserve_health_and_readiness(server: ServerProcess) -> None:
    async def probe(rest: InferenceRESTClient) -> tuple[Any, ...]:
        return (
            await rest.is_server_live(server.url),
            await rest.is_server_ready(server.url),
            await rest.is_model_ready(server.url, "mixed"),
            await rest.is_model_ready(server.url, "nope"),
        )

    assert kserve(server, probe) == (True, True, True, False)


def test_kserve_default_binary_inputs(server: ServerProcess, zoo: Zoo) -> None:
    """``InferInput.set_data_from_numpy`` defaults to binary data; outputs come back JSON."""
    rows = zoo.samples["cancer"].iloc[5:17]
    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
    assert tensor.parameters == {"binary_data_size": rows.size * 8}
    request = InferRequest("cancer", [tensor], request_id="kserve-1")

    response = kserve_infer(server, request, "cancer")
    assert response.id == "kserve-1"
    outputs = {o.name: o for o in response.outputs}
    assert outputs["predict"].datatype == "INT64"
    assert outputs["predict_proba"].datatype == "FP64"
    model = zoo.models["cancer"]
    np.testing.assert_array_equal(outputs["predict"].as_numpy(), model.predict(rows))
    np.testing.assert_allclose(
        outputs["predict_proba"].as_numpy(), model.predict_proba(rows), rtol=0, atol=1e-6
    )


def test_kserve_requests_in_turn_each_get_their_own_id_and_answers(
    server: ServerProcess, zoo: Zoo
) -> None:
    """kserve's client sends an id first in every request (a fresh uuid4 unless given): from
    the second on, the server reads the header it remembered without that id, and each
    answer still carries its own request's id and rows."""
    model = zoo.models["cancer"]
    for turn, start in enumerate((0, 20, 40)):
        rows = zoo.samples["cancer"].iloc[start : start + 3]
        tensor = InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
        request = InferRequest("cancer", [tensor], request_id=f"{turn:08d}-turn")

        response = kserve_infer(server, request, "cancer")

        assert response.id == f"{turn:08d}-turn"
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        np.testing.assert_array_equal(outputs["predict"], model.predict(rows))


def test_kserve_json_inputs_and_binary_outputs(server: ServerProcess, zoo: Zoo) -> None:
    rows = zoo.samples["cancer"].iloc[100:104]
    tensor = InferInput("input-0", list(rows.shape), "FP64", data=rows.to_numpy().ravel().tolist())
    request = InferRequest("cancer", [tensor], parameters={"binary_data_output": True})
    headers: dict[str, str] = {}

    async def call(rest: InferenceRESTClient) -> Any:
        return await rest.infer(server.url, request, model_name="cancer", response_headers=headers)

    response = kserve(server, call)
    assert int(headers["inference-header-content-length"]) > 0
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    np.testing.assert_array_equal(outputs["predict"], zoo.models["cancer"].predict(rows))


def test_kserve_strings_booleans_and_missing_values(server: ServerProcess, zoo: Zoo) -> None:
    metadata = httpx.get(f"{server.url}/v2/models/mixed").json()
    inputs = []
    for name, values, datatype in wire_columns(MIXED_ROWS, metadata):
        tensor = InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    request = InferRequest(
        "mixed", inputs, request_outputs=[RequestedOutput("predict", {"binary_data": True})]
    )
    response = kserve_infer(server, request, "mixed")
    (output,) = response.outputs
    assert (output.name, output.datatype) == ("predict", "BYTES")
    assert texts(output.as_numpy()) == zoo.models["mixed"].predict(MIXED_ROWS).tolist()


def test_kserve_version_addressed_inference(server: ServerProcess, zoo: Zoo) -> None:
    rows = zoo.samples["diabetes"].head(5)
    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
    request = InferRequest("diabetes", [tensor])
    url = f"{server.url}/v2/models/diabetes/versions/1.0.0/infer"
    response = kserve(server, lambda rest: rest.infer(url, request, is_graph_endpoint=True))
    assert response["model_version"] == "1.0.0"
    (output,) = response["outputs"]
    np.testing.assert_allclose(output["data"], zoo.models["diabetes"].predict(rows), rtol=1e-9)


def test_kserve_surfaces_errors_with_every_problem(server: ServerProcess, zoo: Zoo) -> None:
    rows = zoo.samples["cancer"].head(2)
    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))

    with pytest.raises(httpx.HTTPStatusError) as unknown:
        kserve_infer(server, InferRequest("nope", [tensor]), "nope")
    assert unknown.value.response.status_code == 404
    assert "No endpoint named 'nope'." in str(unknown.value)

    wrong = InferInput("input-0", [2, 3], "FP64")
    wrong.set_data_from_numpy(np.zeros((2, 3)))
    color = InferInput("color", [1], "BYTES")
    color.set_data_from_numpy(np.array(["red"], dtype=np.object_))
    radius = InferInput("mean radius", [1], "FP64")
    radius.set_data_from_numpy(np.array([14.0]))
    for inputs, problem in (
        ([wrong], "input 'input-0' has shape [2, 3] but the model takes 30 columns"),
        ([color, radius], "input 'color' is not a column of this model"),
    ):
        request = InferRequest("cancer", inputs)
        with pytest.raises(httpx.HTTPStatusError) as invalid:
            kserve_infer(server, request, "cancer")
        assert invalid.value.response.status_code == 400
        body = orjson.loads(invalid.value.response.content)
        assert body["code"] == "schema_validation"
        assert body["error"] in str(invalid.value)
        assert any(problem in p["message"] for p in body["details"]["problems"])
        if len(inputs) == 2:  # one unknown input and 29 missing columns, all listed
            assert len(body["details"]["problems"]) == 30
