"""Alert rules and their evaluation: pure, no I/O, every clock value passed in.

A rule watches one metric of one endpoint over a window (a duration back from now, or the
last N predictions) and compares it with a threshold. The server computes the metric's value
for the window and calls :func:`evaluate` with the rule's previous :class:`AlertState` and the
current time; it gets the next state and, when the status changed, a :class:`Transition` to
record (audit event), export (Prometheus gauge) and notify (:func:`alert_payload`, sent by
``dockyard.monitoring.webhooks``).

State machine (``value`` is the metric for the window, ``None`` when there is no data)::

    no data (None, NaN, ±inf)          -> state unchanged, no transition
    ok     + breached, cooldown over   -> firing, Transition("firing")
    ok     + breached, inside cooldown -> ok (value updated), no transition  [flap suppression]
    ok     + not breached              -> ok (value updated)
    firing + breached                  -> firing (value updated), no transition
    firing + not breached              -> ok, Transition("resolved")  [always sent]

Both transitions count as a notification for the cooldown: after a rule resolves, a new
breach stays silent until ``cooldown_s`` has passed since the resolution, so a metric that
hovers around its threshold notifies once per cooldown instead of on every evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from dockyard.errors import InvalidRequestError
from dockyard.names import SLUG
from dockyard.windows import Lookback, parse_lookback

Metric = Literal[
    "drift_share",
    "feature_drift",
    "accuracy",
    "estimated_accuracy",
    "error_rate",
    "p99_latency_ms",
    "dropped_records",
    "out_of_range_rate",
    "group_accuracy_gap",
]
Op = Literal[">", ">=", "<", "<="]

#: Metrics whose values are fractions in [0, 1]; their thresholds must be too.
FRACTION_METRICS: frozenset[str] = frozenset(
    {
        "drift_share",
        "accuracy",
        "estimated_accuracy",
        "error_rate",
        "out_of_range_rate",
        "group_accuracy_gap",
    }
)
#: Metrics that are bad when they fall; the default comparison for them is ``<``.
HIGHER_IS_BETTER: frozenset[str] = frozenset({"accuracy", "estimated_accuracy"})


# --- rules ---------------------------------------------------------------------------------


def _http_url(value: str | None) -> str | None:
    """Refuse anything but an absolute http(s) URL with a host (addresses are checked later)."""
    if value is None:
        return None
    if len(value) > 2048:
        raise ValueError("URL is longer than 2048 characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


WebhookURL = Annotated[str | None, AfterValidator(_http_url)]


class RetrainAction(BaseModel):
    """What to run when a rule fires, so a retraining pipeline can pick the window's data up.

    Exactly one of ``webhook`` and ``command``. A command is named, never spelled out: the
    argv lists live in the server's settings (``retrain_commands``), because anyone who may
    deploy may write rules and must not be able to run arbitrary programs on the server.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: WebhookURL = Field(
        None,
        description="http(s) URL that receives the alert payload with the exported data's "
        "location; private addresses are refused at send time unless the settings allow them.",
    )
    command: str | None = Field(
        None,
        description="Name of a command in the server setting retrain_commands; it runs with "
        "the window's data exported to the file in DOCKYARD_EXPORT_PATH (and in '{data}').",
    )

    @field_validator("command")
    @classmethod
    def _command_name(cls, value: str | None) -> str | None:
        if value is not None and not SLUG.matches(value):
            raise ValueError("a command name is lower-case letters, digits, '-' and '_'")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> RetrainAction:
        if (self.webhook is None) == (self.command is None):
            raise ValueError("a retrain action has exactly one of 'webhook' and 'command'")
        return self


