"""Migrations: the code's HEAD is Alembic's head, and migrated databases match the tables the
queries are written against."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from dockyard.registry import database
from dockyard.registry.database import Database
from dockyard.registry.tables import metadata
from dockyard.settings import Settings


def test_head_constant_matches_alembic() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == database.HEAD


def test_migrated_schema_matches_tables(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    try:
        db.ensure_schema()
        db.ensure_schema()  # idempotent
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == []
            assert (
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                == database.HEAD
            )
    finally:
        db.dispose()


def test_sqlite_uses_wal(sqlite_settings: Settings) -> None:
    db = Database(sqlite_settings.resolved_database_url)
    try:
        db.ensure_schema()
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        db.dispose()
