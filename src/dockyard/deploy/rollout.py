"""Progressive rollout of a candidate model: the plan, and the pure logic that judges it.

A :class:`RolloutPlan` names a candidate (``name@version`` or ``name@alias``) and the steps of
its share of traffic, for example 5% → 25% → 50% → 100%, each held for a minimum duration
and a minimum number of candidate requests. Its :class:`RolloutChecks` compare the candidate
with the version it replaces (the baseline). Nothing here does I/O or reads a clock: the
controller gathers each variant's :class:`VariantStats` over the current step's window from
the prediction log, calls :func:`analyse` with the current time, writes the deployment
revision the :class:`Decision` asks for (the candidate's weight is :func:`candidate_weight`)
and records its reason as an event.

State machine (``analyse`` moves a running rollout; people call ``pause``, ``resume`` and
``abort``)::

    running + a check with data fails              -> rolled_back        "rollback"
    running + step's min duration and min requests
              reached, no check failed             -> running, step + 1  "advance"
              ... and it was the last step         -> succeeded          "complete"
    running + otherwise                            -> unchanged          "wait"
    paused, succeeded, rolled_back, aborted        -> unchanged          "none"

    pause:  running -> paused   (step_started_at becomes the time of the pause)
    resume: paused  -> running  (the step's clock restarts: its full min duration again)
    abort:  running or paused -> aborted

A failing check rolls back at once, before the step's minimum duration (fail fast); the
controller then writes the previous revision and fires an alert. An aborted rollout also
returns traffic to the baseline. While paused, checks are still evaluated for display but
nothing rolls back on its own. Pausing, resuming or aborting a finished rollout raises
:class:`~dockyard.errors.ConflictError`; repeating a pause, resume or abort changes nothing.

Checks (a limit of ``None`` disables a check; a value equal to its limit passes)
-------------------------------------------------------------------------------
* ``error_rate``: candidate error rate minus baseline error rate, at most
  ``max_error_rate_increase``. Needs requests from both variants.
* ``p99_latency``: candidate p99 latency divided by the baseline's, at most
  ``max_p99_latency_ratio``. Needs both p99s (and the baseline's above zero).
* ``agreement``: share of rows where candidate and baseline predict the same class, at least
  ``min_agreement`` (shadow traffic or feature-matched rows, computed by the caller).
* ``prediction_drift``: an effect size between the two variants' prediction distributions
  (Jensen-Shannon distance or a normalised Wasserstein distance, computed by the caller), at
  most ``max_prediction_drift``.
* ``accuracy``: baseline accuracy minus candidate accuracy, judged only once *both* have at
  least ``min_labels`` labelled rows. Labels arrive late, so until then the check reports
  ``passed=None`` and does **not** hold the rollout back. Once judged, it fails only when the
  drop exceeds ``max_accuracy_drop`` *and* the candidate is significantly less accurate:
  :func:`~dockyard.stats.two_proportion_test` p-value below ``significance``.

A check without data (``passed=None``) never blocks advancing. At a 100% step the baseline
receives no traffic, so the caller should pass the baseline's figures from a longer window
(for example the previous step's) or accept that the comparisons have no data.

Floats in every ``to_dict`` are finite or ``None``, so ``json.dumps(..., allow_nan=False)``
accepts them. This module imports neither numpy nor scipy (the statistics come from
:mod:`dockyard.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard._validation import validate
from dockyard.errors import ConflictError, InvalidRequestError
from dockyard.stats import two_proportion_test

Status = Literal["running", "paused", "succeeded", "rolled_back", "aborted"]
Action = Literal["wait", "advance", "complete", "rollback", "none"]

STATUSES: frozenset[str] = frozenset({"running", "paused", "succeeded", "rolled_back", "aborted"})
FINISHED: frozenset[str] = frozenset({"succeeded", "rolled_back", "aborted"})

_TOLERANCE = 1e-12  # a figure equal to its limit passes despite rounding (0.07 - 0.06 > 0.01)
_MAX_STEP_SECONDS = 30 * 86_400.0


# --- the plan ------------------------------------------------------------------------------


class RolloutStep(BaseModel):
    """One step: the candidate's share of traffic and how long it is held."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: int = Field(
        ge=1, le=100, description="The candidate's share of traffic in this step, in percent."
    )
    min_duration_s: float = Field(
        300,
        ge=0,
        le=_MAX_STEP_SECONDS,
        description="Seconds the step lasts at least before the next one (at most 30 days).",
    )
    min_requests: int = Field(
        100,
        ge=0,
        le=1_000_000_000,
        description="Candidate requests seen in this step before the next one.",
    )


