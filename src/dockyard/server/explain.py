"""``POST /v1/endpoints/{name}/explain``: why the endpoint's model answers as it does.

The body is a predict body (``{"instances": [...]}`` or ``{"inputs": {...}}``), with an
optional ``"method": "lime"``. The answer explains the version taking most of the endpoint's
traffic, named in the answer. Explaining is costly, so it is kept off the prediction path:
its own worker processes (``explain_workers``; a process, not a thread, so a long
explanation holding the GIL never stalls the event loop, and at the lowest CPU priority —
``SCHED_IDLE`` on Linux, else nice 10 — so predictions get the cores first), its own
bounded queue (``explain_queue``, 503 beyond), a row limit per request
(``explain_max_rows``, 413 beyond) and its own metrics. Its scope is ``predict``: whoever
may ask a model may ask it why.

Each worker opens the registry from the server's settings and keeps the versions it loaded
(their explainers included); that per-process state lives in :data:`_WORKER`, which only
worker processes fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.params import Depends

from dockyard.errors import (
    DockyardError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnavailableError,
)
from dockyard.server.http import read_body
from dockyard.server.priority import idle_initializer, idle_processes

if TYPE_CHECKING:
    from dockyard.server.services import Server
    from dockyard.settings import Settings

_CACHED_VERSIONS = 8
_WORKER: dict[str, Any] = {}
"""In a worker process only: its registry and the versions it loaded (ref -> model)."""
_BODY = {
    "type": "object",
    "properties": {
        "instances": {"type": "array", "items": {"type": "object"}},
        "inputs": {"type": "object"},
        "method": {"type": "string", "enum": ["auto", "lime"], "default": "auto"},
    },
}


class Explanations:
    """The explain lane of one server process: threads, queue, loaded versions, metrics."""

    def __init__(self, server: Server) -> None:
        settings = server.settings
        self.server = server
        self.max_rows = settings.explain_max_rows
        self.queue = settings.explain_queue
        self.settings = settings
        self.executor: ProcessPoolExecutor | None = None  # started by the first request
        self.waiting = 0
        self._metrics(server)

    def _metrics(self, server: Server) -> None:
        import prometheus_client as prom

        metrics = server.metrics
        target = None if metrics.multiprocess_dir else metrics.registry
        self.requests = prom.Counter(
            "dockyard_explain_requests",
            "Explain requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=target,
        )
        self.duration = prom.Histogram(
            "dockyard_explain_duration_seconds",
            "Time to answer an explain request, queue included.",
            ["endpoint"],
            registry=target,
        )
        self.rows = prom.Counter(
            "dockyard_explain_rows", "Rows explained.", ["endpoint"], registry=target
        )

    async def explain(self, name: str, body: bytes) -> dict[str, Any]:
        """Decode, wait for an explain thread (or refuse), explain, and answer as JSON."""
        from dockyard.server.protocols.v1 import decode_request

        started = time.perf_counter()
        status = 500
        try:
            payload, data = decode_request(body)
            method = str(payload.get("method", "auto"))
            endpoint = self.server.inference.endpoint(name)
            model = max(endpoint.routes, key=lambda route: route[1])[0]
            if self.waiting >= self.queue:
                raise UnavailableError(
                    f"Too many explain requests are waiting ({self.waiting}).",
                    hint="Retry shortly; predictions are not affected.",
                )
            self.waiting += 1
            try:
                loop = asyncio.get_running_loop()
                workers = self._workers()
                call = loop.run_in_executor(
                    workers, _explain, model.version.ref, data, method, self.max_rows
                )
                idle_processes(workers)  # a worker that call started
                answer: dict[str, Any] = await call
            finally:
                self.waiting -= 1
            self.rows.labels(name).inc(len(answer["explanations"]))
            status = 200
            return {"endpoint": name, "version": model.version.ref, **answer}
        except DockyardError as exc:
            status = int(exc.status)
            raise
        finally:
            self.requests.labels(name, str(status)).inc()
            self.duration.labels(name).observe(time.perf_counter() - started)

    def _workers(self) -> ProcessPoolExecutor:
        if self.executor is None:
            initializer, initargs = idle_initializer(_start_worker, self.settings)
            self.executor = ProcessPoolExecutor(
                max_workers=self.settings.explain_workers,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a live server
                initializer=initializer,
                initargs=initargs,
            )
        return self.executor

    def close(self) -> None:
        """Stop the workers (the server's shutdown)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _start_worker(settings: Settings) -> None:
    """A worker process's start (at idle priority already: :func:`idle_initializer`): one
    numeric thread, the registry."""
    from dockyard.registry import Registry

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before any framework starts its pool
    _WORKER["registry"] = Registry.open(settings)
    _WORKER["loaded"] = OrderedDict()


def _explain(ref: str, data: Any, method: str, max_rows: int) -> dict[str, Any]:
    """In a worker: validate, refuse more than ``max_rows`` rows (413), explain."""
    loaded: OrderedDict[str, Any] = _WORKER["loaded"]
    registered = loaded.get(ref)
    if registered is None:
        registered = _WORKER["registry"].load(ref)
        loaded[ref] = registered
        while len(loaded) > _CACHED_VERSIONS:
            loaded.popitem(last=False)
    validated = registered.validate(data)
    if validated.rows == 0:
        raise InvalidRequestError("No rows to explain.", hint='Send {"instances": [{...}]}.')
    if validated.rows > max_rows:
        raise PayloadTooLargeError(
            f"{validated.rows} rows asked for; an explain request may ask about {max_rows}.",
            hint="Split the rows over several requests, or use: dockyard explain REF --data",
        )
    answer: dict[str, Any] = registered.explainer.explain(validated.data, method).to_dict()
    return answer


def add_explain_routes(api: FastAPI, server: Server, predict: Depends) -> Explanations:
    """Declare ``POST /v1/endpoints/{name}/explain`` on ``api`` (scope ``predict``); the
    workers stop when the app's lifespan ends."""
    explanations = Explanations(server)
    inner = api.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            try:
                yield state
            finally:
                await asyncio.to_thread(explanations.close)

    api.router.lifespan_context = lifespan

    @api.post(
        "/v1/endpoints/{name}/explain",
        tags=["inference"],
        dependencies=[predict],
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _BODY}}}
        },
    )
    async def explain(name: str, request: Request) -> dict[str, Any]:
        """Per row, one additive attribution per input column, the base value and the output
        they add up to; the method is chosen for the model and named in the answer."""
        body = await read_body(request.receive, dict(request.headers), server.max_body_bytes)
        return await explanations.explain(name, body)

    return explanations
