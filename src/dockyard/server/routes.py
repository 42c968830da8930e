"""Every HTTP route but the two hot paths (answered by ``DockyardApp.predict`` in ``app.py``,
and written into the schema by ``openapi.py``): health, v2 metadata, metrics, and the control
plane under ``/api``, with OpenAPI at ``/docs``. Errors keep the one JSON shape."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from dockyard._validation import problems
from dockyard._version import __version__
from dockyard.deploy.promotion import Promotion
from dockyard.deploy.service import single_route
from dockyard.deploy.spec import BatchingSpec, Deployment, DeploymentSpec
from dockyard.errors import DockyardError, InvalidRequestError
from dockyard.server.access import REQUEST_ID, Needs, actor, console_page
from dockyard.server.cards import add_card_route
from dockyard.server.docs import add_docs_routes
from dockyard.server.explain import add_explain_routes
from dockyard.server.http import JSON, Reply, error_reply, id_header
from dockyard.server.monitoring_api import add_monitoring_routes
from dockyard.server.openapi import document_hot_paths
from dockyard.server.protocols import v2

if TYPE_CHECKING:
    from dockyard.server.inference import InferencePlane
    from dockyard.server.services import Server


class DeployRequest(BaseModel):
    """``PUT /api/deployments/{name}``: a model reference (or a full spec) and batching."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="name, name@version or name@alias")
    spec: dict[str, Any] | None = Field(None, description="A full deployment spec instead.")
    batching: BatchingSpec | None = None
    accelerate: bool = True
    reason: str = ""


