"""The security matrix of a ``dockyard serve --auth`` process, route by route.

Every route the app declares (read from its own OpenAPI schema, so a new route cannot
escape this file) and the docs, against no token, malformed, unknown, revoked and expired
tokens, and one token per scope. Health is open; everything else is 401 without a valid
token, 403 without the scope and answered with it. Also: the server refuses to bind beyond
loopback without auth unless told ``--insecure``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

if TYPE_CHECKING:
    from conftest import ServerProcess, Zoo

HEALTH = "open"

# (method, path, scope it needs); HEALTH means no token at all. The schema must list exactly
# these (the docs are not in it); test_every_route_is_in_the_matrix holds that.
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/healthz", HEALTH),
    ("GET", "/readyz", HEALTH),
    ("GET", "/v2/health/live", HEALTH),
    ("GET", "/v2/health/ready", HEALTH),
    ("GET", "/v2", "read"),
    ("GET", "/v2/models/{name}", "read"),
    ("GET", "/v2/models/{name}/versions/{version}", "read"),
    ("GET", "/v2/models/{name}/ready", "read"),
    ("GET", "/v2/models/{name}/versions/{version}/ready", "read"),
    ("POST", "/v2/repository/index", "read"),
    ("POST", "/v1/endpoints/{name}/predict", "predict"),
    ("POST", "/v2/models/{name}/infer", "predict"),
    ("POST", "/v2/models/{name}/versions/{version}/infer", "predict"),
    ("GET", "/metrics", "read"),
    ("GET", "/api/models", "read"),
    ("GET", "/api/models/{name}", "read"),
    ("GET", "/api/models/{name}/versions/{ref}", "read"),
    ("PUT", "/api/models/{name}/aliases/{alias}", "deploy"),
    ("GET", "/api/events", "read"),
    ("GET", "/api/deployments", "read"),
    ("GET", "/api/deployments/{name}", "read"),
    ("PUT", "/api/deployments/{name}", "deploy"),
    ("POST", "/v1/endpoints/{name}/feedback", "predict"),
    ("POST", "/v1/endpoints/{name}/explain", "predict"),
    ("GET", "/api/models/{name}/versions/{version}/card", "read"),
    ("GET", "/api/deployments/{name}/history", "read"),
    ("GET", "/api/deployments/{name}/compare", "read"),
    ("POST", "/api/deployments/{name}/rollback", "deploy"),
    ("GET", "/api/deployments/{name}/rollout", "read"),
    ("GET", "/api/monitoring/{name}/drift", "read"),
    ("GET", "/api/monitoring/{name}/performance", "read"),
    ("GET", "/api/monitoring/{name}/report", "read"),
    ("GET", "/api/monitoring/alerts", "read"),
    ("GET", "/api/monitoring/log", "read"),
]
DOCS: list[tuple[str, str, str]] = [
    ("GET", "/openapi.json", "read"),
    ("GET", "/docs", "read"),
    ("GET", "/redoc", "read"),
]

# What each scope may do, written out rather than computed with dockyard.security.scopes.
GRANTS = {
    "read": {"read"},
    "predict": {"predict"},
    "deploy": {"deploy", "read"},
    "admin": {"read", "predict", "deploy"},
}

ROW = {"age": 0.03, "sex": 0.05, "bmi": 0.06, "bp": 0.02, "s1": -0.04}
ROW |= {"s2": -0.03, "s3": -0.04, "s4": 0.0, "s5": 0.02, "s6": -0.01}
V2_BODY = {
    "inputs": [{"name": "input-0", "shape": [1, 10], "datatype": "FP64", "data": [*ROW.values()]}]
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/endpoints/{name}/predict"): {"instances": [ROW]},
    ("POST", "/v2/models/{name}/infer"): V2_BODY,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): V2_BODY,
    ("PUT", "/api/deployments/{name}"): {"model": "diabetes@1.0.0"},  # unchanged: no revision
    ("POST", "/v1/endpoints/{name}/feedback"): {"request_id": "never-seen", "label": 1.5},
    ("POST", "/v1/endpoints/{name}/explain"): {"instances": [ROW]},
    ("POST", "/api/deployments/{name}/rollback"): {"to": 1, "reason": "auth matrix"},
    ("PUT", "/api/models/{name}/aliases/{alias}"): {"version": "1.0.0"},  # staging: unprotected
}


@dataclass
class Secured:
    server: ServerProcess
    tokens: dict[str, str]  # scope -> secret
    invalid: dict[str, str]  # why -> Authorization header value


@pytest.fixture(scope="module")
def secured(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    home = tmp_path_factory.mktemp("auth") / "home"
    server = zoo.serve(home, {"diabetes": "diabetes@1.0.0"}, args=("--auth",))
    try:
        db = Database(Settings(home=home).resolved_database_url)
        try:
            store = TokenStore(db)
            tokens = {
                scope: store.create(f"e2e-{scope}", [scope], actor="tester")[1] for scope in GRANTS
            }
            revoked = store.create("e2e-revoked", ["admin"], actor="tester")[1]
            store.revoke("e2e-revoked", actor="tester")
            past = TokenStore(db, now=lambda: datetime.now(UTC) - timedelta(hours=2))
            expired = past.create(
                "e2e-expired", ["admin"], actor="tester", expires_in=timedelta(hours=1)
            )[1]
        finally:
            db.dispose()
        invalid = {
            "scheme only": "Bearer",
            "other scheme": f"Basic {tokens['admin']}",
            "bare secret": tokens["admin"],
            "not a token": "Bearer not-a-dockyard-token",
            "too long": f"Bearer dky_{'a' * 400}",
            "unknown": f"Bearer dky_{secrets.token_urlsafe(32)}",
            "revoked": f"Bearer {revoked}",
            "expired": f"Bearer {expired}",
        }
        server.wait_ready()
        yield Secured(server, tokens, invalid)
    finally:
        server.stop()


def _call(
    client: httpx.Client, method: str, path: str, authorization: str | None
) -> httpx.Response:
    url = path.format(name="diabetes", version="1.0.0", ref="1.0.0", alias="staging")
    headers = {"authorization": authorization} if authorization is not None else {}
    body = BODIES.get((method, path))
    return client.request(method, url, json=body, headers=headers)


def _assert_refused(response: httpx.Response, status: int, code: str, label: str) -> None:
    assert response.status_code == status, f"{label}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == code, label
    assert isinstance(body["error"], str)
    assert "details" in body
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer", label


def test_every_route_is_in_the_matrix(secured: Secured) -> None:
    token = secured.tokens["admin"]
    schema = httpx.get(
        f"{secured.server.url}/openapi.json", headers={"authorization": f"Bearer {token}"}
    ).json()
    declared = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
    }
    assert declared == {(method, path) for method, path, _ in ROUTES}


@pytest.mark.parametrize(
    ("method", "path", "needed"), ROUTES + DOCS, ids=[f"{m} {p}" for m, p, _ in ROUTES + DOCS]
)
def test_route_security(secured: Secured, method: str, path: str, needed: str) -> None:
    with httpx.Client(base_url=secured.server.url, timeout=30) as client:
        if needed == HEALTH:
            for authorization in (None, *secured.invalid.values()):
                response = _call(client, method, path, authorization)
                assert response.status_code == 200, (authorization, response.text)
            return

        _assert_refused(_call(client, method, path, None), 401, "unauthenticated", "no token")
        for why, authorization in secured.invalid.items():
            response = _call(client, method, path, authorization)
            _assert_refused(response, 401, "unauthenticated", why)
        for scope, secret in secured.tokens.items():
            response = _call(client, method, path, f"Bearer {secret}")
            if needed in GRANTS[scope]:
                assert response.status_code == 200, f"{scope}: {response.text}"
            else:
                _assert_refused(response, 403, "forbidden", scope)
                assert needed in response.json()["error"]


def test_a_predict_token_cannot_read_the_registry_it_predicts_with(secured: Secured) -> None:
    """The credential handed to applications scores traffic and sees nothing else."""
    headers = {"authorization": f"Bearer {secured.tokens['predict']}"}
    url = secured.server.url
    answer = httpx.post(
        f"{url}/v1/endpoints/diabetes/predict", json={"instances": [ROW]}, headers=headers
    )
    assert answer.status_code == 200
    assert answer.json()["version"] == "1.0.0"
    for path in ("/api/models", "/api/events", "/metrics", "/openapi.json", "/v2/models/diabetes"):
        assert httpx.get(f"{url}{path}", headers=headers).status_code == 403, path


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("PUT", "/api/deployments/diabetes", b'{"bogus": 1}'),
        ("POST", "/v1/endpoints/diabetes/predict", b"{not json"),
        ("POST", "/v2/models/diabetes/infer", b'{"inputs": 7}'),
        ("POST", "/v2/models/nope/infer", b"{}"),
        ("GET", "/api/models/nope", None),
    ],
)
def test_credentials_are_checked_before_the_request_is_looked_at(
    secured: Secured, method: str, path: str, content: bytes | None
) -> None:
    """No validation error, and no 404, tells an anonymous caller about the API or what
    is deployed."""
    response = httpx.request(method, f"{secured.server.url}{path}", content=content)
    _assert_refused(response, 401, "unauthenticated", path)
    reader = {"authorization": f"Bearer {secured.tokens['read']}"}
    if method != "GET":
        response = httpx.request(
            method, f"{secured.server.url}{path}", content=content, headers=reader
        )
        _assert_refused(response, 403, "forbidden", path)


def _serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env["DOCKYARD_HOME"] = str(home)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_serve_beyond_loopback_without_auth(tmp_path: Path) -> None:
    result = _serve(tmp_path / "home")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "0.0.0.0" in errors[0]
    assert "--auth" in errors[0]
    assert "--insecure" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag", ["--insecure", "--auth"])
def test_serves_beyond_loopback_when_told_how(zoo: Zoo, tmp_path: Path, flag: str) -> None:
    server = zoo.serve(tmp_path / "home", {}, args=("--host", "0.0.0.0", flag))
    try:
        server.wait_ready()
        assert httpx.get(f"{server.url}/healthz").json() == {"live": True}
        expected = 200 if flag == "--insecure" else 401
        assert httpx.get(f"{server.url}/api/models").status_code == expected
    finally:
        server.stop()
