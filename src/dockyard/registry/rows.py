"""Conversions between the registry's SQL rows and its records (:mod:`dockyard.registry.types`).

Timestamps are written as aware UTC and read back as aware UTC: SQLite returns them naive, so
every read goes through :func:`utc`. JSON columns read back ``NULL`` as ``None``; the records
get empty mappings and tuples instead. No queries here: the store and the event log run them
and hand the rows over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from dockyard.registry.semver import SemVer
from dockyard.registry.types import Event, Model, NewVersion, Version


def now() -> datetime:
    """The timestamp a new row gets."""
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (a naive one, as SQLite returns it, is UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def version_values(
    new: NewVersion, version: SemVer, *, model_id: int, at: datetime, actor: str
) -> dict[str, Any]:
    """The ``versions`` row for ``new`` registered as ``version`` (its profile goes to
    ``profiles``, keyed by the new row's id)."""
    return {
        "model_id": model_id,
        "version": str(version),
        "major": version.major,
        "minor": version.minor,
        "patch": version.patch,
        "prerelease": version.prerelease,
        "runtime": new.runtime,
        "digest": new.digest,
        "size": new.size,
        "status": "active",
        "trusted": new.trusted,
        "trusted_types": list(new.trusted_types),
        "options": dict(new.options),
        "signature": dict(new.signature) if new.signature is not None else None,
        "metrics": dict(new.metrics),
        "params": dict(new.params),
        "tags": dict(new.tags),
        "lineage": dict(new.lineage),
        "environment": dict(new.environment),
        "description": new.description,
        "created_at": at,
        "created_by": actor,
        "accelerated": dict(new.accelerated) if new.accelerated is not None else None,
    }


def to_version(row: Row[Any], aliases: tuple[str, ...]) -> Version:
    """A ``versions`` row joined with its model's name (as ``model``), and its aliases."""
    return Version(
        model=row.model,
        version=row.version,
        runtime=row.runtime,
        digest=row.digest,
        size=row.size,
        status=row.status,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        trusted=bool(row.trusted),
        trusted_types=tuple(row.trusted_types or ()),
        options=row.options or {},
        signature=row.signature,
        metrics=row.metrics or {},
        params=row.params or {},
        tags=row.tags or {},
        lineage=row.lineage or {},
        environment=row.environment or {},
        description=row.description,
        aliases=aliases,
        accelerated=row.accelerated,
    )


def to_model(
    row: Row[Any],
    *,
    aliases: dict[str, str],
    latest: SemVer | None,
    active: int,
    archived: int,
) -> Model:
    """A ``models`` row with the summary of its versions (counted by the caller)."""
    return Model(
        name=row.name,
        description=row.description,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        tags=row.tags or {},
        aliases=aliases,
        latest=str(latest) if latest is not None else None,
        versions=active + archived,
        archived=archived,
    )


def to_event(row: Row[Any]) -> Event:
    """An ``events`` row (its chain hashes stay in the table: :mod:`dockyard.registry.events`
    checks them)."""
    return Event(
        id=row.id,
        at=utc(row.at),
        actor=row.actor,
        action=row.action,
        model=row.model,
        version=row.version,
        before=row.before,
        after=row.after,
        details=row.details or {},
    )
