"""The OpenAPI schema: FastAPI's, for its routes, plus the inference hot paths.

``POST /v1/endpoints/{name}/predict`` and ``POST /v2/models/{name}[/versions/{version}]/infer``
are answered by :meth:`~dockyard.server.app.DockyardApp.predict` (from the HTTP protocol's
prediction lane, or raw ASGI) and have no FastAPI route, so nothing could declare them there.
They are written into the schema here, once, so ``/docs`` shows them and clients and fuzzers
can exercise them like any other route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

_REF = "#/components/schemas/{model}"


class V1Request(BaseModel):
    """Records (``instances``) or columns (``inputs``)."""

    instances: list[dict[str, Any]] | None = None
    inputs: dict[str, list[Any]] | None = None


class Error(BaseModel):
    """The one error shape of every route."""

    error: str = Field(description="What went wrong, for a person.")
    code: str = Field(description="A stable code, e.g. invalid_request, not_found.")
    details: dict[str, Any] | None = Field(None, description="e.g. the list of problems.")
    request_id: str | None = Field(None, description="The id the request answered with.")


def document_hot_paths(api: FastAPI) -> None:
    """Make ``api.openapi()`` return FastAPI's schema with the hot paths written in (built
    on the first call and kept, as FastAPI keeps its own)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is not None:
            return api.openapi_schema
        schema = FastAPI.openapi(api)  # builds and keeps api.openapi_schema
        schema["paths"].update(_hot_paths())
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (V1Request, Error):
            components[model.__name__] = model.model_json_schema(ref_template=_REF)
        return schema

    api.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _hot_paths() -> dict[str, Any]:
    v1_body = {
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [{"$ref": _REF.format(model="V1Request")}, {"type": "null"}],
                    "title": "Body",
                }
            }
        }
    }
    v2_body = {
        "description": "An Open Inference Protocol request: JSON, or a JSON header followed "
        "by binary tensors (with Inference-Header-Content-Length).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    return {
        "/v1/endpoints/{name}/predict": {
            "post": _operation(
                "v1_predict",
                "V1 Predict",
                "inference",
                "Predictions from the endpoint's model for records or columns.",
                ["name"],
                v1_body,
            )
        },
        "/v2/models/{name}/infer": {
            "post": _operation(
                "v2_infer",
                "V2 Infer",
                "v2",
                "Open Inference Protocol inference on the endpoint's model.",
                ["name"],
                v2_body,
            )
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": _operation(
                "v2_infer_version",
                "V2 Infer Version",
                "v2",
                "Open Inference Protocol inference on one version the endpoint serves.",
                ["name", "version"],
                v2_body,
            )
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    description: str,
    parameters: list[str],
    body: dict[str, Any],
) -> dict[str, Any]:
    """One hot path's operation, as FastAPI would write it, with the ``predict`` scope and
    the one error shape."""
    error = {
        "description": "The one error shape.",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    return {
        "tags": [tag],
        "summary": summary,
        "description": f"{description} Needs the predict scope when auth is on.",
        "operationId": operation_id,
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "title": name.title()},
            }
            for name in parameters
        ],
        "requestBody": body,
        "responses": {
            "200": {
                "description": "Successful Response",
                "content": {"application/json": {"schema": {}}},
            },
            "4XX": error,
        },
    }


__all__ = ["Error", "V1Request", "document_hot_paths"]
