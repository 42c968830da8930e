"""Attack: bodies read before the token was checked, bodies with no size limit, and an open
redirect through the Host header, against a real ``dockyard serve --auth``.

A 400 MB ``PUT /api/deployments/x`` without a token was read whole (16 s, +725 MB) before its
401; malformed JSON without a token answered 400, not 401; only the inference routes had a
body limit. ``POST .../predict/`` with ``Host: evil.example`` answered 307 to
``http://evil.example/...`` without a token. Now the token is checked from the method and
path alone, before any of the body is read, one limit holds on every route, and no route
redirects. Every route the app declares is covered (read from its own schema), so a new
route cannot escape.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from _edge import ROW, bearer, diabetes_home, make_token

from _server import ServerProcess

LIMIT = 64 * 1024
HEALTH = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"}
DOCS = [("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")]
UNKNOWN = [("PUT", "/api/nothing-here"), ("POST", "/v1/endpoints/diabetes/predict/extra")]


@dataclass
class Edge:
    server: ServerProcess
    admin: str
    reader: str
    routes: list[tuple[str, str]]  # every (method, path) the app declares, and the docs


pytestmark = pytest.mark.slow  # a real `dockyard serve` process (README, Development)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    home = tmp_path_factory.mktemp("limits") / "home"
    settings = diabetes_home(home)
    admin = make_token(settings, "limits-admin", "admin")
    reader = make_token(settings, "limits-read", "read")
    server = ServerProcess(home, args=("--auth",), env={"DOCKYARD_MAX_BODY_BYTES": str(LIMIT)})
    try:
        server.wait_ready()
        schema = httpx.get(f"{server.url}/openapi.json", headers=bearer(admin)).json()
        routes = [(m.upper(), p) for p, operations in schema["paths"].items() for m in operations]
        yield Edge(server, admin, reader, sorted(routes) + DOCS)
    finally:
        server.stop()


def _path(template: str) -> str:
    return template.format(name="diabetes", version="1.0.0", ref="1.0.0", alias="staging")


def _exchange(server: ServerProcess, head: bytes, body: bytes) -> tuple[int, bytes]:
    """Send ``head`` and the first bytes of a body on a raw connection; the status and
    the head of the reply. A server that waited for the declared body would time out."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply


def _refused(response: httpx.Response, status: int, code: str, label: str) -> None:
    assert response.status_code == status, f"{label}: {response.status_code} {response.text}"
    body = response.json()
    assert body["code"] == code, label
    assert {"error", "code", "details"} <= body.keys(), label


def test_the_schema_lists_the_mutating_routes(edge: Edge) -> None:
    """The enumeration below is the app's own, and holds the routes the attack used."""
    assert ("PUT", "/api/deployments/{name}") in edge.routes
    assert ("PUT", "/api/models/{name}/aliases/{alias}") in edge.routes
    assert ("POST", "/api/deployments/{name}/rollback") in edge.routes
    assert ("POST", "/v1/endpoints/{name}/feedback") in edge.routes
    assert ("POST", "/v1/endpoints/{name}/explain") in edge.routes


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(edge: Edge) -> None:
    """400 MB declared, 4 KiB sent: the 401 (or, on health, the 413) comes at once, so the
    server read none of the rest."""
    for method, template in [*edge.routes, *UNKNOWN]:
        head = (
            f"{method} {_path(template)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 400000000\r\n\r\n"
        ).encode()
        status, reply = _exchange(edge.server, head, b"[" * 4096)
        expected = 413 if template in HEALTH else 401
        assert status == expected, (method, template, reply[:300])


def test_malformed_json_without_a_token_is_401_not_400(edge: Edge) -> None:
    for method, template in edge.routes:
        if method == "GET":
            continue
        response = httpx.request(method, f"{edge.server.url}{_path(template)}", content=b"{not")
        _refused(response, 401, "unauthenticated", f"{method} {template}")


def test_every_route_refuses_a_body_over_the_limit(edge: Edge) -> None:
    """With a valid token: 413 in the error shape, whether the length is declared or the
    body streams in chunks with no length, on every route (health included)."""
    too_big = b"x" * (LIMIT + 1)

    def streamed() -> Iterator[bytes]:  # just past the limit, in chunks, with no length
        for _ in range(LIMIT // 8192 + 2):
            yield b"y" * 8192

    with httpx.Client(base_url=edge.server.url, timeout=30, headers=bearer(edge.admin)) as client:
        for method, template in edge.routes:
            label = f"{method} {template}"
            declared = client.request(method, _path(template), content=too_big)
            _refused(declared, 413, "payload_too_large", f"{label} (declared)")
            chunked = client.request(method, _path(template), content=streamed())
            _refused(chunked, 413, "payload_too_large", f"{label} (chunked)")
        # under the limit, the same client and a mutating route still work
        ok = client.put("/api/deployments/diabetes", json={"model": "diabetes@1.0.0"})
        assert ok.status_code == 200, ok.text


def test_no_route_redirects_whatever_the_host(edge: Edge) -> None:
    """A trailing slash is a 404 in the one error shape (401 first without a token): never a
    redirect, so the Host header cannot send a client elsewhere."""
    for method, template in edge.routes:
        url = f"{edge.server.url}{_path(template).rstrip('/')}/"
        for headers, status in (({}, 401), (bearer(edge.admin), 404)):
            response = httpx.request(
                method,
                url,
                headers={"host": "evil.example", **headers},
                content=orjson.dumps({"instances": [ROW]}),
                follow_redirects=False,
            )
            label = f"{method} {template}/ with {'a' if headers else 'no'} token"
            assert "location" not in response.headers, label
            code = "unauthenticated" if status == 401 else "not_found"
            _refused(response, status, code, label)


def test_an_unknown_path_needs_a_token_before_it_is_a_404(edge: Edge) -> None:
    for method, path in UNKNOWN:
        url = f"{edge.server.url}{path}"
        _refused(httpx.request(method, url), 401, "unauthenticated", path)
        response = httpx.request(method, url, headers=bearer(edge.reader))
        _refused(response, 404, "not_found", path)