class AlertRule(BaseModel):
    """One metric of one endpoint, compared with a threshold over a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Unique per endpoint: a lower-case slug, [a-z0-9][a-z0-9_-]{0,62}."
    )
    metric: Metric = Field(description="What is measured over the window.")
    feature: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The input feature whose drift score is watched; only for feature_drift.",
    )
    by: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="The logged input column whose groups' accuracies are compared (a band, "
        "a region); only for group_accuracy_gap.",
    )
    op: Op | None = Field(
        None,
        description="How the value is compared with the threshold; by default '<' for "
        "accuracy and estimated_accuracy, '>' for every other metric.",
    )
    threshold: float = Field(
        allow_inf_nan=False,
        description="The limit; fractions (drift_share, accuracy, estimated_accuracy, "
        "error_rate, out_of_range_rate, group_accuracy_gap) lie in [0, 1], the other metrics "
        "are at least 0.",
    )
    window: str = Field(
        "1h",
        description="A duration back from now ('15m', '1h', '1d') or the last N predictions "
        "('last:1000').",
    )
    cooldown_s: float = Field(
        3600.0,
        ge=0,
        allow_inf_nan=False,
        description="After a notification (firing or resolved), no new firing notification "
        "for this rule before this many seconds.",
    )
    min_rows: int = Field(
        30,
        ge=0,
        description="Below this many rows in the window the value counts as no data and the "
        "rule's state is left as it is; for group_accuracy_gap, only groups with this many "
        "labelled rows are compared.",
    )
    webhook: WebhookURL = Field(
        None,
        description="http(s) URL that receives firing and resolved notifications, besides the "
        "event log and the metric.",
    )
    action: RetrainAction | None = Field(None, description="Run when the rule fires.")

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.matches(value):
            raise ValueError("a rule name is a lower-case slug: [a-z0-9][a-z0-9_-]{0,62}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        try:
            parse_lookback(value)
        except InvalidRequestError as exc:
            raise ValueError(exc.message.removeprefix("window: ").rstrip(".")) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AlertRule:
        if self.metric == "feature_drift" and self.feature is None:
            raise ValueError("metric 'feature_drift' needs 'feature'")
        if self.metric != "feature_drift" and self.feature is not None:
            raise ValueError(f"'feature' is only for metric 'feature_drift', not {self.metric!r}")
        if self.metric == "group_accuracy_gap" and self.by is None:
            raise ValueError("metric 'group_accuracy_gap' needs 'by'")
        if self.metric != "group_accuracy_gap" and self.by is not None:
            raise ValueError(f"'by' is only for metric 'group_accuracy_gap', not {self.metric!r}")
        if self.metric in FRACTION_METRICS and not 0 <= self.threshold <= 1:
            raise ValueError(f"{self.metric} is a fraction: the threshold must lie in [0, 1]")
        if self.threshold < 0:
            raise ValueError(f"{self.metric} is never negative: the threshold must be ≥ 0")
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> AlertRule:
        """Validate a rule, naming every bad field at once (``InvalidRequestError``)."""
        from dockyard._validation import validate

        return validate(cls, data, what="alert rule", root="rule")

    @property
    def comparison(self) -> Op:
        """The effective operator: ``op``, or the metric's default."""
        if self.op is not None:
            return self.op
        return "<" if self.metric in HIGHER_IS_BETTER else ">"

    @property
    def window_spec(self) -> Lookback:
        """The parsed window."""
        return parse_lookback(self.window)

    def breached(self, value: float) -> bool:
        """Whether ``value`` is on the wrong side of the threshold."""
        op = self.comparison
        if op == ">":
            return value > self.threshold
        if op == ">=":
            return value >= self.threshold
        if op == "<":
            return value < self.threshold
        return value <= self.threshold


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertState:
    """Where a rule stands: its status, since when, when it last notified, its last value."""

    status: Literal["ok", "firing"] = "ok"
    since: float | None = None
    last_notified: float | None = None
    value: float | None = None


@dataclass(frozen=True)
class Transition:
    """A change of status worth notifying about."""

    kind: Literal["firing", "resolved"]
    rule: str
    value: float
    threshold: float
    at: float


def observed_value(rule: AlertRule, value: float | None, rows: int) -> float | None:
    """The value to evaluate: ``None`` (no data) below ``rule.min_rows`` rows or when not finite."""
    if value is None or rows < rule.min_rows or not math.isfinite(value):
        return None
    return value


def evaluate(
    rule: AlertRule, value: float | None, state: AlertState, now: float
) -> tuple[AlertState, Transition | None]:
    """The rule's next state for the window's ``value`` at time ``now`` (seconds, any epoch).

    See the module docstring for the state machine. The caller applies ``min_rows`` (see
    :func:`observed_value`); NaN and infinities count as no data here as well.
    """
    if value is None or not math.isfinite(value):
        return state, None
    breached = rule.breached(value)
    if state.status == "firing":
        if breached:
            return replace(state, value=value), None
        resolved = AlertState(status="ok", since=now, last_notified=now, value=value)
        return resolved, Transition("resolved", rule.name, value, rule.threshold, now)
    if not breached:
        return replace(state, value=value), None
    if state.last_notified is not None and now - state.last_notified < rule.cooldown_s:
        return replace(state, value=value), None  # flapping: stay quiet until the cooldown ends
    firing = AlertState(status="firing", since=now, last_notified=now, value=value)
    return firing, Transition("firing", rule.name, value, rule.threshold, now)


def alert_payload(
    endpoint: str,
    rule: AlertRule,
    transition: Transition,
    *,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a notification about ``transition`` of ``rule`` on ``endpoint``."""
    return {
        "endpoint": endpoint,
        "rule": rule.name,
        "metric": rule.metric,
        "feature": rule.feature,
        "by": rule.by,
        "status": transition.kind,
        "value": transition.value,
        "threshold": transition.threshold,
        "op": rule.comparison,
        "window": rule.window,
        "at": datetime.fromtimestamp(transition.at, UTC).isoformat().replace("+00:00", "Z"),
        "details": dict(details) if details is not None else {},
    }


__all__ = [
    "AlertRule",
    "AlertState",
    "Metric",
    "RetrainAction",
    "Transition",
    "alert_payload",
    "evaluate",
    "observed_value",
]
