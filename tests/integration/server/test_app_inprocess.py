"""The whole app in process: ``create_app(settings)`` driven through ``httpx.ASGITransport``,
its lifespan run as a server would run it, over a real registry folder and real models.

The routing, error and auth logic of the ASGI layer and the FastAPI app, without a
subprocess or a socket: which paths take the fast lane and which fall through to FastAPI,
the one error shape on every kind of failure, request ids, the body limit, the split and
sticky routing of a two-route deployment, and who may call what with auth on. The same
behaviour through a real ``dockyard serve`` process is in ``tests/e2e`` and
``tests/security``.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest

from dockyard.registry import Registry
from dockyard.security.tokens import TokenStore
from dockyard.server.app import create_app
from dockyard.settings import Settings

FEATURES = ("a", "b", "c")
ROW = {"a": 0.5, "b": -1.0, "c": 2.0}
V2_BODY = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [ROW[name]]} for name in FEATURES
    ]
}
SPLIT = {"routes": [{"model": "clf@1.0.0", "weight": 50}, {"model": "clf@1.0.1", "weight": 50}]}
MAX_BODY_BYTES = 64 * 1024


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (startup, then shutdown) as an ASGI server does."""
    sent, to_app = anyio.create_memory_object_stream[dict[str, Any]](2)
    from_app, received = anyio.create_memory_object_stream[dict[str, Any]](2)
    async with sent, to_app, from_app, received, anyio.create_task_group() as group:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        group.start_soon(app, scope, to_app.receive, from_app.send)
        await sent.send({"type": "lifespan.startup"})
        started = await received.receive()
        assert started["type"] == "lifespan.startup.complete", started
        try:
            yield
        finally:
            await sent.send({"type": "lifespan.shutdown"})
            stopped = await received.receive()
            assert stopped["type"] == "lifespan.shutdown.complete", stopped


@dataclass
class InProcess:
    """A running app and a client for it; calls block until the app answers."""

    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)


@contextmanager
def running(settings: Settings) -> Iterator[InProcess]:
    """``create_app(settings)`` started on an event loop of its own, stopped on exit."""

    async def build() -> Any:
        return create_app(settings)

    with anyio.from_thread.start_blocking_portal() as portal:
        app = portal.call(build)
        with portal.wrap_async_context_manager(_lifespan(app)):
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://dockyard.test")
            try:
                yield InProcess(portal, client)
            finally:
                portal.call(client.aclose)


