"""A read-only copy of part of a registry: a fresh SQLite file and the artifacts it needs.

What a container image bakes in (``dockyard build``): the models, versions (with their
profiles) and aliases of the versions asked for, nothing else — no other model's metadata,
no token, no audit history. Artifacts (and each version's ONNX twin) are read through the
store, so each digest is verified on the way out, and written content-addressed under the
snapshot; the server verifies them again on every load.

The file is left in rollback-journal mode, so it opens with :func:`read_only_url` from a
read-only filesystem: SQLite's ``immutable`` mode takes no locks and writes no ``-wal`` or
``-shm`` file, and any write is refused by SQLite itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dockyard.registry import tables as t
from dockyard.registry.artifacts import ArtifactStore
from dockyard.registry.database import Database

if TYPE_CHECKING:
    from dockyard.registry.service import Registry

DATABASE = "dockyard.db"
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class Snapshot:
    """Where a snapshot was written and what it holds."""

    folder: Path
    versions: tuple[str, ...]
    """``name@version`` of every version copied."""
    digests: tuple[str, ...]
    """Every artifact copied (models and their ONNX twins)."""

    @property
    def database_url(self) -> str:
        """A writable URL, for finishing the snapshot (a deployment, a token) before it is
        sealed with :func:`seal`."""
        return f"sqlite:///{self.folder / DATABASE}"


def read_only_url(database: Path) -> str:
    """The SQLAlchemy URL that opens a sealed snapshot without writing anything."""
    return f"sqlite:///file:{database}?mode=ro&immutable=1&uri=true"


def write_snapshot(registry: Registry, refs: Iterable[str], folder: Path) -> Snapshot:
    """Copy the versions ``refs`` resolve to (with their models, profiles and the aliases
    pointing at them) and their artifacts into a new registry under ``folder``."""
    pairs = {(v.model, v.version) for v in map(registry.get_version, refs)}
    names = sorted({name for name, _ in pairs})
    folder.mkdir(parents=True, exist_ok=True)
    target = Database(f"sqlite:///{folder / DATABASE}")
    target.ensure_schema()
    store = ArtifactStore(str(folder / ARTIFACTS))
    with registry.db.read() as conn:
        models = conn.execute(sa.select(t.models).where(t.models.c.name.in_(names))).all()
        named = {row.id: row.name for row in models}
        versions = [
            row
            for row in conn.execute(
                sa.select(t.versions).where(t.versions.c.model_id.in_(named))
            ).all()
            if (named[row.model_id], row.version) in pairs
        ]
        kept = [row.id for row in versions]
        profiles = conn.execute(
            sa.select(t.profiles).where(t.profiles.c.version_id.in_(kept))
        ).all()
        aliases = conn.execute(sa.select(t.aliases).where(t.aliases.c.version_id.in_(kept))).all()
    with target.write() as conn:
        for table, rows in (
            (t.models, models),
            (t.versions, versions),
            (t.profiles, profiles),
            (t.aliases, aliases),
        ):
            if rows:
                conn.execute(table.insert(), [dict(row._mapping) for row in rows])
    digests = sorted({d for row in versions for d in _digests(row._mapping)})
    for digest in digests:
        store.put(registry.artifacts.get(digest))  # get() verifies the digest
    target.dispose()
    refs_copied = tuple(sorted(f"{name}@{version}" for name, version in pairs))
    return Snapshot(folder, refs_copied, tuple(digests))


def seal(snapshot: Snapshot) -> None:
    """Leave the file in rollback-journal mode, compacted, with no ``-wal``/``-shm`` beside it."""
    connection = sqlite3.connect(snapshot.folder / DATABASE, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("VACUUM")
    finally:
        connection.close()


def _digests(version: Any) -> list[str]:
    found = [version["digest"]]
    accelerated = version["accelerated"]
    if isinstance(accelerated, dict) and accelerated.get("digest"):
        found.append(accelerated["digest"])
    return found
