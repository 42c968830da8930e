"""The inference hot paths live in the raw-ASGI lane only, and the OpenAPI schema still
documents them: no FastAPI route can answer them, the schema lists their operations as it did
when such routes existed, and another method than POST is a 405 from the lane itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import Match

from dockyard.server.app import DockyardApp, create_app
from dockyard.settings import Settings

HOT = {
    "/v1/endpoints/{name}/predict": ("v1_predict", ["name"]),
    "/v2/models/{name}/infer": ("v2_infer", ["name"]),
    "/v2/models/{name}/versions/{version}/infer": ("v2_infer_version", ["name", "version"]),
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[DockyardApp]:
    app = create_app(Settings(home=tmp_path / "home", user="tester"))
    try:
        yield app
    finally:
        app.server.executor.shutdown()
        app.server.registry.close()


def test_no_fastapi_route_answers_a_hot_path(app: DockyardApp) -> None:
    for path in (
        "/v1/endpoints/ep/predict",
        "/v2/models/ep/infer",
        "/v2/models/ep/versions/1/infer",
    ):
        scope = {"type": "http", "method": "POST", "path": path, "root_path": ""}
        matched = [r for r in app.api.routes if r.matches(scope)[0] is not Match.NONE]
        assert matched == [], path


def test_the_schema_documents_each_hot_path(app: DockyardApp) -> None:
    schema = app.api.openapi()
    for path, (operation_id, parameters) in HOT.items():
        operation = schema["paths"][path]["post"]
        assert operation["operationId"] == operation_id
        assert [p["name"] for p in operation["parameters"]] == parameters
        assert all(p["in"] == "path" and p["required"] for p in operation["parameters"])
        assert "application/json" in operation["requestBody"]["content"]
        assert list(schema["paths"][path]) == ["post"]
    v1 = schema["paths"]["/v1/endpoints/{name}/predict"]["post"]["requestBody"]
    body_ref = v1["content"]["application/json"]["schema"]["anyOf"][0]["$ref"]
    assert body_ref == "#/components/schemas/V1Request"
    assert set(schema["components"]["schemas"]["V1Request"]["properties"]) == {
        "instances",
        "inputs",
    }
    assert app.api.openapi() is schema  # built once


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_another_method_on_a_hot_path_is_a_405_from_the_lane(app: DockyardApp, method: str) -> None:
    async def call() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.request(method, path.format(name="ep", version="1")) for path in HOT
            ]

    for response in asyncio.run(call()):
        assert response.status_code == 405, response.text
        assert response.json() == {
            "error": "Method Not Allowed",
            "code": "method_not_allowed",
            "details": None,
        }
        assert response.headers["allow"] == "POST"
