"""Gates with sensitive columns: per-group figures and summaries equal to fairlearn's called
directly, requirements on them (absolute and against the baseline), kept with the result."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from dockyard.deploy.gate import GateResult, evaluate_gate
from dockyard.deploy.requirements import parse_requirement
from dockyard.errors import InvalidRequestError, UnsupportedModelError
from dockyard.registry import Registry
from dockyard.settings import Settings

FEATURES = ["income", "debt", "tenure"]


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, ...]]:
    """Two binary classifiers and labelled data with two sensitive columns that are not
    model inputs; income leans on ``sex``, so the groups' selection rates differ."""
    rng = np.random.default_rng(11)
    n = 600
    data = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    data["sex"] = rng.choice(["f", "m"], size=n)
    data["age_band"] = rng.choice(["<30", "30-50", ">50"], size=n)
    data.loc[data.sex == "m", "income"] += 1.0  # a proxy: the model sees sex through income
    data["y"] = ((data.income - data.debt) > 0.3).astype(int)
    home = tmp_path_factory.mktemp("fairness") / "home"
    registry = Registry.open(Settings(home=home, user="tester"))
    models = []
    for c in (0.01, 1.0):
        model = LogisticRegression(C=c).fit(data[FEATURES], data.y)
        registry.register(model, "credit", sample=data[FEATURES], y=data.y, accelerate=False)
        models.append(model)
    three = LogisticRegression().fit(data[FEATURES], pd.cut(data.income, 3, labels=False))
    registry.register(three, "three", sample=data[FEATURES], accelerate=False)
    yield registry, data, models, home
    registry.close()


def gate(registry: Registry, data: pd.DataFrame, *requirements: str, **options: Any) -> GateResult:
    return evaluate_gate(
        registry,
        options.pop("candidate", "credit@1.0.1"),
        options.pop("baseline", "credit@1.0.0"),
        data,
        "y",
        [parse_requirement(r) for r in requirements],
        latency_rows=0,
        **options,
    )


def test_group_figures_equal_fairlearn_called_directly(gated: Any) -> None:
    registry, data, models, _ = gated
    result = gate(registry, data, sensitive=["sex", "age_band"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fairlearn import metrics as fm
    for role, model in (("candidate", models[1]), ("baseline", models[0])):
        predicted = model.predict(data[FEATURES])
        for column in ("sex", "age_band"):
            figures = result.fairness[column][role]  # type: ignore[index]
            frame = fm.MetricFrame(
                metrics={
                    "selection_rate": fm.selection_rate,
                    "tpr": fm.true_positive_rate,
                    "fpr": fm.false_positive_rate,
                },
                y_true=data.y,
                y_pred=predicted,
                sensitive_features=data[column],
            )
            for group, row in frame.by_group.iterrows():
                for name in ("selection_rate", "tpr", "fpr"):
                    assert np.isclose(figures["groups"][group][name], row[name])
                truth = data.y[data[column] == group]
                hits = predicted[data[column] == group] == truth
                assert np.isclose(figures["groups"][group]["accuracy"], hits.mean())
                assert figures["groups"][group]["count"] == len(truth)
            direct = fm.demographic_parity_difference(
                data.y, predicted, sensitive_features=data[column]
            )
            assert np.isclose(figures["summary"]["demographic_parity_difference"], direct)
            odds = fm.equalized_odds_ratio(data.y, predicted, sensitive_features=data[column])
            assert np.isclose(figures["summary"]["equalized_odds_ratio"], odds)
    # requirements see the worst column: the largest difference, the smallest ratio
    by_column = [result.fairness[c]["candidate"]["summary"] for c in ("sex", "age_band")]  # type: ignore[index]
    assert result.candidate_metrics["demographic_parity_difference"] == max(
        s["demographic_parity_difference"] for s in by_column
    )
    assert result.candidate_metrics["equalized_odds_ratio"] == min(
        s["equalized_odds_ratio"] for s in by_column
    )


def test_requirements_on_differences_and_ratios(gated: Any) -> None:
    registry, data, _, _ = gated
    result = gate(
        registry,
        data,
        "demographic_parity_difference <= 0.99",
        "equalized_odds_difference <= baseline + 0.02",
        "demographic_parity_ratio >= 0.99",
        sensitive=["sex"],
    )
    verdicts = {check.requirement: check.passed for check in result.checks}
    assert verdicts["demographic_parity_difference <= 0.99"] is True
    assert verdicts["demographic_parity_ratio >= 0.99"] is False  # the groups do differ
    check = next(c for c in result.checks if c.metric == "equalized_odds_difference")
    assert check.baseline == result.baseline_metrics["equalized_odds_difference"]  # type: ignore[index]
    assert check.passed == (check.candidate <= check.baseline + 0.02)  # type: ignore[operator]
    again = GateResult.from_dict(result.to_dict())
    assert again.fairness == result.fairness
    assert [c.passed for c in again.checks] == [c.passed for c in result.checks]


def test_bad_fairness_requests_are_refused_before_loading(gated: Any) -> None:
    registry, data, _, _ = gated
    with pytest.raises(InvalidRequestError, match="no sensitive column"):
        gate(registry, data, sensitive=["race"])
    with pytest.raises(InvalidRequestError, match="need the sensitive columns"):
        gate(registry, data, "demographic_parity_difference <= 0.1")
    labels = data.assign(y=pd.cut(data.income, 3, labels=False))
    with pytest.raises(UnsupportedModelError, match="not a binary classifier"):
        gate(registry, labels, candidate="three@1.0.0", baseline=None, sensitive=["sex"])


def test_the_gate_command_prints_the_groups(gated: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    _, data, _, home = gated
    path = tmp_path / "eval.csv"
    data.to_csv(path, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_USER="tester", COLUMNS="200")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "gate",
            "credit@1.0.1",
            "--against",
            "credit@1.0.0",
            "--data",
            str(path),
            "--target",
            "y",
            "--sensitive",
            "sex,age_band",
            "--require",
            "demographic_parity_difference <= 0.99",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fairness by sex" in result.stdout
    assert "fairness by age_band" in result.stdout
    assert "demographic_parity_difference" in result.stdout
