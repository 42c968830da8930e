"""Attack: the audit trail named the server's OS user (``actor: root``) for changes made
through the API with deploy and admin tokens, so nobody could tell which credential did what.
Every change made through the API now names the token (``token:NAME#ID``); with auth off the
server's user stays the actor, and the CLI keeps the OS user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from _edge import bearer, diabetes_home, make_token

from dockyard.registry import Registry
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.settings import Settings


def _token_id(settings: Settings, name: str) -> int:
    db = Database(settings.resolved_database_url)
    try:
        with db.read() as conn:
            return int(
                conn.execute(sa.select(t.tokens.c.id).where(t.tokens.c.name == name)).one()[0]
            )
    finally:
        db.dispose()


def _changes(url: str, headers: dict[str, str]) -> None:
    """A deploy (new endpoint), a second revision, a rollback and an alias move."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for body in (
            {"model": "diabetes@1.0.0"},
            {"model": "diabetes@1.0.0", "batching": {"max_batch_size": 8}},
        ):
            response = client.put("/api/deployments/second", json=body)
            assert response.status_code == 200, response.text
        response = client.post("/api/deployments/second/rollback", json={"reason": "audit"})
        assert response.status_code == 200, response.text
        response = client.put("/api/models/diabetes/aliases/staging", json={"version": "1.0.0"})
        assert response.status_code == 200, response.text


def _events(settings: Settings) -> list[tuple[int, str, str]]:
    """Every event: (id, action, actor)."""
    with Registry.open(settings) as registry:
        return [(e.id, e.action, e.actor) for e in registry.events(limit=10_000)]


def _made_through_the_api(
    settings: Settings, before: list[tuple[int, str, str]]
) -> dict[str, set[str]]:
    """The actors of the events written since ``before``, by action."""
    last = max(i for i, _, _ in before)
    found: dict[str, set[str]] = {}
    for i, action, who in _events(settings):
        if i > last:
            found.setdefault(action, set()).add(who)
    return found


def test_api_changes_name_the_token_that_made_them(tmp_path: Path, start_server: Any) -> None:
    settings = diabetes_home(tmp_path / "home")
    secret = make_token(settings, "ci-deployer", "deploy")
    token_id = _token_id(settings, "ci-deployer")
    before = _events(settings)
    server = start_server(settings.home, "--auth")
    server.wait_ready()
    _changes(server.url, bearer(secret))
    made = _made_through_the_api(settings, before)
    assert {"deployment.rollback", "alias.set"} <= set(made), made
    assert len(made) >= 3, made  # and the deploys' own actions
    for action, actors in made.items():
        assert actors == {f"token:ci-deployer#{token_id}"}, (action, actors)


def test_without_auth_the_server_user_stays_the_actor(tmp_path: Path, start_server: Any) -> None:
    settings = diabetes_home(tmp_path / "home")
    before = _events(settings)
    server = start_server(settings.home)  # DOCKYARD_USER=server in its environment
    server.wait_ready()
    _changes(server.url, {})
    made = _made_through_the_api(settings, before)
    assert {"deployment.rollback", "alias.set"} <= set(made), made
    assert set().union(*made.values()) == {"server"}