def deploy(
    app: InProcess, name: str, spec: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Deploy through the app's own API and poll until the endpoint answers ready."""
    answer = app.put(f"/api/deployments/{name}", json={"spec": spec}, headers=headers)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 60
    while app.get(f"/v2/models/{name}/ready", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, f"{name} not ready after 60 s"
        time.sleep(0.02)


def assert_error(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": message, "code": code, "details": ...}``, with the
    request id where the reply names one."""
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) - {"request_id"} == {"error", "code", "details"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions of a logistic regression over three float columns, and a trusted model
    whose ``predict`` always raises (nothing deployed)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    class Crashing:  # defined here: pickled by value
        def predict(self, X: Any) -> Any:
            raise RuntimeError("the model's own bug")

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=list(FEATURES))
    y = (X["a"] + X["b"] > 0).astype(int)
    home = tmp_path_factory.mktemp("inprocess") / "registry"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        for c in (0.1, 1.0):
            registry.register(
                LogisticRegression(C=c).fit(X, y), "clf", sample=X, y=y, accelerate=False
            )
        registry.register(Crashing(), "crash", trusted=True)
    return home


@pytest.fixture(scope="module")
def app(registry_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The app with auth off: ``clf`` split 50/50 over its two versions, ``one`` on 1.0.0
    alone, ``crash`` on the failing model."""
    home = tmp_path_factory.mktemp("inprocess-open") / "home"
    shutil.copytree(registry_home, home)
    settings = Settings(
        home=home, user="tester", max_body_bytes=MAX_BODY_BYTES, poll_interval_s=0.05
    )
    with running(settings) as app:
        deploy(app, "clf", SPLIT)
        deploy(app, "one", {"routes": [{"model": "clf@1.0.0"}]})
        deploy(app, "crash", {"routes": [{"model": "crash@1.0.0"}]})
        yield app


# --- routing ---------------------------------------------------------------------------------


def test_the_fast_lane_answers_v1_and_v2_for_a_deployed_endpoint(app: InProcess) -> None:
    v1 = app.post("/v1/endpoints/one/predict", json={"instances": [ROW, ROW]})
    assert v1.status_code == 200, v1.text
    assert v1.json()["version"] == "1.0.0"
    assert len(v1.json()["predictions"]) == 2

    v2 = app.post("/v2/models/one/infer", json=V2_BODY)
    assert v2.status_code == 200, v2.text
    assert (v2.json()["model_name"], v2.json()["model_version"]) == ("one", "1.0.0")
    assert v2.json()["outputs"][0]["data"] == v1.json()["predictions"][:1]


def test_v2_infer_by_version_reaches_that_route_of_a_split(app: InProcess) -> None:
    for version in ("1.0.0", "1.0.1"):
        for _ in range(5):
            answer = app.post(f"/v2/models/clf/versions/{version}/infer", json=V2_BODY)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == version


def test_a_version_the_endpoint_does_not_route_to_is_a_404(app: InProcess) -> None:
    assert_error(app.post("/v2/models/one/versions/1.0.1/infer", json=V2_BODY), 404)
    assert_error(app.post("/v2/models/one/versions/9.9.9/infer", json=V2_BODY), 404)


def test_an_unknown_endpoint_is_a_404_naming_the_deployed_ones(app: InProcess) -> None:
    body = assert_error(
        app.post("/v1/endpoints/nope/predict", json={"instances": [ROW]}), 404, "not_found"
    )
    assert "nope" in body["error"]
    assert_error(app.post("/v2/models/nope/infer", json=V2_BODY), 404, "not_found")


def test_before_the_first_load_every_endpoint_is_a_503_to_retry(
    registry_home: Path, tmp_path: Path
) -> None:
    """Until the startup pass has read what is deployed, no name can be called unknown: a
    request that reaches the app then (a gRPC or HTTP connection a worker took early) hears
    "retry", not "no such endpoint"."""
    import asyncio

    home = tmp_path / "home"
    shutil.copytree(registry_home, home)

    async def ask() -> list[httpx.Response]:
        app = create_app(Settings(home=home, user="tester"))  # its lifespan not run yet
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return [
                    await client.post("/v1/endpoints/one/predict", json={"instances": [ROW]}),
                    await client.post("/v2/models/one/infer", json=V2_BODY),
                ]
        finally:
            app.server.registry.close()

    for answer in asyncio.run(ask()):
        body = assert_error(answer, 503, "unavailable")
        assert "still loading" in body["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/endpoints/one/extra/predict",
        "/v1/endpoints//predict",
        "/v2/models/one/versions/1.0.0/extra/infer",
        "/v2/models//infer",
        "/v2/models/one/versions/1.0.0/infer/more",
    ],
)
def test_paths_the_fast_lane_does_not_take_fall_through_to_a_404(app: InProcess, path: str) -> None:
    assert_error(app.post(path, json={"instances": [ROW]}), 404, "not_found")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_on_a_hot_path_is_a_405(app: InProcess, method: str) -> None:
    assert_error(app.request(method, "/v1/endpoints/one/predict"), 405, "method_not_allowed")
    assert_error(app.request(method, "/v2/models/one/infer"), 405, "method_not_allowed")


def test_a_sticky_key_keeps_its_route_and_keys_spread_over_both(app: InProcess) -> None:
    seen: dict[str, set[str]] = {}
    for caller in range(40):
        for _ in range(3):
            answer = app.post(
                "/v1/endpoints/clf/predict",
                json={"instances": [ROW]},
                headers={"x-dockyard-key": f"caller-{caller}"},
            )
            assert answer.status_code == 200, answer.text
            seen.setdefault(f"caller-{caller}", set()).add(answer.json()["version"])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert set().union(*seen.values()) == {"1.0.0", "1.0.1"}  # 40 keys, 50/50: both drawn

    # the same key through v2 is routed to the same version
    answer = app.post("/v2/models/clf/infer", json=V2_BODY, headers={"x-dockyard-key": "caller-7"})
    assert {answer.json()["model_version"]} == seen["caller-7"]


def test_without_a_key_requests_are_drawn_over_both_routes(app: InProcess) -> None:
    versions = set()
    deadline = time.monotonic() + 30
    while versions != {"1.0.0", "1.0.1"}:
        assert time.monotonic() < deadline, versions
        versions.add(
            app.post("/v1/endpoints/clf/predict", json={"instances": [ROW]}).json()["version"]
        )


def test_the_control_plane_lists_what_the_app_serves(app: InProcess) -> None:
    deployments = {d["name"] for d in app.get("/api/deployments").json()}
    assert {"clf", "one", "crash"} <= deployments
    assert {m["name"] for m in app.get("/api/models").json()} == {"clf", "crash"}
    assert app.get("/healthz").status_code == 200
    assert app.get("/readyz").json() == {"ready": True}
    assert app.get("/openapi.json").json()["paths"]


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"instances": "rows"}',
        b'{"instances": [{"a": "x", "b": 1, "c": 2}]}',
        # no NaN or infinity reaches the model: its numeric path takes a v1 body's numbers
        # as finite (prepare(finite=True)), since the JSON parser refuses these
        b'{"instances": [[NaN, 1, 2]]}',
        b'{"instances": [{"a": Infinity, "b": 1, "c": 2}]}',
        b'{"inputs": {"a": [1e400], "b": [1], "c": [2]}}',
        b'{"instances": [[1, -1e309, 2]]}',
    ],
)
def test_a_bad_v1_body_is_a_400_in_the_one_shape(app: InProcess, body: bytes) -> None:
    answer = app.post(
        "/v1/endpoints/one/predict", content=body, headers={"content-type": "application/json"}
    )
    assert_error(answer, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"inputs": []}',
        b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0]}]}',
        b'{"inputs": [{"name": "a", "shape": [1], "datatype": "NOPE", "data": [1.0]}]}',
        # no values for a shape of many: the bulk float path once looked at a first value
        b'{"inputs": [{"name": "a", "shape": [64], "datatype": "FP64", "data": []}]}',
    ],
)
def test_a_bad_v2_body_is_a_400_in_the_one_shape(app: InProcess, body: bytes) -> None:
    answer = app.post(
        "/v2/models/one/infer", content=body, headers={"content-type": "application/json"}
    )
    assert_error(answer, 400)


