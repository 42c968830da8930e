"""The release actions, in one place: deploy, roll back, move an alias (with the
protected-alias policy), and pause, resume or abort a rollout.

Every surface — the CLI, the HTTP API, and whatever comes after them — calls
:class:`Deployments`; none of them carries a rule of its own. The rules:

- a spec is stored only when every model reference in it resolves now (a deploy or a
  rollback that names an unknown version changes nothing);
- a protected alias (``DOCKYARD_PROTECTED_ALIASES``, ``production`` by default) moves only
  on the strength of a gate result the registry recorded
  (:func:`~dockyard.deploy.promotion.promote`); any other alias moves on request, keeping a
  gate result on its event when one is given. Registering a version with a protected alias
  and removing a protected alias are refused alike (either would let a version reach it, or
  the next promotion skip the comparison with what it pointed at, without a gate).

The deployment store is built here, once per service, and handed to what needs it (the
rollout controller; the serving manager takes :attr:`Deployments.store`).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.deploy.promotion import (
    DEFAULT_MAX_AGE_S,
    Promotion,
    RecordedGate,
    promote,
    recorded_gate,
)
from dockyard.deploy.spec import BatchingSpec, Deployment, DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.errors import InvalidRequestError, NotFoundError

if TYPE_CHECKING:
    from dockyard.deploy.controller import RolloutController
    from dockyard.monitoring.policy import DriftPolicy
    from dockyard.monitoring.service import Monitor
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry, Version
    from dockyard.settings import Settings

__all__ = ["Deployments", "Resolved", "single_route"]


@dataclass(frozen=True)
class Resolved:
    """What one route or shadow of a spec serves now."""

    reference: str
    """As the spec names it: ``name@version`` or ``name@alias``."""
    version: str
    """The exact ``name@version`` it resolves to."""
    weight: int | None
    """Its share of traffic in percent; ``None`` for a shadow."""

    @property
    def shadow(self) -> bool:
        return self.weight is None


def single_route(
    model: str, *, batching: BatchingSpec | Mapping[str, Any] | None = None, accelerate: bool = True
) -> DeploymentSpec:
    """The spec of an endpoint that sends all its traffic to one model reference."""
    shape = batching.model_dump() if isinstance(batching, BatchingSpec) else dict(batching or {})
    return DeploymentSpec.parse(
        {
            "routes": [{"model": model, "weight": 100}],
            "batching": shape,
            "accelerate": accelerate,
        }
    )


class Deployments:
    """Deploy, roll back, promote, and operate rollouts, with the rules stated above.

    ``monitoring`` (the prediction log's store) is needed only for the rollout actions;
    without it they are refused.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        monitoring: MonitoringStore | None = None,
        protected_aliases: Iterable[str] = ("production",),
        gate_max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.store = DeploymentStore(registry.db)
        self.protected_aliases = frozenset(protected_aliases)
        self.gate_max_age_s = gate_max_age_s
        self.rollouts: RolloutController | None = None
        if monitoring is not None:
            from dockyard.deploy.controller import RolloutController

            self.rollouts = RolloutController(registry, monitoring, self.store, clock=clock)

    @classmethod
    def from_settings(
        cls, registry: Registry, settings: Settings, *, monitoring: MonitoringStore | None = None
    ) -> Deployments:
        """The service with the alias policy ``settings`` configure."""
        return cls(
            registry,
            monitoring=monitoring,
            protected_aliases=settings.protected_aliases,
            gate_max_age_s=settings.gate_max_age_s,
        )

    # --- reading ---------------------------------------------------------------------------

    def list(self) -> list[Deployment]:
        """Every endpoint, by name."""
        return self.store.list()

    def get(self, name: str) -> Deployment:
        """One endpoint (``NotFoundError`` when there is none)."""
        return self.store.get(name)

    def drift_policy(self, name: str) -> DriftPolicy | None:
        """The endpoint's drift policy, as its spec sets it: what a monitor is given
        (:class:`~dockyard.monitoring.policy.Policies`); ``None`` when there is no endpoint."""
        try:
            return self.store.get(name).spec.monitoring.drift
        except NotFoundError:
            return None

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every revision, newest first, each with what changed from the one before it."""
        revisions = self.store.history(name)
        return [
            revision.to_dict(revisions[i + 1] if i + 1 < len(revisions) else None)
            for i, revision in enumerate(revisions)
        ]

    def resolve(self, spec: DeploymentSpec) -> builtins.list[Resolved]:
        """What each route, then each shadow, resolves to now; raises for an unknown
        reference (``NotFoundError``)."""
        found = [
            Resolved(route.model, self.registry.get_version(route.model).ref, route.weight)
            for route in spec.routes
        ]
        found += [
            Resolved(shadow.model, self.registry.get_version(shadow.model).ref, None)
            for shadow in spec.shadows
        ]
        for reference in spec.references()[len(found) :]:  # a rollout's candidate
            self.registry.get_version(reference)
        return found

    # --- changing what endpoints serve -----------------------------------------------------

    def deploy(
        self, name: str, spec: DeploymentSpec, *, actor: str, reason: str = ""
    ) -> Deployment:
        """Point an endpoint at ``spec`` (a new revision unless it is unchanged), once every
        reference in it resolves."""
        self.resolve(spec)
        return self.store.put(name, spec, actor=actor, reason=reason)

    def rollback(
        self, name: str, *, to: int | None = None, actor: str, reason: str = ""
    ) -> Deployment:
        """Put an earlier revision's spec back (default: the previous one), as a new revision,
        once every reference in it still resolves."""
        current = self.store.get(name)
        target = current.revision - 1 if to is None else to
        for revision in self.store.history(name):
            if revision.revision == target:
                self.resolve(DeploymentSpec.parse(revision.spec))
        return self.store.rollback(name, to=to, actor=actor, reason=reason)

    # --- aliases ---------------------------------------------------------------------------

    def move_alias(
        self, ref: str, alias: str, *, actor: str, gate: Mapping[str, Any] | None = None
    ) -> Promotion | Version:
        """Point ``alias`` at ``ref``. A protected alias moves only through :meth:`promote`
        with the recorded gate ``gate`` names (its ``id``; the rest must match the record);
        any other alias moves at once, keeping the gate on its event when one is given.
        Returns the :class:`Promotion` for a protected alias, else the version now aliased."""
        recorded = None if gate is None else recorded_gate(self.registry, gate)
        if alias not in self.protected_aliases:
            details = None if recorded is None else {"gate": recorded.to_dict()}
            return self.registry.set_alias(ref, alias, actor=actor, details=details)
        if recorded is None:
            raise _protected(ref, alias)
        return self.promote(ref, alias, recorded, actor=actor)

    def refuse_protected(self, ref: str, aliases: Iterable[str]) -> None:
        """Refuse (``InvalidRequestError``) to set any protected alias among ``aliases``
        without a gate: what registering with aliases checks, and moving without a gate."""
        for alias in aliases:
            if alias in self.protected_aliases:
                raise _protected(ref, alias)

    def remove_alias(self, model: str, alias: str) -> None:
        """Remove an alias; a protected one is refused (removing it would let the next
        promotion skip the comparison with what it pointed at)."""
        if alias in self.protected_aliases:
            raise InvalidRequestError(
                f"Alias {alias!r} is protected: it can be moved with a gate, not removed.",
                hint="Take it out of DOCKYARD_PROTECTED_ALIASES first if it must go.",
            )
        self.registry.delete_alias(model, alias)

    def promote(self, ref: str, alias: str, gate: RecordedGate, *, actor: str) -> Promotion:
        """Move ``alias`` to ``ref`` on the strength of a recorded gate, under every condition
        :func:`~dockyard.deploy.promotion.promote` states (protected or not)."""
        return promote(self.registry, ref, alias, gate, actor=actor, max_age_s=self.gate_max_age_s)

    def card(self, ref: str, monitor: Monitor | None = None) -> dict[str, Any]:
        """The model card of ``ref`` (:mod:`dockyard.deploy.card`); live drift and accuracy
        come from ``monitor`` when given."""
        from dockyard.deploy.card import model_card
        from dockyard.errors import DockyardError

        routes: builtins.list[tuple[str, str, int | None]] = []
        for deployment in self.list():
            try:
                resolved = self.resolve(deployment.spec)
            except DockyardError:  # a deployment naming a removed version: not this card's
                continue
            routes += [(deployment.name, r.version, r.weight) for r in resolved]
        return model_card(self.registry, ref, routes, monitor)

    # --- rollouts --------------------------------------------------------------------------

    def rollout(self, name: str) -> dict[str, Any]:
        """The endpoint's automatic rollout: plan, state, weights and the last analysis."""
        return self._rollouts().status(name)

    def pause(self, name: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Hold a rollout at its step (no advance, no automatic rollback)."""
        return self._rollouts().operate(name, "pause", actor=actor, reason=reason)

    def resume(self, name: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Continue a paused rollout; its step's minimum duration starts again."""
        return self._rollouts().operate(name, "resume", actor=actor, reason=reason)

    def abort(self, name: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Stop a rollout and give the baseline all traffic again."""
        return self._rollouts().operate(name, "abort", actor=actor, reason=reason)

    def _rollouts(self) -> RolloutController:
        if self.rollouts is None:  # a wiring mistake, not a user's
            raise RuntimeError("Deployments was built without the monitoring store rollouts need")
        return self.rollouts


def _protected(ref: str, alias: str) -> InvalidRequestError:
    name = ref.partition("@")[0]
    return InvalidRequestError(
        f"Alias {alias!r} is protected: moving it needs the gate result that justifies it.",
        hint=f"Run: dockyard gate {ref} --against {name}@{alias} --data ... --promote {alias}; "
        'or send that gate\'s --json output as "gate" (the API) or its id with --gate '
        "(dockyard models alias).",
    )
