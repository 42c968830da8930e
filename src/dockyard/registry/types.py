"""What the registry takes in and hands out: frozen records, free of any database or
framework."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

Status = Literal["active", "archived"]


@dataclass(frozen=True)
class NewVersion:
    """Everything about a version except its number, which the store assigns."""

    runtime: str
    digest: str
    size: int
    trusted: bool = False
    trusted_types: Sequence[str] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    signature: Mapping[str, Any] | None = None
    profile: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    accelerated: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Version:
    """An immutable registered model artifact and everything recorded about it.

    ``signature`` and ``profile`` are kept as their JSON documents; :mod:`dockyard.schema`
    turns them into objects when needed, so listing versions never imports pandas.
    """

    model: str
    version: str
    runtime: str
    digest: str
    size: int
    status: Status
    created_at: datetime
    created_by: str
    trusted: bool = False
    trusted_types: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    signature: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    aliases: tuple[str, ...] = ()
    accelerated: Mapping[str, Any] | None = None
    """The ONNX twin served instead of the native model when it predicts identically on the
    reference sample: ``{"runtime", "digest", "size", "rows_checked", "max_abs_diff"}``, or
    ``{"reason": ...}`` saying why there is none."""

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def __repr__(self) -> str:
        """One short line (a notebook cell shows it): the signature, profile and lineage stay
        behind ``to_dict()``."""
        aliases = f", aliases={list(self.aliases)}" if self.aliases else ""
        return (
            f"Version({self.ref!r}, runtime={self.runtime!r}, status={self.status!r}"
            f"{aliases}, sha256={self.digest[:12]!r}, size={self.size})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = _shallow(self)
        data["created_at"] = self.created_at.isoformat()
        data["ref"] = self.ref
        return data


@dataclass(frozen=True)
class Model:
    """A model name and a summary of its versions."""

    name: str
    description: str
    created_at: datetime
    created_by: str
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    latest: str | None = None
    versions: int = 0
    archived: int = 0

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, latest={self.latest!r}, versions={self.versions}, "
            f"aliases={dict(self.aliases)!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = _shallow(self)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class Event:
    """One entry of the append-only audit trail."""

    id: int
    at: datetime
    actor: str
    action: str
    model: str | None
    version: str | None
    before: Any = None
    after: Any = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One short line: ``before``, ``after`` and ``details`` stay behind ``to_dict()``."""
        subject = self.model if self.version is None else f"{self.model}@{self.version}"
        return (
            f"Event({self.id}, {self.action!r}, {subject!r}, actor={self.actor!r}, "
            f"at={self.at.isoformat()!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = _shallow(self)
        data["at"] = self.at.isoformat()
        return data


def _shallow(record: Any) -> dict[str, Any]:
    """A record's fields as a dict, without ``asdict``'s deep copy (they are JSON already)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}
