"""Attack: what the edge told callers who should not know, against a real
``dockyard serve --auth``.

* ``/readyz`` is public and listed endpoint names and load-failure reasons (with storage
  paths). Public readiness now says ready or not; ``?verbose`` says more, to the read scope.
  An endpoint that fails to load does not make the server not-ready (README, Health): it
  answers 503 alone, without the reason, which is for the read scope.
* A predict-scope client filled the metrics' series cap with made-up endpoint names, after
  which real endpoints were counted as ``endpoint="other"``. Unknown names now never create a
  series: they are counted together as ``endpoint="unknown"``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from _edge import ROW, bearer, diabetes_home, make_token
from prometheus_client.parser import text_string_to_metric_families

from _server import ServerProcess
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry


@dataclass
class Disclosing:
    server: ServerProcess
    home: Path
    tokens: dict[str, str]  # scope -> secret


pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)


@pytest.fixture(scope="module")
def disclosing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disclosing]:
    """``diabetes`` serving, and ``broken``, whose stored artifact is corrupted."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    home = tmp_path_factory.mktemp("disclosure") / "home"
    settings = diabetes_home(home)
    data = load_diabetes(as_frame=True)
    with Registry.open(settings) as registry:
        broken = registry.register(
            Ridge(alpha=2.0).fit(data.data, data.target),
            "broken",
            sample=data.data,
            accelerate=False,
        )
        Path(registry.artifacts.path(broken.digest)).write_bytes(b"corrupted")
        spec = DeploymentSpec.parse({"routes": [{"model": "broken@1.0.0"}]})
        DeploymentStore(registry.db).put("broken", spec, actor="tester")
    tokens = {
        scope: make_token(settings, f"disclose-{scope}", scope) for scope in ("read", "predict")
    }
    server = ServerProcess(home, args=("--auth",))
    try:
        server.wait_ready()
        yield Disclosing(server, home, tokens)
    finally:
        server.stop()


@pytest.mark.parametrize("path", ["/readyz", "/v2/health/ready"])
def test_public_readiness_says_ready_and_nothing_else(disclosing: Disclosing, path: str) -> None:
    url = f"{disclosing.server.url}{path}"
    for headers in ({}, bearer(disclosing.tokens["predict"]), {"authorization": "Bearer junk"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 200, response.text  # one failing endpoint: still ready
        assert response.json() == {"ready": True}


@pytest.mark.parametrize("path", ["/readyz", "/v2/health/ready"])
def test_readiness_details_need_the_read_scope(disclosing: Disclosing, path: str) -> None:
    url = f"{disclosing.server.url}{path}?verbose"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert "broken" not in anonymous.text
    predictor = httpx.get(url, headers=bearer(disclosing.tokens["predict"]))
    assert predictor.status_code == 403
    assert "broken" not in predictor.text
    reader = httpx.get(url, headers=bearer(disclosing.tokens["read"]))
    assert reader.status_code == 200
    body = reader.json()
    assert body["ready"] is True
    assert body["endpoints"] == {"broken": "failed", "diabetes": "ready"}
    assert set(body["failures"]) == {"broken"}


def test_a_failed_endpoint_does_not_tell_callers_why(disclosing: Disclosing) -> None:
    response = httpx.post(
        f"{disclosing.server.url}/v1/endpoints/broken/predict",
        json={"instances": [ROW]},
        headers=bearer(disclosing.tokens["predict"]),
    )
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert str(disclosing.home) not in response.text
    assert "artifacts" not in response.text


def _requests_by_endpoint(text: str) -> dict[tuple[str, str], float]:
    """``dockyard_requests_total`` by (endpoint, status)."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dockyard_requests_total":
                key = (sample.labels["endpoint"], sample.labels["status"])
                found[key] = found.get(key, 0.0) + sample.value
    return found


def test_made_up_endpoint_names_never_create_metric_series(disclosing: Disclosing) -> None:
    """More made-up names than the series cap (1,000), then real requests: they keep their
    own label, and no made-up name appears."""
    names = [f"nope-{secrets.token_hex(6)}" for _ in range(1100)]
    v1 = orjson.dumps({"instances": [ROW]})
    v2 = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [*ROW.values()]}]}
    )
    url = disclosing.server.url
    with httpx.Client(base_url=url, headers=bearer(disclosing.tokens["predict"])) as client:
        for i, name in enumerate(names):
            path = f"/v1/endpoints/{name}/predict" if i % 2 else f"/v2/models/{name}/infer"
            response = client.post(path, content=v1 if i % 2 else v2)
            assert response.status_code == 404, response.text
        for _ in range(3):
            assert client.post("/v1/endpoints/diabetes/predict", content=v1).status_code == 200
        assert client.post("/v1/endpoints/diabetes/predict", content=b"{").status_code == 400
    text = httpx.get(f"{url}/metrics", headers=bearer(disclosing.tokens["read"])).text
    counts = _requests_by_endpoint(text)
    assert counts[("diabetes", "200")] == 3
    assert counts[("diabetes", "400")] == 1
    assert counts[("unknown", "404")] == len(names)
    assert not any(name in text for name in names)
    assert "other" not in {endpoint for endpoint, _ in counts}
