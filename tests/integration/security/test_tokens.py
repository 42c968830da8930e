"""API tokens on SQLite and PostgreSQL: hash-only storage, expiry, revocation, the audit
trail, the per-request cache, and the ``dockyard tokens`` command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dockyard.errors import ConflictError, InvalidNameError, InvalidRequestError, NotFoundError
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.security.tokens import Principal, TokenCache, TokenStore, hash_secret
from dockyard.settings import Settings

SECRET = re.compile(r"^dky_[A-Za-z0-9_-]{43}$")


class WallClock:
    """A settable UTC clock for expiry."""

    def __init__(self) -> None:
        self.value = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        self.value += timedelta(**delta)


class Ticker:
    """A settable monotonic clock for the cache."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


class CountingStore(TokenStore):
    """A real store that counts its database lookups."""

    lookups = 0

    def lookup(self, digest: str) -> Principal | None:
        self.lookups += 1
        return super().lookup(digest)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url)
    database.ensure_schema()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def store(db: Database, clock: WallClock) -> CountingStore:
    return CountingStore(db, now=clock)


def _dump(db: Database) -> str:
    """Every row of every table, as text."""
    with db.read() as conn:
        rows = [
            repr(tuple(row))
            for table in t.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        ]
    return "\n".join(rows)


def _events(db: Database) -> list[dict[str, Any]]:
    with db.read() as conn:
        return [
            dict(row._mapping) for row in conn.execute(sa.select(t.events).order_by(t.events.c.id))
        ]


# --- the store -----------------------------------------------------------------------------


def test_created_secret_verifies_to_its_principal(store: TokenStore) -> None:
    info, secret = store.create("fraud-app", ["predict", "read"], actor="alice")
    assert SECRET.match(secret)
    assert info.name == "fraud-app"
    assert info.scopes == ("read", "predict")
    assert info.status == "active"
    assert info.created_by == "alice"
    assert info.expires_at is None
    assert info.revoked_at is None
    principal = store.verify(secret)
    assert principal is not None
    assert principal.id is not None  # names the token in the audit trail
    assert principal == Principal(
        "fraud-app", frozenset({"read", "predict"}), None, id=principal.id
    )
    assert principal.allows("predict")
    assert principal.allows("read")
    assert not principal.allows("deploy")


def test_secrets_are_random(store: TokenStore) -> None:
    secrets = {store.create(f"t{i}", ["read"], actor="alice")[1] for i in range(5)}
    assert len(secrets) == 5


def test_only_the_hash_of_a_secret_is_stored(db: Database, store: TokenStore) -> None:
    _, secret = store.create("ci", ["deploy"], actor="alice")
    store.revoke("ci", actor="bob")
    everything = _dump(db)
    assert "ci" in everything  # the dump really holds the token's rows
    assert secret not in everything
    assert secret[4:] not in everything  # not even without its prefix
    with db.read() as conn:
        stored = conn.execute(sa.select(t.tokens.c.hash)).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)


def test_listing_never_shows_a_hash(store: TokenStore) -> None:
    _, secret = store.create("ci", ["deploy"], actor="alice")
    listed = store.list()
    assert [i.name for i in listed] == ["ci"]
    text = json.dumps([i.to_dict() for i in listed])
    assert hash_secret(secret) not in text
    assert secret not in text
    assert set(listed[0].to_dict()) == {
        "name",
        "scopes",
        "status",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
    }


def test_every_change_is_an_event_without_secrets(db: Database, store: TokenStore) -> None:
    _, secret = store.create("ci", ["deploy", "predict"], actor="alice")
    store.revoke("ci", actor="bob")
    events = _events(db)
    assert [(e["action"], e["actor"], e["model"], e["version"]) for e in events] == [
        ("token.create", "alice", None, None),
        ("token.revoke", "bob", None, None),
    ]
    for event in events:
        assert event["details"] == {"token": "ci", "scopes": ["predict", "deploy"]}
        text = repr(event)
        assert secret not in text
        assert hash_secret(secret) not in text
    assert events[1]["before"]["revoked_at"] is None
    assert events[1]["after"]["revoked_at"].startswith("2026-01-01T12:00")


def test_a_name_is_never_reused(store: TokenStore) -> None:
    store.create("ci", ["read"], actor="alice")
    with pytest.raises(ConflictError, match="'ci' already exists"):
        store.create("ci", ["admin"], actor="alice")
    store.revoke("ci", actor="alice")
    with pytest.raises(ConflictError):
        store.create("ci", ["read"], actor="alice")
    assert len(store.list()) == 1