class RolloutChecks(BaseModel):
    """What a step must satisfy, comparing the candidate with the baseline; ``None`` turns a
    check off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate_increase: float | None = Field(
        0.01, ge=0, le=1, description="Most the candidate's error rate may exceed the baseline's."
    )
    max_p99_latency_ratio: float | None = Field(
        1.5,
        gt=0,
        le=1000,
        description="Most the candidate's p99 latency may be, as a multiple of the baseline's.",
    )
    min_agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Least share of rows where candidate and baseline predict the same class.",
    )
    max_prediction_drift: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Largest effect size between the variants' prediction distributions "
        "(Jensen-Shannon or normalised Wasserstein, as the controller computes it).",
    )
    max_accuracy_drop: float | None = Field(
        0.02,
        ge=0,
        le=1,
        description="Most the candidate's accuracy may fall below the baseline's; a larger "
        "drop fails only when also significant.",
    )
    min_labels: int = Field(
        200,
        ge=1,
        le=1_000_000_000,
        description="Labelled rows each variant needs before accuracy is judged.",
    )
    significance: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Level of the one-sided two-proportion z-test an accuracy drop must pass "
        "to fail the step.",
    )


class RolloutPlan(BaseModel):
    """A candidate, the steps of its traffic share, and the checks each step must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate: str = Field(description="The model rolled out: name@version or name@alias.")
    steps: tuple[RolloutStep, ...] = Field(
        min_length=1,
        max_length=100,
        description="Traffic steps; weights strictly increase and the last is 100.",
    )
    checks: RolloutChecks = Field(
        default_factory=RolloutChecks, description="Analysis against the baseline."
    )

    @field_validator("candidate")
    @classmethod
    def _candidate(cls, value: str) -> str:
        # imported here: dockyard.registry's package imports SQLAlchemy
        from dockyard.registry.refs import ModelRef

        try:
            ref = ModelRef.parse(value)
        except InvalidRequestError as exc:
            raise ValueError(str(exc)) from None
        if ref.version is None and ref.alias is None:
            raise ValueError(
                f"{value!r} names no version: pin the candidate as name@version or name@alias"
            )
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: tuple[RolloutStep, ...]) -> tuple[RolloutStep, ...]:
        weights = [step.weight for step in steps]
        for before, after in pairwise(weights):
            if after <= before:
                raise ValueError(f"step weights must strictly increase, got {weights}")
        if weights and weights[-1] != 100:
            raise ValueError(f"the last step's weight must be 100, got {weights[-1]}")
        return steps

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RolloutPlan:
        """Validate a plan, naming every bad field at once (``InvalidRequestError``)."""
        return validate(cls, data, what="rollout plan", root="plan")


# --- observations and state ----------------------------------------------------------------


