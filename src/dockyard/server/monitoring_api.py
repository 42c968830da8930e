"""Monitoring over HTTP: feedback on the inference plane, drift/performance/alerts/report
under ``/api/monitoring`` for the dashboard and scripts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from dockyard.server.http import json_body, read_body
from dockyard.windows import window_before

if TYPE_CHECKING:
    from dockyard.server.services import Server

WINDOW = Query("1h", description="'15m', '1h', '7d' (back from now), 'last:1000' or 'all'.")


class FeedbackItem(BaseModel):
    """A label for one logged prediction (``label`` may be a list: one per row)."""

    request_id: str = Field(description="The request id the prediction answered with.")
    label: Any = Field(description="The true class or value (or one per row of the request).")
    row: int | None = Field(None, ge=0, description="Which row of a multi-row request.")


def add_monitoring_routes(api: FastAPI, server: Server, read: Depends, predict: Depends) -> None:
    """Declare the feedback route and the ``/api/monitoring`` routes on ``api``."""
    monitor = server.monitor
    statistics = server.watcher.statistics  # the monitor process, or these threads

    async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    @api.post(
        "/v1/endpoints/{name}/feedback",
        tags=["monitoring"],
        dependencies=[predict],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                FeedbackItem.model_json_schema(),
                                {"type": "array", "items": FeedbackItem.model_json_schema()},
                            ]
                        }
                    }
                },
            }
        },
    )
    async def feedback(name: str, request: Request) -> dict[str, Any]:
        """Labels for earlier predictions; unknown request ids are listed back, not stored."""
        from dockyard.monitoring.feedback import parse_feedback, record_feedback

        raw = await read_body(request.receive, dict(request.headers), server.max_body_bytes)
        payload = json_body(raw, hint='Send {"request_id": "...", "label": ...} or a list of them.')
        labels = parse_feedback(payload)
        await blocking(monitor.check_endpoint, name)
        await blocking(server.prediction_log.flush)  # labels may follow their predictions closely
        result = await blocking(record_feedback, monitor.store, name, labels)
        return dict(result.to_dict())

    @api.get("/api/monitoring/{name}/drift", tags=["monitoring"], dependencies=[read])
    async def drift(
        name: str,
        window: str = WINDOW,
        baseline: str | None = Query(
            None, description="Compare with this earlier window instead of the reference."
        ),
        version: str | None = None,
        every: str | None = Query(
            None, description="Also the drift share per tumbling 'hour' or 'day'."
        ),
    ) -> dict[str, Any]:
        """Per-feature and prediction drift of the window, with the whole-dataset verdict;
        computed where the console's reports are (the monitor process, off the serving GIL)."""
        current = monitor.window(window)  # a bad window is the caller's 400 before any work
        earlier = None if baseline is None else window_before(monitor.window(baseline), current)
        return await statistics.drift(name, current, earlier, version, every)

    @api.get("/api/monitoring/{name}/performance", tags=["monitoring"], dependencies=[read])
    async def performance(
        name: str,
        window: str = WINDOW,
        every: str | None = Query(None, description="'hour' or 'day' for a series."),
        by: str | None = Query(None, description="Per group of this input column, and the gap."),
    ) -> dict[str, Any]:
        """Performance from feedback per version (and estimated accuracy without labels);
        computed in the monitor process, as drift."""
        return await statistics.performance(name, monitor.window(window), every, by)

    @api.get("/api/monitoring/{name}/report", tags=["monitoring"], dependencies=[read])
    async def report(name: str, window: str = Query("1d"), every: str = "hour") -> Response:
        """The self-contained HTML report (the same as ``dockyard monitor report``), computed
        where the console's reports are (the monitor process, off the serving GIL)."""
        from dockyard.monitoring.report import render_report

        monitor.window(window)  # a bad window is the caller's 400 before any work
        data = await statistics.report(name, window, every)
        return HTMLResponse(await blocking(render_report, data))

    @api.get("/api/monitoring/alerts", tags=["monitoring"], dependencies=[read])
    async def alerts(endpoint: str | None = None) -> list[dict[str, Any]]:
        """Every alert rule's state (ok or firing, since when, last value)."""
        states: list[dict[str, Any]] = await blocking(server.watcher.alerts.list, endpoint)
        return states

    @api.get("/api/monitoring/log", tags=["monitoring"], dependencies=[read])
    async def log_status() -> dict[str, Any]:
        """This server process's prediction log: rows written, dropped, waiting."""
        log = server.prediction_log
        return {
            "url": monitor.store.url,
            "written": log.written,
            "dropped": log.dropped,
            "buffered_rows": log.buffered,
            "write_failures": log.failures,
            "last_error": log.last_error,
        }
