"""Connecting to the metadata database and bringing its schema up to date.

SQLite runs in WAL mode with one writer at a time: write transactions start with
``BEGIN IMMEDIATE`` (they queue on the lock for ``busy_timeout`` instead of failing halfway),
reads use deferred transactions and never block. On PostgreSQL a write transaction takes one
advisory lock first (:func:`hold_write_lock`), so writers there also go one at a time: the
audit trail's hash chain needs one order of events, and a lock taken first, before any row
lock, cannot deadlock. Reads never wait for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from dockyard.errors import StorageError

HEAD = "0005"
"""The newest migration; a test checks it matches Alembic's head."""

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x646F636B  # "dock"
_PG_WRITE_LOCK = 0x646F6377  # "docw"
_WRITE = "dockyard_write"


class Database:
    """An engine plus the two kinds of transaction the registry needs."""

    def __init__(self, url: str, *, busy_timeout_s: float = 60.0) -> None:
        try:
            self.url = sa.make_url(url)
            self.dialect = self.url.get_backend_name()
            if self.dialect == "sqlite":
                self.engine = _sqlite_engine(self.url, busy_timeout_s)
            else:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        except ImportError as exc:
            raise StorageError(
                f"The database driver for {url.split(':', 1)[0]!r} is not installed ({exc}).",
                hint="For PostgreSQL: pip install 'dockyard[postgres]' and use a "
                "postgresql+psycopg:// URL.",
            ) from exc
        except sa.exc.ArgumentError as exc:
            raise StorageError(
                f"{url!r} is not a database URL SQLAlchemy understands.",
                hint="Use sqlite:///path/to/dockyard.db or postgresql+psycopg://user:pw@host/db.",
            ) from exc
        self._writer = self.engine.execution_options(**{_WRITE: True})

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A consistent read-only snapshot."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise _storage_error(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it holds the database's single write lock."""
        try:
            with self._writer.connect() as conn, conn.begin():
                hold_write_lock(conn)
                yield conn
        except sa.exc.OperationalError as exc:
            raise _storage_error(exc) from exc

    def ensure_schema(self) -> None:
        """Run pending migrations, safely when many processes start at once."""
        if self._current_revision() == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            if _revision(conn) == HEAD:  # another process migrated while we waited
                return
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()

    def _current_revision(self) -> str | None:
        with self.read() as conn:
            return _revision(conn)


def hold_write_lock(conn: Connection) -> None:
    """Hold the registry's write lock until ``conn``'s transaction ends: on PostgreSQL an
    advisory transaction lock (taking it again is free); on SQLite ``BEGIN IMMEDIATE`` already
    holds the database's single write lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_WRITE_LOCK})


def _revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _sqlite_engine(url: sa.URL, busy_timeout_s: float) -> Engine:
    uri = url.query.get("uri") == "true"  # file:...?mode=ro: a snapshot, opened as it is
    if url.database and url.database != ":memory:" and not uri:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _storage_error(exc: sa.exc.OperationalError) -> StorageError:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return StorageError(
        f"The metadata database is unavailable: {reason}.",
        hint="Check DOCKYARD_DATABASE_URL and that the database server is running.",
    )
