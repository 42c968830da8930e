"""Who may call which route, decided at the HTTP edge before the body is read.

Every FastAPI route declares the scope it needs once, as a dependency on :class:`Needs`
(``dependencies=[Depends(Needs("deploy", auth))]``); a route that declares nothing is public
(health). :class:`RouteScopes` reads those declarations from the app, and the ASGI layer
(:class:`~dockyard.server.app.DockyardApp`) looks up each request's scope from its method
and path alone, checks the token, and only then reads the body (within the one size limit)
and hands the request to FastAPI. So an anonymous caller is refused (401) before a byte of
its body is read or parsed, whatever the body holds, and learns nothing from validation
errors. A path no route matches needs a valid token of any scope (then it is a 404), so an
anonymous caller cannot map which paths exist either.

The verified :class:`~dockyard.security.tokens.Principal` goes into the ASGI scope under
:data:`PRINCIPAL` (``None`` with auth off); handlers read it from there, never verify
again, and name it in the audit trail (:func:`actor`). As a dependency, :class:`Needs`
checks only when the ASGI layer did not (the FastAPI app served on its own), so a route is
never left open by a missing layer.

The web console (``/ui``, :mod:`dockyard.server.console`) declares its routes' scopes the
same way, so the same guard holds there before any form is read. Its browser carries the
token in the :data:`SESSION_COOKIE` instead of a header: :func:`credential` reads it for
``/ui`` paths only, and :func:`console_refusal` sends a browser without a valid session to
the sign-in page instead of answering 401 JSON.
"""

# No ``from __future__ import annotations``: FastAPI reads ``Needs.__call__``'s annotations
# at runtime, and a callable instance has no module globals to resolve a string against.

import asyncio
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.routing import BaseRoute, Match

from dockyard.errors import AuthenticationError, PermissionDeniedError

if TYPE_CHECKING:
    from dockyard.registry import Registry
    from dockyard.security.tokens import Principal

PRINCIPAL: Final = "dockyard.principal"
"""ASGI scope key: the verified token's principal, ``None`` with auth off."""

REQUEST_ID: Final = "dockyard.request_id"
"""ASGI scope key: the request id every reply and log line of this request carries."""

PUBLIC: Final = "public"
"""A route that declares no scope: no token needed (health)."""

ANY_SCOPE: Final = "any"
"""What a path no route matches needs: a valid token, whatever its scopes."""

UI_PREFIX: Final = "/ui"
"""Where the web console lives; only there does the session cookie stand for a token."""

SESSION_COOKIE: Final = "dockyard_session"
"""The console's session cookie: the signed-in token (HttpOnly, SameSite=Strict)."""


class Authenticator:
    """Bearer tokens with scopes; every route but health asks for one when auth is on."""

    def __init__(self, registry: "Registry", *, enabled: bool) -> None:
        self.enabled = enabled
        self.cache: Any = None
        if enabled:
            from dockyard.security.tokens import TokenCache, TokenStore

            self.cache = TokenCache(TokenStore(registry.db))

    async def check(self, authorization: str | None, scope: str) -> "Principal | None":
        """The principal of a valid token allowing ``scope`` (:data:`ANY_SCOPE`: any valid
        token); ``None`` with auth off. Raise 401 without a valid token, 403 without the
        scope. A cached answer costs a hash and a dict lookup; a miss asks the database on a
        worker thread."""
        if not self.enabled:
            return None
        from dockyard.security.scopes import allows

        create = "dockyard tokens create NAME --scope " + ("read" if scope == ANY_SCOPE else scope)
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise AuthenticationError(
                "This server requires a bearer token.",
                hint=f"Send 'Authorization: Bearer <token>'; create one with: {create}",
            )
        secret = secret.strip()
        known, principal = self.cache.peek(secret)
        if not known:
            principal = await asyncio.to_thread(self.cache.verify, secret)
        if principal is None:
            raise AuthenticationError(
                "The bearer token is unknown, revoked or expired.",
                hint=f"Create a new one with: {create}",
            )
        if scope != ANY_SCOPE and not allows(principal.scopes, scope):
            raise PermissionDeniedError(
                f"Token {principal.name!r} lacks the {scope!r} scope for this route.",
                hint=f"Its scopes: {', '.join(sorted(principal.scopes)) or 'none'}.",
            )
        return principal  # type: ignore[no-any-return]


