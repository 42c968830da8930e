"""``/docs`` and ``/redoc`` render in a real browser with no network but the server's own
(issue 13, item 19): Swagger UI and ReDoc's assets come from an installed package, served
under ``/docs/static/`` behind the read scope, never from a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.server.docs import ASSETS
from dockyard.settings import Settings

CHROMIUM = "/usr/bin/chromium"


def _render(url: str, ready: str, headers: dict[str, str]) -> tuple[list[str], list[str], Any]:
    """Open ``url`` with every request off the server's origin aborted; wait for ``ready``
    (a CSS selector); return the blocked URLs, the page's errors and ``ready``'s texts."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    origin = url.split("/", 3)[:3]
    blocked: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(extra_http_headers=headers)
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def route(r: Any) -> None:
                if r.request.url.split("/", 3)[:3] == origin:
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            page.wait_for_selector(ready, timeout=30_000)
            texts = page.locator(ready).all_text_contents()
        finally:
            browser.close()
    return blocked, errors, texts


def _read_token(home: Path) -> str:
    db = Database(Settings(home=home).resolved_database_url)
    try:
        return TokenStore(db).create("docs-reader", ["read"], actor="tester")[1]
    finally:
        db.dispose()


def test_docs_render_offline_behind_the_read_scope(tmp_path: Path, start_server: Any) -> None:
    server = start_server(tmp_path, "--auth")
    server.wait_ready()
    auth = {"authorization": f"Bearer {_read_token(tmp_path)}"}
    for name in ASSETS:  # the assets need the read scope, like the pages
        assert httpx.get(f"{server.url}/docs/static/{name}").status_code == 401
        assert httpx.get(f"{server.url}/docs/static/{name}", headers=auth).status_code == 200
    missing = httpx.get(f"{server.url}/docs/static/..%2Fcore.py", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"

    blocked, errors, operations = _render(f"{server.url}/docs", ".opblock-summary-path", auth)
    assert blocked == []
    assert errors == []
    assert any("/v1/endpoints/{name}/predict" in path for path in operations)
    assert any("/api/deployments" in path for path in operations)

    blocked, errors, operations = _render(f"{server.url}/redoc", "[data-section-id]", auth)
    assert blocked == []
    assert errors == []
    assert operations  # ReDoc drew the schema's sections
