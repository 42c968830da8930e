"""The API docs: the OpenAPI schema, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with
their scripts, styles and icon served from ``/docs/static/`` out of an installed package
(``fastapi-offline``), so the pages render with no network: no CDN, no web fonts.

All of it sits behind the read scope, like the schema it shows. Only the named assets are
served (no path from the request reaches the file system).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response

from dockyard.errors import NotFoundError

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
"""File name under ``/docs/static/`` -> media type."""

CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)
"""The pages' Content-Security-Policy: the browser loads nothing from elsewhere (ReDoc's
sidebar draws its vendor's logo from a CDN; this keeps that request from leaving)."""


def add_docs_routes(api: FastAPI, read: Any) -> None:
    """Declare ``/openapi.json``, ``/docs``, ``/redoc`` and ``/docs/static/{name}`` on
    ``api``, each with the ``read`` dependency."""
    static = files("fastapi_offline") / "static"

    @api.get("/openapi.json", include_in_schema=False, dependencies=[read])
    async def openapi() -> Response:
        return JSONResponse(api.openapi())

    @api.get("/docs", include_in_schema=False, dependencies=[read])
    async def swagger(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title="Dockyard - API",
            swagger_js_url=f"{root}/docs/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/static/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/static/favicon.png",
        )
        page.headers["content-security-policy"] = CSP
        return page

    @api.get("/redoc", include_in_schema=False, dependencies=[read])
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title="Dockyard - API",
            redoc_js_url=f"{root}/docs/static/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs/static/favicon.png",
            with_google_fonts=False,
        )
        page.headers["content-security-policy"] = CSP
        return page

    @api.get("/docs/static/{name}", include_in_schema=False, dependencies=[read])
    async def asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundError(f"No docs asset {name!r}.")
        return FileResponse(str(static / name), media_type=media_type)


__all__ = ["ASSETS", "CSP", "add_docs_routes"]
