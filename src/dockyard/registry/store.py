"""The metadata store: models, versions, aliases and tags in SQL.

Every mutation is one transaction that checks its invariants, changes rows and appends its
audit event (:func:`~dockyard.registry.events.record_event`) together, so the log never
disagrees with the state it describes. Rows become records in :mod:`dockyard.registry.rows`;
the audit trail is read and verified through :class:`~dockyard.registry.events.EventLog`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dockyard.errors import (
    AliasNotFoundError,
    ConflictError,
    InvalidRequestError,
    ModelNotFoundError,
    VersionAliasedError,
    VersionArchivedError,
    VersionExistsError,
    VersionNotFoundError,
)
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.events import record_event
from dockyard.registry.refs import LATEST, ModelRef
from dockyard.registry.rows import now, to_model, to_version, version_values
from dockyard.registry.semver import Bump, SemVer, next_version
from dockyard.registry.types import Model, NewVersion, Version

_VERSION_COLUMNS = [c for c in t.versions.c if c.name not in ("id", "model_id")]


class MetadataStore:
    """SQL adapter for the registry's metadata (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- registration -------------------------------------------------------------------

    def add_version(
        self,
        name: str,
        new: NewVersion,
        *,
        actor: str,
        version: SemVer | None = None,
        bump: Bump = "patch",
        aliases: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> Version:
        """Insert a version; with ``version=None`` the next one after the highest is chosen
        while the model row is locked, so concurrent registrations never collide."""
        with self.db.write() as conn:
            model_id = self._lock_model(conn, name, actor)
            if version is None:
                version = next_version(self._highest(conn, model_id), bump)
            elif self._version_row(conn, model_id, str(version)) is not None:
                raise VersionExistsError(
                    f"{name}@{version} already exists; versions are immutable.",
                    hint="Register with another --version, or let Dockyard --bump it.",
                )
            inserted = conn.execute(
                t.versions.insert().values(
                    version_values(new, version, model_id=model_id, at=now(), actor=actor)
                )
            ).inserted_primary_key
            assert inserted is not None
            version_id = inserted[0]
            if new.profile is not None:
                conn.execute(t.profiles.insert().values(version_id=version_id, body=new.profile))
            registered = self._get_version(conn, name, str(version))
            record_event(
                conn,
                actor,
                "version.register",
                name,
                str(version),
                after=_summary(registered),
                details=dict(details or {}),
            )
            for alias in aliases:
                self._point_alias(conn, model_id, name, alias, version_id, str(version), actor)
            return self._get_version(conn, name, str(version))

    def _lock_model(self, conn: Connection, name: str, actor: str) -> int:
        """Create the model if needed and lock its row until the transaction ends."""
        # each dialect imported here only: a SQLite registry never loads PostgreSQL's
        if self.db.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            insert: Any = postgresql.insert(t.models)
        else:
            from sqlalchemy.dialects import sqlite

            insert = sqlite.insert(t.models)
        created = conn.execute(
            insert.values(name=name, description="", tags={}, created_at=now(), created_by=actor)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(t.models.c.id)
        ).first()
        if created is not None:
            record_event(conn, actor, "model.create", name, None, after={"name": name})
        query = sa.select(t.models.c.id).where(t.models.c.name == name)
        if self.db.dialect == "postgresql":
            query = query.with_for_update()
        model_id: int = conn.execute(query).scalar_one()
        return model_id

    def _highest(self, conn: Connection, model_id: int) -> SemVer | None:
        """The highest version ever registered (archived ones included: numbers are never
        reused)."""
        v = t.versions.c
        top = conn.execute(
            sa.select(v.major, v.minor, v.patch)
            .where(v.model_id == model_id)
            .order_by(v.major.desc(), v.minor.desc(), v.patch.desc())
            .limit(1)
        ).first()
        if top is None:
            return None
        same = conn.execute(
            sa.select(v.version).where(
                v.model_id == model_id, v.major == top[0], v.minor == top[1], v.patch == top[2]
            )
        ).scalars()
        return max(SemVer.parse(text) for text in same)

    # --- reads --------------------------------------------------------------------------

    def get_version(self, ref: ModelRef | str) -> Version:
        """Resolve ``name``, ``name@version``, ``name@alias`` (or ``name@latest``)."""
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.db.read() as conn:
            return self._resolve(conn, ref)

    def get_profile(self, ref: ModelRef | str) -> dict[str, Any] | None:
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        with self.db.read() as conn:
            version = self._resolve(conn, ref)
            version_id = self._version_id(conn, version.model, version.version)
            body = conn.execute(
                sa.select(t.profiles.c.body).where(t.profiles.c.version_id == version_id)
            ).scalar()
            return dict(body) if body is not None else None

    def get_model(self, name: str) -> Model:
        with self.db.read() as conn:
            models = self._models(conn, name=name)
        if not models:
            raise _model_not_found(name)
        return models[0]

    def list_models(self) -> list[Model]:
        with self.db.read() as conn:
            return self._models(conn)

    def list_versions(
        self, name: str, *, include_archived: bool = True, limit: int | None = None
    ) -> list[Version]:
        """Versions of ``name``, highest first; ``limit`` keeps only the highest ones."""
        v = t.versions.c
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            query = (
                self._versions_query()
                .where(v.model_id == model_id)
                .order_by(v.major.desc(), v.minor.desc(), v.patch.desc(), v.id.desc())
            )
            if not include_archived:
                query = query.where(v.status == "active")
            if limit is not None:
                query = query.limit(max(0, limit))
            rows = conn.execute(query).all()
            aliases = self._aliases_by_version(conn, model_id)
        found = [to_version(row, aliases.get(row.id, ())) for row in rows]
        return sorted(found, key=lambda x: SemVer.parse(x.version), reverse=True)

    def count_versions(self, name: str) -> int:
        with self.db.read() as conn:
            model_id = self._model_id(conn, name)
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(t.versions.c.model_id == model_id)
                ).scalar_one()
            )

    # --- mutations ----------------------------------------------------------------------

    def set_alias(
        self,
        ref: ModelRef,
        alias: str,
        *,
        actor: str,
        details: Mapping[str, Any] | None = None,
        expect: str | EllipsisType | None = ...,
    ) -> Version:
        """Point ``alias`` at ``ref``; ``details`` (e.g. the gate result that justified the
        move) is kept on the ``alias.set`` event. Pointing it where it already is records
        nothing. With ``expect`` (a version, or ``None`` for no alias yet) the alias moves only
        if it points there now, checked in the same transaction
        (:class:`~dockyard.errors.ConflictError` otherwise)."""
        with self.db.write() as conn:
            version = self._resolve(conn, ref)
            if not isinstance(expect, EllipsisType):
                current = self._alias_target(conn, version.model, alias)
                if current not in (expect, version.version):
                    raise ConflictError(
                        f"{version.model}@{alias} points at {current or 'nothing'} now, "
                        f"not at {expect or 'nothing'}.",
                        hint=f"Look again (dockyard models show {version.model}) and retry.",
                    )
            if version.status == "archived":
                raise VersionArchivedError(
                    f"{version.ref} is archived; an alias cannot point at it.",
                    hint=f"Restore it first: dockyard models archive {version.ref} --restore",
                )
            model_id = self._model_id(conn, version.model)
            version_id = self._version_id(conn, version.model, version.version)
            self._point_alias(
                conn, model_id, version.model, alias, version_id, version.version, actor, details
            )
            return self._get_version(conn, version.model, version.version)

    def _alias_target(self, conn: Connection, name: str, alias: str) -> str | None:
        a = t.aliases.c
        found: str | None = conn.execute(
            sa.select(t.versions.c.version)
            .join(t.aliases, a.version_id == t.versions.c.id)
            .where(a.model_id == self._model_id(conn, name), a.name == alias)
        ).scalar()
        return found

    def delete_alias(self, name: str, alias: str, *, actor: str) -> None:
        with self.db.write() as conn:
            model_id = self._model_id(conn, name)
            a = t.aliases.c
            current = conn.execute(
                sa.select(t.versions.c.version)
                .join(t.aliases, a.version_id == t.versions.c.id)
                .where(a.model_id == model_id, a.name == alias)
            ).scalar()
            if current is None:
                raise AliasNotFoundError(
                    f"{name} has no alias {alias!r}.",
                    hint=f"See its aliases with: dockyard models show {name}",
                )
            conn.execute(t.aliases.delete().where(a.model_id == model_id, a.name == alias))
            record_event(
                conn,
                actor,
                "alias.delete",
                name,
                current,
                before={"alias": alias, "version": current},
            )

    def set_tags(
        self,
        ref: ModelRef,
        *,
        actor: str,
        set_tags: Mapping[str, str] | None = None,
        remove: Sequence[str] = (),
    ) -> dict[str, str]:
        """Tag a version (``name@...``) or, for a bare name, the model. Returns the new tags."""
        with self.db.write() as conn:
            if ref.version is None and ref.alias is None:
                model_id = self._model_id(conn, ref.name)
                table, key_col, key, version = t.models, t.models.c.id, model_id, None
            else:
                found = self._resolve(conn, ref)
                version = found.version
                key = self._version_id(conn, found.model, found.version)
                table, key_col = t.versions, t.versions.c.id
            before = dict(conn.execute(sa.select(table.c.tags).where(key_col == key)).scalar_one())
            missing = [k for k in remove if k not in before]
            if missing:
                raise InvalidRequestError(
                    f"{ref} has no tag {missing[0]!r}.",
                    hint=f"Its tags: {sorted(before) or 'none'}.",
                )
            after = {k: v for k, v in before.items() if k not in remove}
            after.update(set_tags or {})
            if after != before:
                conn.execute(table.update().where(key_col == key).values(tags=after))
                record_event(
                    conn, actor, "tags.update", ref.name, version, before=before, after=after
                )
            return after

    def set_status(self, ref: ModelRef, status: str, *, actor: str) -> Version:
        """Archive (``archived``) or restore (``active``) a version."""
        with self.db.write() as conn:
            version = self._resolve(conn, ref, allow_archived=True)
            if version.status == status:
                return version
            if status == "archived" and version.aliases:
                raise VersionAliasedError(
                    f"{version.ref} is aliased as {', '.join(version.aliases)}; "
                    "an aliased version cannot be archived.",
                    hint="Point the alias at another version first "
                    f"(dockyard models alias {version.model}@OTHER {version.aliases[0]}).",
                )
            version_id = self._version_id(conn, version.model, version.version)
            conn.execute(
                t.versions.update().where(t.versions.c.id == version_id).values(status=status)
            )
            action = "version.archive" if status == "archived" else "version.restore"
            record_event(
                conn,
                actor,
                action,
                version.model,
                version.version,
                before={"status": version.status},
                after={"status": status},
            )
            return self._get_version(conn, version.model, version.version)

    def set_description(self, ref: ModelRef, text: str, *, actor: str) -> None:
        with self.db.write() as conn:
            if ref.version is None and ref.alias is None:
                key: int = self._model_id(conn, ref.name)
                table, version = t.models, None
            else:
                found = self._resolve(conn, ref)
                key, table, version = (
                    self._version_id(conn, found.model, found.version),
                    t.versions,
                    found.version,
                )
            before = conn.execute(sa.select(table.c.description).where(table.c.id == key)).scalar()
            conn.execute(table.update().where(table.c.id == key).values(description=text))
            record_event(
                conn, actor, "description.update", ref.name, version, before=before, after=text
            )

    # --- helpers ------------------------------------------------------------------------

    def _point_alias(
        self,
        conn: Connection,
        model_id: int,
        name: str,
        alias: str,
        version_id: int,
        version: str,
        actor: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        a = t.aliases.c
        before = conn.execute(
            sa.select(t.versions.c.version)
            .join(t.aliases, a.version_id == t.versions.c.id)
            .where(a.model_id == model_id, a.name == alias)
        ).scalar()
        if before == version:
            return
        values = {"version_id": version_id, "updated_at": now(), "updated_by": actor}
        if before is None:
            conn.execute(t.aliases.insert().values(model_id=model_id, name=alias, **values))
        else:
            conn.execute(
                t.aliases.update().where(a.model_id == model_id, a.name == alias).values(**values)
            )
        record_event(
            conn,
            actor,
            "alias.set",
            name,
            version,
            before={"alias": alias, "version": before} if before else None,
            after={"alias": alias, "version": version},
            details=details,
        )

    def _resolve(self, conn: Connection, ref: ModelRef, *, allow_archived: bool = True) -> Version:
        model_id = self._model_id(conn, ref.name)
        if ref.version is not None:
            return self._get_version(conn, ref.name, str(ref.version))
        if ref.alias is not None and ref.alias != LATEST:
            a = t.aliases.c
            version = conn.execute(
                sa.select(t.versions.c.version)
                .join(t.aliases, a.version_id == t.versions.c.id)
                .where(a.model_id == model_id, a.name == ref.alias)
            ).scalar()
            if version is None:
                known = self._aliases_by_version(conn, model_id)
                names = sorted(n for names in known.values() for n in names)
                raise AliasNotFoundError(
                    f"{ref.name} has no alias {ref.alias!r}.",
                    hint=f"Its aliases: {', '.join(names) or 'none'}. "
                    f"Set one with: dockyard models alias {ref.name}@VERSION {ref.alias}",
                )
            return self._get_version(conn, ref.name, version)
        # bare name or @latest: the highest active version
        v = t.versions.c
        candidates = conn.execute(
            sa.select(v.version).where(v.model_id == model_id, v.status == "active")
        ).scalars()
        ordered = sorted((SemVer.parse(text) for text in candidates), reverse=True)
        if not ordered:
            raise VersionNotFoundError(
                f"{ref.name} has no active version.",
                hint=f"Register one, or restore an archived one (dockyard models show {ref.name}).",
            )
        return self._get_version(conn, ref.name, str(ordered[0]))

    def _get_version(self, conn: Connection, name: str, version: str) -> Version:
        model_id = self._model_id(conn, name)
        row = conn.execute(
            self._versions_query().where(
                t.versions.c.model_id == model_id, t.versions.c.version == version
            )
        ).first()
        if row is None:
            raise VersionNotFoundError(
                f"{name} has no version {version}.",
                hint=f"List its versions with: dockyard models show {name}",
            )
        aliases = self._aliases_by_version(conn, model_id).get(row.id, ())
        return to_version(row, aliases)

    def _version_row(self, conn: Connection, model_id: int, version: str) -> Row[Any] | None:
        v = t.versions.c
        return conn.execute(
            sa.select(v.id).where(v.model_id == model_id, v.version == version)
        ).first()

    def _version_id(self, conn: Connection, name: str, version: str) -> int:
        row = self._version_row(conn, self._model_id(conn, name), version)
        if row is None:
            raise VersionNotFoundError(f"{name} has no version {version}.")
        return int(row.id)

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(sa.select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if model_id is None:
            raise _model_not_found(name)
        return int(model_id)

    def _versions_query(self) -> sa.Select[Any]:
        return sa.select(t.versions.c.id, t.models.c.name.label("model"), *_VERSION_COLUMNS).join(
            t.models, t.models.c.id == t.versions.c.model_id
        )

    def _aliases_by_version(self, conn: Connection, model_id: int) -> dict[int, tuple[str, ...]]:
        a = t.aliases.c
        found: dict[int, list[str]] = {}
        for version_id, alias in conn.execute(
            sa.select(a.version_id, a.name).where(a.model_id == model_id).order_by(a.name)
        ):
            found.setdefault(version_id, []).append(alias)
        return {k: tuple(v) for k, v in found.items()}

    def _models(self, conn: Connection, *, name: str | None = None) -> list[Model]:
        m, v, a = t.models.c, t.versions.c, t.aliases.c
        query = sa.select(t.models).order_by(m.name)
        if name is not None:
            query = query.where(m.name == name)
        models = conn.execute(query).all()
        if not models:
            return []
        ids = [row.id for row in models]
        counts = {
            (row.model_id, row.status): row.n
            for row in conn.execute(
                sa.select(v.model_id, v.status, sa.func.count().label("n"))
                .where(v.model_id.in_(ids))
                .group_by(v.model_id, v.status)
            )
        }
        latest: dict[int, SemVer] = {}
        for model_id, text in conn.execute(
            sa.select(v.model_id, v.version).where(v.model_id.in_(ids), v.status == "active")
        ):
            parsed = SemVer.parse(text)
            if model_id not in latest or parsed > latest[model_id]:
                latest[model_id] = parsed
        alias_map: dict[int, dict[str, str]] = {}
        for model_id, alias, version in conn.execute(
            sa.select(a.model_id, a.name, v.version)
            .join(t.versions, v.id == a.version_id)
            .where(a.model_id.in_(ids))
            .order_by(a.name)
        ):
            alias_map.setdefault(model_id, {})[alias] = version
        return [
            to_model(
                row,
                aliases=alias_map.get(row.id, {}),
                latest=latest.get(row.id),
                active=counts.get((row.id, "active"), 0),
                archived=counts.get((row.id, "archived"), 0),
            )
            for row in models
        ]


def _summary(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "runtime": version.runtime,
        "digest": version.digest,
        "size": version.size,
        "trusted": version.trusted,
        "trusted_types": list(version.trusted_types),
        "metrics": dict(version.metrics),
        "tags": dict(version.tags),
    }


def _model_not_found(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"No model named {name!r}.", hint="List models with: dockyard models list"
    )
