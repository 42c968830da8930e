"""The inference plane: the simple JSON protocol (v1) and the Open Inference Protocol (v2).

Both take the raw body and headers and return a :class:`Reply`; the ASGI layer only moves
bytes. Decoding and validation run on the event loop (they are cheap and precompiled);
the model runs in its batcher (on a compute thread, or on the loop for a model calibrated
cheaper than the hand-off: see ``serving/batching.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dockyard.errors import (
    DockyardError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
)
from dockyard.server.http import JSON, Reply, error_reply, id_header
from dockyard.server.protocols import v1, v2
from dockyard.server.protocols.json_numbers import JsonNumbers

if TYPE_CHECKING:
    from dockyard.monitoring.predictions import PredictionLog
    from dockyard.server.metrics import Metrics
    from dockyard.serving.endpoint import Endpoint, LiveModel, Prediction
    from dockyard.serving.manager import ModelManager
    from dockyard.serving.ranges import OutOfRange

UNKNOWN_ENDPOINT = "unknown"
"""The metrics' endpoint label of a request for a name that is not deployed: a caller's
made-up names never create series (``server/metrics.py``)."""

log = logging.getLogger("dockyard.server")


class InferencePlane:
    """Answers predictions for the endpoints the manager keeps loaded."""

    def __init__(
        self,
        manager: ModelManager,
        metrics: Metrics | None,
        *,
        max_body_bytes: int,
        log: PredictionLog | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.log = log
        # Request ids: a random per-process prefix and a counter, unique across replicas and
        # restarts without a system call per request (uuid4 was 2-3% of the hot path).
        self._id_prefix = secrets.token_hex(6)
        self._ids = itertools.count()
        self._shadows: set[asyncio.Task[None]] = set()
        self.binary_headers = v2.BinaryHeaders()  # the binary requests' headers, decoded once
        self.json_layouts = v2.JsonLayouts()  # JSON float requests' layouts, decoded once
        self.json_numbers = JsonNumbers()  # JSON of many numbers (v1, v2): simdjson, msgspec

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):010x}"

    def endpoint(self, name: str) -> Endpoint:
        endpoint = self.manager.endpoints.get(name)
        if endpoint is not None:
            return endpoint
        if name in self.manager.wanted:
            failed = name in self.manager.failures  # why is for the read scope, not callers
            raise UnavailableError(
                f"Endpoint {name!r} "
                + ("could not load its model." if failed else "is not loaded yet."),
                hint="Retry shortly; GET /readyz?verbose (read scope) says why.",
            )
        if not self.manager.started:  # what is deployed is not known until the first pass
            raise UnavailableError(
                "The server is still loading its endpoints.",
                hint="Retry shortly; GET /readyz says when it is ready.",
            )
        known = ", ".join(sorted(self.manager.endpoints)) or "none"
        raise NotFoundError(
            f"No endpoint named {name!r}.",
            hint=f"Deployed endpoints: {known}. Deploy one with: dockyard deploy NAME MODEL_REF",
        )

    # --- v1 -------------------------------------------------------------------------------

    async def v1_predict(
        self, name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Reply:
        headers = headers or {}
        request_id = headers.get("x-request-id") or self.new_request_id()
        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.request_started()
        model: LiveModel | None = None
        rows = 0
        prediction: Prediction | None = None
        try:
            endpoint = self.endpoint(name)
            if len(endpoint.routes) == 1:
                model = endpoint.routes[0][0]
            # many numbers: read straight into the arrays the numeric path takes (None:
            # the body is decoded and validated as it came, errors named as before)
            prepared = None
            if model is not None and not endpoint.shadows:
                found = self.json_numbers.v1_values(body, model.record_columns)
                if found is not None:  # finite: the JSON readers refuse NaN and overflow
                    prepared = model.prepare_numbers(found, finite=True)
            if prepared is None:
                payload, data = v1.decode_request(body)
                if model is None:
                    model = endpoint.choose(key=_sticky_key(endpoint, headers, payload, data))
                prepared = model.prepare(data, finite=True)  # orjson refuses NaN, overflow
            assert model is not None  # the only route, or the one chosen
            model_input, rows, notes = prepared
            prediction = await model.predict(model_input, rows)
            if endpoint.shadows:
                self.mirror(endpoint, data, request_id, model)
            outside = self._out_of_range(name, model, prediction, rows)
            answer = v1.encode_answer(
                endpoint=name,
                model=model.version.model,
                version=model.version.version,
                request_id=request_id,
                predictions=prediction.predictions,
                probabilities=prediction.probabilities,
                classes=model.classes,
                notes=notes,
                warnings=None if outside is None else outside.warnings,
            )
            reply = Reply(200, answer, [JSON, *id_header(request_id)])
        except Exception as exc:
            reply = error_reply(_unchecked_input(exc, model), request_id)
        self._observe(name, model, reply.status, started, request_id, rows, prediction)
        return reply

    # --- v2 -------------------------------------------------------------------------------

    async def v2_infer(
        self,
        name: str,
        version: str | None,
        body: bytes,
        headers: Mapping[str, str],
    ) -> Reply:
        started = time.perf_counter()
        if self.metrics is not None:
            self.metrics.request_started()
        request_id = headers.get("x-request-id") or self.new_request_id()
        model: LiveModel | None = None
        rows = 0
        prediction: Prediction | None = None
        try:
            endpoint = self.endpoint(name)
            if version is not None:
                model = self.model_for(endpoint, version)
            elif len(endpoint.routes) == 1:
                model = endpoint.routes[0][0]
            length = headers.get("inference-header-content-length")
            request = v2.decode_request(
                body,
                header_length=None if length is None else _header_length(length),
                content_encoding=headers.get("content-encoding"),
                max_body_bytes=self.max_body_bytes,
                headers=self.binary_headers,
                numbers=self.json_numbers,
                layouts=self.json_layouts,
            )
            request_id = request.id or request_id
            if model is None:
                model = endpoint.choose(key=headers.get(endpoint.sticky_header))
            names = model.column_names or _positional(request)
            prepared = None if endpoint.shadows else _plain_numbers(request, model)
            if prepared is None:
                data = v2.tabular_input(request, names)
                if model.validator is None:  # unchecked: the model gets named columns
                    data = _named(data, names)
                prepared = model.prepare(data)
            model_input, rows, _ = prepared
            prediction = await model.predict(model_input, rows)
            if endpoint.shadows:  # by name: a shadow's columns may be in another order
                self.mirror(endpoint, _named(data, names), request_id, model)
            self._out_of_range(name, model, prediction, rows)
            outputs = [("predict", prediction.predictions)]
            if prediction.probabilities is not None:
                outputs.append(("predict_proba", prediction.probabilities))
            version = model.version.version
            payload, json_length = None, None
            if not (request.outputs or request.binary_output):  # the usual answer
                payload = v2.plain_response(name, version, request_id, outputs, declared=True)
            if payload is None:
                payload, json_length = v2.encode_response(
                    model_name=name,
                    model_version=version,
                    request_id=request_id,
                    outputs=[v2.OutputTensor(key, array) for key, array in outputs],
                    requested=request.outputs,
                    binary_output=request.binary_output,
                    declared=True,
                )
            reply_headers = [JSON, *id_header(request_id)]
            if json_length is not None:
                reply_headers = [
                    (b"content-type", b"application/octet-stream"),
                    (b"inference-header-content-length", str(json_length).encode()),
                    *id_header(request_id),
                ]
            reply = Reply(200, payload, reply_headers)
        except Exception as exc:
            reply = error_reply(_unchecked_input(exc, model), request_id)
        self._observe(name, model, reply.status, started, request_id, rows, prediction)
        return reply

    # --- shadows ---------------------------------------------------------------------------

    def mirror(self, endpoint: Endpoint, data: Any, request_id: str, primary: LiveModel) -> None:
        """Send a copy of an answered request to the endpoint's shadows, in the background:
        their answers go to the prediction log (role "shadow") to be compared, never to the
        caller, and their failures are only recorded."""
        for shadow, rate in endpoint.shadows:
            if rate < 1.0 and random.random() >= rate:
                continue
            task = asyncio.get_running_loop().create_task(self._shadow(shadow, data, request_id))
            self._shadows.add(task)
            task.add_done_callback(self._shadows.discard)

    async def _shadow(self, shadow: LiveModel, data: Any, request_id: str) -> None:
        started = time.perf_counter()
        source = shadow.log_source
        try:
            model_input, rows, _ = shadow.prepare(data)
            prediction = await shadow.predict(model_input, rows)
        except Exception as exc:
            status = int(exc.status) if isinstance(exc, DockyardError) else 500
            if status == 500:  # the caller never sees it; the operator must
                log.error(
                    "shadow %s failed on request %s",
                    shadow.ref,
                    request_id,
                    exc_info=exc,
                    extra={"request_id": request_id},
                )
            if self.log is not None and source is not None:
                self.log.record(source, request_id, status, time.perf_counter() - started)
            return
        if self.log is not None and source is not None:
            elapsed = time.perf_counter() - started
            self.log.record(
                source, request_id, 200, elapsed, prediction.call, prediction.start, rows
            )

    def model_for(self, endpoint: Endpoint, version: str | None) -> LiveModel:
        """The route's model, or the one serving ``version`` (v2's version-addressed paths)."""
        if version is None:
            return endpoint.choose()
        model = endpoint.model_for_version(version)
        if model is None:
            served = ", ".join(m.version.version for m, _ in endpoint.routes)
            raise NotFoundError(
                f"Endpoint {endpoint.name!r} does not serve version {version!r}.",
                hint=f"It serves: {served}.",
            )
        return model

    def _out_of_range(
        self, name: str, model: LiveModel, prediction: Prediction, rows: int
    ) -> OutOfRange | None:
        """What an answered request sent outside the training range (counted in the
        metrics), or ``None``: the usual case, one attribute read."""
        if prediction.call.outside is None:
            return None
        outside = model.out_of_range(prediction, rows)
        if outside is not None and self.metrics is not None:
            self.metrics.observe_out_of_range(name, outside.rows)
        return outside

    def _observe(
        self,
        name: str,
        model: LiveModel | None,
        status: int,
        started: float,
        request_id: str,
        rows: int,
        prediction: Prediction | None,
    ) -> None:
        """Count the request in the metrics and buffer it for the prediction log."""
        elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.request_finished()
            version = model.version.version if model is not None else ""
            if model is None and name not in self.manager.endpoints:
                name = name if name in self.manager.wanted else UNKNOWN_ENDPOINT
            self.metrics.observe_request(name, version, status, elapsed)
        if self.log is not None and model is not None and model.log_source is not None:
            if prediction is None:
                self.log.record(model.log_source, request_id, status, elapsed)
            else:
                call, start = prediction.call, prediction.start
                self.log.record(model.log_source, request_id, status, elapsed, call, start, rows)


def _header_length(value: str) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidRequestError(
            f"Inference-Header-Content-Length is {value!r}, not a byte count.",
            hint="Send the length of the JSON header in bytes, or leave the header out.",
        )
    return int(value)


def _unchecked_input(exc: Exception, model: LiveModel | None) -> Exception:
    """A model without a signature takes its input unchecked, so what it refuses (a
    ``ValueError``, ``TypeError`` or ``KeyError``: a string where it wants a number, a missing
    column, ragged columns) is the caller's mistake: a 400 quoting it, not a 500. Anything
    else, and anything a model with a signature raises past validation, stays a crash."""
    if model is None or model.validator is not None:
        return exc
    if not isinstance(exc, ValueError | TypeError | KeyError):
        return exc
    return InvalidRequestError(
        f"{model.ref} could not use this input: {type(exc).__name__}: {str(exc)[:300]}",
        hint="This version has no signature, so its input is not checked before the model "
        "sees it: send the columns and types it was trained on (register it with a sample to "
        "get a signature and a 400 that lists every problem).",
    )


def _sticky_key(
    endpoint: Endpoint, headers: Mapping[str, str], payload: Any, data: Any
) -> str | None:
    """The caller's key for sticky routing: the configured header, else the configured
    field (a top-level key of the body, else that column of the first record)."""
    key = headers.get(endpoint.sticky_header)
    if key:
        return key
    field = endpoint.sticky_field
    if field is None:
        return None
    value = payload.get(field) if isinstance(payload, dict) else None
    if value is None and isinstance(data, list) and data and isinstance(data[0], dict):
        value = data[0].get(field)
    elif value is None and isinstance(data, dict) and isinstance(data.get(field), list):
        column = data[field]
        value = column[0] if column else None
    return None if value is None else str(value)


def _plain_numbers(
    request: v2.InferRequest, model: LiveModel
) -> tuple[Any, int, tuple[str, ...]] | None:
    """A request whose array :func:`~dockyard.server.protocols.v2.tabular_input` would hand
    on as sent (:func:`~dockyard.server.protocols.v2.rows_as_sent`), as the model's numeric
    path takes it, without that step and the validator's. ``None``: the whole way, which
    also names every problem (a value the numeric path does not take as it is, any other
    layout)."""
    columns = model.record_columns  # the model's columns, when it has a numeric path
    values = None if columns is None else v2.rows_as_sent(request, columns)
    return None if values is None else model.prepare_numbers(values, finite=request.finite)


def _named(data: Any, names: Sequence[str]) -> Any:
    """A v2 2-D tensor as named columns (what a model without a signature, or a shadow whose
    columns may be in another order, takes); named columns as they are."""
    if not isinstance(data, np.ndarray):
        return data
    return {name: data[:, index] for index, name in enumerate(names)}


def _positional(request: v2.InferRequest) -> list[str]:
    """Column names for a model without a signature: one per column of a 2-D input."""
    first = request.inputs[0] if request.inputs else None
    width = first.shape[-1] if first is not None and len(first.shape) == 2 else 1
    return [f"x{i}" for i in range(width)]
