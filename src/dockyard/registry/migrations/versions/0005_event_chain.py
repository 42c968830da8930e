"""The audit trail as a hash chain, and the writes that bypassed its triggers refused.

Each event gets ``prev_hash`` and ``hash`` (:mod:`dockyard.registry.audit`); existing events
are chained in id order. SQLite also refuses an INSERT whose id exists (``INSERT OR
REPLACE`` / ``REPLACE INTO`` delete the old row without firing the DELETE trigger);
PostgreSQL also refuses TRUNCATE.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dockyard.registry.audit import GENESIS, canonical, chain_hash

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
_REFUSE = "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"

events = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", Timestamp),
    sa.Column("actor", sa.String(256)),
    sa.Column("action", sa.String(64)),
    sa.Column("model", sa.String(128)),
    sa.Column("version", sa.String(128)),
    sa.Column("before", JSON),
    sa.Column("after", JSON),
    sa.Column("details", JSON),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
)


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    elif dialect == "postgresql":
        op.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    op.add_column("events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("hash", sa.String(64), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table("events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
    if dialect == "sqlite":
        # recreated by batch mode without its triggers: all three, from scratch
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS events_no_{verb.lower()} BEFORE {verb} ON events "
                + _REFUSE
            )
        op.execute(
            "CREATE TRIGGER events_no_replace BEFORE INSERT ON events "
            "WHEN EXISTS (SELECT 1 FROM events WHERE id = NEW.id) " + _REFUSE
        )
    elif dialect == "postgresql":
        op.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
        op.execute(
            "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION dockyard_events_append_only()"
        )


def _chain_existing_events() -> None:
    conn = op.get_bind()
    prev = GENESIS
    for row in conn.execute(sa.select(events).order_by(events.c.id)).all():
        text = canonical(
            at=row.at,
            actor=row.actor,
            action=row.action,
            model=row.model,
            version=row.version,
            before=row.before,
            after=row.after,
            details=row.details,
        )
        digest = chain_hash(prev, text)
        conn.execute(
            events.update().where(events.c.id == row.id).values(prev_hash=prev, hash=digest)
        )
        prev = digest


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_replace")
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_no_{verb.lower()} BEFORE {verb} ON events " + _REFUSE
            )
