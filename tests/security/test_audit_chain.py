"""Attacks on the append-only audit trail (issue 13, item 6), on SQLite and PostgreSQL.

The database refuses what triggers can refuse (UPDATE, DELETE, SQLite's REPLACE, PostgreSQL's
TRUNCATE and upserts); what a database owner does past them (dropping or disabling the
triggers, then editing, deleting or moving rows) ``dockyard events verify`` finds at the
event where the chain breaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from dockyard.registry import Registry
from dockyard.registry import database as database_module
from dockyard.registry.database import Database
from dockyard.settings import Settings

DETAILS = [  # values whose JSON differs between SQLite text and PostgreSQL JSONB if mishandled
    {"float": 0.1, "integral": 3.0, "huge": 1e20, "tiny": 1.5e-7, "negative_zero": -0.0},
    {"text": "naïve — ünïcode ✓", "nested": {"b": [1, 2.5, None, True], "a": {}}},
    {"nan": float("nan"), "tuple": (1, 2), "int_key": {1: "one"}},
    {},
    {"quote": 'a "quoted" \\ backslash\nnewline'},
]


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry.open(settings) as opened:
        for i, details in enumerate(DETAILS):
            opened.event_log.record("tester", f"test.event{i}", "m", None, details=details)
        yield opened


def raw(registry: Registry, *statements: str) -> None:
    """Run SQL as the database's owner would, past Dockyard's code."""
    with registry.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def refused(registry: Registry, statement: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught:
        raw(registry, statement)
    return str(caught.value)


def ids(registry: Registry) -> list[int]:
    return [event.id for event in reversed(registry.events(limit=1000))]


def verify(registry: Registry) -> list[tuple[int, str]]:
    report = registry.verify_events()
    assert report.events == len(ids(registry))
    return [(problem.event, problem.kind) for problem in report.breaks]


def disable_guards(registry: Registry) -> None:
    """What an owner does first: drop (SQLite) or disable (PostgreSQL) the triggers."""
    if registry.db.dialect == "sqlite":
        raw(
            registry,
            "DROP TRIGGER events_no_update",
            "DROP TRIGGER events_no_delete",
            "DROP TRIGGER events_no_replace",
        )
    else:
        raw(registry, "ALTER TABLE events DISABLE TRIGGER USER")


def test_a_fresh_chain_verifies_with_every_kind_of_json_value(registry: Registry) -> None:
    report = registry.verify_events()
    assert report.intact
    assert report.missing_guards == ()
    assert report.events == len(DETAILS)
    assert report.head == ids(registry)[-1]
    stored = registry.events(action="test.event0", limit=1)[0].details
    assert stored["huge"] == 1e20
    assert stored["float"] == 0.1
    assert isinstance(stored["integral"], float)  # stored as given; only the hash normalizes
    assert registry.events(action="test.event2", limit=1)[0].details["nan"] is None


def test_replace_and_upsert_cannot_rewrite_an_event(registry: Registry) -> None:
    first = ids(registry)[0]
    columns = "id, at, actor, action, model, version, before, after, details, prev_hash, hash"
    forged = (
        f"SELECT id, at, 'mallory', action, model, version, before, after, details, "
        f"prev_hash, hash FROM events WHERE id = {first}"
    )
    if registry.db.dialect == "sqlite":
        attacks = [
            f"INSERT OR REPLACE INTO events ({columns}) {forged}",
            f"REPLACE INTO events ({columns}) {forged}",
            f"UPDATE OR REPLACE events SET actor = 'mallory' WHERE id = {first}",
        ]
    else:
        attacks = [
            f"INSERT INTO events ({columns}) {forged} "
            "ON CONFLICT (id) DO UPDATE SET actor = 'mallory'",
        ]
    attacks += [
        f"UPDATE events SET actor = 'mallory' WHERE id = {first}",
        f"DELETE FROM events WHERE id = {first}",
    ]
    for attack in attacks:
        assert "append-only" in refused(registry, attack), attack
    assert registry.events(limit=1000)[-1].actor == "tester"
    assert verify(registry) == []


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """SQLite has no TRUNCATE (its DELETE is refused above); PostgreSQL's is refused too."""
    settings = Settings(home=tmp_path, database_url=postgres_url)
    with Registry.open(settings) as registry:
        for i, details in enumerate(DETAILS):
            registry.event_log.record("tester", f"test.event{i}", "m", None, details=details)
        _truncate_refused(registry)