class AliasRequest(BaseModel):
    """``PUT /api/models/{name}/aliases/{alias}``: the version, and for a protected alias the
    gate result that justifies the move (``dockyard gate ... --json``)."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="The version the alias should point at, e.g. 1.3.0.")
    gate: dict[str, Any] | None = Field(None, description="A gate result (required if protected).")


class RollbackRequest(BaseModel):
    """``POST /api/deployments/{name}/rollback``."""

    model_config = ConfigDict(extra="forbid")

    to: int | None = Field(None, ge=1, description="Revision to restore (default: previous).")
    reason: str = ""


def _answer(request: Request, reply: Reply) -> Response:
    """An error in the one JSON shape; on a console page, as a page in the console's layout
    with the same status and request id (the console registers ``console_error``)."""
    page = getattr(request.app.state, "console_error", None)
    if page is not None and console_page(request.url.path):
        response: Response = page(request, reply)
        return response
    return _reply(reply)


def _reply(reply: Reply) -> Response:
    headers = {k.decode(): v.decode() for k, v in reply.headers if k != b"content-type"}
    media = dict(reply.headers).get(b"content-type", b"application/json").decode()
    return Response(reply.body, status_code=reply.status, headers=headers, media_type=media)


def build_api(server: Server, lifespan: Any) -> FastAPI:
    api = FastAPI(
        title="Dockyard",
        version=__version__,
        description="Model registry and inference server.",
        lifespan=lifespan,
        docs_url=None,  # declared below, behind the read scope: they reveal the API's shape
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # a redirect would be built from the Host header: 404 instead
    )
    document_hot_paths(api)  # answered by DockyardApp.predict, declared in the schema only

    # each route's scope, declared once; the ASGI layer checks it before reading the body
    read = Depends(Needs("read", server.auth))
    predict = Depends(Needs("predict", server.auth))
    deploy = Depends(Needs("deploy", server.auth))
    manager = server.manager

    # --- errors: one shape everywhere ------------------------------------------------------

    @api.exception_handler(DockyardError)
    async def _dockyard(request: Request, exc: DockyardError) -> Response:
        return _answer(request, error_reply(exc, _request_id(request)))

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        found = problems(exc.errors())
        error = InvalidRequestError(
            f"Invalid request: {'; '.join(found)}.", details={"problems": found}
        )
        return _answer(request, error_reply(error, _request_id(request)))

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": str(exc.detail), "code": code, "details": None}
        if exc.status_code == 404:
            body["error"] = f"No route {request.method} {request.url.path}."
        if console_page(request.url.path) and hasattr(request.app.state, "console_error"):
            request_id = _request_id(request)
            reply = Reply(
                exc.status_code,
                orjson.dumps({**body, "request_id": request_id}),
                [JSON, *id_header(request_id)],
            )
            return _answer(request, reply)
        return JSONResponse(body, status_code=exc.status_code)

    @api.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # logs it, with the request id
        return _answer(request, error_reply(exc, _request_id(request)))

    # --- health ----------------------------------------------------------------------------

    async def _readiness(request: Request) -> Response:
        """Ready (200) once the startup load pass is over, every endpoint deployed then
        loaded or failed; not ready (503) before. An endpoint that fails to load, or one
        deployed later and still loading, answers 503 alone while the server stays ready
        (README, Health). Public: says ready or not. With ``?verbose``, each endpoint's state
        and load failures, for callers with the read scope (401/403 otherwise)."""
        ready = manager.started
        body: dict[str, Any] = {"ready": ready}
        if "verbose" in request.query_params:
            await server.auth.check(request.headers.get("authorization"), "read")
            body["endpoints"] = {
                name: "ready"
                if name in manager.endpoints
                else "failed"
                if name in manager.failures
                else "loading"
                for name in sorted(manager.wanted | set(manager.endpoints))
            }
            body["failures"] = {n: f.reason for n, f in sorted(manager.failures.items())}
            ignored = {n: keys for n, (_, keys) in sorted(manager.ignored.items()) if keys}
            if ignored:  # stored keys this version does not know, left out
                body["ignored_keys"] = ignored
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, Any]:
        return {"live": True}

    @api.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        return await _readiness(request)

    @api.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> dict[str, Any]:
        return {"live": True}

    @api.get("/v2/health/ready", tags=["v2"])
    async def v2_ready(request: Request) -> Response:
        return await _readiness(request)

    # --- docs ------------------------------------------------------------------------------

    add_docs_routes(api, read)  # with their assets, served here: they render offline

    # --- v2 metadata -----------------------------------------------------------------------

    @api.get("/v2", tags=["v2"], dependencies=[read])
    async def v2_server() -> dict[str, Any]:
        return v2.server_metadata(name="dockyard", version=__version__)

    @api.get("/v2/models/{name}", tags=["v2"], dependencies=[read])
    async def v2_model(name: str) -> dict[str, Any]:
        return model_metadata_body(server.inference, name, None)

    @api.get("/v2/models/{name}/versions/{version}", tags=["v2"], dependencies=[read])
    async def v2_model_version(name: str, version: str) -> dict[str, Any]:
        return model_metadata_body(server.inference, name, version)

    def _model_ready(name: str, version: str | None) -> Response:
        endpoint = server.inference.endpoint(name)
        server.inference.model_for(endpoint, version)
        return JSONResponse({"name": name, "ready": True})

    @api.get("/v2/models/{name}/ready", tags=["v2"], dependencies=[read])
    async def v2_model_ready(name: str) -> Response:
        return _model_ready(name, None)

    @api.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"], dependencies=[read])
    async def v2_model_version_ready(name: str, version: str) -> Response:
        return _model_ready(name, version)

    @api.post("/v2/repository/index", tags=["v2"], dependencies=[read])
    async def v2_index() -> list[dict[str, Any]]:
        index = []
        for name in sorted(manager.wanted | set(manager.endpoints)):
            endpoint = manager.endpoints.get(name)
            failure = manager.failures.get(name)
            for model, _ in endpoint.routes if endpoint else []:
                index.append(
                    {"name": name, "version": model.version.version, "state": "READY", "reason": ""}
                )
            if endpoint is None:
                index.append(
                    {
                        "name": name,
                        "version": "",
                        "state": "LOADING" if not failure else "UNAVAILABLE",
                        "reason": failure.reason if failure else "",
                    }
                )
        return index

    # --- metrics ---------------------------------------------------------------------------

    @api.get("/metrics", tags=["metrics"], dependencies=[read])
    async def metrics() -> Response:
        for name, endpoint in manager.endpoints.items():
            server.metrics.set_queue(name, sum(m.batcher.queued_rows for m in endpoint.models))
        server.metrics.set_models_loaded(sum(len(e.models) for e in manager.endpoints.values()))
        body, content_type = server.metrics.render()
        return Response(body, media_type=content_type)

    # --- control plane ---------------------------------------------------------------------

    registry = server.registry
    deployments = server.deployments

    async def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    @api.get("/api/models", tags=["registry"], dependencies=[read])
    async def list_models() -> list[dict[str, Any]]:
        return [m.to_dict() for m in await blocking(registry.list_models)]

    @api.get("/api/models/{name}", tags=["registry"], dependencies=[read])
    async def show_model(name: str, limit: int = 50) -> dict[str, Any]:
        model = await blocking(registry.get_model, name)
        versions = await blocking(registry.list_versions, name, limit=max(1, min(limit, 10_000)))
        return {**model.to_dict(), "versions": [v.to_dict() for v in versions]}

    @api.get("/api/models/{name}/versions/{ref}", tags=["registry"], dependencies=[read])
    async def show_version(name: str, ref: str) -> dict[str, Any]:
        version = await blocking(registry.get_version, f"{name}@{ref}")
        return dict(version.to_dict())

    @api.put("/api/models/{name}/aliases/{alias}", tags=["registry"], dependencies=[deploy])
    async def set_alias(
        name: str, alias: str, request: AliasRequest, http: Request
    ) -> dict[str, Any]:
        """Move an alias. A protected one (``DOCKYARD_PROTECTED_ALIASES``, ``production`` by
        default) moves only with a gate result the registry recorded (named by its ``id``):
        passing, for that version, against where the alias points now, and recent
        (:meth:`~dockyard.deploy.service.Deployments.move_alias`). It is kept on the event."""
        moved = await blocking(
            deployments.move_alias,
            f"{name}@{request.version}",
            alias,
            actor=actor(http.scope, registry.actor),
            gate=request.gate,
        )
        if isinstance(moved, Promotion):
            return moved.to_dict()
        return {"model": name, "alias": alias, "version": moved.version}

    @api.get("/api/events", tags=["registry"], dependencies=[read])
    async def list_events(model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        events = await blocking(registry.events, model=model, limit=max(1, min(limit, 10_000)))
        return [e.to_dict() for e in events]

    @api.get("/api/deployments", tags=["deployments"], dependencies=[read])
    async def list_deployments() -> list[dict[str, Any]]:
        found = await blocking(deployments.list)
        return [_deployment_status(d.to_dict()) for d in found]

    def _deployment_status(body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        endpoint = manager.endpoints.get(name)
        failure = manager.failures.get(name)
        body["serving"] = (
            [
                {
                    "version": m.ref,
                    "runtime": m.runtime,
                    "compute": m.compute,
                    "full_batch_us": (
                        None if m.full_batch_s is None else round(m.full_batch_s * 1e6, 1)
                    ),
                    "revision": endpoint.revision,
                    "weight": weight,
                }
                for m, weight in endpoint.routes
            ]
            if endpoint
            else []
        )
        body["shadowing"] = (
            [{"version": m.ref, "sample_rate": rate} for m, rate in endpoint.shadows]
            if endpoint
            else []
        )
        body["error"] = failure.reason if failure else None
        return body

    @api.get("/api/deployments/{name}", tags=["deployments"], dependencies=[read])
    async def show_deployment(name: str) -> dict[str, Any]:
        return _deployment_status((await blocking(deployments.get, name)).to_dict())

    @api.put("/api/deployments/{name}", tags=["deployments"], dependencies=[deploy])
    async def put_deployment(name: str, request: DeployRequest, http: Request) -> dict[str, Any]:
        if (request.model is None) == (request.spec is None):
            raise InvalidRequestError('Give exactly one of "model" or "spec".')
        if request.spec is not None:
            spec = DeploymentSpec.parse(request.spec)
        else:
            assert request.model is not None
            spec = single_route(
                request.model, batching=request.batching, accelerate=request.accelerate
            )
        deployment: Deployment = await blocking(
            deployments.deploy,
            name,
            spec,
            actor=actor(http.scope, registry.actor),
            reason=request.reason,
        )
        manager.refresh_soon()
        return deployment.to_dict()

    @api.get("/api/deployments/{name}/history", tags=["deployments"], dependencies=[read])
    async def deployment_history(name: str) -> list[dict[str, Any]]:
        """Every revision, newest first: who, when, why, and what changed."""
        history: list[dict[str, Any]] = await blocking(deployments.history, name)
        return history

    @api.post("/api/deployments/{name}/rollback", tags=["deployments"], dependencies=[deploy])
    async def rollback_deployment(
        name: str, request: RollbackRequest, http: Request
    ) -> dict[str, Any]:
        """Restore an earlier revision's spec (default: the previous one), live, at once."""
        deployment: Deployment = await blocking(
            deployments.rollback,
            name,
            to=request.to,
            actor=actor(http.scope, registry.actor),
            reason=request.reason,
        )
        manager.refresh_soon()
        return deployment.to_dict()

    @api.get("/api/deployments/{name}/compare", tags=["deployments"], dependencies=[read])
    async def compare_deployment(name: str, window: str = "1h") -> dict[str, Any]:
        """Variants side by side with a significance test, and shadows' agreement."""
        result: dict[str, Any] = await blocking(
            server.monitor.compare, name, server.monitor.window(window)
        )
        return result

    @api.get("/api/deployments/{name}/rollout", tags=["deployments"], dependencies=[read])
    async def rollout_status(name: str) -> dict[str, Any]:
        """The automatic rollout: plan, state, weights and the last analysis."""
        status: dict[str, Any] = await blocking(deployments.rollout, name)
        return status

    add_monitoring_routes(api, server, read, predict)
    add_explain_routes(api, server, predict)
    add_card_route(api, server, read)
    return api


