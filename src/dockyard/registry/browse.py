"""Read-only queries for browsing a large registry a page at a time (the web console).

Each page is one bounded set of queries whatever the registry holds: the page of models is
searched, sorted, counted and cut in SQL, then its latest versions and aliases are read for
that page's models only (two more queries, never one per model); versions and events are
paged by ``LIMIT``/``OFFSET`` or an id cursor. Nothing here changes the registry: actions go
through :class:`~dockyard.registry.Registry` and :class:`~dockyard.deploy.service.Deployments`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Literal

import sqlalchemy as sa

from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.rows import to_event, to_version, utc
from dockyard.registry.store import _VERSION_COLUMNS, _model_not_found
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
    archived: int = 0
    tags: dict[str, str] = field(default_factory=dict)


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
        """Models whose name contains ``search`` (any case), sorted and cut in SQL. Sorted
        by name, only the page's models are counted; sorted by a count or a time, the
        counts of every model are (one grouped scan)."""
        m = t.models.c
        where = []
        if search:
            where.append(sa.func.lower(m.name).contains(search.lower()[:128], autoescape=True))
        limit, offset = max(1, min(limit, 500)), max(0, offset)
        with self.db.read() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(t.models).where(*where)
            ).scalar_one()
            rows = self._rows(conn, where, sort, descending, offset, limit)
        return Page(rows, int(total), offset, limit)

    def model(self, name: str) -> ModelRow:
        """One model's line, with its archived versions counted (``ModelNotFoundError``
        when there is none)."""
        v = t.versions.c
        with self.db.read() as conn:
            rows = self._rows(conn, [t.models.c.name == name], "name", False, 0, 1)
            if not rows:
                raise _model_not_found(name)
            archived = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.versions.join(t.models))
                .where(t.models.c.name == name, v.status == "archived")
            ).scalar_one()
        return replace(rows[0], archived=int(archived))

    def _rows(
        self,
        conn: sa.Connection,
        where: list[Any],
        sort: ModelSort,
        descending: bool,
        offset: int,
        limit: int,
    ) -> list[ModelRow]:
        """A page of models with their counts, latest version and aliases. Counts and the
        newest registration come from the ``(model_id, ...)`` index alone (version ids grow
        with registration time, so the highest id is the last registered)."""
        m, v = t.models.c, t.versions.c
        latest = _latest_version().label("latest")
        columns = (v.model_id, sa.func.count().label("n"), sa.func.max(v.id).label("last_id"))
        models: Sequence[Any]
        if sort == "name":
            order = m.name.desc() if descending else m.name.asc()
            models = conn.execute(
                sa.select(m.id, m.name, m.description, m.tags, latest)
                .where(*where)
                .order_by(order)
                .offset(offset)
                .limit(limit)
            ).all()
            ids = [row.id for row in models]
            stats = {
                row.model_id: (row.n, row.last_id)
                for row in conn.execute(
                    sa.select(*columns).where(v.model_id.in_(ids)).group_by(v.model_id)
                )
            }
        else:
            grouped = sa.select(*columns).group_by(v.model_id).subquery()
            key = grouped.c.n if sort == "versions" else grouped.c.last_id
            models = conn.execute(
                sa.select(
                    m.id, m.name, m.description, m.tags, latest, grouped.c.n, grouped.c.last_id
                )
                .outerjoin(grouped, grouped.c.model_id == m.id)
                .where(*where)
                .order_by(key.desc() if descending else key.asc(), m.name)
                .offset(offset)
                .limit(limit)
            ).all()
            ids = [row.id for row in models]
            stats = {row.id: (row.n, row.last_id) for row in models}
        last_ids = [last for _, last in stats.values() if last is not None]
        registered = dict(
            conn.execute(sa.select(v.id, v.created_at).where(v.id.in_(last_ids))).all()
        )
        aliases = self._aliases(conn, ids)
        found = []
        for row in models:
            count, last_id = stats.get(row.id, (0, None))
            when = registered.get(last_id)
            found.append(
                ModelRow(
                    name=row.name,
                    description=row.description,
                    versions=int(count or 0),
                    latest=row.latest,
                    last_registered=utc(when) if when is not None else None,
                    aliases=aliases.get(row.id, {}),
                    tags=dict(row.tags or {}),
                )
            )
        return found

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
        versions: list[Version] = [to_version(row, tuple(found.get(row.id, ()))) for row in rows]
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
            return [to_event(row) for row in conn.execute(query)]

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


def _latest_version() -> Any:
    """Each model's highest active version, as a correlated subquery the database answers
    with a seek down the ``(model_id, major, minor, patch)`` index per listed model: a
    release above its pre-releases, then the newest of equals."""
    v = t.versions.c
    return (
        sa.select(v.version)
        .where(v.model_id == t.models.c.id, v.status == "active")
        .order_by(
            v.major.desc(), v.minor.desc(), v.patch.desc(), (v.prerelease == "").desc(), v.id.desc()
        )
        .limit(1)
        .correlate(t.models)
        .scalar_subquery()
    )


__all__ = ["MODEL_SORTS", "Catalog", "ModelRow", "ModelSort", "Page"]
