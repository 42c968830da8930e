"""Every console route needs the scope its API twin needs, decided from the method and path
before any body is read (``access.RouteScopes``): pages ``read``, actions ``deploy``, tokens
``admin``; only the sign-in page, sign-out, the console's own assets and ``/`` are public.
A new console route that forgets its scope fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.server.access import PUBLIC
from dockyard.server.app import create_app
from dockyard.settings import Settings

EXPECTED = {
    ("GET", "/"): PUBLIC,
    ("GET", "/ui/static/console.css"): PUBLIC,
    ("GET", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-in"): PUBLIC,
    ("POST", "/ui/sign-out"): PUBLIC,
    ("GET", "/ui"): "read",
    ("GET", "/ui/models/m"): "read",
    ("GET", "/ui/models/m/versions/1.0.0"): "read",
    ("GET", "/ui/deployments"): "read",
    ("GET", "/ui/deployments/e"): "read",
    ("GET", "/ui/events"): "read",
    ("GET", "/ui/live"): "read",
    ("GET", "/ui/live.json"): "read",
    ("GET", "/ui/monitoring"): "read",
    ("GET", "/ui/monitoring/e"): "read",
    ("GET", "/ui/monitoring/e/report.json"): "read",
    ("POST", "/ui/models/m/versions/1.0.0/alias"): "deploy",
    ("POST", "/ui/models/m/versions/1.0.0/archive"): "deploy",
    ("POST", "/ui/deploy"): "deploy",
    ("POST", "/ui/deployments/e/rollback"): "deploy",
    ("POST", "/ui/deployments/e/rollout/pause"): "deploy",
    ("GET", "/ui/tokens"): "admin",
    ("POST", "/ui/tokens"): "admin",
    ("POST", "/ui/tokens/t/revoke"): "admin",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> object:
    home: Path = tmp_path_factory.mktemp("scopes")
    return create_app(Settings(home=home, auth=True))


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_each_console_route_declares_the_apis_scope(app: object, method: str, path: str) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    assert app.scopes.needed(scope) == EXPECTED[(method, path)]  # type: ignore[attr-defined]


def test_no_console_route_is_left_out_of_the_table(app: object) -> None:
    declared = {
        (method, route.path)
        for route in app.api.routes  # type: ignore[attr-defined]
        if getattr(route, "path", "").startswith("/ui") or getattr(route, "path", "") == "/"
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD"
    }
    assert len(declared) == len(EXPECTED)
