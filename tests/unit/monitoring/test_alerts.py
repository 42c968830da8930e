"""Alert rules and their state machine, with plain float clocks."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dockyard.errors import InvalidRequestError
from dockyard.monitoring.alerts import (
    AlertRule,
    AlertState,
    RetrainAction,
    Transition,
    alert_payload,
    evaluate,
    observed_value,
)
from dockyard.windows import Lookback


def rule(**fields: Any) -> AlertRule:
    spec: dict[str, Any] = {"name": "errors", "metric": "error_rate", "threshold": 0.1}
    spec.update(fields)
    return AlertRule.parse(spec)


# --- rules ---------------------------------------------------------------------------------


def test_rule_defaults() -> None:
    parsed = rule()
    assert (parsed.window, parsed.cooldown_s, parsed.min_rows) == ("1h", 3600, 30)
    assert parsed.webhook is None
    assert parsed.action is None
    assert parsed.window_spec == Lookback(seconds=3600)


@pytest.mark.parametrize(
    ("metric", "threshold", "op"),
    [
        ("accuracy", 0.9, "<"),
        ("estimated_accuracy", 0.9, "<"),
        ("drift_share", 0.5, ">"),
        ("error_rate", 0.1, ">"),
        ("p99_latency_ms", 250.0, ">"),
        ("dropped_records", 0.0, ">"),
        ("group_accuracy_gap", 0.1, ">"),
    ],
)
def test_default_comparison_depends_on_the_metric(metric: str, threshold: float, op: str) -> None:
    by = {"by": "region"} if metric == "group_accuracy_gap" else {}
    assert rule(metric=metric, threshold=threshold, **by).comparison == op


@pytest.mark.parametrize(
    ("op", "value", "breached"),
    [
        (">", 0.5, False),
        (">", 0.51, True),
        (">=", 0.5, True),
        (">=", 0.49, False),
        ("<", 0.5, False),
        ("<", 0.49, True),
        ("<=", 0.5, True),
        ("<=", 0.51, False),
    ],
)
def test_breached_applies_the_operator(op: str, value: float, breached: bool) -> None:
    assert rule(op=op, threshold=0.5).breached(value) is breached


def test_accuracy_is_breached_when_it_falls() -> None:
    watched = rule(metric="accuracy", threshold=0.9)
    assert watched.breached(0.85)
    assert not watched.breached(0.95)


def test_feature_drift_needs_a_feature() -> None:
    parsed = rule(metric="feature_drift", feature="age", threshold=0.2)
    assert parsed.feature == "age"
    with pytest.raises(InvalidRequestError, match="needs 'feature'"):
        rule(metric="feature_drift", threshold=0.2)


def test_feature_is_refused_for_other_metrics() -> None:
    with pytest.raises(InvalidRequestError, match="only for metric 'feature_drift'"):
        rule(feature="age")


def test_group_accuracy_gap_needs_a_column_and_is_a_fraction() -> None:
    parsed = rule(metric="group_accuracy_gap", by="age_band", threshold=0.1)
    assert parsed.by == "age_band"
    with pytest.raises(InvalidRequestError, match="needs 'by'"):
        rule(metric="group_accuracy_gap", threshold=0.1)
    with pytest.raises(InvalidRequestError, match="only for metric 'group_accuracy_gap'"):
        rule(by="age_band")
    with pytest.raises(InvalidRequestError, match="fraction"):
        rule(metric="group_accuracy_gap", by="age_band", threshold=10)


@pytest.mark.parametrize("name", ["Errors", "-x", "has space", "a" * 64, "", "é"])
def test_rule_names_are_slugs(name: str) -> None:
    with pytest.raises(InvalidRequestError, match="name: a rule name is a lower-case slug"):
        rule(name=name)


def test_rule_name_of_63_characters_is_accepted() -> None:
    assert rule(name="a" + "-_9" * 20 + "zz").name.startswith("a-_9")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "accuracy", "threshold": 90}, "fraction"),
        ({"metric": "drift_share", "threshold": -0.1}, "fraction"),
        ({"metric": "p99_latency_ms", "threshold": -1}, "never negative"),
        ({"threshold": math.nan}, "finite"),
        ({"threshold": math.inf}, "finite"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"min_rows": -1}, "min_rows"),
        ({"op": "=="}, "op"),
        ({"metric": "latency"}, "metric"),
        ({"window": "soon"}, "window: 'soon' is not a window"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_are_refused_with_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match="Invalid alert rule") as caught:
        rule(**fields)
    assert message in str(caught.value)
    assert caught.value.details["problems"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "hooks.example.com/x",
        "http://",
        "http://hooks.example.com:99999/",
        "https://x.example/" + "a" * 2048,
    ],
)
def test_webhook_must_be_an_http_url(url: str) -> None:
    with pytest.raises(InvalidRequestError, match="webhook"):
        rule(webhook=url)
    with pytest.raises(InvalidRequestError, match=r"action\.webhook"):
        rule(action={"webhook": url})


def test_webhook_addresses_are_not_checked_at_parse_time() -> None:
    # The private-address guard needs settings; it runs when sending.
    assert rule(webhook="http://127.0.0.1:9000/hook").webhook == "http://127.0.0.1:9000/hook"


def test_retrain_action_has_exactly_one_of_webhook_and_command() -> None:
    assert rule(action={"command": "nightly"}).action == RetrainAction(command="nightly")
    assert rule(action={"webhook": "https://ci.example/retrain"}).action is not None
    for action in ({}, {"command": "nightly", "webhook": "https://ci.example/retrain"}):
        with pytest.raises(InvalidRequestError, match="exactly one of"):
            rule(action=action)


@pytest.mark.parametrize("command", ["rm -rf /", "/usr/bin/python", "Nightly", "a;b"])
def test_retrain_command_is_a_name_never_a_command_line(command: str) -> None:
    with pytest.raises(InvalidRequestError, match="command name"):
        rule(action={"command": command})
    with pytest.raises(InvalidRequestError, match="argv"):
        rule(action={"command": "nightly", "argv": ["sh", "-c", "id"]})


def test_rules_are_frozen_and_round_trip_through_json() -> None:
    parsed = rule(action={"command": "nightly"}, webhook="https://hooks.example/a", op=">=")
    with pytest.raises(ValueError, match="frozen"):
        parsed.threshold = 2  # type: ignore[misc]
    again = AlertRule.parse(json.loads(parsed.model_dump_json()))
    assert again == parsed


def test_every_field_is_described() -> None:
    for model in (AlertRule, RetrainAction):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


# --- evaluation ----------------------------------------------------------------------------


OK = AlertState()


def test_no_data_leaves_the_state_unchanged() -> None:
    firing = AlertState(status="firing", since=5.0, last_notified=5.0, value=0.5)
    for value in (None, math.nan, math.inf, -math.inf):
        assert evaluate(rule(), value, OK, now=100.0) == (OK, None)
        assert evaluate(rule(), value, firing, now=100.0) == (firing, None)


def test_first_breach_fires() -> None:
    state, transition = evaluate(rule(), 0.3, OK, now=100.0)
    assert state == AlertState(status="firing", since=100.0, last_notified=100.0, value=0.3)
    assert transition == Transition("firing", "errors", 0.3, 0.1, 100.0)


def test_value_within_threshold_stays_ok_and_records_the_value() -> None:
    state, transition = evaluate(rule(), 0.05, OK, now=100.0)
    assert state == AlertState(status="ok", value=0.05)
    assert transition is None


def test_value_equal_to_threshold_is_not_a_breach_for_strict_operators() -> None:
    assert evaluate(rule(), 0.1, OK, now=100.0)[1] is None
    assert evaluate(rule(op=">="), 0.1, OK, now=100.0)[1] is not None


def test_staying_breached_does_not_notify_again() -> None:
    firing, _ = evaluate(rule(), 0.3, OK, now=100.0)
    state, transition = evaluate(rule(), 0.4, firing, now=100_000.0)
    assert transition is None
    assert state == AlertState(status="firing", since=100.0, last_notified=100.0, value=0.4)


def test_recovery_resolves_and_is_always_sent() -> None:
    firing, _ = evaluate(rule(), 0.3, OK, now=100.0)
    state, transition = evaluate(rule(), 0.02, firing, now=101.0)  # well inside the cooldown
    assert transition == Transition("resolved", "errors", 0.02, 0.1, 101.0)
    assert state == AlertState(status="ok", since=101.0, last_notified=101.0, value=0.02)


def test_breach_inside_the_cooldown_is_suppressed_as_flapping() -> None:
    watched = rule(cooldown_s=600)
    firing, _ = evaluate(watched, 0.3, OK, now=1000.0)
    resolved, _ = evaluate(watched, 0.0, firing, now=1100.0)
    state, transition = evaluate(watched, 0.5, resolved, now=1699.0)
    assert transition is None
    assert state == AlertState(status="ok", since=1100.0, last_notified=1100.0, value=0.5)
    state, transition = evaluate(watched, 0.5, state, now=1700.0)  # cooldown over
    assert state.status == "firing"
    assert transition == Transition("firing", "errors", 0.5, 0.1, 1700.0)


def test_zero_cooldown_fires_on_every_new_breach() -> None:
    watched = rule(cooldown_s=0)
    firing, _ = evaluate(watched, 0.3, OK, now=10.0)
    resolved, _ = evaluate(watched, 0.0, firing, now=10.0)
    assert evaluate(watched, 0.3, resolved, now=10.0)[1] is not None


def test_a_full_cycle_notifies_fire_resolve_fire() -> None:
    watched = rule(cooldown_s=60)
    values = [0.0, 0.2, 0.3, 0.05, 0.2, 0.2, 0.2, 0.01]
    state, kinds = OK, []
    for step, value in enumerate(values):
        state, transition = evaluate(watched, value, state, now=step * 30.0)
        kinds.append(transition.kind if transition else None)
    # fire at t=30, resolve at t=90, breach at t=120 inside the cooldown, fire at t=150
    assert kinds == [None, "firing", None, "resolved", None, "firing", None, "resolved"]


def test_observed_value_applies_min_rows_and_finiteness() -> None:
    watched = rule(min_rows=30)
    assert observed_value(watched, 0.2, rows=30) == 0.2
    assert observed_value(watched, 0.2, rows=29) is None
    assert observed_value(watched, None, rows=100) is None
    assert observed_value(watched, math.nan, rows=100) is None


# --- payload -------------------------------------------------------------------------------


def test_alert_payload_is_json_with_every_field() -> None:
    watched = rule(metric="feature_drift", feature="age", threshold=0.2, window="last:500")
    transition = Transition("firing", "errors", 0.35, 0.2, 1_700_000_000.5)
    payload = alert_payload("churn", watched, transition, details={"rows": 500})
    assert payload == {
        "endpoint": "churn",
        "rule": "errors",
        "metric": "feature_drift",
        "feature": "age",
        "by": None,
        "status": "firing",
        "value": 0.35,
        "threshold": 0.2,
        "op": ">",
        "window": "last:500",
        "at": "2023-11-14T22:13:20.500000Z",
        "details": {"rows": 500},
    }
    assert json.loads(json.dumps(payload)) == payload


def test_alert_payload_for_a_resolution_has_empty_details_by_default() -> None:
    watched = rule(metric="accuracy", threshold=0.9)
    payload = alert_payload("churn", watched, Transition("resolved", "errors", 0.95, 0.9, 0.0))
    assert payload["status"] == "resolved"
    assert payload["op"] == "<"
    assert payload["feature"] is None
    assert payload["at"] == "1970-01-01T00:00:00Z"
    assert payload["details"] == {}


# --- the group accuracy gap ----------------------------------------------------------------


def _groups(**groups: tuple[float | None, int]) -> dict[str, Any]:
    return {g: {"accuracy": accuracy, "labelled": n} for g, (accuracy, n) in groups.items()}


def test_accuracy_gap_compares_groups_with_enough_labels_within_a_version() -> None:
    from dockyard.monitoring.groups import accuracy_gap

    found = {
        "versions": {
            "1.0.0": {"groups": _groups(a=(0.9, 40), b=(0.6, 40), c=(0.0, 3))},
            "2.0.0": {"groups": _groups(a=(0.8, 40), b=(0.75, 40))},
        }
    }
    # c has too few labels to count; the worst version's gap is the value
    assert accuracy_gap(found, min_rows=30) == pytest.approx(0.3)
    assert accuracy_gap(found, min_rows=3) == pytest.approx(0.9)
    assert accuracy_gap(found, min_rows=41) is None
    one_group = {"versions": {"1.0.0": {"groups": _groups(a=(0.9, 40), b=(None, 0))}}}
    assert accuracy_gap(one_group, min_rows=0) is None
    assert accuracy_gap({"versions": {}}, min_rows=0) is None
