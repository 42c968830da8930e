"""Attack: the gRPC port as a way around the HTTP edge's limits and checks, against a real
``dockyard serve --auth --grpc-port``. A message over ``DOCKYARD_MAX_BODY_BYTES`` is refused
by gRPC itself before it reaches Dockyard (RESOURCE_EXHAUSTED); inference and metadata need
the same tokens as over HTTP, checked before the message is parsed; bytes that are not the
message are INVALID_ARGUMENT (grpcio's own parser answered INTERNAL); a shape claiming more
elements than the message holds is INVALID_ARGUMENT, never an allocation or an INTERNAL;
and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from _edge import ROW, diabetes_home, make_token

from _server import ServerProcess, free_port
from dockyard.server.grpc import inference_pb2 as pb
from dockyard.server.grpc import inference_pb2_grpc as pb_grpc

LIMIT = 64 * 1024

pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)


@dataclass
class Edge:
    server: ServerProcess
    stub: pb_grpc.GRPCInferenceServiceStub
    raw: grpc.Channel
    predictor: str
    reader: str


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("grpc-limits") / "home"
    settings = diabetes_home(home)
    predictor = make_token(settings, "grpc-predict", "predict")
    reader = make_token(settings, "grpc-read", "read")
    port = free_port()
    server = ServerProcess(
        home,
        args=("--auth", "--grpc-port", str(port)),
        env={"DOCKYARD_MAX_BODY_BYTES": str(LIMIT)},
    )
    try:
        server.wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            yield Edge(server, stub, channel, predictor, reader)
    finally:
        server.stop()


def _request(rows: np.ndarray, shape: list[int] | None = None) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="diabetes")
    request.inputs.add(name="input-0", datatype="FP64", shape=shape or list(rows.shape))
    request.raw_input_contents.append(rows.astype("<f8").tobytes())
    return request


def _auth(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


def _refusal(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()  # type: ignore[operator]
    return refused.value


def test_a_message_over_the_body_limit_is_refused_and_the_server_serves_on(edge: Edge) -> None:
    huge = _request(np.zeros((LIMIT // 80 + 10, 10)))
    assert huge.ByteSize() > LIMIT
    for metadata in ((), _auth(edge.predictor)):
        error = _refusal(lambda m=metadata: edge.stub.ModelInfer(huge, metadata=m, timeout=30))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    row = np.array([list(ROW.values())])
    answer = edge.stub.ModelInfer(_request(row), metadata=_auth(edge.predictor), timeout=30)
    assert answer.outputs[0].name == "predict"
    assert len(answer.raw_output_contents[0]) == 8


def test_inference_and_metadata_need_the_http_scopes(edge: Edge) -> None:
    row = np.array([list(ROW.values())])
    calls = {
        "infer": lambda m: edge.stub.ModelInfer(_request(row), metadata=m, timeout=30),
        "metadata": lambda m: edge.stub.ModelMetadata(
            pb.ModelMetadataRequest(name="diabetes"), metadata=m, timeout=30
        ),
        "ready": lambda m: edge.stub.ModelReady(
            pb.ModelReadyRequest(name="diabetes"), metadata=m, timeout=30
        ),
        "server": lambda m: edge.stub.ServerMetadata(
            pb.ServerMetadataRequest(), metadata=m, timeout=30
        ),
    }
    needs = {"infer": "predict", "metadata": "read", "ready": "read", "server": "read"}
    tokens = {"predict": edge.predictor, "read": edge.reader}
    for name, call in calls.items():
        for metadata in ((), (("authorization", "Basic x"),), _auth("dky_forged")):
            error = _refusal(lambda c=call, m=metadata: c(m))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name  # type: ignore[attr-defined]
        other = "read" if needs[name] == "predict" else "predict"
        error = _refusal(lambda c=call, o=other: c(_auth(tokens[o])))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name  # type: ignore[attr-defined]
        assert call(_auth(tokens[needs[name]])) is not None
    assert edge.stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live  # public, as HTTP


def test_a_shape_larger_than_its_data_is_invalid_not_allocated(edge: Edge) -> None:
    row = np.array([list(ROW.values())])
    auth = _auth(edge.predictor)
    claimed = _request(row, shape=[2**40, 10])
    error = _refusal(lambda: edge.stub.ModelInfer(claimed, metadata=auth, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "takes" in error.details()  # type: ignore[attr-defined]
    typed = pb.ModelInferRequest(model_name="diabetes")
    typed.inputs.add(name="input-0", datatype="FP64", shape=[2**40, 10])
    typed.inputs[0].contents.fp64_contents.extend(row.ravel().tolist())
    error = _refusal(lambda: edge.stub.ModelInfer(typed, metadata=auth, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "its fp64_contents has 10 values" in error.details()  # type: ignore[attr-defined]


def test_bytes_that_are_not_the_message_are_invalid_after_the_token(edge: Edge) -> None:
    garbage = b"\xff\xff\xff\xff\x0f not protobuf"
    call = edge.raw.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=None,
        response_deserializer=None,
    )
    anonymous = _refusal(lambda: call(garbage, timeout=30))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    malformed = _refusal(lambda: call(garbage, metadata=_auth(edge.predictor), timeout=30))
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "not a well-formed ModelInferRequest" in malformed.details()  # type: ignore[attr-defined]
