"""The console's shared machinery: Jinja2 templates (package data), the page context every
template gets (who is signed in, what their scopes allow, the CSRF token), form reading with
the CSRF check, and HTML error pages. Routes live in ``pages.py`` and ``actions.py``."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import ImmutableMultiDict

from dockyard.errors import DockyardError
from dockyard.registry.browse import Catalog
from dockyard.server.access import PRINCIPAL, REQUEST_ID, SESSION_COOKIE, actor
from dockyard.server.console.live import LiveTraffic
from dockyard.server.console.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    check_csrf,
    cookie,
    csrf_token,
    new_nonce,
)
from dockyard.server.http import Reply, error_reply

if TYPE_CHECKING:
    from jinja2 import Environment

    from dockyard.server.services import Server

P = ParamSpec("P")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Pages load scripts and styles from this server only, and no other site may frame them."""

NOTICES = {
    "alias": "The alias was moved.",
    "archived": "The version was archived.",
    "deployed": "The endpoint now serves the new revision.",
    "rolled-back": "The endpoint was rolled back.",
    "pause": "The rollout is paused.",
    "resume": "The rollout resumed.",
    "abort": "The rollout was aborted: the baseline has all traffic.",
    "revoked": "The token was revoked.",
    "signed-out": "You are signed out.",
}
"""The messages a redirect after an action may show (named, so no text comes from a URL)."""

TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 413: "Too large"}
"""Error pages' titles by status (others: "Refused")."""


class Console:
    """The services the console calls, its templates, and the per-request helpers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.catalog = Catalog(server.registry.db)
        self.live = LiveTraffic(lambda: server.metrics.render()[0].decode())

    @functools.cached_property
    def env(self) -> Environment:
        """The templates, loaded for the first page: a server nobody browses never imports
        jinja2 (~1.7 MiB of the serving process)."""
        from jinja2 import Environment, PackageLoader, select_autoescape

        env = Environment(
            loader=PackageLoader("dockyard.server.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(when=_when, num=_num, pct=_pct, clock=_clock, iso=_iso)
        return env

    # --- who is asking ---------------------------------------------------------------------

    def can(self, request: Request, scope: str) -> bool:
        """Whether the request's token allows ``scope`` (everything with auth off)."""
        principal = request.scope.get(PRINCIPAL)
        if not self.server.settings.auth:
            return True
        return principal is not None and bool(principal.allows(scope))

    def actor(self, request: Request) -> str:
        return actor(request.scope, self.server.registry.actor)

    def session(self, request: Request) -> str | None:
        return request.cookies.get(SESSION_COOKIE) if self.server.settings.auth else None

    def secure(self, request: Request) -> bool:
        """Whether cookies get ``Secure``: the server speaks HTTPS (``Settings.tls``), the
        request came over TLS, or the settings say a TLS proxy is in front
        (``DOCKYARD_CONSOLE_SECURE_COOKIES``)."""
        settings = self.server.settings
        return settings.tls or settings.console_secure_cookies or request.url.scheme == "https"

    # --- pages -----------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render ``template`` with the common context; give the browser a CSRF nonce if it
        has none yet."""
        nonce = request.cookies.get(CSRF_COOKIE) or ""
        fresh = not nonce
        if fresh:
            nonce = new_nonce()
        principal = request.scope.get(PRINCIPAL)
        body = self.env.get_template(template).render(
            request=request,
            path=request.url.path,
            auth=self.server.settings.auth,
            who=principal.name if principal is not None else None,
            can={s: self.can(request, s) for s in ("read", "deploy", "admin")},
            csrf=csrf_token(nonce, self.session(request)),
            csrf_field=CSRF_FIELD,
            notice=NOTICES.get(request.query_params.get("done", "")),
            **context,
        )
        response = HTMLResponse(body, status_code=status)
        response.headers.update(
            {
                "content-security-policy": CSP,
                "cache-control": "no-store",
                "referrer-policy": "same-origin",
                "x-content-type-options": "nosniff",
            }
        )
        if fresh:
            secure = self.secure(request)
            response.headers.append(
                "set-cookie", cookie(CSRF_COOKIE, nonce, secure=secure, max_age=None)
            )
        return response

    def error(self, request: Request, exc: DockyardError) -> HTMLResponse:
        """A refused request as a page: the message, the hint, the same status as the API."""
        found = request.scope.get(REQUEST_ID)
        request_id = str(found) if found else uuid.uuid4().hex
        return self.error_page(request, error_reply(exc, request_id))

    def error_page(self, request: Request, reply: Reply) -> HTMLResponse:
        """The API's error ``reply`` (the one JSON shape) as a page in the console's layout:
        the same status, the same headers (request id, ``WWW-Authenticate``,
        ``Retry-After``), the message and the request id shown."""
        error = orjson.loads(reply.body)
        response = self.page(
            request,
            "error.html",
            status=reply.status,
            error=error,
            title=TITLES.get(reply.status, "Refused"),
            status_code=reply.status,
            request_id=error.get("request_id"),
        )
        for key, value in reply.headers:
            if key != b"content-type":
                response.headers[key.decode()] = value.decode()
        return response

    async def form(self, request: Request, *, session: bool = True) -> ImmutableMultiDict[str, str]:
        """The posted form (URL-encoded; the body was bounded before it was read), refused
        (403) without this browser's CSRF token or from another origin. ``session=False``:
        the sign-in form, posted before there is a session."""
        raw = (await request.body()).decode("utf-8", "replace")
        fields = ImmutableMultiDict(parse_qsl(raw, keep_blank_values=True, max_num_fields=64))
        check_csrf(
            fields,
            request.cookies,
            self.session(request) if session else None,
            origin=request.headers.get("origin"),
            host=request.headers.get("host"),
        )
        return fields

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A service method, on a worker thread (they do database and file I/O)."""
        return await asyncio.to_thread(fn, *args, **kwargs)


def html_errors(
    console: Console,
) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Answer a :class:`DockyardError` from a console handler with an HTML page (the API's
    JSON shape stays for the API)."""

    def wrap(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        @functools.wraps(handler)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return await handler(*args, **kwargs)
            except DockyardError as exc:
                request = kwargs.get("request")
                assert isinstance(request, Request)
                return console.error(request, exc)

        return guarded

    return wrap


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return str(moment.strftime("%Y-%m-%d %H:%M UTC"))


def _clock(value: float | None) -> str:
    """A Unix time as the time of day, UTC (the monitoring page's "as of")."""
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%H:%M:%S UTC")


def _iso(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"


__all__ = ["CSP", "NOTICES", "Console", "html_errors"]
