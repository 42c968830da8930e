"""The deployment spec: what a named endpoint serves (routes, shadows, batching, monitoring,
rollout), a deployment and its revisions as values, and the diff between two specs.

A spec is validated at the boundary (pydantic, unknown keys refused: a typo in what a user
sends is an error). What is read back from the database is read tolerantly
(:func:`read_stored`): a key this version does not know was written by a newer Dockyard
(a rolling upgrade, a rollback of the binary), so it is left out and named, not fatal; a
stored spec that is still invalid without it is :class:`UnreadableSpecError`. Routes carry weights
(A/B, canary), shadows receive a mirrored copy of the traffic, and the monitoring section
configures the prediction log, drift and alerts. Pure: no database here (revisions are kept
by :class:`dockyard.deploy.store.DeploymentStore`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dockyard._validation import problems, validate
from dockyard.deploy.rollout import RolloutPlan
from dockyard.errors import InvalidRequestError, UnreadableSpecError
from dockyard.monitoring.alerts import AlertRule
from dockyard.monitoring.policy import DriftPolicy
from dockyard.registry.refs import ModelRef
from dockyard.windows import parse_window


class BatchingSpec(BaseModel):
    """Adaptive batching, counted in rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(64, ge=1, le=100_000, description="Most rows per model call.")
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="Extra wait for more rows when a batch is not full."
    )
    max_queue_wait_ms: float = Field(
        1000.0,
        gt=0,
        le=600_000,
        # left out of the stored spec at its default, so that servers from before the
        # setting (a rolling upgrade, a rollback of the binary) still read the revision
        exclude_if=lambda value: value == 1000.0,
        description="Longest estimated queue wait (rows ahead at the measured rate) a new "
        "request is admitted behind; beyond it, 503 with Retry-After.",
    )
    max_queue_rows: int = Field(
        65_536, ge=1, le=10_000_000, description="Hard cap on queued rows (memory); 503 beyond."
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


class ShadowSpec(BaseModel):
    """A version that receives a copy of the traffic; its answers are only compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="name, name@version or name@alias.")
    sample_rate: float = Field(1.0, gt=0, le=1, description="Share of requests mirrored.")

    @field_validator("model")
    @classmethod
    def _reference(cls, value: str) -> str:
        ModelRef.parse(value)
        return value


class TrafficSpec(BaseModel):
    """How a request picks its route when there are several."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sticky_header: str = Field(
        "x-dockyard-key",
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="Request header whose value pins a caller to one route (same key, "
        "same variant); without it, routes are drawn at random by weight.",
    )
    sticky_field: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Or a field: a top-level key of the v1 body, else that column of its "
        "first record.",
    )


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

    routes: tuple[RouteSpec, ...] = Field(
        min_length=1, max_length=10, description="Versions serving traffic, with weights."
    )
    shadows: tuple[ShadowSpec, ...] = Field(
        (), max_length=5, description="Versions mirrored after the primary answered."
    )
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, description="Sticky routing.")
    batching: BatchingSpec = BatchingSpec()
    accelerate: bool = Field(
        True, description="Serve a version's verified ONNX twin when it has one."
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Prediction log, drift and alerts."
    )
    rollout: RolloutPlan | None = Field(
        None,
        description="Move traffic to a candidate step by step under automatic analysis; the "
        "spec's other route is the baseline.",
    )

    @model_validator(mode="after")
    def _weights(self) -> DeploymentSpec:
        total = sum(route.weight for route in self.routes)
        if total != 100:
            raise ValueError(f"route weights must sum to 100, not {total}")
        models = [route.model for route in self.routes]
        if len(set(models)) != len(models):
            raise ValueError("each route must name a different model reference")
        shadowed = [shadow.model for shadow in self.shadows if shadow.model in models]
        if shadowed:
            raise ValueError(f"{', '.join(shadowed)} cannot be both a route and a shadow")
        if self.rollout is not None:
            baselines = [model for model in models if model != self.rollout.candidate]
            if len(baselines) != 1 or len(models) > 2:
                raise ValueError(
                    "a rollout needs exactly one baseline route (and optionally the candidate)"
                )
        return self

    def references(self) -> list[str]:
        """Every model reference the spec names (routes, then shadows)."""
        candidate = [self.rollout.candidate] if self.rollout is not None else []
        return [route.model for route in self.routes] + [s.model for s in self.shadows] + candidate

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        """Validate a spec, naming every bad field at once (``InvalidRequestError``)."""
        return validate(cls, data, what="deployment spec", root="spec")


