"""Monitoring: the state of every alert rule, shared by all server processes and replicas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("rule", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", Timestamp, nullable=True),
        sa.Column("last_notified", Timestamp, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("evaluated_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_states")