def test_a_bad_control_plane_request_is_a_400_in_the_one_shape(app: InProcess) -> None:
    assert_error(app.put("/api/deployments/x", json={"nothing": 1}), 400)
    assert_error(app.put("/api/deployments/x", json={"model": "clf@1.0.0", "spec": SPLIT}), 400)
    assert_error(app.put("/api/deployments/x", json={"model": "clf@9.9.9"}), 404)
    assert_error(app.get("/api/models/none-such"), 404)
    assert_error(app.get("/api/nothing-here"), 404, "not_found")


def test_a_crash_is_a_500_with_the_request_id_and_no_traceback(app: InProcess) -> None:
    answer = app.post(
        "/v1/endpoints/crash/predict",
        json={"instances": [ROW]},
        headers={"x-request-id": "crash-1"},
    )
    body = assert_error(answer, 500)
    assert "crash-1" in body["error"]
    assert "Traceback" not in answer.text
    assert "the model's own bug" not in answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/endpoints/one/predict"),
        ("POST", "/v2/models/one/infer"),
        ("PUT", "/api/deployments/one"),
    ],
)
def test_a_body_over_the_limit_is_a_413_on_either_lane(
    app: InProcess, method: str, path: str
) -> None:
    big = b"[" + b"0," * MAX_BODY_BYTES + b"0]"
    assert_error(app.request(method, path, content=big), 413)
    # declared too large: refused on the header alone
    declared = {"content-length": str(MAX_BODY_BYTES + 1)}
    assert_error(
        app.request(method, path, content=b"x" * (MAX_BODY_BYTES + 1), headers=declared), 413
    )


