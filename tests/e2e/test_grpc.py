"""The Open Inference Protocol over gRPC, proven with clients nobody here wrote.

A real ``dockyard serve --grpc-port`` process; the unmodified ``tritonclient.grpc`` client (in
a process of its own: see ``_triton_grpc.py``) and KServe's ``InferenceGRPCClient`` (in this
one): health, metadata, one row and 100 rows, strings, booleans and missing values, errors
with the HTTP route's message, auth with the HTTP routes' scopes, and the shared metrics.
Every answer is compared with the fitted model's own ``predict`` / ``predict_proba``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest

from _server import free_port
from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess, Zoo

T = TypeVar("T")

ENDPOINTS = {"cancer": "cancer@1.0.0", "mixed": "mixed@1.0.0", "diabetes": "diabetes@1.0.0"}
DRIVER = Path(__file__).with_name("_triton_grpc.py")

MIXED_ROWS = pd.DataFrame(
    {
        "color": np.array(["red", np.nan, "blue", "purple", "green", np.nan], dtype=object),
        "size": [12.5, 8.0, np.nan, 10.0, np.nan, 15.0],
        "member": [True, False, True, False, False, True],
        "count": np.array([1, 0, 9, 4, 7, 2], dtype=np.int64),
    }
)


@dataclass
class GrpcServer:
    process: ServerProcess
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def served(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    port = free_port()
    home = tmp_path_factory.mktemp("grpc") / "home"
    process = zoo.serve(home, ENDPOINTS, args=("--grpc-port", str(port)))
    try:
        process.wait_ready()
        yield GrpcServer(process, port)
    finally:
        process.stop()


def triton(server: GrpcServer, *calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``calls`` with tritonclient.grpc in its own process; one answer per call."""
    done = subprocess.run(
        [sys.executable, str(DRIVER)],
        input=json.dumps({"url": server.target, "calls": calls}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


def kserve(server: GrpcServer, call: Callable[[InferenceGRPCClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with InferenceGRPCClient(server.target) as client:
            return await call(client)

    return asyncio.run(run())


def rows_input(rows: pd.DataFrame) -> dict[str, Any]:
    return {"name": "input-0", "datatype": "FP64", "data": rows.to_numpy().tolist()}


def mixed_inputs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One tensor per column; a missing string is "" and a missing number NaN on the wire."""
    return [
        {
            "name": "color",
            "datatype": "BYTES",
            "data": ["" if pd.isna(v) else v for v in frame.color],
        },
        {"name": "size", "datatype": "FP64", "data": frame["size"].tolist()},
        {"name": "member", "datatype": "BOOL", "data": frame.member.tolist()},
        {"name": "count", "datatype": "INT64", "data": frame["count"].tolist()},
    ]


# --- tritonclient.grpc -----------------------------------------------------------------------


def test_triton_health_readiness_and_metadata(served: GrpcServer, zoo: Zoo) -> None:
    live, ready, model, version, unknown, server, mixed = triton(
        served,
        {"call": "live"},
        {"call": "ready"},
        {"call": "model_ready", "model": "cancer"},
        {"call": "model_ready", "model": "cancer", "version": "1.0.0"},
        {"call": "model_ready", "model": "nope"},
        {"call": "server_metadata"},
        {"call": "model_metadata", "model": "mixed"},
    )
    assert live == ready == model == version == {"ok": True}
    assert unknown["status"] == "StatusCode.NOT_FOUND"
    assert unknown["message"].startswith("No endpoint named 'nope'.")
    assert server["ok"]["name"] == "dockyard"
    assert "binary_tensor_data" in server["ok"]["extensions"]
    over_http = httpx.get(f"{served.process.url}/v2/models/mixed").json()
    metadata = mixed["ok"]
    assert metadata["versions"] == over_http["versions"] == ["1.0.0"]
    assert metadata["platform"] == over_http["platform"]
    for key in ("inputs", "outputs"):
        assert [
            (t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata[key]
        ] == [(t["name"], t["datatype"], t["shape"]) for t in over_http[key]]


@pytest.mark.parametrize("count", [1, 100])
def test_triton_rows_give_the_models_answers(served: GrpcServer, zoo: Zoo, count: int) -> None:
    rows = zoo.samples["cancer"].iloc[:count]
    (answer,) = triton(
        served,
        {"call": "infer", "model": "cancer", "inputs": [rows_input(rows)], "request_id": "g-1"},
    )
    response, outputs = answer["ok"]["response"], answer["ok"]["outputs"]
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "cancer",
        "1.0.0",
        "g-1",
    )
    assert [(o["name"], o["datatype"]) for o in response["outputs"]] == [
        ("predict", "INT64"),
        ("predict_proba", "FP64"),
    ]
    model = zoo.models["cancer"]
    np.testing.assert_array_equal(outputs["predict"], model.predict(rows))
    np.testing.assert_allclose(outputs["predict_proba"], model.predict_proba(rows), atol=1e-6)


def test_triton_strings_booleans_missing_values_and_chosen_outputs(
    served: GrpcServer, zoo: Zoo
) -> None:
    (answer,) = triton(
        served,
        {
            "call": "infer",
            "model": "mixed",
            "inputs": mixed_inputs(MIXED_ROWS),
            "outputs": ["predict"],
        },
    )
    assert [o["name"] for o in answer["ok"]["response"]["outputs"]] == ["predict"]
    assert answer["ok"]["outputs"]["predict"] == zoo.models["mixed"].predict(MIXED_ROWS).tolist()


def test_triton_errors_carry_the_http_message(served: GrpcServer, zoo: Zoo) -> None:
    """A malformed tensor is INVALID_ARGUMENT with the HTTP 400's message; an unknown model
    NOT_FOUND with the 404's; an unknown output INVALID_ARGUMENT; never INTERNAL."""
    short = zoo.samples["cancer"].iloc[:2, :29]
    malformed, unknown, no_output, typo = triton(
        served,
        {"call": "infer", "model": "cancer", "inputs": [rows_input(short)]},
        {"call": "infer", "model": "nope", "inputs": [rows_input(short)]},
        {
            "call": "infer",
            "model": "cancer",
            "inputs": [rows_input(zoo.samples["cancer"].iloc[:1])],
            "outputs": ["logits"],
        },
        {"call": "infer", "model": "mixed", "inputs": mixed_inputs(MIXED_ROWS)[:2]},
    )
    body = {"inputs": [{"name": "input-0", "shape": [2, 29], "datatype": "FP64"}]}
    body["inputs"][0]["data"] = short.to_numpy().ravel().tolist()
    over_http = httpx.post(f"{served.process.url}/v2/models/cancer/infer", json=body)
    assert over_http.status_code == 400
    assert malformed == {
        "status": "StatusCode.INVALID_ARGUMENT",
        "message": over_http.json()["error"],
    }
    assert "has shape [2, 29] but the model takes 30 columns" in malformed["message"]
    missing = httpx.post(f"{served.process.url}/v2/models/nope/infer", json=body).json()
    assert unknown == {"status": "StatusCode.NOT_FOUND", "message": missing["error"]}
    assert no_output["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "no output 'logits'" in no_output["message"]
    assert typo["status"] == "StatusCode.INVALID_ARGUMENT"
    assert "missing column 'member'" in typo["message"]


def test_grpc_requests_count_in_the_shared_metrics(served: GrpcServer, zoo: Zoo) -> None:
    def answered() -> float:
        text = httpx.get(f"{served.process.url}/metrics").text
        for line in text.splitlines():
            labels = 'endpoint="diabetes"' in line and 'status="200"' in line
            if line.startswith("dockyard_requests_total{") and labels:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = answered()
    rows = zoo.samples["diabetes"].head(3)
    answers = triton(
        served, *[{"call": "infer", "model": "diabetes", "inputs": [rows_input(rows)]}] * 3
    )
    assert all("ok" in a for a in answers)
    pinned, unserved = triton(
        served,
        {"call": "infer", "model": "diabetes", "version": "1.0.0", "inputs": [rows_input(rows)]},
        {"call": "infer", "model": "diabetes", "version": "9.9.9", "inputs": [rows_input(rows)]},
    )
    assert pinned["ok"]["response"]["model_version"] == "1.0.0"
    assert unserved["status"] == "StatusCode.NOT_FOUND"
    assert "does not serve version '9.9.9'" in unserved["message"]
    np.testing.assert_allclose(
        answers[0]["ok"]["outputs"]["predict"], zoo.models["diabetes"].predict(rows), rtol=1e-6
    )
    assert answered() == before + 4


# --- KServe's InferenceGRPCClient --------------------------------------------------------------


def test_kserve_health_and_readiness(served: GrpcServer) -> None:
    async def probe(client: InferenceGRPCClient) -> tuple[bool, ...]:
        return (
            await client.is_server_live(),
            await client.is_server_ready(),
            await client.is_model_ready("mixed"),
        )

    assert kserve(served, probe) == (True, True, True)


@pytest.mark.parametrize("count", [1, 100])
@pytest.mark.parametrize("binary", [True, False], ids=["raw", "typed"])
def test_kserve_rows_give_the_models_answers(
    served: GrpcServer, zoo: Zoo, count: int, binary: bool
) -> None:
    """``raw_input_contents`` (binary) and the typed ``fp64_contents`` both work."""
    rows = zoo.samples["cancer"].iloc[:count]
    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64), binary_data=binary)
    request = InferRequest("cancer", [tensor], request_id="k-1")
    response = kserve(served, lambda client: client.infer(request))
    assert response.id == "k-1"
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    model = zoo.models["cancer"]
    np.testing.assert_array_equal(outputs["predict"], model.predict(rows))
    np.testing.assert_allclose(outputs["predict_proba"], model.predict_proba(rows), atol=1e-6)


def test_kserve_errors_are_grpc_statuses(served: GrpcServer, zoo: Zoo) -> None:
    rows = zoo.samples["cancer"].head(2).to_numpy(dtype=np.float64)
    wrong = InferInput("input-0", [2, 3], "FP64")
    wrong.set_data_from_numpy(rows[:, :3])
    good = InferInput("input-0", [2, 30], "FP64")
    good.set_data_from_numpy(rows)
    for request, code, text in (
        (InferRequest("cancer", [wrong]), grpc.StatusCode.INVALID_ARGUMENT, "takes 30 columns"),
        (InferRequest("nope", [good]), grpc.StatusCode.NOT_FOUND, "No endpoint named 'nope'."),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            kserve(served, lambda client, r=request: client.infer(r))  # type: ignore[misc]
        assert refused.value.code() == code
        assert text in (refused.value.details() or "")


# --- auth ---------------------------------------------------------------------------------------


@dataclass
class Secured:
    server: GrpcServer
    tokens: dict[str, str]  # scope -> secret


@pytest.fixture(scope="module")
def secured(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    port = free_port()
    home = tmp_path_factory.mktemp("grpc-auth") / "home"
    process = zoo.serve(
        home, {"diabetes": "diabetes@1.0.0"}, args=("--auth", "--grpc-port", str(port))
    )
    try:
        db = Database(Settings(home=home).resolved_database_url)
        try:
            store = TokenStore(db)
            tokens = {
                s: store.create(f"g-{s}", [s], actor="tester")[1] for s in ("read", "predict")
            }
        finally:
            db.dispose()
        process.wait_ready()
        yield Secured(GrpcServer(process, port), tokens)
    finally:
        process.stop()


def test_grpc_takes_the_http_routes_tokens_and_scopes(secured: Secured, zoo: Zoo) -> None:
    """Health is public; metadata needs read and inference predict, the bearer token in the
    ``authorization`` metadata: UNAUTHENTICATED without one, PERMISSION_DENIED without the
    scope."""
    rows = zoo.samples["diabetes"].head(2)
    infer = {"call": "infer", "model": "diabetes", "inputs": [rows_input(rows)]}
    meta = {"call": "model_metadata", "model": "diabetes"}

    def bearer(scope: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secured.tokens[scope]}"}

    answers = triton(
        secured.server,
        {"call": "live"},
        {"call": "ready"},
        infer,
        {**infer, "headers": {"authorization": "Bearer dky_not-a-token"}},
        {**infer, "headers": bearer("read")},
        {**infer, "headers": bearer("predict")},
        meta,
        {**meta, "headers": bearer("predict")},
        {**meta, "headers": bearer("read")},
    )
    live, ready, anonymous, forged, reader, predictor, meta_anon, meta_predict, meta_read = answers
    assert live == ready == {"ok": True}
    assert anonymous["status"] == forged["status"] == "StatusCode.UNAUTHENTICATED"
    assert anonymous["message"].startswith("This server requires a bearer token.")
    assert reader["status"] == "StatusCode.PERMISSION_DENIED"
    assert "lacks the 'predict' scope" in reader["message"]
    np.testing.assert_allclose(
        predictor["ok"]["outputs"]["predict"], zoo.models["diabetes"].predict(rows), rtol=1e-6
    )
    assert meta_anon["status"] == "StatusCode.UNAUTHENTICATED"
    assert meta_predict["status"] == "StatusCode.PERMISSION_DENIED"
    assert meta_read["ok"]["name"] == "diabetes"

    tensor = InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
    request = InferRequest("diabetes", [tensor])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        kserve(secured.server, lambda client: client.infer(request))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response = kserve(
        secured.server,
        lambda client: client.infer(
            request, headers=[("authorization", bearer("predict")["authorization"])]
        ),
    )
    np.testing.assert_allclose(
        response.outputs[0].as_numpy(), zoo.models["diabetes"].predict(rows), rtol=1e-6
    )


# --- TLS ---------------------------------------------------------------------------------------


def test_tls_options_serve_grpc_over_tls(zoo: Zoo, tmp_path: Path) -> None:
    """``--ssl-certfile/--ssl-keyfile`` put gRPC behind TLS as they do HTTP: a client that
    trusts the certificate is answered, a plaintext one is not."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    args = ("--grpc-port", str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    process = zoo.serve(tmp_path / "home", {"diabetes": "diabetes@1.0.0"}, args=args)
    try:
        url = process.url.replace("http://", "https://")
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/readyz", cert):  # trusting the server's own certificate
            assert process.process.poll() is None, process.log.read_text()
            assert time.monotonic() < deadline, process.log.read_text()
            time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{process.url}/readyz", timeout=5)  # plaintext HTTP is refused too
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        rows = zoo.samples["diabetes"].head(2)
        tensor = InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
        server = GrpcServer(process, port)

        async def secure() -> Any:
            async with InferenceGRPCClient(server.target, creds=credentials) as client:
                return await client.infer(InferRequest("diabetes", [tensor]))

        response = asyncio.run(secure())
        np.testing.assert_allclose(
            response.outputs[0].as_numpy(), zoo.models["diabetes"].predict(rows), rtol=1e-6
        )
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            kserve(server, lambda client: client.is_server_live(timeout=5))
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        process.stop()


def _answers(url: str, cert: Path) -> bool:
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        return httpx.get(url, verify=trust, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# --- workers ------------------------------------------------------------------------------------


def test_workers_share_the_grpc_port(zoo: Zoo, tmp_path: Path) -> None:
    """``--workers 2 --grpc-port``: each worker binds the port (SO_REUSEPORT, gRPC's default
    on Linux) and the kernel spreads connections over them; every answer is right, and both
    processes answer (a server-made request id starts with its process's prefix)."""
    port = free_port()
    process = zoo.serve(
        tmp_path / "home",
        {"cancer": "cancer@1.0.0"},
        args=("--grpc-port", str(port), "--workers", "2"),
    )
    try:
        process.wait_ready()
        server = GrpcServer(process, port)
        rows = zoo.samples["cancer"].iloc[:3]
        expected = zoo.models["cancer"].predict(rows)

        async def one_connection() -> str:
            tensor = InferInput("input-0", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
            # a channel of its own, not one shared with the others in this process
            own = [("grpc.use_local_subchannel_pool", 1)]
            async with InferenceGRPCClient(server.target, channel_args=own) as client:
                response = await client.infer(InferRequest("cancer", [tensor]))
            outputs = {o.name: o.as_numpy() for o in response.outputs}
            np.testing.assert_array_equal(outputs["predict"], expected)
            return str(response.id)

        async def connections(count: int) -> list[str]:
            return list(await asyncio.gather(*(one_connection() for _ in range(count))))

        prefixes: set[str] = set()
        deadline = time.monotonic() + 60
        while len(prefixes) < 2:  # the kernel picks a worker per connection: poll until both
            assert time.monotonic() < deadline, f"only one worker answered: {prefixes}"
            prefixes |= {request_id[:12] for request_id in asyncio.run(connections(16))}
    finally:
        process.stop()
