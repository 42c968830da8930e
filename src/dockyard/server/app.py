"""The server's composition root: ``create_app(settings)`` wires one ASGI app.

Two layers, one app:

* the inference hot paths (``POST /v1/endpoints/{name}/predict`` and
  ``POST /v2/models/{name}[/versions/{v}]/infer``) are answered by a few lines of raw ASGI
  in :class:`DockyardApp`, so a one-row prediction pays for no routing framework;
* everything else — health, v2 metadata, ``/metrics``, the control plane under ``/api`` and
  the OpenAPI docs at ``/docs`` — is a FastAPI app. The hot paths are declared there too,
  calling the same code, so the schema documents them and tools can exercise them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from dockyard.registry import Registry
from dockyard.server.access import PRINCIPAL, PUBLIC, REQUEST_ID, Authenticator, RouteScopes
from dockyard.server.http import Message, Receive, Scope, Send, error_reply, read_body, send_reply
from dockyard.server.inference import InferencePlane
from dockyard.settings import Settings

if TYPE_CHECKING:
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.watcher import Watcher
    from dockyard.server.metrics import Metrics

log = logging.getLogger("dockyard.server")

WATCH_SAMPLE_ROWS = 20_000
"""Rows per window, at most, that the server's monitor loop reads for gauges and alerts."""

_V1_PREFIX, _V1_SUFFIX = "/v1/endpoints/", "/predict"
_V2_PREFIX, _V2_SUFFIX = "/v2/models/", "/infer"


