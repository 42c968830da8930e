"""The metadata schema as SQLAlchemy Core tables. Alembic migrations create it; this module
is what queries are written against. Keep the two in step (a test compares them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class _JSON(sa.types.TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL. The PostgreSQL type is looked up only when a
    PostgreSQL connection needs it, so a SQLite registry never imports that dialect (an
    import every command would pay)."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSON = _JSON()
Timestamp = sa.DateTime(timezone=True)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("tags", JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.String(128), nullable=False),
    sa.Column("major", sa.Integer, nullable=False),
    sa.Column("minor", sa.Integer, nullable=False),
    sa.Column("patch", sa.Integer, nullable=False),
    sa.Column("prerelease", sa.String(100), nullable=False),
    sa.Column("runtime", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trusted", sa.Boolean, nullable=False),
    sa.Column("trusted_types", JSON, nullable=False),
    sa.Column("options", JSON, nullable=False),
    sa.Column("signature", JSON, nullable=True),
    sa.Column("metrics", JSON, nullable=False),
    sa.Column("params", JSON, nullable=False),
    sa.Column("tags", JSON, nullable=False),
    sa.Column("lineage", JSON, nullable=False),
    sa.Column("environment", JSON, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("accelerated", JSON, nullable=True),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
    sa.Index("ix_versions_order", "model_id", "major", "minor", "patch"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("body", JSON, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("version", sa.String(128), nullable=True),
    sa.Column("before", JSON, nullable=True),
    sa.Column("after", JSON, nullable=True),
    sa.Column("details", JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index("ix_events_model", "model", "id"),
)
"""Append-only: triggers refuse UPDATE, DELETE, REPLACE and TRUNCATE, and each event carries
the hash of the one before it (:mod:`dockyard.registry.audit`)."""

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
)

deployment_revisions = sa.Table(
    "deployment_revisions",
    metadata,
    sa.Column("deployment_id", sa.Integer, sa.ForeignKey("deployments.id"), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("rule", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("since", Timestamp, nullable=True),
    sa.Column("last_notified", Timestamp, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("evaluated_at", Timestamp, nullable=False),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("endpoint", sa.String(128), primary_key=True),
    sa.Column("candidate", sa.String(256), nullable=False),
    sa.Column("baseline", sa.String(256), nullable=False),
    sa.Column("state", JSON, nullable=False),
    sa.Column("decision", JSON, nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)
