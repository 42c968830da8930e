"""Automatic rollouts, driven: statistics from the prediction log in, revisions out.

A deployment spec with a ``rollout`` plan names a candidate; its one other route is the
baseline. On each pass (the server's monitor loop, every ``DOCKYARD_MONITOR_INTERVAL_S``) the
controller, per rolling-out endpoint:

1. starts the rollout when it sees a plan it has not started: state "running", step 0, and a
   revision that splits traffic ``[baseline 100-w, candidate w]``;
2. reads both variants' requests, errors, p99 latency, labelled accuracy and prediction
   distribution since the step began, from the prediction log (``measure``: here, or in
   a server's monitor process);
3. asks the pure :func:`~dockyard.deploy.rollout.analyse` what to do, and does it: wait;
   advance (a new revision with the next step's weights); complete (the candidate takes 100%
   and the plan is removed); or roll back (the baseline takes 100% and the plan is removed),
   each with an audit event (``rollout.started|advanced|completed|rolled_back``).

Progress lives in the registry's ``rollouts`` table. Every server process runs the
controller; a decision is claimed with a compare-and-set on the row's ``generation``, so only
one process applies it. The claim, the revision it writes and its event are one transaction:
all of a decision is visible, or none of it. ``pause``, ``resume`` and ``abort`` (CLI and
control plane) change the same row; ``abort`` also puts the baseline back at 100%.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.deploy import rollout
from dockyard.deploy.spec import Deployment, DeploymentSpec, RouteSpec
from dockyard.errors import ConflictError, InvalidRequestError, NotFoundError
from dockyard.registry import tables as t
from dockyard.registry.events import record_event
from dockyard.windows import Window

if TYPE_CHECKING:
    import pandas as pd

    from dockyard.deploy.store import DeploymentStore
    from dockyard.monitoring.store import MonitoringStore
    from dockyard.registry import Registry

log = logging.getLogger("dockyard.rollout")
ACTOR = "dockyard-rollout"

Measure = Callable[[str, str, str, datetime], tuple[rollout.VariantStats, rollout.VariantStats]]
"""(endpoint, baseline ref, candidate ref, since) -> both variants' statistics."""


