"""The queue bound on a real server: 64 concurrent clients of 100 rows are all answered under
the default settings, and a deployment driven past what it can clear in
``max_queue_wait_ms`` answers the excess with clean 503s carrying ``Retry-After``, nothing
else (no 500, no dropped connection)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from _server import ServerProcess
from dockyard.registry import Registry
from dockyard.settings import Settings

if TYPE_CHECKING:
    from conftest import Zoo

CLIENTS = 64
ROWS = 100
ROUNDS = 4


def _deploy(zoo: Zoo, home: Path) -> None:
    """``cancer`` (ONNX) with the default batching; ``mixed`` (scikit-learn, milliseconds a
    call) allowed only 5 ms of queue."""
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.deploy.store import DeploymentStore

    zoo.deploy(home, {"cancer": "cancer@1.0.0"})
    with Registry.open(Settings(home=home, user="tester")) as registry:
        spec = {"routes": [{"model": "mixed@1.0.0"}], "batching": {"max_queue_wait_ms": 5}}
        DeploymentStore(registry.db).put("mixed", DeploymentSpec.parse(spec), actor="tester")


def _hammer(url: str, body: bytes) -> list[httpx.Response]:
    """``CLIENTS`` concurrent clients, each sending ``ROUNDS`` requests back to back."""

    async def client(http: httpx.AsyncClient) -> list[httpx.Response]:
        return [
            await http.post(url, content=body, headers={"content-type": "application/json"})
            for _ in range(ROUNDS)
        ]

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            answers = await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        return [response for answer in answers for response in answer]

    return asyncio.run(main())


def _records(frame: Any) -> bytes:
    return json.dumps({"instances": json.loads(frame.to_json(orient="records"))}).encode()


def test_many_row_requests_are_all_answered_and_overload_is_a_clean_503(
    zoo: Zoo, tmp_path: Path, start_server: Any
) -> None:
    home = tmp_path / "home"
    _deploy(zoo, home)
    server: ServerProcess = start_server(home)
    server.wait_ready()

    cancer = _records(zoo.samples["cancer"].head(ROWS))
    answered = _hammer(f"{server.url}/v1/endpoints/cancer/predict", cancer)

    assert len(answered) == CLIENTS * ROUNDS
    assert {response.status_code for response in answered} == {200}, [
        r.text for r in answered if r.status_code != 200
    ][:3]
    assert all(len(response.json()["predictions"]) == ROWS for response in answered)

    mixed = _records(zoo.samples["mixed"].head(ROWS))
    overloaded = _hammer(f"{server.url}/v1/endpoints/mixed/predict", mixed)

    statuses = [response.status_code for response in overloaded]
    assert set(statuses) == {200, 503}
    for response in overloaded:
        if response.status_code == 200:
            assert len(response.json()["predictions"]) == ROWS
            continue
        body = response.json()
        assert set(body) == {"error", "code", "details", "request_id"}
        assert body["code"] == "queue_full"
        assert body["details"]["estimated_wait_ms"] > body["details"]["max_queue_wait_ms"] == 5
        assert int(response.headers["retry-after"]) >= 1
    # the endpoint is whole afterwards: one more request is answered
    after = httpx.post(f"{server.url}/v1/endpoints/mixed/predict", content=mixed)
    assert after.status_code == 200
