"""Rollout plans and their analysis, driven by a plain float clock."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from dockyard.deploy.rollout import (
    CheckResult,
    Decision,
    RolloutChecks,
    RolloutPlan,
    RolloutState,
    RolloutStep,
    VariantStats,
    abort,
    analyse,
    candidate_weight,
    pause,
    resume,
)
from dockyard.errors import ConflictError, InvalidRequestError

HEALTHY = VariantStats(requests=1000, errors=10, p99_latency_ms=50.0)


def plan(**fields: Any) -> RolloutPlan:
    data: dict[str, Any] = {
        "candidate": "churn@2.0.0",
        "steps": [
            {"weight": 5, "min_duration_s": 300, "min_requests": 100},
            {"weight": 50, "min_duration_s": 600, "min_requests": 200},
            {"weight": 100, "min_duration_s": 60, "min_requests": 0},
        ],
    }
    data.update(fields)
    return RolloutPlan.parse(data)


def stats(**fields: Any) -> VariantStats:
    values: dict[str, Any] = {"requests": 500, "errors": 0, "p99_latency_ms": 55.0}
    values.update(fields)
    return VariantStats(**values)


def check(decision: Decision, name: str) -> CheckResult:
    (found,) = (c for c in decision.checks if c.name == name)
    return found


# --- the state machine ---------------------------------------------------------------------


def test_healthy_plan_advances_step_by_step_and_completes() -> None:
    p = plan()
    state = RolloutState(step_started_at=1000.0)

    waiting = analyse(p, state, HEALTHY, stats(requests=50), now=1100.0)
    assert waiting.action == "wait"
    assert waiting.state is state
    assert "200s left of 300s" in waiting.reason
    assert "50 more candidate requests needed (50 of 100)" in waiting.reason

    first = analyse(p, state, HEALTHY, stats(requests=100), now=1300.0)
    assert first.action == "advance"
    assert first.state == RolloutState("running", 1, 1300.0, first.reason)
    assert "50%" in first.reason
    assert candidate_weight(p, first.state) == 50

    # the step's clock restarted at 1300: 600 s are needed again
    early = analyse(p, first.state, HEALTHY, stats(requests=900), now=1800.0)
    assert early.action == "wait"
    assert "100s left of 600s" in early.reason
    assert "more candidate requests" not in early.reason

    second = analyse(p, first.state, HEALTHY, stats(requests=900), now=1900.0)
    assert second.action == "advance"
    assert (second.state.step, second.state.step_started_at) == (2, 1900.0)

    done = analyse(p, second.state, HEALTHY, stats(requests=10), now=1960.0)
    assert done.action == "complete"
    assert done.state.status == "succeeded"
    assert done.state.step == 2
    assert candidate_weight(p, done.state) == 100
    # a finished rollout is left alone
    after = analyse(p, done.state, HEALTHY, stats(requests=10, errors=10), now=5000.0)
    assert after.action == "none"
    assert after.state is done.state


def test_failing_error_rate_rolls_back_before_the_minimum_duration() -> None:
    p = plan()
    state = RolloutState(step_started_at=0.0)
    decision = analyse(p, state, HEALTHY, stats(requests=40, errors=4), now=10.0)
    assert decision.action == "rollback"
    assert decision.state.status == "rolled_back"
    assert decision.state.reason == decision.reason
    assert decision.reason.startswith("Rolled back at step 1 of 3 (5%): error_rate failed")
    result = check(decision, "error_rate")
    assert result.passed is False
    assert result.value == pytest.approx(0.09)
    assert result.limit == 0.01
    assert candidate_weight(p, decision.state) == 0


def test_error_rate_increase_equal_to_the_limit_passes() -> None:
    # 0.07 - 0.06 is 0.010000000000000009 in floating point
    decision = analyse(
        plan(),
        RolloutState(),
        stats(requests=100, errors=6),
        stats(requests=100, errors=7),
        now=0.0,
    )
    assert check(decision, "error_rate").passed is True
    assert decision.action == "wait"


@pytest.mark.parametrize(("p99", "passed"), [(74.0, True), (75.0, True), (76.0, False)])
def test_p99_latency_ratio(p99: float, passed: bool) -> None:
    decision = analyse(plan(), RolloutState(), HEALTHY, stats(p99_latency_ms=p99), now=0.0)
    result = check(decision, "p99_latency")
    assert result.passed is passed
    assert result.value == pytest.approx(p99 / 50.0)
    assert decision.action == ("wait" if passed else "rollback")


def test_checks_without_data_do_not_block_advancing() -> None:
    quiet_baseline = VariantStats(requests=0, errors=0, p99_latency_ms=None)
    decision = analyse(plan(), RolloutState(), quiet_baseline, stats(), now=300.0)
    assert decision.action == "advance"
    assert check(decision, "error_rate").passed is None
    assert check(decision, "p99_latency").passed is None
    assert "baseline has no requests" in check(decision, "error_rate").detail
    assert "no data yet for error_rate, p99_latency, accuracy" in decision.reason


def test_accuracy_is_not_judged_before_min_labels() -> None:
    # a large drop on 50 labels: reported, but it does not fail or block the step
    baseline = stats(labelled=50, correct=45)
    candidate = stats(labelled=50, correct=25)
    decision = analyse(plan(), RolloutState(), baseline, candidate, now=300.0)
    result = check(decision, "accuracy")
    assert result.passed is None
    assert result.value == pytest.approx(0.4)
    assert "200 labelled rows per variant" in result.detail
    assert decision.action == "advance"


def test_insignificant_accuracy_drop_above_the_limit_passes() -> None:
    # 90% vs 87% on 200 labels each: a 3-point drop, p about 0.17
    baseline = stats(labelled=200, correct=180)
    candidate = stats(labelled=200, correct=174)
    decision = analyse(plan(), RolloutState(), baseline, candidate, now=300.0)
    result = check(decision, "accuracy")
    assert result.passed is True
    assert result.value == pytest.approx(0.03)
    assert "not significant" in result.detail
    assert decision.action == "advance"


def test_significant_accuracy_drop_rolls_back() -> None:
    baseline = stats(labelled=1000, correct=900)
    candidate = stats(labelled=1000, correct=800)
    decision = analyse(plan(), RolloutState(), baseline, candidate, now=1.0)
    result = check(decision, "accuracy")
    assert result.passed is False
    assert result.value == pytest.approx(0.1)
    assert "and significant" in result.detail
    assert decision.action == "rollback"
    assert "accuracy failed" in decision.reason


def test_accuracy_drop_within_the_limit_passes_even_when_significant() -> None:
    baseline = stats(labelled=100_000, correct=90_000)
    candidate = stats(labelled=100_000, correct=89_000)  # 1 point, p far below 0.05
    decision = analyse(plan(), RolloutState(), baseline, candidate, now=1.0)
    assert check(decision, "accuracy").passed is True


def test_agreement_and_prediction_drift_checks() -> None:
    p = plan(checks={"min_agreement": 0.9, "max_prediction_drift": 0.1})
    good = analyse(p, RolloutState(), HEALTHY, stats(agreement=0.95, prediction_drift=0.05), 0.0)
    assert check(good, "agreement").passed is True
    assert check(good, "prediction_drift").passed is True

    disagreeing = analyse(p, RolloutState(), HEALTHY, stats(agreement=0.8), now=0.0)
    assert disagreeing.action == "rollback"
    assert "agreement failed" in disagreeing.reason
    assert check(disagreeing, "prediction_drift").passed is None

    drifting = analyse(p, RolloutState(), HEALTHY, stats(prediction_drift=0.3), now=0.0)
    assert drifting.action == "rollback"
    assert check(drifting, "prediction_drift").value == 0.3


def test_disabled_checks_are_left_out() -> None:
    p = plan(
        checks={
            "max_error_rate_increase": None,
            "max_p99_latency_ratio": None,
            "max_accuracy_drop": None,
        }
    )
    decision = analyse(p, RolloutState(), HEALTHY, stats(errors=500), now=0.0)
    assert decision.checks == ()
    assert decision.action == "wait"


# --- operator actions ----------------------------------------------------------------------


def test_pause_resume_and_abort() -> None:
    p = plan()
    running = RolloutState(step=1, step_started_at=100.0)
    paused = pause(running, now=200.0, reason="holiday freeze")
    assert paused == RolloutState("paused", 1, 200.0, "holiday freeze")
    assert pause(paused, now=300.0) is paused
    assert candidate_weight(p, paused) == 50

    # paused: checks are shown, but nothing moves, not even on a failing check
    held = analyse(p, paused, HEALTHY, stats(errors=500), now=5000.0)
    assert held.action == "none"
    assert held.state is paused
    assert check(held, "error_rate").passed is False
    assert held.reason == "The rollout is paused: holiday freeze."

    resumed = resume(paused, now=1000.0)
    assert resumed == RolloutState("running", 1, 1000.0, "")
    assert resume(resumed, now=2000.0) is resumed
    # the step's full min duration applies again from the resume
    assert analyse(p, resumed, HEALTHY, stats(), now=1599.0).action == "wait"
    assert analyse(p, resumed, HEALTHY, stats(), now=1600.0).action == "advance"

    aborted = abort(paused, "wrong model")
    assert (aborted.status, aborted.reason) == ("aborted", "wrong model")
    assert abort(aborted, "again") is aborted
    assert candidate_weight(p, aborted) == 0


@pytest.mark.parametrize("status", ["succeeded", "rolled_back"])
def test_finished_rollouts_refuse_operator_actions(status: Any) -> None:
    finished = RolloutState(status=status, step=2)
    with pytest.raises(ConflictError, match="cannot be paused"):
        pause(finished, 0.0)
    with pytest.raises(ConflictError, match="cannot be resumed"):
        resume(finished, 0.0)
    with pytest.raises(ConflictError, match=rf"finished \({status.replace('_', ' ')}\)"):
        abort(finished, "too late")


def test_analyse_refuses_bad_clock_and_step() -> None:
    with pytest.raises(ValueError, match="finite"):
        analyse(plan(), RolloutState(), HEALTHY, stats(), now=math.nan)
    with pytest.raises(ValueError, match="past the plan"):
        analyse(plan(), RolloutState(step=3), HEALTHY, stats(), now=0.0)


# --- plans ---------------------------------------------------------------------------------


def test_plan_defaults_and_round_trip() -> None:
    p = RolloutPlan.parse({"candidate": "churn@canary", "steps": [{"weight": 100}]})
    assert p.steps == (RolloutStep(weight=100),)
    assert p.steps[0].min_duration_s == 300
    assert p.checks == RolloutChecks()
    assert RolloutPlan.parse(p.model_dump(mode="json")) == p


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"steps": [{"weight": 10}, {"weight": 10}, {"weight": 100}]}, "steps", "increase"),
        ({"steps": [{"weight": 50}, {"weight": 20}, {"weight": 100}]}, "steps", "increase"),
        ({"steps": [{"weight": 5}, {"weight": 50}]}, "steps", "must be 100"),
        ({"steps": []}, "steps", "at least 1"),
        ({"steps": [{"weight": 0}, {"weight": 100}]}, "steps.0.weight", "greater than or equal"),
        ({"steps": [{"weight": 100, "min_duration_s": "inf"}]}, "steps.0.min_duration_s", ""),
        ({"steps": [{"weight": 100, "pause": True}]}, "steps.0.pause", "Extra inputs"),
        ({"strategy": "canary"}, "strategy", "Extra inputs"),
        ({"checks": {"max_latency": 2}}, "checks.max_latency", "Extra inputs"),
        ({"checks": {"significance": 1.5}}, "checks.significance", "less than 1"),
        ({"checks": {"max_prediction_drift": "nan"}}, "checks.max_prediction_drift", ""),
        ({"candidate": "churn@"}, "candidate", "ends with '@'"),
        ({"candidate": "bad name@1.0.0"}, "candidate", "not a model reference"),
        ({"candidate": "churn"}, "candidate", "name@version or name@alias"),
    ],
)
def test_invalid_plans_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan(**change)
    problems = caught.value.details["problems"]
    assert any(problem.startswith(f"{field}: ") and words in problem for problem in problems)
    assert caught.value.message.startswith("Invalid rollout plan: ")


def test_plan_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="plan: "):
        RolloutPlan.parse([1, 2])  # type: ignore[arg-type]


# --- observations and state ----------------------------------------------------------------


def test_variant_stats_rates_and_missing_values() -> None:
    figures = VariantStats(
        requests=200, errors=3, p99_latency_ms=math.nan, labelled=40, correct=30, agreement=math.inf
    )
    assert figures.error_rate == 0.015
    assert figures.accuracy == 0.75
    assert figures.p99_latency_ms is None
    assert figures.agreement is None
    empty = VariantStats(requests=0, errors=0, p99_latency_ms=None)
    assert (empty.error_rate, empty.accuracy) == (None, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"requests": 5, "errors": 6},
        {"requests": -1, "errors": 0},
        {"labelled": 5, "correct": 6},
        {"agreement": 1.2},
        {"prediction_drift": -0.1},
    ],
)
def test_variant_stats_refuse_impossible_counts(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must lie|share|0 or more"):
        stats(**fields)


def test_state_round_trip_and_validation() -> None:
    state = RolloutState("paused", 2, 12.5, "freeze")
    assert RolloutState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(ValueError, match="unknown rollout status"):
        RolloutState(status="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        RolloutState(step_started_at=math.inf)


def test_decision_to_dict_is_strict_json() -> None:
    p = plan(checks={"min_agreement": 0.5, "max_prediction_drift": 0.2})
    baseline = VariantStats(requests=10, errors=0, p99_latency_ms=1e-300, labelled=300, correct=290)
    candidate = VariantStats(
        requests=10, errors=1, p99_latency_ms=1e300, labelled=300, correct=200, agreement=0.4
    )
    decision = analyse(p, RolloutState(), baseline, candidate, now=0.0)
    data = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert data["action"] == "rollback"
    assert data["state"]["status"] == "rolled_back"
    names = [c["name"] for c in data["checks"]]
    assert names == ["error_rate", "p99_latency", "agreement", "prediction_drift", "accuracy"]
    latency = data["checks"][1]
    assert (latency["passed"], latency["value"]) == (False, None)  # the ratio overflowed


def test_importing_the_module_stays_light() -> None:
    probe = (
        "import sys, dockyard.deploy.rollout\n"
        "print([m for m in ('numpy', 'scipy', 'sqlalchemy') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