class Server:
    """The services one server process runs, built once from settings."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        from dockyard.server.metrics import Metrics
        from dockyard.serving.manager import ModelManager

        self.settings = settings
        self.registry = registry or Registry.open(settings)
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(
            max_workers=settings.compute_threads, thread_name_prefix="dockyard-compute"
        )
        self.manager = ModelManager(
            self.registry,
            executor=self.executor,
            poll_interval_s=settings.poll_interval_s,
            on_batch=self.metrics.observe_batch,
            on_load=self.metrics.observe_load,
            model_threads=settings.model_threads,
            inline_budget_s=settings.inline_compute_us / 1e6,
        )
        self.monitor, self.prediction_log, self.watcher = _monitoring(
            settings, self.registry, self.metrics
        )
        self.inference = InferencePlane(
            self.manager,
            self.metrics,
            max_body_bytes=settings.max_body_bytes,
            log=self.prediction_log,
        )
        self.auth = Authenticator(self.registry, enabled=settings.auth)
        self._converting: asyncio.Task[None] | None = None
        self.max_body_bytes = settings.max_body_bytes

    async def start(self) -> None:
        self.prediction_log.start(converting=True)
        await self.manager.start()
        await self.watcher.start()
        self._converting = asyncio.create_task(self._convert_log(), name="dockyard-log-convert")
        # Everything alive now (libraries, models) lives as long as the server: out of the
        # cyclic collector's sight, a full collection scans only what serving allocates
        # (with it in sight, each one stalled the loop ~100 ms, the p99 at 64 connections).
        gc.collect()
        gc.freeze()

    async def _convert_log(self) -> None:
        """Convert buffered predictions to Arrow in short slices on the loop (see
        ``PredictionLog.convert``)."""
        from dockyard.monitoring.predictions import CONVERT_INTERVAL_S

        while True:
            await asyncio.sleep(CONVERT_INTERVAL_S)
            try:
                self.prediction_log.convert()
            except Exception:  # never let logging take the server down
                log.exception("could not convert prediction records")

    async def stop(self) -> None:
        """Graceful: drain the endpoints, then flush the prediction log."""
        if self._converting is not None:
            self._converting.cancel()
        await self.watcher.stop()
        await self.manager.stop()
        self.executor.shutdown(wait=True)
        await asyncio.to_thread(self.prediction_log.close)
        self.registry.close()


def _monitoring(
    settings: Settings, registry: Registry, metrics: Metrics
) -> tuple[Monitor, PredictionLog, Watcher]:
    """The prediction log, the monitoring service over it, and the periodic watcher."""
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.monitoring.watcher import Watcher

    store = MonitoringStore(
        settings.resolved_monitoring_url, settings.monitoring_options, threads=1
    )
    prediction_log = PredictionLog(
        store,
        buffer_rows=settings.log_buffer_rows,
        flush_interval_s=settings.log_flush_interval_s,
        on_flush=metrics.observe_log,
    )
    monitor = Monitor(registry, store)
    # the periodic checks read a bounded sample of each window, so a busy endpoint's hour of
    # traffic costs the serving process a bounded amount of work
    sampled = Monitor(registry, store, max_rows=WATCH_SAMPLE_ROWS)
    from dockyard.serving.rollout_controller import RolloutController

    watcher = Watcher(
        sampled,
        settings,
        metrics=metrics,
        prediction_log=prediction_log,
        rollouts=RolloutController(registry, store),
    )
    return monitor, prediction_log, watcher


class DockyardApp:
    """The ASGI app: hot paths in raw ASGI, the rest delegated to FastAPI behind one guard
    (token, then body limit: see :mod:`dockyard.server.access`)."""

    def __init__(self, server: Server, api: Any) -> None:
        self.server = server
        self.api = api
        self.scopes = RouteScopes(api.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_V1_PREFIX) and path.endswith(_V1_SUFFIX):
                name = path[len(_V1_PREFIX) : -len(_V1_SUFFIX)]
                if name and "/" not in name:
                    await self._predict(scope, receive, send, name, None, v2=False)
                    return
            elif path.startswith(_V2_PREFIX) and path.endswith(_V2_SUFFIX):
                target = path[len(_V2_PREFIX) : -len(_V2_SUFFIX)]
                name, _, version = target.partition("/versions/")
                if name and "/" not in name and "/" not in version:
                    await self._predict(scope, receive, send, name, version or None, v2=True)
                    return
        if scope["type"] == "http":
            await self._guarded(scope, receive, send)
            return
        await self.api(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every other HTTP request: the token checked against the route's scope from the
        method and path alone, then the body read within the limit, then FastAPI, with the
        principal and request id in the scope. A crash FastAPI's handler already answered
        and logged goes no further (uvicorn would log it again and drop the connection)."""
        headers = _headers(scope)
        request_id = headers.get("x-request-id") or self.server.inference.new_request_id()
        scope[REQUEST_ID] = request_id
        try:
            needed = self.scopes.needed(scope)
            authorization = headers.get("authorization")
            public = needed == PUBLIC
            scope[PRINCIPAL] = (
                None if public else await self.server.auth.check(authorization, needed)
            )
            body = await read_body(receive, headers, self.server.max_body_bytes)
        except Exception as exc:
            await send_reply(send, error_reply(exc, request_id))
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

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None, v2: bool
    ) -> None:
        """Both fast-lane paths: auth, bounded body, then the inference plane."""
        headers = _headers(scope)
        try:
            await self.server.auth.check(headers.get("authorization"), "predict")
            body = await read_body(receive, headers, self.server.max_body_bytes)
        except Exception as exc:
            request_id = headers.get("x-request-id") or self.server.inference.new_request_id()
            await send_reply(send, error_reply(exc, request_id))
            return
        inference = self.server.inference
        reply = (
            await inference.v2_infer(name, version, body, headers)
            if v2
            else await inference.v1_predict(name, body, headers)
        )
        await send_reply(send, reply)


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


def _headers(scope: Scope) -> dict[str, str]:
    """The few headers the fast lane reads (ASGI servers lower-case names)."""
    return {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in scope["headers"]
        if key in _WANTED_HEADERS or key.startswith(b"x-")  # x-: a custom sticky header
    }


def create_app(
    settings: Settings | None = None, *, registry: Registry | None = None
) -> DockyardApp:
    """The whole server as one ASGI app (models load in its lifespan startup)."""
    from dockyard.server.routes import build_api

    server = Server(settings or Settings(), registry)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    return DockyardApp(server, build_api(server, lifespan))


def factory() -> DockyardApp:
    """Entry point for ``uvicorn --factory`` (settings from the environment)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return create_app()


__all__ = ["DockyardApp", "Server", "create_app", "factory"]
