"""Deployments and their revisions in the registry's database.

Every change is stored as a new revision, so rolling back is putting an earlier revision's
spec back (as a new revision: history only grows); each write records its audit event in
the same transaction. Business rules (references resolve, who may do what) belong to
:class:`dockyard.deploy.service.Deployments`; this is the storage adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.deploy.spec import Deployment, DeploymentSpec, Revision, read_stored
from dockyard.errors import InvalidRequestError, NotFoundError, UnreadableSpecError
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.events import record_event
from dockyard.registry.refs import check_model_name


class DeploymentStore:
    """Deployments and their revisions in the registry's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(
        self,
        name: str,
        spec: DeploymentSpec,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
        action: str = "deployment.update",
    ) -> Deployment:
        """Create or change a deployment; an unchanged spec creates no revision (unless
        ``force``: a rollback to what is already served is still recorded)."""
        check_model_name(name)
        with self.db.write() as conn:
            return self.put_in(
                conn, name, spec, actor=actor, reason=reason, force=force, action=action
            )

    def put_in(
        self,
        conn: Connection,
        name: str,
        spec: DeploymentSpec,
        *,
        actor: str,
        reason: str = "",
        force: bool = False,
        action: str = "deployment.update",
    ) -> Deployment:
        """:meth:`put` inside the caller's write transaction, so that a change which also
        writes elsewhere (a rollout's claim and event) commits whole or not at all."""
        body = spec.model_dump(mode="json")
        now = datetime.now(UTC)
        row = conn.execute(sa.select(t.deployments).where(t.deployments.c.name == name)).first()
        if row is not None and row.spec == body and not force:
            return _deployment(row)
        revision = 1 if row is None else row.revision + 1
        values = {"revision": revision, "spec": body, "updated_at": now, "updated_by": actor}
        if row is None:
            deployment_id = conn.execute(
                t.deployments.insert().values(name=name, **values)
            ).inserted_primary_key
            assert deployment_id is not None
            key = deployment_id[0]
        else:
            key = row.id
            conn.execute(t.deployments.update().where(t.deployments.c.id == key).values(**values))
        conn.execute(
            t.deployment_revisions.insert().values(
                deployment_id=key,
                revision=revision,
                spec=body,
                reason=reason,
                created_at=now,
                created_by=actor,
            )
        )
        record_event(
            conn,
            actor,
            action,
            None,
            None,
            before=row.spec if row is not None else None,
            after=body,
            details={"deployment": name, "revision": revision, "reason": reason},
        )
        return Deployment(name, revision, spec, now, actor)

    def get(self, name: str) -> Deployment:
        with self.db.read() as conn:
            return self.get_in(conn, name)

    def get_in(self, conn: Connection, name: str) -> Deployment:
        """:meth:`get` inside the caller's transaction."""
        row = conn.execute(sa.select(t.deployments).where(t.deployments.c.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"No endpoint named {name!r}.",
                hint="List endpoints with: dockyard deployments",
            )
        return _deployment(row)

    def scan(self) -> list[Deployment | Unreadable]:
        """Every deployment, by name; one whose spec this version cannot read as
        :class:`Unreadable` (what the serving manager follows)."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.deployments).order_by(t.deployments.c.name)).all()
        found: list[Deployment | Unreadable] = []
        for row in rows:
            try:
                found.append(_deployment(row))
            except UnreadableSpecError as exc:
                found.append(Unreadable(row.name, row.revision, exc))
        return found

    def history(self, name: str) -> list[Revision]:
        """Every revision of a deployment, newest first."""
        deployment_id = self._id(name)
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(t.deployment_revisions)
                .where(t.deployment_revisions.c.deployment_id == deployment_id)
                .order_by(t.deployment_revisions.c.revision.desc())
            ).all()
        return [
            Revision(
                revision=row.revision,
                spec=row.spec,
                reason=row.reason,
                created_at=_aware(row.created_at),
                created_by=row.created_by,
            )
            for row in rows
        ]

    def rollback(
        self, name: str, *, to: int | None = None, actor: str, reason: str = ""
    ) -> Deployment:
        """Put an earlier revision's spec back, live (as a new revision). Default: the one
        before the current revision; naming the current one re-applies it."""
        current = self.get(name)
        target = current.revision - 1 if to is None else to
        if to is not None and not 1 <= to <= current.revision:  # no such revision: not found
            raise NotFoundError(
                f"Endpoint {name!r} has no revision {to}; its revisions are 1..{current.revision}.",
                hint=f"See them with: dockyard deployments history {name}",
            )
        if target < 1:  # the default target of an endpoint with one revision
            raise InvalidRequestError(
                f"Endpoint {name!r} has no revision {target} to roll back to"
                + (" (it has only one revision)." if current.revision == 1 else "."),
                hint=f"Pick one of 1..{current.revision - 1}: dockyard deployments history {name}"
                if current.revision > 1
                else "Deploy a second version first.",
            )
        earlier = next(r for r in self.history(name) if r.revision == target)
        spec = DeploymentSpec.parse(earlier.spec)  # a rollback is a user's action: strict
        why = reason or f"rollback to revision {target}"
        return self.put(
            name, spec, actor=actor, reason=why, force=True, action="deployment.rollback"
        )

    def _id(self, name: str) -> int:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(t.deployments.c.id).where(t.deployments.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"No endpoint named {name!r}.", hint="List endpoints with: dockyard deployments"
            )
        return int(row.id)

    def list(self) -> list[Deployment]:
        """Every deployment this version can read, by name."""
        return [found for found in self.scan() if isinstance(found, Deployment)]


@dataclass(frozen=True)
class Unreadable:
    """A deployment whose current revision this version of Dockyard cannot read."""

    name: str
    revision: int
    error: UnreadableSpecError


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _deployment(row: Any) -> Deployment:
    try:
        spec, ignored = read_stored(row.spec)
    except UnreadableSpecError as exc:
        raise UnreadableSpecError(
            f"Endpoint {row.name!r}, revision {row.revision}: {exc.message}",
            hint=exc.hint,
            details={"endpoint": row.name, "revision": row.revision, **(exc.details or {})},
        ) from None
    return Deployment(
        name=row.name,
        revision=row.revision,
        spec=spec,
        updated_at=_aware(row.updated_at),
        updated_by=row.updated_by,
        ignored=ignored,
    )
