"""A crash in a control-plane handler, through the whole ASGI app in process.

FastAPI's error middleware answers through our handler and then re-raises, so uvicorn used to
log the crash a second time and drop the keep-alive connection. The app now answers a 500
in the one error shape, logs it once with the request id of the reply, and lets nothing
escape to the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.server.app import DockyardApp, create_app
from dockyard.settings import Settings


class HandlerBug(Exception):
    """What the route below raises: nothing Dockyard raises on purpose."""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[DockyardApp]:
    app = create_app(Settings(home=tmp_path / "home", user="tester"))

    async def broken() -> None:
        raise HandlerBug("a handler's own bug")

    app.api.add_api_route("/api/broken", broken, methods=["GET"])
    try:
        yield app
    finally:
        app.server.executor.shutdown()
        app.server.registry.close()


def test_a_handler_crash_is_a_logged_500_that_escapes_no_further(
    app: DockyardApp, caplog: pytest.LogCaptureFixture
) -> None:
    async def call() -> list[httpx.Response]:
        # raise_app_exceptions: an exception leaving the app fails the request here
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.get("/api/broken"),
                await client.get("/api/broken", headers={"x-request-id": "mine-42"}),
            ]

    with caplog.at_level(logging.ERROR, logger="dockyard.server"):
        first, second = asyncio.run(call())
    ids = []
    for response in (first, second):
        assert response.status_code == 500
        body = response.json()
        assert body["code"] == "internal"
        assert "a handler's own bug" not in response.text
        ids.append(body["request_id"])
    assert ids[1] == "mine-42"
    logged = [r for r in caplog.records if r.name == "dockyard.server"]
    assert [getattr(r, "request_id", None) for r in logged] == ids
    assert all(r.exc_info and r.exc_info[0] is HandlerBug for r in logged)
