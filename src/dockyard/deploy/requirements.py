"""The requirement grammar of a promotion gate (pure: no I/O, no numpy)::

    roc_auc >= baseline - 0.005
    p99_latency_ms <= 20
    rmse <= baseline * 1.05
    demographic_parity_difference <= 0.1
    equalized_odds_difference <= baseline + 0.02

A requirement is ``METRIC OP EXPR``: ``OP`` is one of ``>= <= > < ==`` and ``EXPR`` a number,
``baseline`` (the baseline's value of the same metric), or ``baseline`` followed by ``+``,
``-`` or ``*`` and a number. :func:`parse_requirement` reads it with a regular grammar, never
``eval``. ``==`` compares with a relative tolerance of 1e-9. Which metrics exist and what
they mean is :mod:`dockyard.deploy.gate`'s to say; :func:`metrics_for` lists them per task.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Literal, cast, get_args

from dockyard.errors import InvalidRequestError

__all__ = [
    "CLASSIFICATION_METRICS",
    "FAIRNESS_METRICS",
    "LATENCY_METRICS",
    "METRICS",
    "OPERATORS",
    "REGRESSION_METRICS",
    "Requirement",
    "Task",
    "metrics_for",
    "number_text",
    "parse_requirement",
]

Operator = Literal[">=", "<=", ">", "<", "=="]
Adjustment = Literal["+", "-", "*"]
Task = Literal["classification", "regression", "other"]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2")
LATENCY_METRICS = ("p50_latency_ms", "p99_latency_ms")
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)
"""Group fairness (a gate with sensitive columns; see :mod:`dockyard.deploy.fairness`)."""
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS + LATENCY_METRICS + FAIRNESS_METRICS
OPERATORS: tuple[Operator, ...] = get_args(Operator)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_REQUIREMENT = re.compile(
    r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|>|<)\s*(?P<expr>.*?)\s*\Z",
    re.ASCII | re.DOTALL,
)
_ABSOLUTE = re.compile(rf"(?P<number>[+-]?{_NUMBER})\Z", re.ASCII)
_RELATIVE = re.compile(
    rf"baseline(?:\s*(?P<adjust>[-+*])\s*(?P<number>{_NUMBER}))?\Z", re.ASCII | re.IGNORECASE
)
_FORM = (
    "Write METRIC OP EXPR: OP one of >=, <=, >, <, ==; EXPR a number, baseline, or baseline "
    "+, - or * a number (e.g. 'roc_auc >= baseline - 0.005', 'p99_latency_ms <= 20')."
)
_METRIC_LIST = f"Metrics: {', '.join(METRICS)}."
_REL_TOL = 1e-9


# --- requirements (pure) -------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement: ``metric operator threshold``.

    The threshold is ``number`` when ``relative`` is false; otherwise the baseline's value,
    adjusted by ``adjustment`` and ``number`` when both are set.
    """

    metric: str
    operator: Operator
    number: float | None = None
    relative: bool = False
    adjustment: Adjustment | None = None

    def threshold(self, baseline: float | None) -> float | None:
        """The value the metric is compared with; ``None`` for a relative requirement whose
        baseline value is unknown."""
        if not self.relative:
            return self.number
        if baseline is None or self.adjustment is None or self.number is None:
            return baseline
        if self.adjustment == "+":
            return baseline + self.number
        if self.adjustment == "-":
            return baseline - self.number
        return baseline * self.number

    def holds(self, value: float, threshold: float) -> bool:
        """Whether ``value OP threshold`` (``==`` within a relative tolerance of 1e-9)."""
        if self.operator == "==":
            return math.isclose(value, threshold, rel_tol=_REL_TOL, abs_tol=1e-12)
        if self.operator == ">=":
            return value >= threshold
        if self.operator == "<=":
            return value <= threshold
        if self.operator == ">":
            return value > threshold
        return value < threshold

    def __str__(self) -> str:
        if not self.relative:
            expr = number_text(self.number)
        elif self.adjustment is None or self.number is None:
            expr = "baseline"
        else:
            expr = f"baseline {self.adjustment} {number_text(self.number)}"
        return f"{self.metric} {self.operator} {expr}"


def parse_requirement(text: str) -> Requirement:
    """Parse ``METRIC OP EXPR`` (see the module docstring); :class:`InvalidRequestError`
    says what is wrong, with the accepted forms and metric names."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError("A requirement is empty.", hint=_FORM)
    match = _REQUIREMENT.match(text)
    if match is None:
        raise InvalidRequestError(
            f"Requirement {text.strip()!r} is not METRIC OP EXPR{_operator_problem(text)}.",
            hint=_FORM,
        )
    metric = match["metric"].lower()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, METRICS, n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        raise InvalidRequestError(
            f"Unknown metric {match['metric']!r} in requirement {text.strip()!r}{guess}.",
            hint=_METRIC_LIST,
        )
    operator = cast(Operator, match["op"])
    expr = match["expr"]
    if not expr:
        raise InvalidRequestError(
            f"Requirement {text.strip()!r} has nothing after {operator!r}.", hint=_FORM
        )
    absolute = _ABSOLUTE.match(expr)
    if absolute is not None:
        return Requirement(metric, operator, _finite(absolute["number"], text))
    relative = _RELATIVE.match(expr)
    if relative is None:
        raise InvalidRequestError(
            f"{expr!r} in requirement {text.strip()!r} is not a number, baseline, or baseline "
            "+, - or * a number.",
            hint=_FORM,
        )
    if relative["adjust"] is None:
        return Requirement(metric, operator, relative=True)
    return Requirement(
        metric,
        operator,
        _finite(relative["number"], text),
        relative=True,
        adjustment=cast(Adjustment, relative["adjust"]),
    )


def _operator_problem(text: str) -> str:
    for wrong in ("=>", "=<", "!=", "<>"):
        if wrong in text:
            return f": {wrong!r} is not an operator"
    if "=" in text and "==" not in text:
        return ": '=' is not an operator (use == or >=)"
    if not any(op in text for op in OPERATORS):
        return ": it has no comparison operator"
    return ""


def _finite(number: str, text: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise InvalidRequestError(
            f"{number} in requirement {text.strip()!r} is too large to be a number.", hint=_FORM
        )
    return value


def number_text(value: float | None) -> str:
    """A threshold or figure as a requirement writes it (``20``, ``0.005``; ``?`` for none)."""
    if value is None:
        return "?"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def metrics_for(task: Task) -> tuple[str, ...]:
    """The metric names a model of this task has (latency for every model)."""
    if task == "classification":
        return CLASSIFICATION_METRICS + LATENCY_METRICS + FAIRNESS_METRICS
    if task == "regression":
        return REGRESSION_METRICS + LATENCY_METRICS
    return LATENCY_METRICS
