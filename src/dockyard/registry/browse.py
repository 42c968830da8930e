"""Read-only queries for browsing a large registry a page at a time (the web console).

Each page is one bounded set of queries whatever the registry holds: the page of models is
searched, sorted, counted and cut in SQL, then its latest versions and aliases are read for
that page's models only (two more queries, never one per model); versions and events are
paged by ``LIMIT``/``OFFSET`` or an id cursor. Nothing here changes the registry: actions go
through :class:`~dockyard.registry.Registry` and :class:`~dockyard.deploy.service.Deployments`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa

from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.semver import SemVer
from dockyard.registry.store import _VERSION_COLUMNS, _event, _model_not_found, _utc, _version
from dockyard.registry.types import Event, Version

ModelSort = Literal["name", "versions", "registered"]
MODEL_SORTS: Final[tuple[str, ...]] = ("name", "versions", "registered")


@dataclass(frozen=True)
class ModelRow:
    """One line of the models list."""

    name: str
    description: str
    versions: int
    latest: str | None
    last_registered: datetime | None
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """A page of rows and how many there are in all."""

    rows: list[Any]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total


class Catalog:
    """Paged reads of models, versions and events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def models(
        self,
        *,
        search: str = "",
        sort: ModelSort = "name",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        """Models whose name contains ``search`` (any case), sorted and cut in SQL."""
        m, v = t.models.c, t.versions.c
        stats = (
            sa.select(
                v.model_id,
                sa.func.count().label("n"),
                sa.func.max(v.created_at).label("last"),
            )
            .group_by(v.model_id)
            .subquery()
        )
        query = sa.select(m.id, m.name, m.description, stats.c.n, stats.c.last).outerjoin(
            stats, stats.c.model_id == m.id
        )
        if search:
            query = query.where(
                sa.func.lower(m.name).contains(search.lower()[:128], autoescape=True)
            )
        key: Any = {"name": m.name, "versions": stats.c.n, "registered": stats.c.last}[sort]
        ordered = key.desc() if descending else key.asc()
        limit, offset = max(1, min(limit, 500)), max(0, offset)
        with self.db.read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(query.subquery())
            ).scalar_one()
            rows = conn.execute(query.order_by(ordered, m.name).offset(offset).limit(limit)).all()
            ids = [row.id for row in rows]
            latest = self._latest(conn, ids)
            aliases = self._aliases(conn, ids)
        models = [
            ModelRow(
                name=row.name,
                description=row.description,
                versions=int(row.n or 0),
                latest=latest.get(row.id),
                last_registered=_utc(row.last) if row.last is not None else None,
                aliases=aliases.get(row.id, {}),
            )
            for row in rows
        ]
        return Page(models, int(total), offset, limit)

    def versions(self, name: str, *, offset: int = 0, limit: int = 50) -> Page:
        """A model's versions, highest first, one page of them."""
        m, v, a = t.models.c, t.versions.c, t.aliases.c
        limit, offset = max(1, min(limit, 500)), max(0, offset)
        with self.db.read() as conn:
            model_id = conn.execute(sa.select(m.id).where(m.name == name)).scalar()
            if model_id is None:
                raise _model_not_found(name)
            total = conn.execute(
                sa.select(sa.func.count()).where(v.model_id == model_id)
            ).scalar_one()
            rows = conn.execute(
                sa.select(v.id, m.name.label("model"), *_VERSION_COLUMNS)
                .join(t.models, m.id == v.model_id)
                .where(v.model_id == model_id)
                .order_by(v.major.desc(), v.minor.desc(), v.patch.desc(), v.id.desc())
                .offset(offset)
                .limit(limit)
            ).all()
            found: dict[int, list[str]] = {}
            ids = [row.id for row in rows]
            for version_id, alias in conn.execute(
                sa.select(a.version_id, a.name).where(a.version_id.in_(ids)).order_by(a.name)
            ):
                found.setdefault(version_id, []).append(alias)
        versions: list[Version] = [_version(row, tuple(found.get(row.id, ()))) for row in rows]
        return Page(versions, int(total), offset, limit)

    def events(
        self,
        *,
        model: str | None = None,
        version: str | None = None,
        endpoint: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Event]:
        """Audit events, newest first, filtered; ``before`` (an event id) pages backwards.
        ``action`` ending in ``.`` matches every action it starts (``rollout.``)."""
        e = t.events.c
        query = sa.select(t.events).order_by(e.id.desc()).limit(max(1, min(limit, 1000)))
        if model:
            query = query.where(e.model == model)
        if version:
            query = query.where(e.version == version)
        if actor:
            query = query.where(e.actor == actor)
        if action:
            query = query.where(
                e.action.startswith(action, autoescape=True)
                if action.endswith(".")
                else e.action == action
            )
        if endpoint:
            details = sa.type_coerce(e.details, sa.JSON)
            query = query.where(details["deployment"].as_string() == endpoint)
        if before is not None:
            query = query.where(e.id < before)
        with self.db.read() as conn:
            return [_event(row) for row in conn.execute(query)]

    def _latest(self, conn: sa.Connection, ids: list[int]) -> dict[int, str]:
        """Each model's highest active version: the rows tied on (major, minor, patch) come
        from SQL, the pre-release order among them from :class:`SemVer`."""
        if not ids:
            return {}
        v = t.versions.c
        rank = (
            sa.func.rank()
            .over(
                partition_by=v.model_id,
                order_by=(v.major.desc(), v.minor.desc(), v.patch.desc()),
            )
            .label("rank")
        )
        ranked = (
            sa.select(v.model_id, v.version, rank)
            .where(v.model_id.in_(ids), v.status == "active")
            .subquery()
        )
        best: dict[int, SemVer] = {}
        for model_id, text in conn.execute(
            sa.select(ranked.c.model_id, ranked.c.version).where(ranked.c.rank == 1)
        ):
            parsed = SemVer.parse(text)
            if model_id not in best or parsed > best[model_id]:
                best[model_id] = parsed
        return {model_id: str(version) for model_id, version in best.items()}

    def _aliases(self, conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, str]]:
        if not ids:
            return {}
        a, v = t.aliases.c, t.versions.c
        found: dict[int, dict[str, str]] = {}
        for model_id, alias, version in conn.execute(
            sa.select(a.model_id, a.name, v.version)
            .join(t.versions, v.id == a.version_id)
            .where(a.model_id.in_(ids))
            .order_by(a.name)
        ):
            found.setdefault(model_id, {})[alias] = version
        return found


__all__ = ["MODEL_SORTS", "Catalog", "ModelRow", "ModelSort", "Page"]
