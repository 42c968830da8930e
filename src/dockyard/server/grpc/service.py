"""The ``GRPCInferenceService`` of the Open Inference Protocol, served by the HTTP server's own
process and event loop (``grpc.aio``), answered by the same plane: the same endpoints, token
checks and scopes (health public, metadata ``read``, inference ``predict``), validation,
batching, metrics and prediction log as ``/v2/...`` over HTTP.

Started and stopped in the app's lifespan (``server/app.py``) when ``--grpc-port`` is given;
the translation between protobuf and the v2 codec is in :mod:`~dockyard.server.grpc.wire`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from grpc import aio

from dockyard._version import __version__
from dockyard.errors import UnavailableError
from dockyard.server.grpc import inference_pb2 as pb
from dockyard.server.grpc import inference_pb2_grpc as pb_grpc
from dockyard.server.grpc.wire import HEADER_LENGTH, error_parts, infer_body, infer_response
from dockyard.server.http import Reply, error_reply
from dockyard.server.protocols import v2
from dockyard.server.routes import model_metadata_body

if TYPE_CHECKING:
    from dockyard.server.services import Server

__all__ = ["GrpcServer", "InferenceService"]

log = logging.getLogger("dockyard.server")

T = TypeVar("T")


class InferenceService:
    """The six calls; each checks its token first and answers refusals with the HTTP
    route's error, as a gRPC status (:func:`~dockyard.server.grpc.wire.error_parts`)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.server.manager.started)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        async def answer() -> pb.ServerMetadataResponse:
            body = v2.server_metadata(name="dockyard", version=__version__)
            return pb.ServerMetadataResponse(**body)

        return await self._guarded(context, "read", answer)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        async def answer() -> pb.ModelReadyResponse:
            inference = self.server.inference
            try:
                endpoint = inference.endpoint(request.name)
            except UnavailableError:  # deployed, still loading or failed: not ready
                return pb.ModelReadyResponse(ready=False)
            inference.model_for(endpoint, request.version or None)
            return pb.ModelReadyResponse(ready=True)

        return await self._guarded(context, "read", answer)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        async def answer() -> pb.ModelMetadataResponse:
            body = model_metadata_body(self.server.inference, request.name, request.version or None)
            return pb.ModelMetadataResponse(
                name=body["name"],
                versions=body.get("versions", []),
                platform=body["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["outputs"]],
            )

        return await self._guarded(context, "read", answer)

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        """Transcoded to the HTTP binary form and answered by the inference plane's v2 path
        (the same decoding, validation, endpoint call, metrics and prediction log)."""
        metadata = _metadata(context)
        inference = self.server.inference
        try:
            await self.server.auth.check(metadata.get("authorization"), "predict")
            body, header_length = infer_body(request)
        except Exception as exc:
            request_id = metadata.get("x-request-id") or inference.new_request_id()
            await _abort(context, error_reply(exc, request_id))
        headers = {**metadata, HEADER_LENGTH: str(header_length)}
        headers.pop("content-encoding", None)
        reply = await inference.v2_infer(
            request.model_name, request.model_version or None, body, headers
        )
        if reply.status != 200:
            await _abort(context, reply)
        return infer_response(reply)

    async def _guarded(self, context: Any, scope: str, answer: Callable[[], Awaitable[T]]) -> T:
        metadata = _metadata(context)
        try:
            await self.server.auth.check(metadata.get("authorization"), scope)
            return await answer()
        except Exception as exc:
            request_id = metadata.get("x-request-id") or self.server.inference.new_request_id()
            await _abort(context, error_reply(exc, request_id))


def _metadata(context: Any) -> dict[str, str]:
    """The call's text metadata (gRPC lower-cases keys; ``-bin`` values are bytes: dropped)."""
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


async def _abort(context: Any, reply: Reply) -> NoReturn:
    """End the call with the refusal in ``reply`` (``context.abort`` raises)."""
    code, message, trailing = error_parts(reply)
    context.set_trailing_metadata(trailing)
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover


class GrpcServer:
    """The gRPC listener beside the HTTP one: bound and started in the lifespan startup,
    drained in its shutdown."""

    def __init__(self, server: Server) -> None:
        settings = server.settings
        assert settings.grpc_port is not None
        self.port = settings.grpc_port
        self.host = settings.grpc_host
        options = [
            ("grpc.max_receive_message_length", server.max_body_bytes),
            ("grpc.max_send_message_length", -1),
        ]
        self._server = aio.server(options=options)
        add = pb_grpc.add_GRPCInferenceServiceServicer_to_server
        add(InferenceService(server), self._server)  # type: ignore[no-untyped-call]
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
        if certfile is not None and keyfile is not None:
            credentials = grpc.ssl_server_credentials(
                [(keyfile.read_bytes(), certfile.read_bytes())]
            )
            self._server.add_secure_port(address, credentials)
        else:
            self._server.add_insecure_port(address)

    async def start(self) -> None:
        await self._server.start()
        log.info("gRPC (Open Inference Protocol) on %s:%s", self.host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        await self._server.stop(grace)
