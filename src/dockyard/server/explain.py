"""``POST /v1/endpoints/{name}/explain``: why the endpoint's model answers as it does.

The body is a predict body (``{"instances": [...]}`` or ``{"inputs": {...}}``), with an
optional ``"method": "lime"``. The answer explains the version taking most of the endpoint's
traffic, named in the answer. Explaining is costly, so it is kept off the prediction path:
its own threads (``explain_threads``), its own bounded queue (``explain_queue``, 503 beyond),
a row limit per request (``explain_max_rows``, 413 beyond) and its own metrics. Its scope is
``predict``: whoever may ask a model may ask it why.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.params import Depends

from dockyard.errors import DockyardError, PayloadTooLargeError, UnavailableError
from dockyard.server.http import read_body

if TYPE_CHECKING:
    from dockyard.registry.loaded import RegisteredModel
    from dockyard.server.services import Server

_CACHED_VERSIONS = 8
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
        self.executor = ThreadPoolExecutor(
            max_workers=settings.explain_threads, thread_name_prefix="dockyard-explain"
        )
        self.waiting = 0
        self.loaded: OrderedDict[str, RegisteredModel] = OrderedDict()
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
                answer: dict[str, Any] = await loop.run_in_executor(
                    self.executor, self._explain, model.version.ref, data, method
                )
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

    def _explain(self, ref: str, data: Any, method: str) -> dict[str, Any]:
        registered = self._load(ref)
        validated = registered.validate(data)
        if validated.rows > self.max_rows:
            raise PayloadTooLargeError(
                f"{validated.rows} rows asked for; an explain request may ask about "
                f"{self.max_rows}.",
                hint="Split the rows over several requests, or use: dockyard explain REF --data",
            )
        return registered.explainer.explain(validated.data, method).to_dict()

    def _load(self, ref: str) -> RegisteredModel:
        registered = self.loaded.get(ref)
        if registered is None:
            registered = self.server.registry.load(ref)
            self.loaded[ref] = registered
            while len(self.loaded) > _CACHED_VERSIONS:
                self.loaded.popitem(last=False)
        return registered


def add_explain_routes(api: FastAPI, server: Server, predict: Depends) -> Explanations:
    """Declare ``POST /v1/endpoints/{name}/explain`` on ``api`` (scope ``predict``)."""
    explanations = Explanations(server)

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