class RolloutController:
    """Moves every endpoint's rollout along its plan."""

    def __init__(
        self,
        registry: Registry,
        store: MonitoringStore,
        deployments: DeploymentStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.db = registry.db
        self.store = store
        self.deployments = deployments
        self.clock = clock
        self.measure: Measure = self.stats
        """Where a step's statistics come from: :meth:`stats` here, or a server's monitor
        process (it reads and compares the log with pandas and scipy, which the server
        keeps out of its serving process)."""

    # --- the pass --------------------------------------------------------------------------

    def tick(self) -> list[tuple[str, rollout.Decision]]:
        """One pass over every deployment with a rollout plan; returns what was applied."""
        applied = []
        for deployment in self.deployments.list():
            plan = deployment.spec.rollout
            if plan is None:
                continue
            try:
                decision = self._step(deployment, plan)
            except Exception:
                log.exception("rollout of %s could not be evaluated", deployment.name)
                continue
            if decision is not None:
                applied.append((deployment.name, decision))
        return applied

    def _step(self, deployment: Deployment, plan: rollout.RolloutPlan) -> rollout.Decision | None:
        name = deployment.name
        now = self.clock()
        row = self._row(name)
        if row is None or row.candidate != plan.candidate or _finished(row.state):
            self._start(deployment, plan, row, now)
            return None
        state = rollout.RolloutState.from_dict(row.state)
        if state.status != "running":
            return None
        since = datetime.fromtimestamp(state.step_started_at, UTC)
        baseline_stats, candidate_stats = self.measure(name, row.baseline, row.candidate, since)
        decision = rollout.analyse(plan, state, baseline_stats, candidate_stats, now)
        # The claim, the new revision and the event commit together: a reader never sees the
        # state moved without its weights, and a failure part-way leaves the step to retry.
        with self.db.write() as conn:
            if not self._claim(conn, name, row.generation, decision.state, decision.to_dict()):
                return None  # another process decided first
            if decision.action == "advance":
                weight = plan.steps[decision.state.step].weight
                self._route(conn, name, row.baseline, row.candidate, weight, decision.reason)
                self._event(conn, "rollout.advanced", name, decision, weight=weight)
            elif decision.action == "complete":
                self._route(conn, name, row.baseline, row.candidate, 100, decision.reason, end=True)
                self._event(conn, "rollout.completed", name, decision)
            elif decision.action == "rollback":
                self._route(conn, name, row.baseline, row.candidate, 0, decision.reason, end=True)
                self._event(conn, "rollout.rolled_back", name, decision)
        if decision.action == "rollback":
            log.warning("rollout of %s rolled back: %s", name, decision.reason)
        return decision if decision.action != "wait" else None

    def _start(
        self, deployment: Deployment, plan: rollout.RolloutPlan, row: Any, now: float
    ) -> None:
        baseline = next(r.model for r in deployment.spec.routes if r.model != plan.candidate)
        state = rollout.RolloutState(status="running", step=0, step_started_at=now)
        values = {
            "candidate": plan.candidate,
            "baseline": baseline,
            "state": state.to_dict(),
            "decision": None,
            "updated_at": datetime.now(UTC),
        }
        with self.db.write() as conn:
            if row is None:
                conn.execute(
                    t.rollouts.insert().values(endpoint=deployment.name, generation=1, **values)
                )
            else:
                result = conn.execute(
                    t.rollouts.update()
                    .where(
                        t.rollouts.c.endpoint == deployment.name,
                        t.rollouts.c.generation == row.generation,
                    )
                    .values(generation=row.generation + 1, **values)
                )
                if not result.rowcount:
                    return
            weight = plan.steps[0].weight
            reason = f"rollout started: {weight}%"
            self._route(conn, deployment.name, baseline, plan.candidate, weight, reason)
            self._event(
                conn, "rollout.started", deployment.name, None, weight=weight, baseline=baseline
            )

    # --- statistics ------------------------------------------------------------------------

    def stats(
        self, endpoint: str, baseline: str, candidate: str, since: datetime
    ) -> tuple[rollout.VariantStats, rollout.VariantStats]:
        """Both variants since ``since`` (the current step's start), from the log."""
        return variant_stats(self.registry, self.store, endpoint, baseline, candidate, since)

    # --- applying --------------------------------------------------------------------------

    def _route(
        self,
        conn: Connection,
        endpoint: str,
        baseline: str,
        candidate: str,
        weight: int,
        reason: str,
        *,
        end: bool = False,
    ) -> None:
        """A new revision with the candidate at ``weight`` percent (the plan removed when the
        rollout ended), in the caller's transaction."""
        current = self.deployments.get_in(conn, endpoint)
        routes: tuple[RouteSpec, ...]
        if end and weight >= 100:
            routes = (RouteSpec(model=candidate, weight=100),)
        elif end:
            routes = (RouteSpec(model=baseline, weight=100),)
        else:  # the baseline stays loaded (at 0% in the last step) for an instant rollback
            routes = (
                RouteSpec(model=baseline, weight=100 - weight),
                RouteSpec(model=candidate, weight=weight),
            )
        update: dict[str, Any] = {"routes": routes}
        if end:
            update["rollout"] = None
        spec = DeploymentSpec.model_validate(
            {**current.spec.model_dump(mode="json"), **_dumped(update)}
        )
        self.deployments.put_in(conn, endpoint, spec, actor=ACTOR, reason=reason[:500])

    def _event(
        self,
        conn: Connection,
        action: str,
        endpoint: str,
        decision: rollout.Decision | None,
        **details: Any,
    ) -> None:
        body = {"deployment": endpoint, **details}
        if decision is not None:
            body["decision"] = decision.to_dict()
        record_event(conn, ACTOR, action, None, None, details=body)

    # --- the rollouts table ----------------------------------------------------------------

    def _row(self, endpoint: str) -> Any:
        with self.db.read() as conn:
            return conn.execute(
                sa.select(t.rollouts).where(t.rollouts.c.endpoint == endpoint)
            ).first()

    def _claim(
        self,
        conn: Connection,
        endpoint: str,
        generation: int,
        state: rollout.RolloutState,
        decision: dict[str, Any] | None,
    ) -> bool:
        """Compare-and-set on the row's generation, in the caller's transaction: whether this
        process won the right to apply the change."""
        result = conn.execute(
            t.rollouts.update()
            .where(t.rollouts.c.endpoint == endpoint, t.rollouts.c.generation == generation)
            .values(
                state=state.to_dict(),
                decision=decision,
                generation=generation + 1,
                updated_at=datetime.now(UTC),
            )
        )
        return bool(result.rowcount)

    # --- operator actions ------------------------------------------------------------------

    def status(self, endpoint: str) -> dict[str, Any]:
        """The endpoint's rollout: plan, state, current weights and the last decision."""
        deployment = self.deployments.get(endpoint)
        row = self._row(endpoint)
        plan = deployment.spec.rollout
        body: dict[str, Any] = {
            "endpoint": endpoint,
            "routes": [r.model_dump() for r in deployment.spec.routes],
            "plan": None if plan is None else plan.model_dump(mode="json"),
            "rollout": None,
        }
        if row is not None:
            body["rollout"] = {
                "candidate": row.candidate,
                "baseline": row.baseline,
                "state": row.state,
                "last_decision": row.decision,
                "updated_at": row.updated_at.isoformat(),
            }
        return body

    def operate(
        self, endpoint: str, action: str, *, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort`` the endpoint's rollout."""
        if action not in ("pause", "resume", "abort"):
            raise InvalidRequestError(
                f"Unknown rollout action {action!r}.", hint="Use pause, resume or abort."
            )
        deployment = self.deployments.get(endpoint)
        row = self._row(endpoint)
        if row is None or deployment.spec.rollout is None:
            raise NotFoundError(
                f"Endpoint {endpoint!r} has no rollout in progress.",
                hint="Deploy a spec with a rollout plan to start one.",
            )
        state = rollout.RolloutState.from_dict(row.state)
        now = self.clock()
        if action == "pause":
            following = rollout.pause(state, now, reason)
        elif action == "resume":
            following = rollout.resume(state, now)
        else:
            following = rollout.abort(state, reason or f"aborted by {actor}")
        with self.db.write() as conn:
            if not self._claim(conn, endpoint, row.generation, following, row.decision):
                raise ConflictError(
                    f"The rollout of {endpoint!r} changed meanwhile.", hint="Look and try again."
                )
            if action == "abort":
                self._route(
                    conn, endpoint, row.baseline, row.candidate, 0, following.reason, end=True
                )
            record_event(
                conn,
                actor,
                f"rollout.{action}",
                None,
                None,
                details={"deployment": endpoint, "reason": reason, "state": following.to_dict()},
            )
        return self.status(endpoint)


def variant_stats(
    registry: Registry,
    store: MonitoringStore,
    endpoint: str,
    baseline: str,
    candidate: str,
    since: datetime,
) -> tuple[rollout.VariantStats, rollout.VariantStats]:
    """The baseline's and the candidate's requests, errors, p99 latency, labelled accuracy
    and (the candidate's) prediction distance since ``since``, from the prediction log."""
    frame = store.predictions(endpoint, Window(since=since), with_feedback=True, only_ok=False)
    versions = {ref: registry.get_version(ref).version for ref in (baseline, candidate)}
    base = frame[frame["version"] == versions[baseline]]
    cand = frame[frame["version"] == versions[candidate]]
    drift = _prediction_distance(base, cand)
    return _variant(base), _variant(cand, prediction_drift=drift)


def _dumped(update: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [route.model_dump(mode="json") for route in value] if key == "routes" else value
        for key, value in update.items()
    }


def _finished(state: dict[str, Any]) -> bool:
    return state.get("status") in ("succeeded", "rolled_back", "aborted")


def _variant(frame: pd.DataFrame, *, prediction_drift: float | None = None) -> rollout.VariantStats:
    from dockyard.monitoring.slices import variant_figures

    figures = variant_figures(frame)
    return rollout.VariantStats(
        requests=figures["requests"],
        errors=figures["errors"],
        p99_latency_ms=figures["p99_latency_ms"],
        labelled=figures["labelled"],
        correct=figures["correct"],
        prediction_drift=prediction_drift,
    )


def _prediction_distance(base: pd.DataFrame, cand: pd.DataFrame) -> float | None:
    """Jensen–Shannon distance (base 2) between the variants' predicted classes; ``None``
    for numeric predictions or too few rows."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    if len(base) < 30 or len(cand) < 30 or base["classes"].isna().all():
        return None
    a = base["prediction"].dropna().value_counts()
    b = cand["prediction"].dropna().value_counts()
    labels = sorted(set(a.index) | set(b.index))
    p = np.array([a.get(label, 0) for label in labels], dtype=np.float64)
    q = np.array([b.get(label, 0) for label in labels], dtype=np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return None
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
