"""Attacks on the web console's session (issue 17): a read-scoped session that posts an
action anyway, a form without (or with another browser's) CSRF token, a form posted from
another site, a session cookie replayed against the API, an open redirect through the
sign-in page, and a revoked token's session. Plus the cookie's flags.

One real ``dockyard serve --auth`` over a small registry; the browser is played by httpx,
which keeps cookies like one.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from _edge import diabetes_home, make_token

from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

VERSION_PAGE = "/ui/models/diabetes/versions/1.0.0"
ACTION_FORMS = ("alias-form", "deploy-form", "archive-form")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _sign_in(client: httpx.Client, secret: str) -> httpx.Response:
    page = client.get("/ui/sign-in")
    assert page.status_code == 200
    return client.post("/ui/sign-in", data={"csrf": _csrf(page.text), "token": secret})


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from _server import ServerProcess

    home = tmp_path_factory.mktemp("console-security")
    settings = diabetes_home(home)
    server = ServerProcess(home, args=("--auth",))
    try:
        server.wait_ready()
        yield server, settings
    finally:
        server.stop()


def _revision(server: Any, settings: Settings) -> int:
    secret = make_token(settings, f"probe-{uuid.uuid4().hex[:12]}", "read")
    answer = httpx.get(
        f"{server.url}/api/deployments/diabetes", headers={"authorization": f"Bearer {secret}"}
    )
    return int(answer.json()["revision"])


def test_the_session_cookie_is_httponly_samesite_strict_and_scoped_to_the_console(
    console: Any,
) -> None:
    server, settings = console
    with httpx.Client(base_url=server.url) as client:
        signed = _sign_in(client, make_token(settings, "flags", "read"))
    assert signed.status_code == 303
    assert signed.headers["location"] == "/ui"
    cookies = signed.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("dockyard_session="))
    flags = [part.strip() for part in session.split(";")]
    assert "HttpOnly" in flags
    assert "SameSite=Strict" in flags
    assert "Path=/ui" in flags
    assert "Secure" not in flags  # plain HTTP on loopback; TLS or the setting add it


def test_a_read_session_sees_no_action_and_is_refused_one(console: Any) -> None:
    server, settings = console
    before = _revision(server, settings)
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, make_token(settings, "reader", "read")).status_code == 303
        page = client.get(VERSION_PAGE)
        assert page.status_code == 200
        assert "diabetes@1.0.0" in page.text
        for form in ACTION_FORMS:
            assert f'id="{form}"' not in page.text
        deployments = client.get("/ui/deployments")
        assert 'id="deploy-form"' not in deployments.text
        token = _csrf(page.text)
        posted = client.post(
            "/ui/deploy",
            data={"csrf": token, "endpoint": "diabetes", "model": "diabetes@1.0.0"},
        )
        assert posted.status_code == 403
        assert 'id="error"' in posted.text  # a page in the console's layout, not JSON
        assert "forbidden" in posted.text
        archive = client.post(f"{VERSION_PAGE}/archive", data={"csrf": token})
        assert archive.status_code == 403
        assert client.get("/ui/tokens").status_code == 403  # admin only
    assert _revision(server, settings) == before


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(console: Any) -> None:
    server, settings = console
    before = _revision(server, settings)
    form = {"endpoint": "diabetes", "model": "diabetes@latest", "confirmed": "yes"}
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, make_token(settings, "deployer", "deploy")).status_code == 303
        token = _csrf(client.get("/ui/deployments").text)
        assert client.post("/ui/deploy", data=form).status_code == 403
        wrong = client.post("/ui/deploy", data={**form, "csrf": "0" * 64})
        assert wrong.status_code == 403
        elsewhere = client.post(
            "/ui/deploy", data={**form, "csrf": token}, headers={"origin": "https://evil.test"}
        )
        assert elsewhere.status_code == 403
        # another browser's token (its own nonce and session) does not fit this one
        with httpx.Client(base_url=server.url) as other:
            _sign_in(other, make_token(settings, "other", "deploy"))
            theirs = _csrf(other.get("/ui/deployments").text)
        assert client.post("/ui/deploy", data={**form, "csrf": theirs}).status_code == 403
        assert _revision(server, settings) == before
        # the same form with its token goes through (the refusals were the token's doing)
        done = client.post("/ui/deploy", data={**form, "csrf": token, "reason": "ok"})
        assert done.status_code == 303
    assert _revision(server, settings) == before + 1


def test_the_cookie_does_not_authorise_the_api_and_no_session_is_sent_to_sign_in(
    console: Any,
) -> None:
    server, settings = console
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, make_token(settings, "replay", "admin")).status_code == 303
        assert client.get("/ui").status_code == 200
        api = client.get("/api/models")  # the cookie is Path=/ui; sent by hand here anyway
        assert api.status_code == 401
        forced = httpx.get(
            f"{server.url}/api/models",
            headers={"cookie": f"dockyard_session={client.cookies['dockyard_session']}"},
        )
        assert forced.status_code == 401
    root = httpx.get(f"{server.url}/")
    assert (root.status_code, root.headers["location"]) == (307, "/ui")
    anonymous = httpx.get(f"{server.url}/ui/deployments")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/ui/sign-in?next=/ui/deployments"
    refused = httpx.post(f"{server.url}/ui/deploy", content=b"x" * 100)
    assert refused.status_code == 401  # before the body is read: auth first


def test_sign_in_refuses_bad_tokens_and_never_redirects_off_site(console: Any) -> None:
    server, settings = console
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/ui/sign-in")
        bad = client.post("/ui/sign-in", data={"csrf": _csrf(page.text), "token": "dky_nope"})
        assert bad.status_code == 401
        assert "dockyard_session" not in bad.headers.get("set-cookie", "")
        predict_only = make_token(settings, "app", "predict")
        assert _sign_in(client, predict_only).status_code == 403
        page = client.get("/ui/sign-in?next=//evil.test/x")
        signed = client.post(
            "/ui/sign-in",
            data={
                "csrf": _csrf(page.text),
                "token": make_token(settings, "nav", "read"),
                "next": "//evil.test/x",
            },
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui"


def test_a_revoked_tokens_session_is_signed_out(console: Any) -> None:
    server, settings = console
    secret = make_token(settings, "short-lived", "read")
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, secret).status_code == 303
        assert client.get("/ui").status_code == 200
        db = Database(settings.resolved_database_url)
        try:
            TokenStore(db).revoke("short-lived", actor="tester")
        finally:
            db.dispose()
        # the server's token cache forgets within its TTL: poll until the session is refused
        import time

        deadline = time.monotonic() + 30
        while client.get("/ui").status_code == 200:
            assert time.monotonic() < deadline, "the revoked session still works"
            time.sleep(0.2)
        assert client.get("/ui").headers["location"].startswith("/ui/sign-in")


def test_secure_cookies_when_the_settings_say_tls_is_in_front(
    tmp_path: Path, start_server: Any
) -> None:
    settings = diabetes_home(tmp_path)
    server = start_server(tmp_path, "--auth", env={"DOCKYARD_CONSOLE_SECURE_COOKIES": "true"})
    server.wait_ready()
    page = httpx.get(f"{server.url}/ui/sign-in")
    nonce = page.headers["set-cookie"].split(";")[0]  # Secure: httpx keeps it for https only
    assert "Secure" in page.headers["set-cookie"]
    signed = httpx.post(
        f"{server.url}/ui/sign-in",
        data={"csrf": _csrf(page.text), "token": make_token(settings, "tls", "read")},
        headers={"cookie": nonce},
    )
    assert signed.status_code == 303
    session = next(
        c for c in signed.headers.get_list("set-cookie") if c.startswith("dockyard_session=")
    )
    assert "Secure" in [part.strip() for part in session.split(";")]


def test_without_auth_a_form_from_another_site_is_refused(
    tmp_path: Path, start_server: Any
) -> None:
    diabetes_home(tmp_path)
    server = start_server(tmp_path)
    server.wait_ready()
    form = {"endpoint": "diabetes", "model": "diabetes@1.0.0", "confirmed": "yes"}
    with httpx.Client(base_url=server.url) as client:
        token = _csrf(client.get("/ui/deployments").text)
        assert client.post("/ui/deploy", data=form).status_code == 403
        cross = client.post(
            "/ui/deploy", data={**form, "csrf": token}, headers={"origin": "http://evil.test"}
        )
        assert cross.status_code == 403
        assert client.post("/ui/deploy", data={**form, "csrf": token}).status_code == 303


def test_stored_text_is_escaped_and_pages_forbid_inline_script_and_framing(
    tmp_path: Path, start_server: Any
) -> None:
    settings = diabetes_home(tmp_path)
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    from dockyard.registry import Registry

    with Registry.open(settings) as registry:
        registry.set_description("diabetes@1.0.0", payload)
        registry.set_tags("diabetes@1.0.0", {"note": payload[:60]})
    server = start_server(tmp_path)
    server.wait_ready()
    page = httpx.get(f"{server.url}{VERSION_PAGE}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


def test_over_tls_the_console_cookies_are_secure(tmp_path: Path, start_server: Any) -> None:
    import ssl

    from _tls import make_certificates

    settings = diabetes_home(tmp_path / "home")
    certs = make_certificates(tmp_path / "tls")
    trust = ssl.create_default_context(cafile=str(certs.ca))
    server = start_server(
        tmp_path / "home",
        "--auth",
        "--ssl-certfile",
        str(certs.cert),
        "--ssl-keyfile",
        str(certs.key),
        trust=trust,
    )
    server.wait_ready()
    assert server.url.startswith("https://")
    with httpx.Client(base_url=server.url, verify=trust) as client:
        signed = _sign_in(client, make_token(settings, "tls-session", "read"))
        assert signed.status_code == 303
        assert client.get("/ui").status_code == 200  # the browser sends Secure cookies back
    for set_cookie in signed.headers.get_list("set-cookie"):
        assert "Secure" in [part.strip() for part in set_cookie.split(";")], set_cookie


def _error_page(answer: httpx.Response, status: int, code: str) -> str:
    """Checks ``answer`` is an error page in the console's layout, with the API's status,
    code and request id (header and page); returns the request id."""
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("text/html")
    assert 'class="skip"' in answer.text  # the console's layout
    assert 'id="error"' in answer.text
    assert f"{code} (HTTP {status})" in answer.text
    request_id = answer.headers["x-request-id"]
    assert f'<code id="request-id">{request_id}</code>' in answer.text
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    return request_id


def test_refusals_on_console_pages_are_pages_and_the_api_keeps_json(console: Any) -> None:
    server, settings = console
    anonymous = httpx.post(
        f"{server.url}/ui/deploy", data={"endpoint": "x"}, headers={"x-request-id": "probe-401"}
    )
    assert _error_page(anonymous, 401, "unauthenticated") == "probe-401"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, make_token(settings, "errors", "read")).status_code == 303
        _error_page(client.get("/ui/tokens"), 403, "forbidden")  # refused by the guard
        token = _csrf(client.get("/ui/deployments").text)
        refused = client.post("/ui/deploy", data={"csrf": token, "endpoint": "diabetes"})
        _error_page(refused, 403, "forbidden")
        _error_page(client.get("/ui/nowhere"), 404, "not_found")  # no such route
        _error_page(client.get("/ui/models/nope"), 404, "not_found")  # the registry's 404
        _error_page(client.get("/ui/deployments/nope"), 404, "not_found")
        _error_page(client.get("/ui/monitoring/nope"), 404, "not_found")
        _error_page(client.get("/ui?page=0"), 400, "invalid_request")
        polled = client.get("/ui/monitoring/nope/report.json")  # what the page's script reads
        assert polled.status_code == 404
        assert polled.json()["code"] == "not_found"
    with httpx.Client(base_url=server.url) as client:
        assert _sign_in(client, make_token(settings, "csrf", "deploy")).status_code == 303
        no_csrf = client.post("/ui/deploy", data={"endpoint": "diabetes"})
        _error_page(no_csrf, 403, "forbidden")  # the CSRF check, in the handler
    secret = make_token(settings, "api-errors", "read")
    api = httpx.get(f"{server.url}/api/nowhere", headers={"authorization": f"Bearer {secret}"})
    assert api.status_code == 404
    assert api.json()["code"] == "not_found"
    assert httpx.get(f"{server.url}/api/models").json()["code"] == "unauthenticated"
    denied = httpx.post(
        f"{server.url}/api/deployments/diabetes/rollback",
        headers={"authorization": f"Bearer {secret}"},
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
