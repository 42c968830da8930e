"""The ``GRPCInferenceService`` of the Open Inference Protocol, served by the HTTP server's own
process and event loop (``grpc.aio``), answered by the same plane: the same endpoints, token
checks and scopes (health public, metadata ``read``, inference ``predict``), validation,
batching, metrics and prediction log as ``/v2/...`` over HTTP.

Started and stopped in the app's lifespan (``server/app.py``) when ``--grpc-port`` is given;
the translation between protobuf and the v2 codec is in :mod:`~dockyard.server.grpc.wire`.
The handlers take raw messages and parse them themselves, after the token check (the
generated ``inference_pb2_grpc`` would parse first, and answer INTERNAL to bytes that do not
parse); clients and tests use its stub.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from dockyard._version import __version__
from dockyard.errors import InvalidRequestError, UnavailableError
from dockyard.server.grpc import inference_pb2 as pb
from dockyard.server.grpc.wire import HEADER_LENGTH, error_parts, infer_body, infer_response
from dockyard.server.http import Reply, error_reply
from dockyard.server.protocols import v2
from dockyard.server.routes import model_metadata_body

if TYPE_CHECKING:
    from dockyard.server.services import Server

__all__ = ["GrpcServer", "InferenceService"]

log = logging.getLogger("dockyard.server")


SCOPES = {
    "ServerLive": None,
    "ServerReady": None,
    "ServerMetadata": "read",
    "ModelReady": "read",
    "ModelMetadata": "read",
    "ModelInfer": "predict",
}
"""The scope each call needs, as its HTTP route (``None``: public, as health is)."""


class InferenceService:
    """The six calls, answered once the call's token is checked and its message parsed
    (:meth:`handler`); a refusal is the HTTP route's error as a gRPC status
    (:func:`~dockyard.server.grpc.wire.error_parts`)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def handler(self, method: str, request_type: Any) -> Callable[[bytes, Any], Awaitable[Any]]:
        """The call ``method`` taking the raw message: the token checked from the metadata
        before the message is parsed (as over HTTP, before the body is read), then a message
        that does not parse refused as INVALID_ARGUMENT (grpcio's own parser would answer
        INTERNAL), then the call, its refusals answered as gRPC statuses."""
        call = getattr(self, method)
        scope = SCOPES[method]

        async def handle(raw: bytes, context: Any) -> Any:
            metadata = _metadata(context)
            try:
                if scope is not None:
                    await self.server.auth.check(metadata.get("authorization"), scope)
                try:
                    request = request_type.FromString(raw)
                except DecodeError:
                    raise InvalidRequestError(
                        f"The message is not a well-formed {request_type.DESCRIPTOR.name}.",
                        hint="Send the inference.GRPCInferenceService messages.",
                    ) from None
                return await call(request, context, metadata)
            except Exception as exc:
                request_id = metadata.get("x-request-id") or self.server.inference.new_request_id()
                await _abort(context, error_reply(exc, request_id))

        return handle

    async def ServerLive(self, request: Any, context: Any, _: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any, _: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.server.manager.started)

    async def ServerMetadata(self, request: Any, context: Any, _: Any) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**v2.server_metadata(name="dockyard", version=__version__))

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any, _: Any
    ) -> pb.ModelReadyResponse:
        inference = self.server.inference
        try:
            endpoint = inference.endpoint(request.name)
        except UnavailableError:  # deployed, still loading or failed: not ready
            return pb.ModelReadyResponse(ready=False)
        inference.model_for(endpoint, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any, _: Any
    ) -> pb.ModelMetadataResponse:
        body = model_metadata_body(self.server.inference, request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=body["name"],
            versions=body.get("versions", []),
            platform=body["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in body["outputs"]],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any, metadata: dict[str, str]
    ) -> pb.ModelInferResponse:
        """Transcoded to the HTTP binary form and answered by the inference plane's v2 path
        (the same decoding, validation, endpoint call, metrics and prediction log)."""
        body, header_length = infer_body(request)
        headers = {**metadata, HEADER_LENGTH: str(header_length)}
        headers.pop("content-encoding", None)
        reply = await self.server.inference.v2_infer(
            request.model_name, request.model_version or None, body, headers
        )
        if reply.status != 200:
            await _abort(context, reply)
        return infer_response(reply)


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


def _handlers(service: InferenceService) -> Any:
    """The service's method handlers, from the .proto's service descriptor: raw messages in
    (parsed by :meth:`InferenceService.handler`), protobuf out."""
    descriptor = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    handlers = {}
    for method in descriptor.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            service.handler(method.name, request_type),
            response_serializer=response_type.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


class GrpcServer:
    """The gRPC listener beside the HTTP one: bound in the lifespan startup before the models
    load (a taken port fails at once), serving once they have, drained in its shutdown."""

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
        self._server.add_generic_rpc_handlers((_handlers(InferenceService(server)),))
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
        if certfile is not None:  # the HTTP server's pair (checked by serve before binding)
            chain = certfile.read_bytes()
            key = keyfile.read_bytes() if keyfile is not None else chain  # key in the chain
            credentials = grpc.ssl_server_credentials([(key, chain)])
            self._server.add_secure_port(address, credentials)
        else:
            self._server.add_insecure_port(address)

    async def start(self) -> None:
        await self._server.start()
        log.info("gRPC (Open Inference Protocol) on %s:%s", self.host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        await self._server.stop(grace)