def test_the_request_id_is_the_callers_or_a_fresh_one(app: InProcess) -> None:
    given = app.post(
        "/v1/endpoints/one/predict", json={"instances": [ROW]}, headers={"x-request-id": "mine-1"}
    )
    assert given.headers["x-request-id"] == "mine-1"
    first = app.post("/v1/endpoints/one/predict", json={"instances": [ROW]}).headers["x-request-id"]
    second = app.post("/v1/endpoints/one/predict", json={"instances": [ROW]}).headers[
        "x-request-id"
    ]
    assert first
    assert second
    assert first != second


# --- auth ------------------------------------------------------------------------------------

SCOPES = ("read", "predict", "deploy")


@dataclass
class Secured:
    app: InProcess
    tokens: dict[str, str]  # scope -> Authorization header value


@pytest.fixture(scope="module")
def secured(registry_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """The app with auth on, one token per scope; ``one`` deployed through the API with the
    deploy token."""
    home = tmp_path_factory.mktemp("inprocess-auth") / "home"
    shutil.copytree(registry_home, home)
    settings = Settings(home=home, user="tester", auth=True, poll_interval_s=0.05)
    with Registry.open(settings) as registry:
        store = TokenStore(registry.db)
        tokens = {
            scope: "Bearer " + store.create(f"t-{scope}", [scope], actor="tester")[1]
            for scope in SCOPES
        }
    with running(settings) as app:
        admin = {"authorization": tokens["deploy"]}
        answer = app.put("/api/deployments/one", json={"model": "clf@1.0.0"}, headers=admin)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 60
        while app.get("/v2/models/one/ready", headers=admin).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield Secured(app, tokens)


# (method, path, body, the scope it needs)
GUARDED: list[tuple[str, str, Any, str]] = [
    ("POST", "/v1/endpoints/one/predict", {"instances": [ROW]}, "predict"),
    ("POST", "/v2/models/one/infer", V2_BODY, "predict"),
    ("POST", "/v2/models/one/versions/1.0.0/infer", V2_BODY, "predict"),
    ("GET", "/api/models", None, "read"),
    ("GET", "/v2/models/one", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/openapi.json", None, "read"),
    ("PUT", "/api/deployments/one", {"model": "clf@1.0.0"}, "deploy"),  # unchanged: no revision
]


@pytest.mark.parametrize(("method", "path", "body", "needed"), GUARDED)
def test_each_route_needs_its_scope(
    secured: Secured, method: str, path: str, body: Any, needed: str
) -> None:
    app = secured.app
    assert_error(app.request(method, path, json=body), 401, "unauthenticated")
    assert_error(
        app.request(method, path, json=body, headers={"authorization": "Bearer nope"}), 401
    )
    assert_error(app.request(method, path, json=body, headers={"authorization": "Basic x"}), 401)
    for scope, token in secured.tokens.items():
        answer = app.request(method, path, json=body, headers={"authorization": token})
        allowed = scope == needed or (scope == "deploy" and needed == "read")
        if allowed:
            assert answer.status_code == 200, (scope, answer.text)
        else:
            assert_error(answer, 403, "forbidden")


def test_health_is_open_with_auth_on(secured: Secured) -> None:
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"):
        assert secured.app.get(path).status_code == 200, path
    # but the verbose readiness names endpoints: read scope
    assert_error(secured.app.get("/readyz?verbose"), 401)


def test_an_anonymous_caller_cannot_map_paths(secured: Secured) -> None:
    app = secured.app
    assert_error(app.get("/api/nothing-here"), 401)
    assert_error(app.get("/v1/endpoints/one/predict"), 401)  # another method: the route's scope
    assert_error(app.post("/v1/endpoints/none-such/predict", json={"instances": [ROW]}), 401)
    read = {"authorization": secured.tokens["read"]}
    assert_error(app.get("/api/nothing-here", headers=read), 404, "not_found")
    assert_error(app.get("/v1/endpoints/one/predict", headers=read), 403)  # needs predict


@pytest.mark.parametrize("path", ["/v1/endpoints/one/predict", "/api/deployments/one"])
def test_the_token_is_checked_before_the_body_is_read(secured: Secured, path: str) -> None:
    method = "POST" if path.startswith("/v1") else "PUT"
    for body in (b"{not json", b"x" * (2 * 1024 * 1024)):
        assert_error(secured.app.request(method, path, content=body), 401)