def _truncate_refused(registry: Registry) -> None:
    assert "append-only" in refused(registry, "TRUNCATE events")
    assert "append-only" in refused(registry, "TRUNCATE events RESTART IDENTITY CASCADE")
    assert len(ids(registry)) == len(DETAILS)


def test_an_owner_editing_an_event_past_the_triggers_is_found_at_that_event(
    registry: Registry,
) -> None:
    third = ids(registry)[2]
    disable_guards(registry)
    raw(registry, f"UPDATE events SET actor = 'mallory' WHERE id = {third}")
    report = registry.verify_events()
    assert [(b.event, b.kind) for b in report.breaks] == [(third, "edited")]
    assert report.missing_guards  # the dropped or disabled triggers are named too


def test_editing_json_content_is_found(registry: Registry) -> None:
    second = ids(registry)[1]
    disable_guards(registry)
    raw(registry, f"UPDATE events SET details = '{{\"nested\": {{}}}}' WHERE id = {second}")
    assert verify(registry) == [(second, "edited")]


def test_a_rewritten_event_with_a_recomputed_hash_breaks_the_next_link(
    registry: Registry,
) -> None:
    from dockyard.registry.audit import canonical, chain_hash

    first, second, *_ = ids(registry)
    event = registry.events(limit=1000)[-1]
    prev = registry.verify_events()  # intact; the attacker knows the algorithm
    assert prev.intact
    text = canonical(
        at=event.at,
        actor="mallory",
        action=event.action,
        model=event.model,
        version=event.version,
        before=event.before,
        after=event.after,
        details=event.details,
    )
    rehashed = chain_hash("0" * 64, text)
    disable_guards(registry)
    raw(registry, f"UPDATE events SET actor = 'mallory', hash = '{rehashed}' WHERE id = {first}")
    assert verify(registry) == [(second, "missing")]


def test_a_log_rewritten_whole_from_an_event_on_is_found_by_an_earlier_anchor(
    registry: Registry,
) -> None:
    from dockyard.registry.audit import canonical, chain_hash

    head = registry.verify_events()
    assert head.head is not None
    assert head.head_hash is not None
    events = list(reversed(registry.events(limit=1000)))
    disable_guards(registry)
    with registry.db.engine.begin() as conn:
        last = conn.execute(sa.text(f"SELECT hash FROM events WHERE id = {events[0].id}"))
        prev_hash = last.scalar_one()
        for event in events[1:]:  # rewrite event 2 and recompute every later hash
            actor = "mallory" if event.id == events[1].id else event.actor
            digest = chain_hash(
                prev_hash,
                canonical(
                    at=event.at,
                    actor=actor,
                    action=event.action,
                    model=event.model,
                    version=event.version,
                    before=event.before,
                    after=event.after,
                    details=event.details,
                ),
            )
            conn.execute(
                sa.text("UPDATE events SET actor = :a, prev_hash = :p, hash = :h WHERE id = :i"),
                {"a": actor, "p": prev_hash, "h": digest, "i": event.id},
            )
            prev_hash = digest
    assert verify(registry) == []  # whole again: only an anchor kept elsewhere tells
    report = registry.verify_events({head.head: head.head_hash})
    assert [(b.event, b.kind) for b in report.breaks] == [(head.head, "edited")]
    cut = registry.verify_events({head.head + 1000: head.head_hash})
    assert [(b.event, b.kind) for b in cut.breaks] == [(head.head + 1000, "missing")]


