"""Gate requirements are parsed safely and exactly; signatures are compared without I/O."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.deploy.gate import Check, GateResult, SignatureCheck, check_signature
from dockyard.deploy.requirements import METRICS, Requirement, parse_requirement
from dockyard.errors import InvalidRequestError
from dockyard.schema import ColumnSpec, OutputSpec, Signature

# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("roc_auc >= baseline - 0.005", Requirement("roc_auc", ">=", 0.005, True, "-")),
        ("p99_latency_ms <= 20", Requirement("p99_latency_ms", "<=", 20.0)),
        ("rmse<=baseline*1.05", Requirement("rmse", "<=", 1.05, True, "*")),
        ("mae <= baseline + .5", Requirement("mae", "<=", 0.5, True, "+")),
        ("log_loss < baseline", Requirement("log_loss", "<", None, True)),
        ("accuracy > 0.9", Requirement("accuracy", ">", 0.9)),
        ("r2 >= -0.25", Requirement("r2", ">=", -0.25)),
        ("f1 == 1", Requirement("f1", "==", 1.0)),
        ("  F1   >=   1e-3  ", Requirement("f1", ">=", 0.001)),
        ("precision >= Baseline", Requirement("precision", ">=", None, True)),
        ("recall >= baseline - 2E-2", Requirement("recall", ">=", 0.02, True, "-")),
        ("p50_latency_ms < 2.5", Requirement("p50_latency_ms", "<", 2.5)),
    ],
)
def test_valid_requirements_parse_to_their_parts(text: str, expected: Requirement) -> None:
    assert parse_requirement(text) == expected


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("roc_auc>=baseline-0.005", "roc_auc >= baseline - 0.005"),
        ("p99_latency_ms <= 20.0", "p99_latency_ms <= 20"),
        ("RMSE <= BASELINE * 1.05", "rmse <= baseline * 1.05"),
        ("r2 > -1e-3", "r2 > -0.001"),
        ("accuracy == baseline", "accuracy == baseline"),
    ],
)
def test_requirements_print_canonically_and_parse_back(text: str, canonical: str) -> None:
    requirement = parse_requirement(text)
    assert str(requirement) == canonical
    assert parse_requirement(str(requirement)) == requirement


def test_every_metric_is_accepted() -> None:
    assert [parse_requirement(f"{metric} >= 0").metric for metric in METRICS] == list(METRICS)


@pytest.mark.parametrize(
    ("text", "baseline", "threshold"),
    [
        ("roc_auc >= baseline - 0.005", 0.9, 0.895),
        ("mae <= baseline + 0.5", 2.0, 2.5),
        ("rmse <= baseline * 1.1", 10.0, 11.0),
        ("log_loss <= baseline", 0.3, 0.3),
        ("accuracy >= 0.8", 0.99, 0.8),
        ("accuracy >= 0.8", None, 0.8),
        ("accuracy >= baseline", None, None),
        ("accuracy >= baseline - 0.1", None, None),
    ],
)
def test_threshold_follows_the_expression(
    text: str, baseline: float | None, threshold: float | None
) -> None:
    assert parse_requirement(text).threshold(baseline) == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [
        (">=", 0.5, True),
        (">=", 0.4999, False),
        ("<=", 0.5, True),
        ("<=", 0.5001, False),
        (">", 0.5, False),
        (">", 0.5001, True),
        ("<", 0.5, False),
        ("<", 0.4999, True),
        ("==", 0.5 + 1e-12, True),
        ("==", 0.5001, False),
    ],
)
def test_operators_compare_value_with_threshold(operator: str, value: float, holds: bool) -> None:
    assert parse_requirement(f"accuracy {operator} 0.5").holds(value, 0.5) is holds


def test_baseline_arithmetic_equality_is_tolerant_of_rounding() -> None:
    requirement = parse_requirement("accuracy == baseline * 3")
    threshold = requirement.threshold(0.1)
    assert threshold is not None
    assert requirement.holds(0.3, threshold)  # 0.1 * 3 is 0.30000000000000004


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "A requirement is empty"),
        ("   ", "A requirement is empty"),
        ("roc_auc 0.9", "it has no comparison operator"),
        ("roc_auc => 0.9", "'=>' is not an operator"),
        ("roc_auc =< 0.9", "'=<' is not an operator"),
        ("roc_auc != 0.9", "'!=' is not an operator"),
        ("roc_auc = 0.9", "'=' is not an operator (use == or >=)"),
        (">= 0.9", "is not METRIC OP EXPR"),
        ("roc auc >= 0.9", "is not METRIC OP EXPR"),
        ("roc_auc >=", "has nothing after '>='"),
        ("roc_auc >= baseline / 2", "is not a number, baseline, or baseline +, - or * a number"),
        ("roc_auc >= 0.9 + 0.01", "is not a number"),
        ("roc_auc >= 2 * baseline", "is not a number"),
        ("roc_auc >= baseline - -0.1", "is not a number"),
        ("roc_auc >= base", "is not a number"),
        ("roc_auc >= nan", "is not a number"),
        ("roc_auc >= inf", "is not a number"),
        ("roc_auc >= __import__('os').getcwd()", "is not a number"),
        ("roc_auc >= 1e999", "too large to be a number"),
        ("rmse <= baseline * 1e400", "too large to be a number"),
        ("roc_auc >= ０.９", "is not a number"),  # full-width digits are not ASCII numbers
    ],
)
def test_malformed_requirements_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_requirement(text)
    assert message in caught.value.message
    assert caught.value.hint is not None
    assert "METRIC OP EXPR" in caught.value.hint
    assert caught.value.exit_code == 2


def test_unknown_metric_lists_every_metric_and_suggests_the_closest() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_requirement("auc >= 0.9")
    assert caught.value.message == (
        "Unknown metric 'auc' in requirement 'auc >= 0.9' (did you mean roc_auc?)."
    )
    assert caught.value.hint == (
        "Metrics: accuracy, precision, recall, f1, roc_auc, log_loss, mae, rmse, r2, "
        "p50_latency_ms, p99_latency_ms, demographic_parity_difference, "
        "demographic_parity_ratio, equalized_odds_difference, equalized_odds_ratio."
    )


def test_unknown_metric_without_a_close_name_has_no_suggestion() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_requirement("throughput >= 100")
    assert "did you mean" not in caught.value.message
    assert "p99_latency_ms" in str(caught.value)


def test_a_non_string_is_an_empty_requirement() -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        parse_requirement(None)  # type: ignore[arg-type]


# --- signature compatibility ---------------------------------------------------------------


def _signature(
    columns: dict[str, bool], kind: str = "classification", classes: tuple[Any, ...] = (0, 1)
) -> dict[str, Any]:
    """A signature document: column name -> nullable."""
    return Signature(
        columns=tuple(
            ColumnSpec(name, "float", "float64", nullable) for name, nullable in columns.items()
        ),
        output=OutputSpec(
            kind,  # type: ignore[arg-type]
            classes if kind == "classification" else None,
            kind == "classification",
            "int64" if kind == "classification" else "float64",
        ),
        layout="frame",
    ).to_dict()


BASELINE = _signature({"amount": False, "age": False})


def test_same_signature_is_compatible() -> None:
    check = check_signature(BASELINE, BASELINE)
    assert check == SignatureCheck(checked=True, passed=True)


def test_new_required_column_fails_unless_allowed() -> None:
    candidate = _signature({"amount": False, "age": False, "country": False})
    refused = check_signature(candidate, BASELINE)
    assert not refused.passed
    assert refused.new_required == ("country",)
    assert refused.problems == (
        "new required column(s) the baseline's callers do not send: country "
        "(allow them explicitly if every caller has been updated)",
    )
    allowed = check_signature(candidate, BASELINE, allow_new_columns=True)
    assert allowed.passed
    assert allowed.notes == ("new required column(s) allowed: country",)


def test_new_nullable_column_and_removed_column_are_only_notes() -> None:
    candidate = _signature({"amount": False, "country": True})
    check = check_signature(candidate, BASELINE)
    assert check.passed
    assert (check.new_required, check.new_optional, check.removed) == ((), ("country",), ("age",))
    assert check.notes == ("new optional column(s): country", "column(s) no longer used: age")


def test_changed_output_kind_fails_even_with_new_columns_allowed() -> None:
    candidate = _signature({"amount": False, "age": False}, kind="regression")
    check = check_signature(candidate, BASELINE, allow_new_columns=True)
    assert not check.passed
    assert check.problems == ("output changed from classification to regression",)


def test_changed_classes_are_a_note() -> None:
    candidate = _signature({"amount": False, "age": False}, classes=(0, 1, 2))
    check = check_signature(candidate, BASELINE)
    assert check.passed
    assert check.notes == ("classes changed from [0, 1] to [0, 1, 2]",)


@pytest.mark.parametrize(
    ("candidate", "baseline", "note"),
    [
        (None, BASELINE, "not checked: the candidate has no signature"),
        (BASELINE, None, "not checked: the baseline has no signature"),
    ],
)
def test_missing_signature_is_not_checked(
    candidate: dict[str, Any] | None, baseline: dict[str, Any] | None, note: str
) -> None:
    check = check_signature(candidate, baseline)
    assert (check.checked, check.passed, check.notes) == (False, True, (note,))


# --- results -------------------------------------------------------------------------------


def _result(*, passed: bool, signature: SignatureCheck | None = None) -> GateResult:
    return GateResult(
        candidate="fraud@1.3.0",
        baseline="fraud@1.2.0",
        against="fraud@production",
        task="classification",
        target="label",
        checks=(
            Check("roc_auc >= baseline - 0.25", "roc_auc", 0.8, 0.75, 0.5, True),
            Check(
                "p99_latency_ms <= 20", "p99_latency_ms", 3.0 if passed else 31.0, 2.0, 20.0, passed
            ),
        ),
        signature=signature or SignatureCheck(True, True),
        candidate_metrics={"roc_auc": 0.8, "log_loss": None},
        baseline_metrics={"roc_auc": 0.75, "log_loss": None},
        data={"rows": 100},
    )


def test_result_passes_only_when_every_check_and_the_signature_pass() -> None:
    assert _result(passed=True).passed
    failed = _result(passed=False)
    assert not failed.passed
    assert failed.failures == ("p99_latency_ms <= 20: candidate 31 vs threshold 20",)
    incompatible = _result(passed=True, signature=SignatureCheck(True, False, problems=("x",)))
    assert not incompatible.passed
    assert incompatible.failures == ("signature: x",)


def test_result_round_trips_through_its_dict() -> None:
    for result in (_result(passed=True), _result(passed=False)):
        assert GateResult.from_dict(result.to_dict()) == result


def test_a_result_claiming_to_pass_is_judged_again_from_its_figures() -> None:
    forged = _result(passed=False).to_dict()
    forged.update(passed=True, failures=[])
    for check in forged["requirements"]:
        check.update(passed=True, threshold=1e9)
    forged["signature"].update(passed=True, problems=["x"])
    result = GateResult.from_dict(forged)
    assert [check.passed for check in result.checks] == [True, False]
    assert result.checks[1].threshold == 20
    assert not result.signature.passed
    assert not result.passed


@pytest.mark.parametrize(
    "change",
    [
        {"requirements": None},
        {"task": "ranking"},
        {"metrics": {}},
        {"signature": "ok"},
    ],
)
def test_a_malformed_result_is_an_invalid_request(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="Malformed gate result"):
        GateResult.from_dict({**_result(passed=True).to_dict(), **change})
