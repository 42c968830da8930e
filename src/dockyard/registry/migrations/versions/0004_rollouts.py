"""Rollouts: the progress of each endpoint's automatic rollout, shared by every server.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("candidate", sa.String(256), nullable=False),
        sa.Column("baseline", sa.String(256), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("decision", JSON, nullable=True),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollouts")