def test_concurrent_creates_of_one_name_let_exactly_one_win(store: TokenStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            store.create("race", ["read"], actor="alice")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["created"]


def test_revoked_token_no_longer_verifies(store: TokenStore, db: Database) -> None:
    _, secret = store.create("app", ["predict"], actor="alice")
    _, other = store.create("other", ["predict"], actor="alice")
    revoked = store.revoke("app", actor="bob")
    assert revoked.status == "revoked"
    assert revoked.revoked_at is not None
    assert store.verify(secret) is None
    assert store.verify(other) is not None
    again = store.revoke("app", actor="carol")  # idempotent: no second event
    assert again.revoked_at == revoked.revoked_at
    assert [e["action"] for e in _events(db)].count("token.revoke") == 1


def test_revoking_an_unknown_token_is_not_found(store: TokenStore) -> None:
    with pytest.raises(NotFoundError, match="No token named 'ghost'"):
        store.revoke("ghost", actor="alice")
    with pytest.raises(NotFoundError):
        store.get("ghost")


def test_token_expires_at_its_time(store: TokenStore, clock: WallClock) -> None:
    info, secret = store.create("temp", ["read"], actor="alice", expires_in=timedelta(hours=1))
    assert info.expires_at == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    clock.advance(minutes=59, seconds=59)
    assert store.verify(secret) is not None
    assert store.get("temp").status == "active"
    clock.advance(seconds=1)
    assert store.verify(secret) is None
    assert store.get("temp").status == "expired"
    assert [i.status for i in store.list()] == ["expired"]


def test_malformed_or_unknown_secrets_do_not_verify(store: CountingStore) -> None:
    store.create("app", ["admin"], actor="alice")
    for secret in ["", "dky_", "nope", "dky_" + "A" * 43, "Bearer dky_x", "dky_" + "A" * 1000]:
        assert store.verify(secret) is None, secret
    assert store.lookups == 2  # only the two well-formed ones were looked up


def test_a_secret_must_match_exactly(store: TokenStore) -> None:
    _, secret = store.create("app", ["admin"], actor="alice")
    assert store.verify(secret + " ") is None
    assert store.verify(secret[:-1]) is None
    assert store.verify(secret.upper()) is None


def test_bad_requests_change_nothing(store: TokenStore, db: Database) -> None:
    with pytest.raises(InvalidRequestError, match="at least one scope"):
        store.create("app", [], actor="alice")
    with pytest.raises(InvalidRequestError, match="'write' is not a scope"):
        store.create("app", ["read", "write"], actor="alice")
    with pytest.raises(InvalidNameError):
        store.create("no spaces", ["read"], actor="alice")
    with pytest.raises(InvalidRequestError, match="must be positive"):
        store.create("app", ["read"], actor="alice", expires_in=timedelta(0))
    assert store.list() == []
    assert _events(db) == []


# --- the cache -----------------------------------------------------------------------------


def test_cache_answers_from_memory_within_ttl(store: CountingStore) -> None:
    _, secret = store.create("app", ["predict"], actor="alice")
    ticker = Ticker()
    cache = TokenCache(store, ttl_s=5.0, clock=ticker)
    assert cache.peek(secret) == (False, None)
    first = cache.verify(secret)
    assert first is not None
    assert first.name == "app"
    for _ in range(100):
        assert cache.verify(secret) == first
    assert store.lookups == 1
    assert cache.peek(secret) == (True, first)


def test_revocation_takes_effect_when_the_entry_ages_out(store: CountingStore) -> None:
    _, secret = store.create("app", ["predict"], actor="alice")
    ticker = Ticker()
    cache = TokenCache(store, ttl_s=5.0, clock=ticker)
    assert cache.verify(secret) is not None
    store.revoke("app", actor="bob")
    ticker.value += 4.999
    assert cache.verify(secret) is not None  # still cached: at most ttl_s stale
    ticker.value += 0.001
    assert cache.verify(secret) is None
    assert store.lookups == 2
    cache.clear()
    assert len(cache) == 0


def test_clear_makes_a_local_revocation_immediate(store: TokenStore) -> None:
    _, secret = store.create("app", ["predict"], actor="alice")
    cache = TokenCache(store, ttl_s=60.0, clock=Ticker())
    assert cache.verify(secret) is not None
    store.revoke("app", actor="bob")
    cache.clear()
    assert cache.verify(secret) is None


def test_unknown_secrets_are_remembered_too(store: CountingStore) -> None:
    ticker = Ticker()
    cache = TokenCache(store, ttl_s=5.0, clock=ticker)
    unknown = "dky_" + "x" * 43
    for _ in range(10):
        assert cache.verify(unknown) is None
    assert store.lookups == 1
    assert cache.peek(unknown) == (True, None)
    ticker.value += 5.0
    assert cache.peek(unknown) == (False, None)


def test_malformed_secrets_never_reach_the_database(store: CountingStore) -> None:
    cache = TokenCache(store, clock=Ticker())
    assert cache.verify("hunter2") is None
    assert cache.peek("hunter2") == (True, None)
    assert store.lookups == 0
    assert len(cache) == 0


def test_a_cached_grant_never_outlives_its_token(store: TokenStore, clock: WallClock) -> None:
    _, secret = store.create("temp", ["read"], actor="alice", expires_in=timedelta(seconds=2))
    ticker = Ticker()
    cache = TokenCache(store, ttl_s=60.0, clock=ticker)
    assert cache.verify(secret) is not None
    ticker.value += 1.9
    clock.advance(seconds=1.9)
    assert cache.verify(secret) is not None
    ticker.value += 0.1
    clock.advance(seconds=0.1)
    assert cache.verify(secret) is None


def test_cache_size_is_bounded(store: TokenStore) -> None:
    ticker = Ticker()
    cache = TokenCache(store, ttl_s=5.0, clock=ticker, max_entries=3)
    for i in range(10):
        cache.verify(f"dky_unknown{i}")
        assert len(cache) <= 3
    assert cache.peek("dky_unknown9") == (True, None)  # the newest stays
    assert cache.peek("dky_unknown0") == (False, None)  # the oldest went


# --- the command line ----------------------------------------------------------------------


def _cli(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_USER="cli-user", COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "tokens", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = _cli(home, "create", "fraud-app", "--scope", "predict", "--expires-days", "30")
    secrets = [line for line in created.stdout.splitlines() if line.startswith("dky_")]
    assert len(secrets) == 1
    assert SECRET.match(secrets[0])
    secret = secrets[0]
    assert "fraud-app" in created.stdout
    assert "predict" in created.stdout
    assert "cannot be shown again" in created.stderr

    as_json = json.loads(_cli(home, "create", "ci", "--scope", "deploy", "--json").stdout)
    assert SECRET.match(as_json["secret"])
    assert as_json["scopes"] == ["deploy"]
    assert as_json["created_by"] == "cli-user"

    listed = _cli(home, "list")
    assert "fraud-app" in listed.stdout
    assert "ci" in listed.stdout
    assert secret not in listed.stdout
    assert as_json["secret"] not in listed.stdout
    rows = json.loads(_cli(home, "list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("ci", "active"), ("fraud-app", "active")]
    assert all("secret" not in r and "hash" not in r for r in rows)
    assert rows[1]["expires_at"] is not None

    assert "Revoked token fraud-app" in _cli(home, "revoke", "fraud-app").stdout
    rows = json.loads(_cli(home, "list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("ci", "active"), ("fraud-app", "revoked")]

    # the secret the command printed is the one the server would accept
    db = Database(Settings(home=home).resolved_database_url)
    try:
        store = TokenStore(db)
        assert store.verify(secret) is None  # revoked
        principal = store.verify(as_json["secret"])
        assert principal is not None
        assert (principal.name, principal.scopes) == ("ci", frozenset({"deploy"}))
        assert secret not in _dump(db)
    finally:
        db.dispose()


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    line = _one_error_line(_cli(home, "create", "app", "--scope", "superuser", code=2))
    assert "'superuser' is not a scope" in line
    assert "read, predict, deploy, admin" in line
    line = _one_error_line(_cli(home, "create", "app", code=2))
    assert "at least one --scope" in line
    _cli(home, "create", "app", "--scope", "read")
    line = _one_error_line(_cli(home, "create", "app", "--scope", "read", code=5))
    assert "already exists" in line
    line = _one_error_line(_cli(home, "revoke", "ghost", code=4))
    assert "No token named 'ghost'" in line


def test_cli_tokens_help_is_light() -> None:
    probe = (
        "import sys, json\nfrom dockyard.cli import app\n"
        "try:\n    app(['tokens', 'create', '--help'], standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('sqlalchemy', 'alembic', 'prometheus_client') "
        "if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert "--scope" in result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
