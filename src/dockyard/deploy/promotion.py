"""Promotion: moving an alias on the strength of a recorded gate result.

Every evaluation that goes through :func:`record_gate` is kept as a ``gate.evaluated``
audit event, and the event's id is the gate's id. :func:`promote` moves an alias only on the
strength of such a recorded result (:func:`recorded_gate` looks it up by id and refuses a
copy that differs from the record): one that passed, with at least one requirement, for the
version being promoted, compared with exactly the version the alias points at now
(signatures checked), evaluated less than ``max_age_s`` ago, and not used for a promotion
before. An alias that points at nothing yet needs no baseline. The move is a compare-and-set
on the alias, and the ``alias.set`` event keeps the gate result with its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.deploy.gate import GateResult
from dockyard.errors import ConflictError, InvalidRequestError
from dockyard.registry.audit import normalize
from dockyard.registry.refs import ModelRef, check_alias

if TYPE_CHECKING:
    from dockyard.registry import Registry
    from dockyard.registry.types import Event

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "GATE_EVENT",
    "Promotion",
    "RecordedGate",
    "promote",
    "record_gate",
    "recorded_gate",
]

GATE_EVENT = "gate.evaluated"
"""The audit action that records a gate result; its event id is the gate's id."""

DEFAULT_MAX_AGE_S = 24 * 3600.0
"""How old a recorded gate may be to justify a promotion (``DOCKYARD_GATE_MAX_AGE_S``)."""


# --- promotion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """An alias moved (or found already in place) by :func:`promote`."""

    model: str
    alias: str
    version: str
    previous: str | None

    @property
    def moved(self) -> bool:
        return self.previous != self.version

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "previous": self.previous,
            "moved": self.moved,
        }


@dataclass(frozen=True)
class RecordedGate:
    """A gate result as the registry recorded it: the ``gate.evaluated`` event's id, time and
    actor, and the result."""

    id: int
    evaluated_at: datetime
    actor: str
    result: GateResult

    def to_dict(self) -> dict[str, Any]:
        """What ``dockyard gate --json`` prints and a promotion sends back as ``"gate"``."""
        return {
            "id": self.id,
            "evaluated_at": self.evaluated_at.isoformat(),
            **self.result.to_dict(),
        }


def record_gate(registry: Registry, result: GateResult, *, actor: str) -> RecordedGate:
    """Keep ``result`` as a ``gate.evaluated`` audit event; its id identifies the gate."""
    model, _, version = result.candidate.partition("@")
    event = registry.event_log.record(
        actor, GATE_EVENT, model, version, details={"gate": result.to_dict()}
    )
    return RecordedGate(
        event.id, event.at, event.actor, GateResult.from_dict(event.details["gate"])
    )


_SEND_RECORDED = (
    "Run `dockyard gate CANDIDATE --against MODEL@ALIAS --data ... --require ... --json` "
    'against this registry and send its output, unchanged, as "gate".'
)


def recorded_gate(registry: Registry, submitted: Mapping[str, Any]) -> RecordedGate:
    """The recorded gate a client's ``"gate"`` object names by its ``id``.

    Refused (:class:`InvalidRequestError`) when it names none, names an event that is not a
    gate result, or differs from the record in any field it carries (a result edited on the
    way: only what the registry recorded counts)."""
    gate_id = submitted.get("id") if isinstance(submitted, Mapping) else None
    if not isinstance(gate_id, int) or isinstance(gate_id, bool):
        raise InvalidRequestError(
            "The gate result has no id: only a gate result the registry recorded can move a "
            "protected alias.",
            hint=_SEND_RECORDED,
        )
    event = registry.event_log.get_event(gate_id)
    if event is None or event.action != GATE_EVENT or "gate" not in event.details:
        raise InvalidRequestError(
            f"No gate result #{gate_id} was recorded by this registry.", hint=_SEND_RECORDED
        )
    recorded = RecordedGate(
        event.id, event.at, event.actor, GateResult.from_dict(event.details["gate"])
    )
    expected = normalize(recorded.to_dict())
    altered = sorted(
        key
        for key, value in normalize(dict(submitted)).items()
        if key in expected and value != expected[key]
    )
    if altered:
        raise InvalidRequestError(
            f"The gate result sent differs from gate #{gate_id} as recorded "
            f"({', '.join(altered)}): it was altered.",
            hint=_SEND_RECORDED,
            details={"altered": altered},
        )
    return recorded