def model_metadata_body(
    inference: InferencePlane, name: str, version: str | None
) -> dict[str, Any]:
    """The v2 model metadata of endpoint ``name`` (or of one version it serves): the body of
    ``GET /v2/models/{name}`` and of the gRPC ``ModelMetadata`` call."""
    endpoint = inference.endpoint(name)
    model = inference.model_for(endpoint, version)
    inputs = []
    if model.signature is not None:
        inputs = [
            (c.name, _v2_datatype(c.dtype, c.pandas_dtype), [-1]) for c in model.signature.columns
        ]
    output = model.signature.output.dtype if model.signature is not None else None
    outputs = [("predict", _predict_datatype(model.classes, output), [-1])]
    if model.has_proba:
        outputs.append(("predict_proba", "FP64", [-1, len(model.classes or [])]))
    return v2.model_metadata(
        name=name,
        versions=[m.version.version for m, _ in endpoint.routes],
        platform=f"dockyard-{model.runtime}",
        inputs=inputs,
        outputs=outputs,
    )


def _v2_datatype(kind: str, pandas_dtype: str) -> str:
    return {
        "float": "FP32" if pandas_dtype == "float32" else "FP64",
        "integer": "INT64",
        "boolean": "BOOL",
    }.get(kind, "BYTES")


def _string_classes(classes: Any) -> bool:
    return bool(classes) and isinstance(classes[0], str)


def _predict_datatype(classes: Any, dtype: str | None) -> str:
    """The v2 datatype of ``predict``: from the signature's output dtype, widened like the
    inference plane widens it (floats to FP64, integers to INT64)."""
    try:
        kind = np.dtype(dtype).kind if dtype else None
    except TypeError:  # "unknown", or a dtype numpy does not know
        kind = None
    if _string_classes(classes) or (kind is not None and kind in "USO"):
        return "BYTES"
    return {"b": "BOOL", "f": "FP64"}.get(kind or "i", "INT64")


def _request_id(request: Request) -> str:
    """The id the ASGI layer gave this request (see ``DockyardApp``)."""
    found = request.scope.get(REQUEST_ID)
    return str(found) if found else request.headers.get("x-request-id") or uuid.uuid4().hex
