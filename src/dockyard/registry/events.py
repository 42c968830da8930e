"""The audit trail in SQL: append an event, read events back, verify the chain.

Every change in the metadata database appends its event with :func:`record_event` inside the
transaction that makes the change, so the log never disagrees with the state it describes.
Each event is hash-chained to the one before it (:mod:`dockyard.registry.audit` has the
chain's rules; this module stores and reads it). :class:`EventLog` is the trail on its own:
listing, one event by id, an event that goes with no other change, and the verification walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.registry import tables as t
from dockyard.registry.audit import (
    GENESIS,
    ChainedEvent,
    ChainReport,
    canonical,
    chain_hash,
    storable,
    verify_chain,
)
from dockyard.registry.database import Database, hold_write_lock
from dockyard.registry.rows import now, to_event, utc
from dockyard.registry.types import Event


class EventLog:
    """SQL adapter for the audit trail (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_events(
        self, *, model: str | None = None, action: str | None = None, limit: int = 100
    ) -> list[Event]:
        """Newest first."""
        e = t.events.c
        query = sa.select(t.events).order_by(e.id.desc()).limit(max(1, min(limit, 10_000)))
        if model is not None:
            query = query.where(e.model == model)
        if action is not None:
            query = query.where(e.action == action)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [to_event(row) for row in rows]

    def get_event(self, event_id: int) -> Event | None:
        """One event by id (``None`` if there is none)."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.events).where(t.events.c.id == event_id)).first()
        return None if row is None else to_event(row)

    def record(
        self,
        actor: str,
        action: str,
        model: str | None,
        version: str | None,
        *,
        details: Mapping[str, Any],
    ) -> Event:
        """Append one event that goes with no other change (e.g. ``gate.evaluated``)."""
        with self.db.write() as conn:
            event_id = record_event(conn, actor, action, model, version, details=details)
            row = conn.execute(sa.select(t.events).where(t.events.c.id == event_id)).one()
            return to_event(row)

    def verify_events(self, anchors: Mapping[int, str] | None = None) -> ChainReport:
        """Walk the whole audit trail's hash chain (:func:`~dockyard.registry.audit.verify_chain`,
        with its ``anchors``) and check that the append-only triggers are in place."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.events).order_by(t.events.c.id)).all()
            missing = _missing_guards(conn)
        report = verify_chain(
            (
                ChainedEvent(
                    id=row.id,
                    prev_hash=row.prev_hash,
                    hash=row.hash,
                    text=canonical(
                        at=utc(row.at),
                        actor=row.actor,
                        action=row.action,
                        model=row.model,
                        version=row.version,
                        before=row.before,
                        after=row.after,
                        details=row.details,
                    ),
                )
                for row in rows
            ),
            anchors,
        )
        return replace(report, missing_guards=missing)


def record_event(
    conn: Connection,
    actor: str,
    action: str,
    model: str | None,
    version: str | None,
    *,
    before: Any = None,
    after: Any = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append to the audit trail inside the caller's transaction (with the change itself),
    chained to the newest event under the write lock (:mod:`dockyard.registry.audit`).
    Returns the new event's id."""
    hold_write_lock(conn)  # already held in Database.write(); this keeps any caller safe
    e = t.events.c
    prev = conn.execute(sa.select(e.hash).order_by(e.id.desc()).limit(1)).scalar() or GENESIS
    values: dict[str, Any] = {
        "at": now(),
        "actor": actor,
        "action": action,
        "model": model,
        "version": version,
        "before": storable(before),
        "after": storable(after),
        "details": storable(dict(details or {})),
    }
    digest = chain_hash(prev, canonical(**values))
    inserted = conn.execute(
        t.events.insert().values(**values, prev_hash=prev, hash=digest)
    ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


_GUARDS = {
    "sqlite": ("events_no_delete", "events_no_replace", "events_no_update"),
    "postgresql": ("events_append_only", "events_no_truncate"),
}
"""The triggers that keep ``events`` append-only (migrations 0001 and 0005)."""


def _missing_guards(conn: Connection) -> tuple[str, ...]:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
    elif dialect == "postgresql":
        query = (
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass "
            "AND NOT tgisinternal AND tgenabled <> 'D'"
        )
    else:
        return ()
    present = set(conn.execute(sa.text(query)).scalars())
    return tuple(name for name in _GUARDS[dialect] if name not in present)
