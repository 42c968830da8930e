"""Promotion gates on real models in a real registry: the API in-process, ``dockyard gate``
as a user runs it (a real process, real exit codes), and the documented CI workflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from dockyard.deploy.gate import GateResult, evaluate_gate
from dockyard.deploy.promotion import RecordedGate, promote, record_gate, recorded_gate
from dockyard.deploy.requirements import parse_requirement
from dockyard.errors import ConflictError, InvalidRequestError
from dockyard.registry import Registry
from dockyard.settings import Settings

ROOT = Path(__file__).parents[3]
WEAK = ["mean fractal dimension", "texture error"]  # two nearly useless features


@dataclass(frozen=True)
class Seeded:
    """A registry home holding, with ``production`` on each x.0.0:

    - cancer 1.0.0 and 1.1.0 (the same classifier), 1.2.0 (on two weak features) and 1.3.0
      (the 30 features plus a required ``extra`` column);
    - diabetes 1.0.0 (ridge on every feature) and 1.1.0 (on ``sex`` alone).
    """

    home: Path
    holdout: pd.DataFrame  # cancer rows nobody trained on, with label and extra
    holdout_file: Path
    unlabelled_file: Path  # the same rows without the label column
    diabetes: pd.DataFrame  # diabetes holdout, target "progression"
    diabetes_file: Path
    good: Pipeline
    weak: Pipeline
    ridge: Pipeline
    weak_ridge: Pipeline


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    folder = tmp_path_factory.mktemp("gate")
    cancer = load_breast_cancer(as_frame=True)
    features = [str(c) for c in cancer.data.columns]
    frame = cancer.data.assign(extra=np.random.default_rng(0).normal(size=len(cancer.data)))
    x_train, x_test, y_train, y_test = train_test_split(
        frame, cancer.target, test_size=0.3, random_state=0, stratify=cancer.target
    )
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    good.fit(x_train[features], y_train)
    weak = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    weak.fit(x_train[WEAK], y_train)
    wider = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    wider.fit(x_train[[*features, "extra"]], y_train)

    diabetes = load_diabetes(as_frame=True)
    d_train, d_test, t_train, t_test = train_test_split(
        diabetes.data, diabetes.target, test_size=0.3, random_state=0
    )
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(d_train, t_train)
    weak_ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(d_train[["sex"]], t_train)

    home = folder / "home"
    with Registry.open(Settings(home=home, user="seeder")) as registry:

        def add(model: Any, name: str, version: str, sample: pd.DataFrame, y: Any) -> None:
            aliases = ["production"] if version.endswith(".0.0") else []
            registry.register(
                model,
                name,
                sample=sample,
                y=y,
                version=version,
                aliases=aliases,
                accelerate=False,
            )

        add(good, "cancer", "1.0.0", x_train[features], y_train)
        add(good, "cancer", "1.1.0", x_train[features], y_train)
        add(weak, "cancer", "1.2.0", x_train[WEAK], y_train)
        add(wider, "cancer", "1.3.0", x_train[[*features, "extra"]], y_train)
        add(ridge, "diabetes", "1.0.0", d_train, t_train)
        add(weak_ridge, "diabetes", "1.1.0", d_train[["sex"]], t_train)

    holdout = x_test.assign(label=y_test)
    holdout.to_parquet(folder / "holdout.parquet")
    x_test.to_parquet(folder / "unlabelled.parquet")
    diabetes_holdout = d_test.assign(progression=t_test)
    diabetes_holdout.to_csv(folder / "diabetes.csv", index=False)
    return Seeded(
        home=home,
        holdout=holdout,
        holdout_file=folder / "holdout.parquet",
        unlabelled_file=folder / "unlabelled.parquet",
        diabetes=diabetes_holdout,
        diabetes_file=folder / "diabetes.csv",
        good=good,
        weak=weak,
        ridge=ridge,
        weak_ridge=weak_ridge,
    )


@pytest.fixture
def home(seeded: Seeded, tmp_path: Path) -> Path:
    """A private copy of the seeded registry, free to change."""
    copy = tmp_path / "home"
    shutil.copytree(seeded.home, copy)
    return copy


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    with Registry.open(Settings(home=home, user="tester")) as opened:
        yield opened


def dockyard(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``dockyard --home HOME ARGS`` as a user would; check its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_USER="ci-bot", COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def state(home: Path) -> tuple[dict[str, str], list[int]]:
    """Where cancer's aliases point and every event id but the gates' own records: what
    "nothing changed" compares."""
    with Registry.open(Settings(home=home, user="reader")) as registry:
        aliases = dict(registry.get_model("cancer").aliases)
        events = registry.events(limit=1000)
        return aliases, [event.id for event in events if event.action != "gate.evaluated"]


LENIENT_LATENCY = "p99_latency_ms <= 60000"  # measured and checked, never a timing assert


# --- the command line ----------------------------------------------------------------------


def test_passing_gate_promotes_and_the_alias_event_keeps_the_gate(
    seeded: Seeded, home: Path
) -> None:
    result = dockyard(
        home,
        "gate",
        "cancer@1.1.0",
        "--against",
        "cancer@production",
        "--data",
        str(seeded.holdout_file),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline - 0.005",
        "--require",
        LENIENT_LATENCY,
        "--promote",
        "production",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Gate cancer@1.1.0 against cancer@1.0.0 (cancer@production): classification, "
        f"{len(seeded.holdout)} rows of holdout.parquet (target 'label')"
    )
    row = next(line for line in lines if "roc_auc >= baseline - 0.005" in line)
    assert "pass" in row
    assert "FAIL" not in row
    assert "Signature: compatible" in lines
    assert "PASSED cancer@1.1.0" in lines
    assert lines[-1] == "Promoted: cancer@production → 1.1.0 (was 1.0.0)"

    with Registry.open(Settings(home=home, user="reader")) as registry:
        assert registry.get_version("cancer@production").version == "1.1.0"
        event = registry.events(model="cancer", action="alias.set", limit=1)[0]
    assert (event.actor, event.version, event.before, event.after) == (
        "ci-bot",
        "1.1.0",
        {"alias": "production", "version": "1.0.0"},
        {"alias": "production", "version": "1.1.0"},
    )
    gate = GateResult.from_dict(event.details["gate"])
    assert (gate.passed, gate.candidate, gate.baseline, gate.against) == (
        True,
        "cancer@1.1.0",
        "cancer@1.0.0",
        "cancer@production",
    )
    assert [check.requirement for check in gate.checks] == [
        "roc_auc >= baseline - 0.005",
        LENIENT_LATENCY,
    ]


def test_failing_gate_prints_why_exits_1_and_promotes_nothing(seeded: Seeded, home: Path) -> None:
    before = state(home)
    result = dockyard(
        home,
        "gate",
        "cancer@1.2.0",
        "--against",
        "cancer@production",
        "--data",
        str(seeded.holdout_file),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline - 0.005",
        "--require",
        LENIENT_LATENCY,
        "--promote",
        "production",
        code=1,
    )
    lines = result.stdout.splitlines()
    failed = next(line for line in lines if "roc_auc >= baseline - 0.005" in line)
    assert "FAIL" in failed
    passed = next(line for line in lines if LENIENT_LATENCY in line)
    assert "pass" in passed
    assert "FAILED cancer@1.2.0: 1 of 2 requirement(s) not met" in lines
    assert "  note: column(s) no longer used: " in result.stdout
    assert lines[-1] == "production was not moved."
    assert result.stderr == ""
    assert state(home) == before
    with Registry.open(Settings(home=home, user="reader")) as registry:
        recorded = registry.events(action="gate.evaluated", limit=1)[0]
    assert f"Recorded as gate #{recorded.id}." in lines
    assert (recorded.actor, recorded.model, recorded.version) == ("ci-bot", "cancer", "1.2.0")
    assert recorded.details["gate"]["passed"] is False


def test_json_output_has_every_figure_and_no_promotion_on_failure(
    seeded: Seeded, home: Path
) -> None:
    result = dockyard(
        home,
        "gate",
        "cancer@1.2.0",
        "--against",
        "cancer@production",
        "--data",
        str(seeded.holdout_file),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline - 0.005",
        "--require",
        "accuracy >= 0.5",
        "--promote",
        "production",
        "--json",
        code=1,
    )
    body = json.loads(result.stdout)
    assert (body["passed"], body["promotion"], body["task"]) == (False, None, "classification")
    roc, accuracy = body["requirements"]
    assert roc["passed"] is False
    assert accuracy["passed"] is True
    assert roc["candidate"] < roc["baseline"] - 0.005
    assert roc["threshold"] == pytest.approx(roc["baseline"] - 0.005)
    assert body["failures"] == [
        f"roc_auc >= baseline - 0.005: candidate {roc['candidate']!r} vs threshold "
        f"{roc['threshold']!r}"
    ]
    assert set(body["metrics"]["candidate"]) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "log_loss",
        "p50_latency_ms",
        "p99_latency_ms",
    }
    assert body["data"]["rows"] == len(seeded.holdout)
    assert body["signature"]["removed"][:2] == ["mean radius", "mean texture"]


def test_missing_target_column_exits_2_with_one_clear_line_and_changes_nothing(
    seeded: Seeded, home: Path
) -> None:
    before = state(home)
    result = dockyard(
        home,
        "gate",
        "cancer@1.1.0",
        "--against",
        "cancer@production",
        "--data",
        str(seeded.unlabelled_file),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline",
        "--promote",
        "production",
        code=2,
    )
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: The gate data has no target column 'label'. Its columns: mean radius, "
    )
    assert lines[0].endswith("Name the column holding the labels.")
    assert state(home) == before


def test_new_required_column_fails_unless_allowed(seeded: Seeded, home: Path) -> None:
    common = [
        "gate",
        "cancer@1.3.0",
        "--against",
        "cancer@production",
        "--data",
        str(seeded.holdout_file),
        "--target",
        "label",
        "--require",
        "roc_auc >= baseline - 0.05",
        "--json",
    ]
    refused = json.loads(dockyard(home, *common, code=1).stdout)
    assert refused["requirements"][0]["passed"] is True
    assert refused["signature"]["passed"] is False
    assert refused["signature"]["new_required"] == ["extra"]
    assert refused["failures"] == [
        "signature: new required column(s) the baseline's callers do not send: extra "
        "(allow them explicitly if every caller has been updated)"
    ]
    allowed = json.loads(
        dockyard(home, *common, "--allow-new-columns", "--promote", "production").stdout
    )
    assert allowed["passed"] is True
    assert allowed["signature"]["notes"] == ["new required column(s) allowed: extra"]
    assert allowed["promotion"] == {
        "model": "cancer",
        "alias": "production",
        "version": "1.3.0",
        "previous": "1.0.0",
        "moved": True,
    }


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(
            ["cancer@1.1.0", "--require", "auc >= 0.9"],
            2,
            "Unknown metric 'auc' in requirement 'auc >= 0.9' (did you mean roc_auc?).",
            id="unknown-metric",
        ),
        pytest.param(
            ["cancer@9.9.9", "--require", "roc_auc >= 0.5"], 4, "9.9.9", id="unknown-version"
        ),
        pytest.param(
            ["cancer@1.1.0", "--promote", "latest"], 2, "'latest' is reserved", id="bad-alias"
        ),
    ],
)
def test_bad_input_is_one_error_line_with_its_exit_code(
    seeded: Seeded, home: Path, args: list[str], code: int, message: str
) -> None:
    before = state(home)
    result = dockyard(
        home, "gate", "--data", str(seeded.holdout_file), "--target", "label", *args, code=code
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert state(home) == before


# --- the API -------------------------------------------------------------------------------


def test_classification_metrics_are_sklearns_on_the_same_rows(
    seeded: Seeded, registry: Registry
) -> None:
    rows = seeded.holdout
    result = evaluate_gate(
        registry,
        "cancer@1.2.0",
        "cancer@production",
        rows,
        "label",
        [parse_requirement("accuracy >= baseline - 0.5")],
        latency_rows=5,
    )
    features = [c for c in rows.columns if c not in ("label", "extra")]
    weak, good = seeded.weak.predict_proba(rows[WEAK]), seeded.good.predict_proba(rows[features])
    expected = {
        "candidate": (rows["label"], weak, result.candidate_metrics),
        "baseline": (rows["label"], good, result.baseline_metrics),
    }
    for labels, proba, metrics in expected.values():
        assert metrics is not None
        assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, proba[:, 1]))
        assert metrics["log_loss"] == pytest.approx(log_loss(labels, proba))
        assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, proba.argmax(axis=1)))
    assert result.passed
    assert result.data["rows"] == len(rows)
    assert result.data["unlabelled_rows_dropped"] == 0


def test_regression_gate_compares_error_with_the_baseline(
    seeded: Seeded, registry: Registry
) -> None:
    rows = seeded.diabetes
    result = evaluate_gate(
        registry,
        "diabetes@1.1.0",
        "diabetes@production",
        rows,
        "progression",
        [
            parse_requirement("rmse <= baseline * 1.05"),
            parse_requirement("r2 >= -1"),
            parse_requirement("mae <= baseline + 1000"),
        ],
        latency_rows=5,
    )
    assert result.task == "regression"
    assert [check.passed for check in result.checks] == [False, True, True]
    assert result.baseline_metrics is not None
    assert result.candidate_metrics["mae"] == pytest.approx(
        mean_absolute_error(rows["progression"], seeded.weak_ridge.predict(rows[["sex"]]))
    )
    features = rows.drop(columns=["progression"])
    assert result.baseline_metrics["mae"] == pytest.approx(
        mean_absolute_error(rows["progression"], seeded.ridge.predict(features))
    )
    rmse, baseline_rmse = result.checks[0], result.baseline_metrics["rmse"]
    assert baseline_rmse is not None
    assert rmse.threshold == pytest.approx(baseline_rmse * 1.05)
    assert rmse.candidate is not None
    assert rmse.threshold is not None
    assert rmse.candidate > rmse.threshold


def test_latency_is_measured_for_both_versions_and_checked(
    seeded: Seeded, registry: Registry
) -> None:
    result = evaluate_gate(
        registry,
        "cancer@1.1.0",
        "cancer@production",
        seeded.holdout,
        "label",
        [parse_requirement(LENIENT_LATENCY), parse_requirement("p50_latency_ms < 0.000001")],
        latency_rows=30,
    )
    assert [check.passed for check in result.checks] == [True, False]
    assert result.baseline_metrics is not None
    for metrics in (result.candidate_metrics, result.baseline_metrics):
        p50, p99 = metrics["p50_latency_ms"], metrics["p99_latency_ms"]
        assert p50 is not None
        assert p99 is not None
        assert 0 < p50 <= p99
    assert result.data["latency_rows"] == 30


def test_unlabelled_rows_are_left_out(seeded: Seeded, registry: Registry) -> None:
    rows = seeded.holdout.copy()
    rows["label"] = rows["label"].astype("float64")
    rows.loc[rows.index[:7], "label"] = np.nan
    result = evaluate_gate(
        registry, "cancer@1.1.0", None, rows, "label", [parse_requirement("accuracy >= 0.9")]
    )
    assert result.passed
    assert (result.data["rows"], result.data["unlabelled_rows_dropped"]) == (len(rows) - 7, 7)
    assert result.baseline is None
    assert result.baseline_metrics is None
    assert result.signature.notes == ("not checked: no baseline",)


@pytest.mark.parametrize(
    ("candidate", "baseline", "rows", "requirement", "message"),
    [
        (
            "diabetes@1.0.0",
            None,
            "diabetes",
            "roc_auc >= 0.5",
            "diabetes@1.0.0 is a regression model; it has no roc_auc",
        ),
        (
            "cancer@1.1.0",
            None,
            "cancer",
            "roc_auc >= baseline",
            "Requirement 'roc_auc >= baseline' compares with the baseline, but no baseline",
        ),
        (
            "cancer@1.1.0",
            "cancer@production",
            "cancer without mean radius",
            "roc_auc >= 0.5",
            "The gate data lacks 1 column(s) that cancer@1.1.0 needs: mean radius.",
        ),
        (
            "cancer@1.1.0",
            None,
            "cancer without labels",
            "roc_auc >= 0.5",
            "The gate data has no labelled row",
        ),
        (
            "diabetes@1.0.0",
            None,
            "diabetes with text labels",
            "rmse <= 100",
            "The target column 'progression' holds values that are not numbers",
        ),
    ],
)
def test_requests_that_cannot_be_right_are_refused_before_any_model_loads(
    seeded: Seeded,
    registry: Registry,
    candidate: str,
    baseline: str | None,
    rows: str,
    requirement: str,
    message: str,
) -> None:
    frames = {
        "cancer": seeded.holdout,
        "cancer without mean radius": seeded.holdout.drop(columns=["mean radius"]),
        "cancer without labels": seeded.holdout.assign(label=np.nan),
        "diabetes": seeded.diabetes,
        "diabetes with text labels": seeded.diabetes.assign(
            progression=seeded.diabetes["progression"]
            .astype(str)
            .str.cat(["x"] * len(seeded.diabetes))
        ),
    }
    target = "progression" if rows.startswith("diabetes") else "label"
    with pytest.raises(InvalidRequestError) as caught:
        evaluate_gate(
            registry, candidate, baseline, frames[rows], target, [parse_requirement(requirement)]
        )
    assert message in caught.value.message


def test_promote_moves_the_alias_and_records_the_gate(seeded: Seeded, registry: Registry) -> None:
    result = evaluate_gate(
        registry,
        "cancer@1.1.0",
        "cancer@production",
        seeded.holdout,
        "label",
        [parse_requirement("f1 >= baseline")],
        latency_rows=5,
    )
    gate = record_gate(registry, result, actor="tester")
    assert gate.result == result
    assert recorded_gate(registry, json.loads(json.dumps(gate.to_dict()))) == gate
    promotion = promote(registry, "cancer@1.1.0", "production", gate, actor="token:ci")
    assert (promotion.previous, promotion.version, promotion.moved) == ("1.0.0", "1.1.0", True)
    event = registry.events(action="alias.set", limit=1)[0]
    assert event.actor == "token:ci"
    assert GateResult.from_dict(event.details["gate"]) == result
    assert event.details["gate"]["id"] == gate.id
    again = promote(registry, "cancer@1.1.0", "production", gate, actor="token:ci")
    assert not again.moved
    assert registry.events(action="alias.set", limit=1)[0].id == event.id


def test_promote_refuses_failed_stale_or_mismatched_gates(
    seeded: Seeded, registry: Registry, home: Path
) -> None:
    def gate(
        candidate: str, *requirements: str, against: str | None = "cancer@production"
    ) -> RecordedGate:
        result = evaluate_gate(
            registry,
            candidate,
            against,
            seeded.holdout,
            "label",
            [parse_requirement(requirement) for requirement in requirements],
            latency_rows=5,
        )
        return record_gate(registry, result, actor="tester")

    failed = gate("cancer@1.2.0", "roc_auc >= baseline")
    passed = gate("cancer@1.1.0", "roc_auc >= baseline")
    unconditional = gate("cancer@1.1.0")
    unbased = gate("cancer@1.1.0", "roc_auc >= 0.5", against=None)
    before = state(home)
    with pytest.raises(InvalidRequestError, match=r"The gate for cancer@1\.2\.0 failed"):
        promote(registry, "cancer@1.2.0", "production", failed, actor="ci")
    with pytest.raises(InvalidRequestError, match=r"is for cancer@1\.1\.0, not cancer@1\.2\.0"):
        promote(registry, "cancer@1.2.0", "production", passed, actor="ci")
    with pytest.raises(InvalidRequestError, match=r"has no requirement"):
        promote(registry, "cancer@1.1.0", "production", unconditional, actor="ci")
    with pytest.raises(ConflictError, match=r"compared cancer@1\.1\.0 with no baseline"):
        promote(registry, "cancer@1.1.0", "production", unbased, actor="ci")
    later = passed.evaluated_at + timedelta(seconds=3601)
    with pytest.raises(InvalidRequestError, match=r"evaluated 60 min ago, more than the 60 min"):
        promote(
            registry, "cancer@1.1.0", "production", passed, actor="ci", max_age_s=3600, now=later
        )
    assert state(home) == before

    registry.set_alias("cancer@1.3.0", "production")  # someone else promoted meanwhile
    moved = state(home)
    with pytest.raises(ConflictError, match=r"points at 1\.3\.0 now, but gate #\d+ compared"):
        promote(registry, "cancer@1.1.0", "production", passed, actor="ci")
    assert state(home) == moved
    # another alias was not what the gate compared with: no staleness to guard against
    assert promote(registry, "cancer@1.1.0", "staging", passed, actor="ci").moved


# --- the documented CI workflow ------------------------------------------------------------


@pytest.mark.slow
def test_ci_workflow_trains_registers_gates_and_promotes(tmp_path: Path) -> None:
    """Run docs/ci-workflow.yml's steps as a runner would, twice: the first run finds no
    production version and gates on absolute requirements, the second gates against it."""
    workflow = yaml.safe_load((ROOT / "docs" / "ci-workflow.yml").read_text())
    steps = {step.get("id"): step for step in workflow["jobs"]["train-gate-promote"]["steps"]}
    assert "--promote production" in steps["gate"]["run"]
    assert set(workflow["env"]) >= {"DOCKYARD_DATABASE_URL", "DOCKYARD_ARTIFACT_URL"}
    github_env = tmp_path / "github_env"
    github_env.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DOCKYARD_HOME=str(tmp_path / "home"),  # instead of the shared registry's secrets
        DOCKYARD_USER="github-actions",
        GITHUB_ENV=str(github_env),
        MAX_P99_LATENCY_MS="60000",  # the workflow's knob; the suite asserts no timings
        COLUMNS="200",
    )

    def run(step: str) -> str:
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", steps[step]["run"]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        for line in github_env.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        return done.stdout

    run("train")
    for expected in ("1.0.0", "1.0.1"):
        run("register")
        assert env["CANDIDATE"] == f"fraud@{expected}"
        output = run("gate")
        assert f"Promoted: fraud@production → {expected}" in output
    assert "No fraud@production yet" not in output

    with Registry.open(Settings(home=tmp_path / "home", user="reader")) as registry:
        assert registry.get_version("fraud@production").version == "1.0.1"
        events = registry.events(model="fraud", action="alias.set")
    latest, first = (GateResult.from_dict(e.details["gate"]) for e in events)
    assert (first.baseline, next(str(c.requirement) for c in first.checks)) == (
        None,
        "roc_auc >= 0.9",
    )
    assert (latest.baseline, latest.against) == ("fraud@1.0.0", "fraud@production")
    assert [check.requirement for check in latest.checks] == [
        "roc_auc >= baseline - 0.005",
        "p99_latency_ms <= 60000",
    ]


def test_a_version_without_signature_can_only_be_gated_on_latency(
    seeded: Seeded, registry: Registry
) -> None:
    registry.register(seeded.good, "cancer", version="2.0.0", accelerate=False)  # no sample
    with pytest.raises(InvalidRequestError, match="registered without a sample"):
        evaluate_gate(
            registry, "cancer@2.0.0", None, seeded.holdout, "label", [parse_requirement("f1 > 0")]
        )
    result = evaluate_gate(
        registry,
        "cancer@2.0.0",
        "cancer@production",
        seeded.holdout,
        "label",
        [parse_requirement(LENIENT_LATENCY)],
        latency_rows=5,
    )
    assert result.passed
    assert result.task == "other"
    assert result.signature.notes == ("not checked: the candidate has no signature",)
    assert result.candidate_metrics["p99_latency_ms"] is not None
    assert result.baseline_metrics is not None
    assert result.baseline_metrics["roc_auc"] is not None
