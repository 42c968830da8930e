"""The server's composition root: ``create_app(settings)`` wires one ASGI app.

Two layers, one app:

* the inference hot paths (``POST /v1/endpoints/{name}/predict`` and
  ``POST /v2/models/{name}[/versions/{v}]/infer``) are answered by
  :meth:`DockyardApp.predict`, so a one-row prediction pays for no routing framework. Under
  ``dockyard serve`` the HTTP protocol calls it straight from its prediction lane, with no
  ASGI cycle (``connections.py``); under any other ASGI server, a few lines of raw ASGI do;
* everything else — health, v2 metadata, ``/metrics``, the control plane under ``/api`` and
  the OpenAPI docs at ``/docs`` — is a FastAPI app (``routes.py``). The hot paths have no
  FastAPI route; ``openapi.py`` writes them into its schema, so ``/docs`` shows them.

The services the app runs are built once in ``services.py``; the HTTP helpers it shares with
the routes are in ``http.py``. Nothing imports this module but the entry points.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import orjson

from dockyard.registry import Registry
from dockyard.server.access import (
    PRINCIPAL,
    PUBLIC,
    REQUEST_ID,
    RouteScopes,
    console_page,
    console_refusal,
    credential,
)
from dockyard.server.http import (
    JSON,
    Message,
    Receive,
    Reply,
    Scope,
    Send,
    error_reply,
    read_body,
    send_reply,
)
from dockyard.server.routes import build_api
from dockyard.server.services import Server
from dockyard.settings import Settings

log = logging.getLogger("dockyard.server")

_V1_PREFIX, _V1_SUFFIX = "/v1/endpoints/", "/predict"
_V2_PREFIX, _V2_SUFFIX = "/v2/models/", "/infer"

RawHeaders = Iterable[tuple[bytes, bytes]]


class DockyardApp:
    """The ASGI app: hot paths answered by :meth:`predict` (reached by raw ASGI here, or by
    the HTTP protocol's prediction lane), the rest delegated to FastAPI behind one guard
    (token, then body limit: see :mod:`dockyard.server.access`)."""

    def __init__(self, server: Server, api: Any) -> None:
        self.server = server
        self.api = api
        self.scopes = RouteScopes(api.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = hot_route(scope["path"])
            if route is not None:
                reply = await self.predict(route, scope["method"], scope["headers"], receive)
                await send_reply(send, reply)
                return
            await self._guarded(scope, receive, send)
            return
        await self.api(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every other HTTP request: the token checked against the route's scope from the
        method and path alone, then the body read within the limit, then FastAPI, with the
        principal and request id in the scope. A crash FastAPI's handler already answered
        and logged goes no further (uvicorn would log it again and drop the connection)."""
        headers = _headers(scope["headers"])
        request_id = headers.get("x-request-id") or self.server.inference.new_request_id()
        scope[REQUEST_ID] = request_id
        try:
            needed = self.scopes.needed(scope)
            authorization = headers.get("authorization") or credential(scope)
            public = needed == PUBLIC
            scope[PRINCIPAL] = (
                None if public else await self.server.auth.check(authorization, needed)
            )
            body = await read_body(receive, headers, self.server.max_body_bytes)
        except Exception as exc:
            to = console_refusal(scope, exc)
            if to:
                await send_reply(send, Reply(303, b"", [(b"location", to.encode())]))
                return
            reply = error_reply(exc, request_id)
            page = getattr(self.api.state, "console_error", None)
            if page is not None and console_page(scope["path"]):
                from starlette.requests import Request

                await page(Request(scope), reply)(scope, receive, send)
                return
            await send_reply(send, reply)
            return
        replayed = started = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.api(scope, replay, sending)
        except Exception as exc:
            if not started:
                await send_reply(send, error_reply(exc, request_id))

    async def predict(
        self, route: HotRoute, method: str, raw_headers: RawHeaders, receive: Receive
    ) -> Reply:
        """A hot path's answer: the token checked, then the body read within the limit, then
        the inference plane. Another method than POST, once the token is checked, is a 405.
        Called by :meth:`__call__` and by the HTTP protocol's prediction lane
        (``connections.py``), which writes the reply itself. It raises nothing but a
        cancellation: an error the inference plane did not answer (a bug) is a logged 500
        in the one error shape."""
        headers = _headers(raw_headers)
        inference = self.server.inference
        auth = self.server.auth
        try:
            if auth.enabled:  # off: no token to look at (and no coroutine to run)
                await auth.check(headers.get("authorization"), "predict")
            if method != "POST":
                return _NOT_ALLOWED
            body = await read_body(receive, headers, self.server.max_body_bytes)
            if route.v2:
                return await inference.v2_infer(route.name, route.version, body, headers)
            return await inference.v1_predict(route.name, body, headers)
        except Exception as exc:  # the token, the body; past them the plane answers its own
            request_id = headers.get("x-request-id") or inference.new_request_id()
            return error_reply(exc, request_id)

    def route(self, path: str) -> HotRoute | None:
        """The hot path ``path`` names, if any (the prediction lane's question)."""
        return hot_route(path)


class HotRoute(NamedTuple):
    """A hot path's target: the endpoint, the version a v2 path names, and the protocol."""

    name: str
    version: str | None
    v2: bool


def hot_route(path: str) -> HotRoute | None:
    """``POST /v1/endpoints/{name}/predict`` or ``/v2/models/{name}[/versions/{v}]/infer``,
    else ``None`` (the request goes to FastAPI)."""
    if path.startswith(_V1_PREFIX) and path.endswith(_V1_SUFFIX):
        name = path[len(_V1_PREFIX) : -len(_V1_SUFFIX)]
        if name and "/" not in name:
            return HotRoute(name, None, False)
    elif path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
        target = path[len(_V2_PREFIX) : -len(_V2_SUFFIX)]
        name, _, version = target.partition("/versions/")
        if name and "/" not in name and "/" not in version:
            return HotRoute(name, version or None, True)
    return None


_NOT_ALLOWED = Reply(
    405,
    orjson.dumps({"error": "Method Not Allowed", "code": "method_not_allowed", "details": None}),
    [JSON, (b"allow", b"POST")],
)
"""A hot path asked with another method than POST (the shape of the routes' 405)."""

_WANTED_HEADERS = frozenset(
    {
        b"authorization",
        b"content-encoding",
        b"content-length",
        b"inference-header-content-length",
        b"x-dockyard-key",
        b"x-request-id",
    }
)


def _headers(raw_headers: RawHeaders) -> dict[str, str]:
    """The few headers the hot paths read (ASGI servers lower-case names)."""
    return {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in raw_headers
        if key in _WANTED_HEADERS or key.startswith(b"x-")  # x-: a custom sticky header
    }


def create_app(
    settings: Settings | None = None, *, registry: Registry | None = None
) -> DockyardApp:
    """The whole server as one ASGI app (models load in its lifespan startup)."""
    server = Server(settings or Settings(), registry)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        grpc = None
        if server.settings.grpc_port is not None:  # the grpc extra, imported only when asked
            from dockyard.server.grpc.service import GrpcServer

            grpc = GrpcServer(server)  # binds the port now: a taken one fails before loading
        try:
            await server.start()
            # served only once the endpoints are loaded, as HTTP is: with several workers on
            # one port, a connection the kernel hands to a worker still loading waits for it
            # rather than hearing that no endpoint exists
            if grpc is not None:
                await grpc.start()
        except BaseException:
            if grpc is not None:
                await grpc.stop()
            raise
        try:
            yield
        finally:
            if grpc is not None:
                await grpc.stop()
            await server.stop()

    api = build_api(server, lifespan)
    from dockyard.server.console import add_console

    add_console(api, server)  # the web console under /ui, and / redirecting there
    return DockyardApp(server, api)


def factory() -> DockyardApp:
    """Entry point for ``uvicorn --factory`` (settings from the environment)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app()


__all__ = ["DockyardApp", "create_app", "factory"]