def test_a_deleted_event_is_found_at_the_one_after_it(registry: Registry) -> None:
    events = ids(registry)
    disable_guards(registry)
    raw(registry, f"DELETE FROM events WHERE id = {events[2]}")
    report = registry.verify_events()
    assert [(b.event, b.kind) for b in report.breaks] == [(events[3], "missing")]
    assert f"#{events[1]} and #{events[3]}" in report.breaks[0].message


def test_deleting_the_first_events_is_found(registry: Registry) -> None:
    events = ids(registry)
    disable_guards(registry)
    raw(registry, f"DELETE FROM events WHERE id IN ({events[0]}, {events[1]})")
    assert verify(registry) == [(events[2], "missing")]


def test_reordered_events_are_found(registry: Registry) -> None:
    _, b, c, *_ = ids(registry)
    disable_guards(registry)
    raw(
        registry,
        f"UPDATE events SET id = -1 WHERE id = {b}",
        f"UPDATE events SET id = {b} WHERE id = {c}",
        f"UPDATE events SET id = {c} WHERE id = -1",
    )
    found = verify(registry)
    assert found[0] == (b, "reordered")
    assert {kind for _, kind in found} == {"reordered"}


def test_verify_on_the_command_line_says_where_and_exits_1(
    registry: Registry, settings: Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(settings.home), COLUMNS="200")
    if settings.database_url:
        env["DOCKYARD_DATABASE_URL"] = settings.database_url

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "events", "verify", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    intact = cli()
    assert intact.returncode == 0, intact.stderr
    head = ids(registry)[-1]
    assert intact.stdout.startswith(f"{len(DETAILS)} events, head {head}:")
    assert intact.stdout.rstrip().endswith(": intact")
    anchor = intact.stdout.split(" head ")[1].split(": ")[0]  # ID:SHA256, kept elsewhere
    assert cli("--anchor", anchor).returncode == 0
    bad = cli("--anchor", f"{head}:not-a-hash")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "is not ID:SHA256" in bad.stderr

    fourth = ids(registry)[3]
    disable_guards(registry)
    raw(registry, f"UPDATE events SET action = 'test.innocent' WHERE id = {fourth}")
    broken = cli()
    assert broken.returncode == 1
    assert broken.stdout.startswith(f"event #{fourth}: edited: event #{fourth} was changed")
    assert "warning: the append-only trigger" in broken.stdout
    assert "BROKEN at 1 event(s)" in broken.stdout
    as_json = cli("--json")
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["intact"] is False
    assert [(b["event"], b["kind"]) for b in body["breaks"]] == [(fourth, "edited")]
    assert body["head"]["id"] == head


def test_concurrent_writers_extend_one_chain(registry: Registry) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(10):
                registry.event_log.record(
                    f"w{worker}", "test.concurrent", None, None, details={"i": i}
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids(registry)) == len(DETAILS) + 80
    assert verify(registry) == []


def test_migrating_a_pre_chain_database_chains_its_events(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        config = Config()
        config.set_main_option(
            "script_location", str(Path(database_module.__file__).parent / "migrations")
        )
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
        with db.engine.begin() as conn:
            for i, details in enumerate(DETAILS[:2] + DETAILS[3:]):  # JSON-safe ones
                conn.execute(
                    sa.text(
                        "INSERT INTO events (at, actor, action, model, version, before, after, "
                        "details) VALUES (:at, 'old', :action, 'm', '1.0.0', NULL, :after, "
                        ":details)"
                    ),
                    {
                        "at": f"2026-11-2{i} 10:00:00.12345{i}",
                        "action": f"old.event{i}",
                        "after": json.dumps({"n": i}),
                        "details": json.dumps(details),
                    },
                )
    finally:
        db.dispose()
    with Registry.open(settings) as registry:  # migrates to HEAD
        old = ids(registry)
        assert len(old) == 4
        registry.event_log.record("new", "test.after", None, None, details={})
        report = registry.verify_events()
        assert report.intact, report.breaks
        assert report.missing_guards == ()
        assert report.events == 5
        disable_guards(registry)
        raw(registry, f"UPDATE events SET actor = 'mallory' WHERE id = {old[1]}")
        assert verify(registry) == [(old[1], "edited")]