@dataclass(frozen=True)
class VariantStats:
    """What one variant did over the current step's window.

    ``agreement`` and ``prediction_drift`` describe the candidate against the baseline and
    are read from the candidate's stats only. A non-finite latency, agreement or drift
    (NaN from an empty window) is taken as no data and stored as ``None``.
    """

    requests: int
    errors: int
    p99_latency_ms: float | None
    labelled: int = 0
    correct: int = 0
    agreement: float | None = None
    prediction_drift: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(
                f"errors must lie in [0, requests], got {self.errors} of {self.requests}"
            )
        if not 0 <= self.correct <= self.labelled:
            raise ValueError(
                f"correct must lie in [0, labelled], got {self.correct} of {self.labelled}"
            )
        for name in ("p99_latency_ms", "agreement", "prediction_drift"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                object.__setattr__(self, name, None)
        if self.agreement is not None and not 0 <= self.agreement <= 1:
            raise ValueError(f"agreement is a share in [0, 1], got {self.agreement}")
        if self.prediction_drift is not None and self.prediction_drift < 0:
            raise ValueError(f"prediction_drift is 0 or more, got {self.prediction_drift}")

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands; ``step`` indexes ``plan.steps``. ``step_started_at`` is a value
    of the controller's clock: when the step (or, while paused, the pause) began."""

    status: Status = "running"
    step: int = 0
    step_started_at: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown rollout status {self.status!r}")
        if self.step < 0:
            raise ValueError(f"step must be 0 or more, got {self.step}")
        if not math.isfinite(self.step_started_at):
            raise ValueError("step_started_at must be a finite clock value")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "step": self.step,
            "step_started_at": self.step_started_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """The state that :meth:`to_dict` wrote."""
        return cls(
            status=data["status"],
            step=int(data["step"]),
            step_started_at=float(data["step_started_at"]),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``passed`` is ``None`` while there is not enough data."""

    name: str
    passed: bool | None
    value: float | None
    limit: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": _finite(self.value),
            "limit": _finite(self.limit),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Decision:
    """What :func:`analyse` concluded: the action, the state after it, and why."""

    action: Action
    state: RolloutState
    checks: tuple[CheckResult, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "state": self.state.to_dict(),
            "checks": [check.to_dict() for check in self.checks],
            "reason": self.reason,
        }


# --- analysis ------------------------------------------------------------------------------


def analyse(
    plan: RolloutPlan,
    state: RolloutState,
    baseline: VariantStats,
    candidate: VariantStats,
    now: float,
) -> Decision:
    """Judge the current step of a rollout at clock value ``now``; see the module docstring.

    ``baseline`` and ``candidate`` cover the current step's window (the step began at
    ``state.step_started_at``); labels may come from a longer window.
    """
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite clock value, got {now}")
    checks = evaluate_checks(plan.checks, baseline, candidate)
    if state.status != "running":
        why = f": {state.reason}" if state.reason else ""
        return Decision("none", state, checks, f"The rollout is {_said(state.status)}{why}.")
    if state.step >= len(plan.steps):
        raise ValueError(f"step {state.step} is past the plan's {len(plan.steps)} steps")
    step = plan.steps[state.step]
    where = f"step {state.step + 1} of {len(plan.steps)} ({step.weight}%)"

    failed = [check for check in checks if check.passed is False]
    if failed:
        reason = f"Rolled back at {where}: " + " ".join(
            f"{check.name} failed: {check.detail}" for check in failed
        )
        return Decision(
            "rollback", replace(state, status="rolled_back", reason=reason), checks, reason
        )

    time_left = step.min_duration_s - (now - state.step_started_at)
    requests_left = step.min_requests - candidate.requests
    if time_left > 0 or requests_left > 0:
        missing: list[str] = []
        if time_left > 0:
            missing.append(f"{math.ceil(time_left)}s left of {_seconds(step.min_duration_s)}")
        if requests_left > 0:
            missing.append(
                f"{requests_left} more candidate requests needed "
                f"({candidate.requests} of {step.min_requests})"
            )
        return Decision("wait", state, checks, f"Waiting at {where}: {'; '.join(missing)}.")

    pending = [check.name for check in checks if check.passed is None]
    note = f" (no data yet for {', '.join(pending)})" if pending else ""
    if state.step == len(plan.steps) - 1:
        reason = f"Completed: {where} passed{note}; the candidate serves all traffic."
        return Decision(
            "complete", replace(state, status="succeeded", reason=reason), checks, reason
        )
    following = plan.steps[state.step + 1].weight
    reason = f"Advanced: {where} passed{note}; the candidate now gets {following}%."
    return Decision("advance", RolloutState("running", state.step + 1, now, reason), checks, reason)


def evaluate_checks(
    checks: RolloutChecks, baseline: VariantStats, candidate: VariantStats
) -> tuple[CheckResult, ...]:
    """Every enabled check, in a fixed order: error_rate, p99_latency, agreement,
    prediction_drift, accuracy."""
    results: list[CheckResult] = []
    if checks.max_error_rate_increase is not None:
        results.append(_error_rate(checks.max_error_rate_increase, baseline, candidate))
    if checks.max_p99_latency_ratio is not None:
        results.append(_latency(checks.max_p99_latency_ratio, baseline, candidate))
    if checks.min_agreement is not None:
        results.append(_agreement(checks.min_agreement, candidate))
    if checks.max_prediction_drift is not None:
        results.append(_drift(checks.max_prediction_drift, candidate))
    if checks.max_accuracy_drop is not None:
        results.append(_accuracy(checks.max_accuracy_drop, checks, baseline, candidate))
    return tuple(results)


def candidate_weight(plan: RolloutPlan, state: RolloutState) -> int:
    """The candidate's share of traffic (percent) that ``state`` calls for: the step's weight
    while running or paused, 100 once succeeded, 0 once rolled back or aborted."""
    if state.status == "succeeded":
        return 100
    if state.status in FINISHED:
        return 0
    return plan.steps[min(state.step, len(plan.steps) - 1)].weight


def _error_rate(limit: float, baseline: VariantStats, candidate: VariantStats) -> CheckResult:
    base, cand = baseline.error_rate, candidate.error_rate
    if base is None or cand is None:
        who = _without(base is None, cand is None, "requests")
        return CheckResult("error_rate", None, None, limit, f"No error rate yet: {who}.")
    increase = cand - base
    return CheckResult(
        "error_rate",
        increase <= limit + _TOLERANCE,
        increase,
        limit,
        f"Candidate error rate {cand:.2%} against {base:.2%} for the baseline, a change of "
        f"{_points(increase)} (limit +{_points(limit, sign=False)}).",
    )


def _latency(limit: float, baseline: VariantStats, candidate: VariantStats) -> CheckResult:
    base, cand = baseline.p99_latency_ms, candidate.p99_latency_ms
    if base is None or cand is None or base <= 0:
        who = _without(base is None or base <= 0, cand is None, "p99 latency")
        return CheckResult("p99_latency", None, None, limit, f"No latency ratio yet: {who}.")
    ratio = cand / base
    return CheckResult(
        "p99_latency",
        ratio <= limit + _TOLERANCE,
        _finite(ratio),
        limit,
        f"Candidate p99 latency {cand:.1f} ms against {base:.1f} ms for the baseline, "
        f"{ratio:.2f}× (limit {limit:.2f}×).",
    )


def _agreement(limit: float, candidate: VariantStats) -> CheckResult:
    value = candidate.agreement
    if value is None:
        return CheckResult("agreement", None, None, limit, "No paired predictions compared yet.")
    return CheckResult(
        "agreement",
        value >= limit - _TOLERANCE,
        value,
        limit,
        f"Candidate and baseline predict the same class on {value:.1%} of rows "
        f"(at least {limit:.1%} required).",
    )


def _drift(limit: float, candidate: VariantStats) -> CheckResult:
    value = candidate.prediction_drift
    if value is None:
        return CheckResult(
            "prediction_drift", None, None, limit, "No prediction drift measured yet."
        )
    return CheckResult(
        "prediction_drift",
        value <= limit + _TOLERANCE,
        value,
        limit,
        f"The candidate's predictions drift {value:.3f} from the baseline's (limit {limit:.3f}).",
    )


def _accuracy(
    limit: float, checks: RolloutChecks, baseline: VariantStats, candidate: VariantStats
) -> CheckResult:
    if min(baseline.labelled, candidate.labelled) < checks.min_labels:
        base, cand = baseline.accuracy, candidate.accuracy
        return CheckResult(
            "accuracy",
            None,
            None if base is None or cand is None else base - cand,
            limit,
            f"Accuracy is judged from {checks.min_labels} labelled rows per variant; the "
            f"baseline has {baseline.labelled} and the candidate {candidate.labelled}.",
        )
    base = baseline.correct / baseline.labelled  # min_labels >= 1: neither is empty
    cand = candidate.correct / candidate.labelled
    drop = base - cand
    figures = (
        f"Candidate accuracy {cand:.2%} against {base:.2%} for the baseline "
        f"({candidate.labelled} and {baseline.labelled} labels), "
        f"a drop of {_points(drop, sign=False)}"
    )
    if drop <= limit + _TOLERANCE:
        return CheckResult(
            "accuracy", True, drop, limit, f"{figures} (limit {_points(limit, sign=False)})."
        )
    p = two_proportion_test(
        baseline.correct, baseline.labelled, candidate.correct, candidate.labelled
    )
    significant = p is not None and p < checks.significance
    shown = "undefined" if p is None else f"{p:.3g}"
    verdict = "significant" if significant else "not significant"
    return CheckResult(
        "accuracy",
        not significant,
        drop,
        limit,
        f"{figures}, above the limit of {_points(limit, sign=False)} and {verdict} "
        f"(one-sided p = {shown}, level {checks.significance:g}).",
    )


# --- operator actions ----------------------------------------------------------------------


def pause(state: RolloutState, now: float, reason: str = "") -> RolloutState:
    """Hold a running rollout at its step; ``step_started_at`` records when the pause began."""
    if state.status == "paused":
        return state
    _refuse_finished(state, "paused")
    return RolloutState("paused", state.step, now, reason or "Paused.")


def resume(state: RolloutState, now: float) -> RolloutState:
    """Continue a paused rollout; the step starts over at ``now`` (full min duration)."""
    if state.status == "running":
        return state
    _refuse_finished(state, "resumed")
    return RolloutState("running", state.step, now, "")


def abort(state: RolloutState, reason: str = "") -> RolloutState:
    """Stop a running or paused rollout; the controller returns traffic to the baseline."""
    if state.status == "aborted":
        return state
    _refuse_finished(state, "aborted")
    return replace(state, status="aborted", reason=reason or "Aborted.")


def _refuse_finished(state: RolloutState, verb: str) -> None:
    if state.status in FINISHED:
        raise ConflictError(
            f"The rollout has finished ({_said(state.status)}); it cannot be {verb}.",
            hint="Start a new rollout to change the deployment again.",
        )


# helpers


def _said(status: str) -> str:
    return status.replace("_", " ")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _points(value: float, *, sign: bool = True) -> str:
    """A difference of two rates in percentage points."""
    return f"{value * 100:{'+' if sign else ''}.2f} points"


def _without(base_missing: bool, cand_missing: bool, what: str) -> str:
    if base_missing and cand_missing:
        return f"neither variant has {what}"
    return f"the {'baseline' if base_missing else 'candidate'} has no {what}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