def read_stored(data: Mapping[str, Any]) -> tuple[DeploymentSpec, tuple[str, ...]]:
    """A spec as stored, and the dotted paths of the keys left out because this version does
    not know them (``()`` for a spec it reads whole). Every other problem is
    :class:`UnreadableSpecError` naming them all."""
    try:
        return DeploymentSpec.model_validate(data), ()
    except ValidationError as exc:
        errors = exc.errors()
    unknown = [error["loc"] for error in errors if error["type"] == "extra_forbidden"]
    trimmed: Any = copy.deepcopy(dict(data))
    for loc in unknown:
        _drop(trimmed, loc)
    ignored = tuple(".".join(str(part) for part in loc) for loc in unknown)
    try:
        return DeploymentSpec.model_validate(trimmed), ignored
    except ValidationError as exc:
        found = problems(exc.errors(), "spec")
    raise UnreadableSpecError(
        f"This version of Dockyard cannot read the stored spec: {'; '.join(found)}"
        + (f" (keys it does not know, left out: {', '.join(ignored)})" if ignored else "")
        + ".",
        hint="It was probably written by a newer Dockyard; upgrade this server, or deploy a "
        "spec this version reads.",
        details={"problems": found, "unknown_keys": list(ignored)},
    )


def _drop(data: Any, loc: tuple[int | str, ...]) -> None:
    """Delete the key at pydantic's error location ``loc`` (steps that are not keys of the
    data, such as a union member's name, are passed over)."""
    node = data
    for step in loc[:-1]:
        found = isinstance(node, dict) and step in node
        if found or (isinstance(node, list) and isinstance(step, int) and step < len(node)):
            node = node[step]
    if isinstance(node, dict):
        node.pop(loc[-1], None)


@dataclass(frozen=True)
class Deployment:
    name: str
    revision: int
    spec: DeploymentSpec
    updated_at: datetime
    updated_by: str
    ignored: tuple[str, ...] = ()
    """Stored keys this version does not know and left out (:func:`read_stored`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "spec": self.spec.model_dump(mode="json"),
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class Revision:
    """One stored revision of a deployment."""

    revision: int
    spec: dict[str, Any]
    reason: str
    created_at: datetime
    created_by: str

    def to_dict(self, previous: Revision | None = None) -> dict[str, Any]:
        body = {
            "revision": self.revision,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "reason": self.reason,
            "spec": self.spec,
        }
        body["changes"] = (
            spec_diff(previous.spec, self.spec) if previous else created_changes(self.spec)
        )
        return body


def created_changes(spec: Mapping[str, Any]) -> list[str]:
    """A first revision's changes: ``created`` with what it serves, then only the fields it
    sets away from their defaults (not every default as a change from nothing)."""
    served = {key: spec[key] for key in ("routes", "shadows") if spec.get(key)}
    defaults = DeploymentSpec.model_validate(served).model_dump(mode="json")
    routes = ", ".join(f"{r['model']} {r['weight']}%" for r in spec.get("routes", []))
    shadows = ", ".join(s["model"] for s in spec.get("shadows", []))
    created = f"created: {routes}" + (f"; shadows {shadows}" if shadows else "")
    return [created, *spec_diff(defaults, spec)]


def spec_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed between two specs, as ``path: old → new`` lines."""
    flat_before, flat_after = _flatten(before), _flatten(after)
    lines = []
    for key in sorted(set(flat_before) | set(flat_after)):
        old, new = flat_before.get(key, "—"), flat_after.get(key, "—")
        if old != new:
            lines.append(f"{key}: {old} → {new}")
    return lines


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}
