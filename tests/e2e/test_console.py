"""The web console in a real browser (issue 17): Playwright drives the system Chromium
against a real ``dockyard serve --auth``. It signs in with a token, opens every page, checks
what each shows against the API, performs every action (move an alias, a protected one with
a recorded gate, deploy, roll back, pause / resume / abort a rollout, archive, create and
revoke a token, sign out), and checks that each left the audit event the API leaves, naming
the token. Every page is checked for console errors, for requests leaving loopback, and
with axe-core (``scripts/ensure-axe.sh``) for serious or critical accessibility
violations; a screenshot of each is saved under the test's ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from _server import ServerProcess
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.registry.database import Database
from dockyard.security.tokens import TokenStore
from dockyard.settings import Settings

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parents[2] / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
FEATURES = ["a", "b", "c"]
ROLLOUT = {
    "candidate": "clf@1.0.1",
    "steps": [
        {"weight": 30, "min_duration_s": 3600, "min_requests": 1_000_000},
        {"weight": 100, "min_duration_s": 0, "min_requests": 0},
    ],
}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "DOCKYARD_USER": "tester"},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A registry (``clf`` 1.0.0-1.0.2, ``other``), endpoints ``plain`` and ``canary`` (with a
    rollout that never finishes by itself), a recorded passing gate for clf@1.0.1, an admin
    token, traffic and feedback logged, and ``dockyard serve --auth`` following it."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("console")
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=FEATURES)
    y = (X["a"] > 0).astype(int)
    settings = Settings(home=home, user="tester")
    with Registry.open(settings) as registry:
        for c in (1.0, 0.5, 0.1):
            registry.register(
                LogisticRegression(C=c).fit(X, y),
                "clf",
                sample=X,
                y=y,
                accelerate=False,
                metrics={"accuracy": 0.9 + c / 100, "log_loss": 0.3 - c / 10},
            )
        registry.register(LogisticRegression().fit(X, y), "other", sample=X, y=y, accelerate=False)
        registry.set_alias("clf@1.0.0", "production")
        registry.set_alias("clf@1.0.1", "staging")
        store = DeploymentStore(registry.db)
        store.put("plain", DeploymentSpec.parse({"routes": [{"model": "clf@1.0.0"}]}), actor="t")
        canary = {"routes": [{"model": "clf@1.0.0"}], "rollout": ROLLOUT}
        store.put("canary", DeploymentSpec.parse(canary), actor="tester")
        secret = TokenStore(registry.db).create("admin", ["admin"], actor="tester")[1]
    holdout = X.assign(label=y)
    holdout.to_parquet(home / "holdout.parquet")
    gated = _cli(
        home, "gate", "clf@1.0.1", "--against", "clf@production",
        "--data", str(home / "holdout.parquet"), "--target", "label",
        "--require", "accuracy >= 0.8", "--json",
    )  # fmt: skip
    assert gated.returncode == 0, gated.stdout + gated.stderr
    env = {"DOCKYARD_LOG_FLUSH_INTERVAL_S": "0.2", "DOCKYARD_MONITOR_INTERVAL_S": "0.5"}
    server = ServerProcess(home, args=("--auth",), env=env)
    try:
        server.wait_ready()
        auth = {"authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            labels = []
            for row in X.sample(60, random_state=1).to_dict("records"):
                answer = client.post("/v1/endpoints/plain/predict", json={"instances": [row]})
                assert answer.status_code == 200, answer.text
                labels.append(
                    {"request_id": answer.json()["request_id"], "label": int(row["a"] > 0)}
                )
            deadline = time.monotonic() + 30
            while True:  # labels join predictions once the log has flushed them
                answer = client.post("/v1/endpoints/plain/feedback", json=labels)
                assert answer.status_code == 200, answer.text
                if answer.json()["accepted"] == len(labels):
                    break
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.2)
        yield {
            "server": server,
            "home": home,
            "secret": secret,
            "auth": auth,
            "gate": json.loads(gated.stdout)["id"],
        }
    finally:
        server.stop()


class Browser:
    """One signed-in page plus the checks every page gets."""

    def __init__(self, pw: Any, url: str, shots: Path) -> None:
        self.url = url
        self.shots = shots
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        self.context = self.browser.new_context()
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.left: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("dialog", lambda dialog: dialog.accept())
        origin = url.split("/", 3)[:3]

        def route(r: Any) -> None:
            if r.request.url.split("/", 3)[:3] == origin:
                r.continue_()
            else:
                self.left.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        # axe runs in a second context that ignores the pages' CSP, so it can be injected
        self.audit = self.browser.new_context(bypass_csp=True)

    def open(self, path: str, shot: str) -> Any:
        self.page.goto(self.url + path, wait_until="load")
        self.page.screenshot(path=str(self.shots / f"{shot}.png"), full_page=True)
        return self.page

    def axe(self, path: str) -> list[dict[str, Any]]:
        """Serious or critical violations axe-core finds on ``path`` (signed in)."""
        self.audit.add_cookies(self.context.cookies())
        page = self.audit.new_page()
        try:
            page.goto(self.url + path, wait_until="load")
            page.add_script_tag(path=str(AXE))
            found = page.evaluate("async () => (await axe.run(document)).violations")
        finally:
            page.close()
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in found
            if v["impact"] in ("serious", "critical")
        ]

    def close(self) -> None:
        self.browser.close()


@pytest.fixture
def browser(site: dict[str, Any], tmp_path: Path) -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/ensure-axe.sh")
    with sync_playwright() as pw:
        b = Browser(pw, site["server"].url, tmp_path)
        try:
            page = b.open("/ui", "sign-in")
            assert page.url.endswith("/ui/sign-in?next=/ui")
            page.fill("#token", site["secret"])
            page.click("#sign-in button")
            page.wait_for_url(b.url + "/ui")
            yield b
            assert b.errors == []
            assert b.left == []
        finally:
            b.close()


def _api(site: dict[str, Any], path: str) -> Any:
    answer = httpx.get(site["server"].url + path, headers=site["auth"])
    assert answer.status_code == 200, answer.text
    return answer.json()


PAGES = {
    "models": "/ui",
    "models-search": "/ui?q=cl&sort=registered&desc=true",
    "model": "/ui/models/clf",
    "compare": "/ui/models/clf?compare=1.0.0&compare=1.0.2",
    "version": "/ui/models/clf/versions/1.0.1",
    "deployments": "/ui/deployments",
    "deployment": "/ui/deployments/canary",
    "events": "/ui/events?action=deployment.",
    "live": "/ui/live",
    "monitoring-index": "/ui/monitoring",
    "monitoring": "/ui/monitoring/plain",
    "tokens": "/ui/tokens",
}


def test_every_page_shows_what_the_api_says(site: dict[str, Any], browser: Browser) -> None:
    for shot, path in PAGES.items():
        page = browser.open(path, shot)
        if shot == "monitoring":  # computed off the request: the page reloads when ready
            page.wait_for_selector("#heatmap", timeout=60_000)
        assert page.locator("main h1").count() == 1, path
        assert browser.axe(path) == [], path

    page = browser.open("/ui", "models")
    api_models = _api(site, "/api/models")
    names = page.locator("#models tbody tr td:first-child a").all_text_contents()
    assert names == [m["name"] for m in api_models]
    clf = next(m for m in api_models if m["name"] == "clf")
    assert page.locator("#models tbody tr").first.locator("td").nth(1).inner_text() == clf["latest"]

    page = browser.open("/ui?q=oth", "search")
    assert page.locator("#models tbody tr td:first-child a").all_text_contents() == ["other"]

    page = browser.open("/ui/models/clf?compare=1.0.0&compare=1.0.2", "compare")
    headers = page.locator("#metrics thead th").all_text_contents()
    assert headers == ["Metric", "1.0.0", "1.0.2"]
    best = page.locator("#metrics td.best").all_text_contents()
    assert len(best) == 2  # accuracy and log loss each mark their best version

    version = _api(site, "/api/models/clf/versions/1.0.1")
    page = browser.open("/ui/models/clf/versions/1.0.1", "version")
    facts = page.locator("#facts").inner_text()
    assert version["digest"] in facts
    assert all(alias in facts for alias in version["aliases"])
    assert page.locator("#signature tbody tr").count() == len(version["signature"]["columns"])
    assert page.locator(".hist").count() == 3  # a histogram per profiled feature

    page = browser.open("/ui/deployments/canary", "deployment")
    deployment = _api(site, "/api/deployments/canary")
    assert f"{deployment['revision']}" in page.locator("#facts").inner_text()
    assert "step 1 of 2" in page.locator("#rollout").inner_text()
    history = _api(site, "/api/deployments/canary/history")
    assert page.locator("#history tbody tr").count() == len(history)

    page = browser.open("/ui/events", "events")
    newest = _api(site, "/api/events?limit=1")[0]
    assert page.locator("tbody tr").first.locator("td").first.inner_text() == str(newest["id"])
    page.fill("#f-endpoint", "canary")
    page.click("#event-filters button")
    page.wait_for_url("**/ui/events?*endpoint=canary*")
    subjects = page.locator("tbody tr td:nth-child(5)").all_text_contents()
    assert subjects
    assert set(subjects) == {"canary"}

    page = browser.open("/ui/monitoring/plain", "monitoring")
    assert "As of" in page.locator("#report-state").inner_text()
    assert page.locator("#heatmap tbody tr").count() >= 1
    assert page.locator("#heatmap thead th").all_text_contents()[3:] == FEATURES
    assert page.locator("#performance tbody tr").count() >= 1
    assert page.locator("#distributions figure").count() == len(FEATURES) + 1  # + prediction

    # live: traffic shows up by itself (the page polls), without a reload
    page = browser.open("/ui/live", "live")
    rows = [{"a": 0.1, "b": 0.2, "c": 0.3}]
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=site["server"].url, headers=site["auth"]) as client:
        cell = page.locator('#live tr[data-endpoint="plain"] td').first
        while cell.count() == 0 or cell.inner_text() in ("—", "0.00"):
            assert time.monotonic() < deadline, "the live page never showed traffic"
            client.post("/v1/endpoints/plain/predict", json={"instances": rows})
            page.wait_for_timeout(200)
    assert float(cell.inner_text()) > 0  # requests/s, redrawn by the page's own polling
    idle = page.locator('#live tr[data-endpoint="canary"] td').first
    assert idle.inner_text() == "0.00"  # a quiet endpoint is listed, at zero
    page.screenshot(path=str(browser.shots / "live-traffic.png"), full_page=True)

    # a phone's width: nothing wider than the screen but the tables' own scroll areas
    page.set_viewport_size({"width": 390, "height": 800})
    for path in ("/ui", "/ui/models/clf/versions/1.0.1", "/ui/deployments/canary"):
        page = browser.open(path, "phone-" + path.strip("/").replace("/", "-"))
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, path

    # the keyboard: the first Tab reaches the skip link, which leads to the content
    page.set_viewport_size({"width": 1280, "height": 800})
    page = browser.open("/ui", "keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    page.wait_for_url("**#main")  # the fragment's navigation may land after the key press


def _confirm(page: Any) -> None:
    page.wait_for_selector("#confirm")
    page.click("#confirm button[type=submit]")
    page.wait_for_load_state("load")


def _events(site: dict[str, Any], action: str) -> list[dict[str, Any]]:
    found = _api(site, "/api/events?limit=200")
    return [e for e in found if e["action"] == action]


def test_every_action_goes_through_the_services_and_the_audit_trail(
    site: dict[str, Any], browser: Browser
) -> None:
    db = Database(Settings(home=site["home"]).resolved_database_url)
    try:
        principal = TokenStore(db).verify(site["secret"])
    finally:
        db.dispose()
    assert principal is not None
    actor = f"token:admin#{principal.id}"  # what the API names for this token

    # move an ordinary alias: confirm, then the API shows it
    page = browser.open("/ui/models/clf/versions/1.0.2", "alias-form")
    page.fill("#alias", "staging")
    page.click("#alias-form button")
    assert "clf@staging → 1.0.2" in page.locator("#changes").inner_text()
    browser.page.screenshot(path=str(browser.shots / "confirm-alias.png"))
    _confirm(page)
    assert page.locator(".notice").inner_text() == "The alias was moved."
    assert _api(site, "/api/models/clf")["aliases"]["staging"] == "1.0.2"
    assert _events(site, "alias.set")[0]["actor"] == actor

    # a protected alias: refused without a gate, moved with the recorded passing one
    page = browser.open("/ui/models/clf/versions/1.0.1", "protected")
    page.fill("#alias", "production")
    page.click("#alias-form button")
    page.wait_for_selector("#error")
    assert "protected" in page.locator("#error").inner_text()
    # the refusal is a 400 page, as the API answers 400; Chromium logs the status
    browser.errors = [e for e in browser.errors if "status of 400" not in e]
    assert _api(site, "/api/models/clf")["aliases"]["production"] == "1.0.0"
    page = browser.open("/ui/models/clf/versions/1.0.1", "protected-gate")
    page.fill("#alias", "production")
    page.fill("#gate", str(site["gate"]))
    page.click("#alias-form button")
    _confirm(page)
    assert _api(site, "/api/models/clf")["aliases"]["production"] == "1.0.1"
    moved = _events(site, "alias.set")[0]
    assert moved["details"]["gate"]["id"] == site["gate"]

    # deploy a version to an endpoint, then roll back
    before = _api(site, "/api/deployments/plain")["revision"]
    page = browser.open("/ui/models/clf/versions/1.0.2", "deploy")
    page.fill("#endpoint", "plain")
    page.click("#deploy-form button")
    assert "clf@1.0.2" in page.locator("#changes").inner_text()
    _confirm(page)
    deployed = _api(site, "/api/deployments/plain")
    assert deployed["revision"] == before + 1
    assert deployed["spec"]["routes"][0]["model"] == "clf@1.0.2"
    assert _events(site, "deployment.update")[0]["actor"] == actor

    page = browser.open("/ui/deployments/plain", "rollback")
    page.locator(f"#history form:has(input[value='{before}']) button").click()
    _confirm(page)
    rolled = _api(site, "/api/deployments/plain")
    assert rolled["revision"] == before + 2
    assert rolled["spec"]["routes"][0]["model"] == "clf@1.0.0"
    assert _events(site, "deployment.rollback")[0]["actor"] == actor

    # the rollout: pause, resume, abort (confirmed)
    for action, status in (("pause", "paused"), ("resume", "running")):
        page = browser.open("/ui/deployments/canary", f"rollout-{action}")
        page.click(f"#rollout-{action}")
        page.wait_for_selector(".notice")
        state = _api(site, "/api/deployments/canary/rollout")["rollout"]["state"]
        assert state["status"] == status
        assert _events(site, f"rollout.{action}")[0]["actor"] == actor
    page = browser.open("/ui/deployments/canary", "rollout-abort")
    page.click("#rollout-abort")
    _confirm(page)
    assert _api(site, "/api/deployments/canary/rollout")["rollout"]["state"]["status"] == "aborted"

    # archive a version nothing points at
    page = browser.open("/ui/models/other/versions/1.0.0", "archive")
    page.click("#archive-form button")  # data-confirm: the dialog is accepted
    page.wait_for_selector(".notice")
    assert _api(site, "/api/models/other/versions/1.0.0")["status"] == "archived"
    assert _events(site, "version.archive")[0]["actor"] == actor

    # tokens: create (shown once), then revoke
    page = browser.open("/ui/tokens", "tokens")
    page.fill("#t-name", "viewer")
    page.click("#token-form button")
    secret = page.locator("#secret").input_value()
    assert secret.startswith("dky_")
    viewer = {"authorization": f"Bearer {secret}"}
    assert httpx.get(f"{browser.url}/api/models", headers=viewer).status_code == 200
    assert _events(site, "token.create")[0]["actor"] == actor
    page = browser.open("/ui/tokens", "tokens-after")
    assert secret not in page.content()  # shown once
    page.locator("#tokens tr:has-text('viewer') button").click()
    page.wait_for_selector(".notice")
    assert "revoked" in page.locator("#tokens tr:has-text('viewer')").inner_text()
    assert httpx.get(f"{browser.url}/api/models", headers=viewer).status_code == 401
    assert _events(site, "token.revoke")[0]["details"]["token"] == "viewer"

    # sign out: the next page asks for a token again
    page = browser.open("/ui", "before-sign-out")
    page.click(".signout button")
    page.wait_for_url("**/ui/sign-in**")
    browser.open("/ui/deployments", "signed-out")
    assert "/ui/sign-in" in browser.page.url


def test_a_monitoring_report_is_computed_off_the_request(site: dict[str, Any]) -> None:
    """A first visit answers at once with a "computing" state the page polls; the report
    then shows with the time it was computed; a bad window or endpoint is refused at once."""
    from html import unescape

    with httpx.Client(base_url=site["server"].url, headers=site["auth"], timeout=30) as client:
        first = client.get("/ui/monitoring/plain", params={"window": "2d", "every": "day"})
        assert first.status_code == 200
        assert 'id="heatmap"' not in first.text
        poll = unescape(first.text.split('data-poll="', 1)[1].split('"', 1)[0])
        assert poll == "/ui/monitoring/plain/report.json?window=2d&every=day"
        deadline = time.monotonic() + 60
        while not (state := client.get(poll).json())["ready"]:
            assert time.monotonic() < deadline, "the report was never computed"
            time.sleep(0.2)
        assert state["computed_at"] is not None
        page = client.get("/ui/monitoring/plain", params={"window": "2d", "every": "day"})
        assert page.status_code == 200
        assert 'id="heatmap"' in page.text
        assert "As of" in page.text
        assert "data-poll" not in page.text

        bad = client.get("/ui/monitoring/plain", params={"window": "nonsense"})
        assert bad.status_code == 400
        assert 'id="error"' in bad.text
        missing = client.get("/ui/monitoring/nowhere")
        assert missing.status_code == 404
        assert 'id="error"' in missing.text