class Needs:
    """The scope a route needs, declared once as its dependency (see the module docstring)."""

    def __init__(self, scope: str, auth: Authenticator) -> None:
        self.scope = scope
        self.auth = auth

    async def __call__(self, request: Request) -> None:
        if PRINCIPAL not in request.scope:  # served without the ASGI layer: check here
            authorization = request.headers.get("authorization") or credential(request.scope)
            request.scope[PRINCIPAL] = await self.auth.check(authorization, self.scope)


def _under_ui(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def console_page(path: str) -> bool:
    """Whether ``path`` is a console page, whose errors answer as a page in the console's
    layout: under ``/ui``, but not its assets nor the JSON its scripts poll."""
    asset = path.startswith(UI_PREFIX + "/static/") or path.endswith(".json")
    return _under_ui(path) and not asset


def credential(scope: MutableMapping[str, Any]) -> str | None:
    """The console session's token as an ``Authorization`` value, for a ``/ui`` path that
    carries the :data:`SESSION_COOKIE`; ``None`` elsewhere (the API takes headers only, so a
    cookie can never authorise an API call made by another site's page)."""
    if not _under_ui(scope.get("path", "")):
        return None
    from http.cookies import CookieError, SimpleCookie

    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except CookieError:
                return None
            morsel = jar.get(SESSION_COOKIE)
            if morsel is not None and morsel.value:
                return f"Bearer {morsel.value}"
    return None


def console_refusal(scope: MutableMapping[str, Any], exc: BaseException) -> str | None:
    """Where to send a browser refused a console page: the sign-in page (with the page to
    come back to) for a ``GET`` under ``/ui`` without a valid session; ``None`` otherwise
    (the one JSON error shape answers)."""
    if not isinstance(exc, AuthenticationError) or scope.get("method") != "GET":
        return None
    path = scope.get("path", "")
    if not _under_ui(path) or path.startswith(UI_PREFIX + "/sign-in"):
        return None
    from urllib.parse import quote

    return f"{UI_PREFIX}/sign-in?next={quote(path, safe='/')}"


class RouteScopes:
    """Each route's declared scope, matched against a request the way the router will."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.routes = [(route, _declared(route)) for route in routes]

    def needed(self, scope: MutableMapping[str, Any]) -> str:
        """The scope the request's route needs: its declaration, :data:`PUBLIC`, or
        :data:`ANY_SCOPE` for a path no route matches. A path whose route takes another
        method (a 405 to come) needs that route's scope."""
        partial = ANY_SCOPE
        found_partial = False
        for route, needed in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return needed
            if match is Match.PARTIAL and not found_partial:
                partial, found_partial = needed, True
        return partial


def _declared(route: BaseRoute) -> str:
    for dependency in getattr(route, "dependencies", ()):
        if isinstance(dependency.dependency, Needs):
            return dependency.dependency.scope
    return PUBLIC


def actor(scope: MutableMapping[str, Any], default: str) -> str:
    """Who the audit trail names for a change made through this request: the token, as
    ``token:NAME#ID``, or ``default`` (the server's user) with auth off."""
    principal = scope.get(PRINCIPAL)
    if principal is None:
        return default
    return f"token:{principal.name}#{principal.id}"


__all__ = [
    "ANY_SCOPE",
    "PRINCIPAL",
    "PUBLIC",
    "REQUEST_ID",
    "SESSION_COOKIE",
    "UI_PREFIX",
    "Authenticator",
    "Needs",
    "RouteScopes",
    "actor",
    "console_page",
    "console_refusal",
    "credential",
]
