"""The console's pages (``GET /ui/...``): each reads through the same services as the API
and the CLI (``Registry``, the paged :class:`~dockyard.registry.browse.Catalog`,
``Deployments``, ``Monitor``, ``TokenStore``) and renders a template."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from dockyard.errors import NotFoundError
from dockyard.registry.browse import MODEL_SORTS
from dockyard.server.console import views
from dockyard.server.console.render import Console, html_errors

if TYPE_CHECKING:
    from fastapi.params import Depends

STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
"""The console's own assets under ``/ui/static/`` (no third-party file, no CDN)."""

PAGE_SIZE = 25
MAX_COMPARED = 6


def add_pages(api: FastAPI, console: Console, read: Depends, admin: Depends) -> None:
    server = console.server
    registry, deployments = server.registry, server.deployments
    guard = html_errors(console)

    @api.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/ui", status_code=307)

    @api.get("/ui/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        media_type = STATIC.get(name)
        if media_type is None:
            raise NotFoundError(f"No console asset {name!r}.")
        from importlib.resources import files

        path = files("dockyard.server.console") / "static" / name
        headers = {"cache-control": "max-age=300", "x-content-type-options": "nosniff"}
        return FileResponse(str(path), media_type=media_type, headers=headers)

    @api.get("/ui", include_in_schema=False, dependencies=[read])
    @guard
    async def models(
        request: Request,
        q: str = Query("", max_length=128),
        sort: str = "name",
        desc: bool = False,
        page: int = Query(1, ge=1, le=1_000_000),
    ) -> Response:
        sort = sort if sort in MODEL_SORTS else "name"
        found = await console.call(
            console.catalog.models,
            search=q,
            sort=sort,
            descending=desc,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        paging = views.pager(page, PAGE_SIZE, found.total)
        return console.page(
            request, "models.html", models=found, pager=paging, q=q, sort=sort, desc=desc
        )

    @api.get("/ui/models/{name}", include_in_schema=False, dependencies=[read])
    @guard
    async def model(
        request: Request,
        name: str,
        page: int = Query(1, ge=1, le=1_000_000),
        compare: list[str] = Query([]),  # noqa: B008 (FastAPI's declaration)
    ) -> Response:
        found = await console.call(console.catalog.model, name)
        listed = await console.call(
            console.catalog.versions, name, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        chosen = [
            await console.call(registry.get_version, f"{name}@{v}")
            for v in dict.fromkeys(compare[:MAX_COMPARED])
        ]
        compared = views.metric_table(chosen or listed.rows[:MAX_COMPARED])
        return console.page(
            request,
            "model.html",
            model=found,
            versions=listed,
            pager=views.pager(page, PAGE_SIZE, listed.total),
            compared=compared,
            chosen=[v.version for v in chosen],
        )

    @api.get("/ui/models/{name}/versions/{version}", include_in_schema=False, dependencies=[read])
    @guard
    async def version(request: Request, name: str, version: str) -> Response:
        found = await console.call(registry.get_version, f"{name}@{version}")
        profile = await console.call(registry.get_profile, found.ref)
        events = await console.call(console.catalog.events, model=name, version=found.version)
        endpoints = await console.call(deployments.list)
        return console.page(
            request,
            "version.html",
            v=found,
            histograms=views.histograms(profile),
            events=events,
            endpoints=[d.name for d in endpoints],
            protected=sorted(deployments.protected_aliases),
        )

    @api.get("/ui/deployments", include_in_schema=False, dependencies=[read])
    @guard
    async def deployments_page(request: Request) -> Response:
        found = await console.call(deployments.list)
        rows = []
        for deployment in found:
            rows.append({"d": deployment, **_serving(server, deployment.name)})
        return console.page(request, "deployments.html", rows=rows)

    @api.get("/ui/deployments/{name}", include_in_schema=False, dependencies=[read])
    @guard
    async def deployment(request: Request, name: str) -> Response:
        found = await console.call(deployments.get, name)
        history = await console.call(deployments.history, name)
        rollout = None
        if found.spec.rollout is not None and deployments.rollouts is not None:
            rollout = views.rollout_summary(await console.call(deployments.rollout, name))
        events = await console.call(console.catalog.events, endpoint=name, limit=20)
        return console.page(
            request,
            "deployment.html",
            d=found,
            history=history,
            rollout=rollout,
            events=events,
            **_serving(server, name),
        )

    @api.get("/ui/events", include_in_schema=False, dependencies=[read])
    @guard
    async def events(
        request: Request,
        model: str = Query("", max_length=128),
        endpoint: str = Query("", max_length=128),
        actor: str = Query("", max_length=256),
        action: str = Query("", max_length=64),
        before: int | None = Query(None, ge=1),
    ) -> Response:
        found = await console.call(
            console.catalog.events,
            model=model or None,
            endpoint=endpoint or None,
            actor=actor or None,
            action=action or None,
            before=before,
            limit=PAGE_SIZE * 2,
        )
        filters = {"model": model, "endpoint": endpoint, "actor": actor, "action": action}
        more = found[-1].id if len(found) == PAGE_SIZE * 2 else None
        return console.page(request, "events.html", events=found, filters=filters, more=more)

    async def traffic() -> dict[str, Any]:
        """The live figures, with every endpoint this process serves listed (idle ones at
        zero, so a quiet endpoint is seen to be quiet rather than missing)."""
        figures: dict[str, Any] = await console.call(console.live.figures)
        idle = {"rps": 0.0, "requests": 0, "error_rate": None, "p50_ms": None, "p99_ms": None}
        for name in sorted(server.manager.endpoints):
            figures["endpoints"].setdefault(name, {**idle, "variants": {}})
        figures["endpoints"] = dict(sorted(figures["endpoints"].items()))
        return figures

    @api.get("/ui/live", include_in_schema=False, dependencies=[read])
    @guard
    async def live(request: Request) -> Response:
        return console.page(request, "live.html", live=await traffic(), spark=views.sparkline)

    @api.get("/ui/live.json", include_in_schema=False, dependencies=[read])
    async def live_json() -> Response:
        return JSONResponse(await traffic(), headers={"cache-control": "no-store"})

    @api.get("/ui/monitoring", include_in_schema=False, dependencies=[read])
    @guard
    async def monitoring(request: Request) -> Response:
        found = await console.call(deployments.list)
        alerts = await console.call(server.watcher.alerts.list, None)
        return console.page(
            request, "monitoring_index.html", endpoints=[d.name for d in found], alerts=alerts
        )

    def report(name: str, window: str, every: str) -> Any:
        """The endpoint's last computed report (see :mod:`dockyard.server.reports`): the
        window is parsed and the endpoint looked up here, so a bad one is refused at once."""
        server.monitor.window(window)
        return server.reports.view(name, window, every)

    @api.get("/ui/monitoring/{name}", include_in_schema=False, dependencies=[read])
    @guard
    async def monitoring_endpoint(
        request: Request,
        name: str,
        window: str = Query("1d", max_length=16),
        every: str = Query("hour", pattern="^(hour|day)$"),
    ) -> Response:
        await console.call(deployments.get, name)
        snapshot = report(name, window, every)
        if snapshot.error is not None:
            raise snapshot.error
        data = snapshot.data
        context: dict[str, Any] = {}
        if data is not None:
            rows = views.performance_rows(
                data["performance_over_time"], data["estimated_over_time"]
            )
            history = await console.call(console.catalog.events, action="alert.", limit=200)
            context = {
                "heat": views.heatmap(data["drift_over_time"], data["drift"]),
                "distributions": views.distributions(data["drift"]),
                "performance": rows,
                "chart": views.interval_band(rows),
                "alert_history": [e for e in history if e.details.get("endpoint") == name][:50],
            }
        return console.page(
            request,
            "monitoring.html",
            name=name,
            window=window,
            every=every,
            data=data,
            snapshot=snapshot,
            interval_s=server.reports.period(snapshot),
            **context,
        )

    @api.get("/ui/monitoring/{name}/report.json", include_in_schema=False, dependencies=[read])
    async def monitoring_report_state(
        name: str,
        window: str = Query("1d", max_length=16),
        every: str = Query("hour", pattern="^(hour|day)$"),
    ) -> Response:
        """Whether the page's report is ready (the page polls this while computing)."""
        await console.call(deployments.get, name)
        snapshot = report(name, window, every)
        state = {
            "ready": snapshot.ready,
            "computing": snapshot.computing,
            "computed_at": snapshot.computed_at,
        }
        return JSONResponse(state, headers={"cache-control": "no-store"})

    @api.get("/ui/tokens", include_in_schema=False, dependencies=[admin])
    @guard
    async def tokens(request: Request) -> Response:
        from dockyard.security.scopes import SCOPES
        from dockyard.security.tokens import TokenStore

        found = await console.call(TokenStore(registry.db).list)
        return console.page(request, "tokens.html", tokens=found, scopes=SCOPES, created=None)


def _serving(server: Any, name: str) -> dict[str, Any]:
    """What this process serves for ``name`` now: the live revision, routes and shadows as
    loaded, and a load failure."""
    endpoint = server.manager.endpoints.get(name)
    failure = server.manager.failures.get(name)
    return {
        "live_revision": endpoint.revision if endpoint else None,
        "serving": [(m.ref, weight) for m, weight in endpoint.routes] if endpoint else [],
        "shadowing": [(m.ref, rate) for m, rate in endpoint.shadows] if endpoint else [],
        "failure": failure.reason if failure else None,
    }


__all__ = ["PAGE_SIZE", "STATIC", "add_pages"]
