"""Deployments: a named endpoint, its spec (routes, batching), and every revision of it.

A spec is validated at the boundary (pydantic, unknown keys refused) and stored as a new
revision on every change, so rolling back is going to revision N-1. Routes carry weights so
that a traffic split fits in; this release serves specs with one route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dockyard.errors import InvalidRequestError, NotFoundError
from dockyard.monitoring.alerts import AlertRule
from dockyard.monitoring.policy import DriftPolicy
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.refs import ModelRef, check_model_name
from dockyard.registry.store import record_event


class BatchingSpec(BaseModel):
    """Adaptive batching, counted in rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(64, ge=1, le=100_000, description="Most rows per model call.")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="Extra wait for more rows when a batch is not full."
    )
    max_queue_rows: int = Field(
        4096, ge=1, le=10_000_000, description="Queued rows beyond which requests get 503."
    )


class RouteSpec(BaseModel):
    """A model reference and its share of traffic (percent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="name, name@version or name@alias.")
    weight: int = Field(100, ge=0, le=100)

    @field_validator("model")
    @classmethod
    def _reference(cls, value: str) -> str:
        ModelRef.parse(value)
        return value


class MonitoringSpec(BaseModel):
    """What is logged for an endpoint, for how long, and what is watched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log: bool = Field(True, description="Record answered predictions in the prediction log.")
    sample_rate: float = Field(
        1.0, gt=0, le=1, description="Share of successful requests logged (failures always are)."
    )
    retention_days: float = Field(
        30, gt=0, le=3650, description="Log segments older than this are deleted."
    )
    window: str = Field(
        "1h",
        description="Window the server's monitoring gauges cover: '15m', '1h', '1d' or "
        "'last:1000'.",
    )
    drift: DriftPolicy = Field(
        default_factory=DriftPolicy, description="Drift tests and thresholds."
    )
    alerts: tuple[AlertRule, ...] = Field((), description="Alert rules, evaluated periodically.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        from dockyard.monitoring.store import parse_window

        try:
            parse_window(value)
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _unique_rules(self) -> MonitoringSpec:
        names = [rule.name for rule in self.alerts]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique; repeated: {', '.join(twice)}")
        return self


class DeploymentSpec(BaseModel):
    """What an endpoint serves and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: tuple[RouteSpec, ...] = Field(min_length=1, max_length=1)
    batching: BatchingSpec = BatchingSpec()
    accelerate: bool = Field(
        True, description="Serve a version's verified ONNX twin when it has one."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prediction log, drift and alerts."
    )

    @model_validator(mode="after")
    def _weights(self) -> DeploymentSpec:
        total = sum(route.weight for route in self.routes)
        if total != 100:
            raise ValueError(f"route weights must sum to 100, not {total}")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        """Validate a spec, turning pydantic's errors into one clear message per field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in error['loc']) or 'spec'}: {error['msg']}"
                for error in exc.errors()
            ]
            raise InvalidRequestError(
                f"Invalid deployment spec: {'; '.join(problems)}.",
                hint="See the deployment spec fields in the README.",
                details={"problems": problems},
            ) from None


@dataclass(frozen=True)
class Deployment:
    name: str
    revision: int
    spec: DeploymentSpec
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "spec": self.spec.model_dump(mode="json"),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


class DeploymentStore:
    """Deployments and their revisions in the registry's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, name: str, spec: DeploymentSpec, *, actor: str, reason: str = "") -> Deployment:
        """Create or change a deployment; an unchanged spec creates no revision."""
        check_model_name(name)
        body = spec.model_dump(mode="json")
        now = datetime.now(UTC)
        with self.db.write() as conn:
            row = conn.execute(sa.select(t.deployments).where(t.deployments.c.name == name)).first()
            if row is not None and row.spec == body:
                return _deployment(row)
            revision = 1 if row is None else row.revision + 1
            values = {"revision": revision, "spec": body, "updated_at": now, "updated_by": actor}
            if row is None:
                deployment_id = conn.execute(
                    t.deployments.insert().values(name=name, **values)
                ).inserted_primary_key
                assert deployment_id is not None
                key = deployment_id[0]
            else:
                key = row.id
                conn.execute(
                    t.deployments.update().where(t.deployments.c.id == key).values(**values)
                )
            conn.execute(
                t.deployment_revisions.insert().values(
                    deployment_id=key,
                    revision=revision,
                    spec=body,
                    reason=reason,
                    created_at=now,
                    created_by=actor,
                )
            )
            record_event(
                conn,
                actor,
                "deployment.update",
                None,
                None,
                before=row.spec if row is not None else None,
                after=body,
                details={"deployment": name, "revision": revision, "reason": reason},
            )
            return Deployment(name, revision, spec, now, actor)

    def get(self, name: str) -> Deployment:
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.deployments).where(t.deployments.c.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"No endpoint named {name!r}.",
                hint="List endpoints with: dockyard deployments",
            )
        return _deployment(row)

    def list(self) -> list[Deployment]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(t.deployments).order_by(t.deployments.c.name)).all()
        return [_deployment(row) for row in rows]


def _deployment(row: Any) -> Deployment:
    updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return Deployment(
        name=row.name,
        revision=row.revision,
        spec=DeploymentSpec.model_validate(row.spec),
        updated_at=updated,
        updated_by=row.updated_by,
    )