def promote(
    registry: Registry,
    ref: str,
    alias: str,
    gate: RecordedGate,
    *,
    actor: str,
    max_age_s: float = DEFAULT_MAX_AGE_S,
    now: datetime | None = None,
) -> Promotion:
    """Point ``alias`` at ``ref`` on the strength of a recorded ``gate``; the ``alias.set``
    audit event keeps the result and its id under ``details["gate"]``.

    Refused, with nothing changed (:class:`InvalidRequestError` unless said otherwise), when
    the gate failed, has no requirement, is for another version than ``ref``, was evaluated
    more than ``max_age_s`` ago, or when the alias points at a version the gate did not
    compare with (:class:`~dockyard.errors.ConflictError`: gate again against the alias) or
    whose signature it could not check, or when the gate already justified a promotion
    (``ConflictError``: a result is good for one move, so re-sending it after a rollback
    does not undo the rollback). An alias already on the version is left as is, and no event
    is written.
    """
    check_alias(alias)
    result = gate.result
    version = registry.get_version(ref)
    if version.ref != result.candidate:
        raise InvalidRequestError(
            f"Gate #{gate.id} is for {result.candidate}, not {version.ref}.",
            hint="Promote the version the gate evaluated, or gate this one.",
        )
    if not result.passed:
        raise InvalidRequestError(
            f"The gate for {result.candidate} failed, so {alias} was not moved: "
            f"{'; '.join(result.failures)}.",
            hint="Only a passing gate moves it: gate a version that meets the requirements.",
            details={"failures": list(result.failures)},
        )
    if not result.checks:
        raise InvalidRequestError(
            f"Gate #{gate.id} has no requirement, so it cannot justify moving {alias}.",
            hint="Gate with at least one --require.",
        )
    age = ((now or datetime.now(UTC)) - gate.evaluated_at).total_seconds()
    if age > max_age_s:
        raise InvalidRequestError(
            f"Gate #{gate.id} was evaluated {_duration(age)} ago, more than the "
            f"{_duration(max_age_s)} a gate result stays valid (DOCKYARD_GATE_MAX_AGE_S).",
            hint=f"Gate {result.candidate} again.",
        )
    previous = registry.get_model(version.model).aliases.get(alias)
    if previous == version.version:
        return Promotion(version.model, alias, version.version, previous)
    target = f"{version.model}@{alias}"
    if previous is not None:
        if result.baseline != f"{version.model}@{previous}":
            compared = result.baseline or "no baseline"
            raise ConflictError(
                f"{target} points at {previous} now, but gate #{gate.id} compared "
                f"{result.candidate} with {compared}.",
                hint=f"Gate {result.candidate} again with --against {target}.",
            )
        if not result.signature.checked:
            raise InvalidRequestError(
                f"Gate #{gate.id} could not compare the signatures of {result.candidate} and "
                f"{result.baseline} ({'; '.join(result.signature.notes)}), so it cannot move "
                f"{alias}.",
                hint="Register both versions with a --sample so that their signatures can be "
                "compared.",
            )
    used = _promoted_by(registry, version.model, gate.id)
    if used is not None:
        raise ConflictError(
            f"Gate #{gate.id} already moved {version.model}@{used.after['alias']} to "
            f"{used.version} (event #{used.id}); a gate result justifies one promotion.",
            hint=f"Gate {result.candidate} again with --against {target}.",
        )
    registry.store.set_alias(
        ModelRef.parse(version.ref),
        alias,
        actor=actor,
        details={"gate": gate.to_dict()},
        expect=previous,
    )
    return Promotion(version.model, alias, version.version, previous)


def _promoted_by(registry: Registry, model: str, gate_id: int) -> Event | None:
    """The ``alias.set`` event an earlier promotion with this gate wrote, if any."""
    for event in registry.event_log.list_events(model=model, action="alias.set", limit=10_000):
        if (
            isinstance(event.details.get("gate"), Mapping)
            and event.details["gate"].get("id") == gate_id
        ):
            return event
    return None


def _duration(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
