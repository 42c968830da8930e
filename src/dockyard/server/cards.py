"""``GET /api/models/{name}/versions/{version}/card``: the model card (read scope) as JSON,
Markdown or offline HTML — the same card ``dockyard models card`` prints."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    from dockyard.server.services import Server


def add_card_route(api: FastAPI, server: Server, read: Depends) -> None:
    """Declare the card route on ``api``."""

    @api.get(
        "/api/models/{name}/versions/{version}/card",
        tags=["models"],
        dependencies=[read],
        response_model=None,
    )
    async def card(
        name: str,
        version: str,
        format: str = Query("json", description="'json', 'md' or 'html'."),
    ) -> dict[str, Any] | Response:
        """Intended use, data, metrics, gates, fairness, signature, importance, environment,
        lineage, approvals and live status of one version."""
        from dockyard.deploy.card_render import FORMATS, render_card

        if format not in ("json", *FORMATS):
            raise InvalidRequestError(
                f"Unknown card format {format!r}.", hint="Use json, md or html."
            )
        found: dict[str, Any] = await asyncio.to_thread(
            server.deployments.card, f"{name}@{version}", server.monitor
        )
        if format == "html":
            return HTMLResponse(render_card(found, "html"))
        if format == "md":
            return PlainTextResponse(render_card(found, "md"), media_type="text/markdown")
        return found
