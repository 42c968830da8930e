"""What a user notices at the command line (issue 13, items 21-22): large files scored in
chunks, verdicts that show their threshold, the ONNX twin's status, first revisions that say
"created", hints that name options the command has, flags without a type, completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from _cli import run
from dockyard.deploy.spec import DeploymentSpec
from dockyard.deploy.store import DeploymentStore
from dockyard.registry import Registry
from dockyard.settings import Settings

COLUMNS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(500, 3)), columns=COLUMNS)
    y = (X["a"] + X["b"] > 0).astype(int)
    return LogisticRegression().fit(X, y), X, y


@pytest.fixture
def home(tmp_path: Path, fitted: tuple[LogisticRegression, pd.DataFrame, pd.Series]) -> Path:
    """clf@1.0.0 (with its ONNX twin) deployed as endpoint 'ep' with a non-default batch size."""
    model, X, y = fitted
    home = tmp_path / "home"
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "clf", sample=X, y=y)
        spec = {"routes": [{"model": "clf@1.0.0"}], "batching": {"max_batch_size": 128}}
        DeploymentStore(registry.db).put("ep", DeploymentSpec.parse(spec), actor="tester")
    return home


def test_predict_scores_a_file_past_the_queue_limit_in_ordered_chunks(
    home: Path,
    tmp_path: Path,
    start_server: Any,
    fitted: tuple[LogisticRegression, pd.DataFrame, pd.Series],
) -> None:
    model = fitted[0]
    rows = pd.DataFrame(np.random.default_rng(8).normal(size=(5000, 3)), columns=COLUMNS)
    data = tmp_path / "rows.csv"
    rows.to_csv(data, index=False)
    server = start_server(home)
    server.wait_ready()

    result = run(home, "predict", "ep", "--data", str(data), "--url", server.url, "--json")
    body = json.loads(result.stdout)
    assert body["predictions"] == model.predict(rows).tolist()  # every row, in order
    assert len(body["probabilities"]) == 5000
    assert len(body["request_ids"]) == 5  # 1,000 rows a request
    assert body["versions"] == ["1.0.0"]
    assert "scored 5,000 rows in 5 requests of ≤ 1,000" in result.stderr

    small = run(home, "predict", "ep", "--data", str(data), "--url", server.url)
    assert "ep → clf@1.0.0" in small.stdout
    assert "4999" in small.stdout


def test_models_show_states_the_onnx_twin_and_why_there_is_none(
    home: Path, tmp_path: Path, fitted: tuple[LogisticRegression, pd.DataFrame, pd.Series]
) -> None:
    model, X, y = fitted
    with Registry.open(Settings(home=home, user="tester")) as registry:
        registry.register(model, "clf", sample=X, y=y, accelerate=False)
    show = run(home, "models", "show", "clf@1.0.0").stdout
    (line,) = [text for text in show.splitlines() if "onnx twin" in text]
    assert "sha256:" in line
    assert "predicts like the native model on 500 rows" in line
    show = run(home, "models", "show", "clf@1.0.1").stdout
    (line,) = [text for text in show.splitlines() if "twin" in text]
    assert "none (not built for this version)" in line

    from skl2onnx import to_onnx

    onnx_file = tmp_path / "clf.onnx"
    onnx_file.write_bytes(to_onnx(model, X.to_numpy(np.float32)[:1]).SerializeToString())
    sample = tmp_path / "sample.parquet"
    X.to_parquet(sample)
    run(home, "models", "register", "plain", str(onnx_file), "--sample", str(sample))
    show = run(home, "models", "show", "plain@1.0.0").stdout
    (line,) = [text for text in show.splitlines() if "twin" in text]
    assert "none: already ONNX" in line


def test_first_revision_says_created_not_every_default(home: Path) -> None:
    (first,) = json.loads(run(home, "deployments", "history", "ep", "--json").stdout)
    assert first["changes"] == ["created: clf@1.0.0 100%", "batching.max_batch_size: 64 → 128"]
    table = run(home, "deployments", "history", "ep").stdout
    assert "created: clf@1.0.0 100%" in table
    assert "max_queue_rows" not in table


def test_rollback_to_a_revision_that_does_not_exist_is_not_found(home: Path) -> None:
    result = run(home, "rollback", "ep", "--to", "9", code=4)
    assert "no revision 9" in result.stderr
    assert "1..1" in result.stderr


def test_hints_name_only_options_the_command_has(home: Path) -> None:
    tag = run(home, "models", "tag", "clf", "bad", code=2).stderr
    assert "name=value" in tag
    assert "--tag" not in tag
    assert "--tag" not in run(home, "models", "tag", "clf", "--help").stdout
    register = run(home, "models", "register", "x", __file__, "--tag", "bad", code=2).stderr
    assert "--tag name=value" in register


def test_shell_completion_is_offered(home: Path) -> None:
    assert "--install-completion" in run(home, "--help").stdout
    script = run(home, "--show-completion", "bash").stdout
    assert "_DOCKYARD_COMPLETE=complete_bash" in script
    env = {**os.environ, "_DOCKYARD_COMPLETE": "complete_bash"}
    env.update(COMP_WORDS="dockyard models li", COMP_CWORD="2", DOCKYARD_HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-m", "dockyard"], env=env, capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == ["list"]


def test_drift_verdict_shows_the_share_that_decides_it(
    home: Path, fitted: tuple[LogisticRegression, pd.DataFrame, pd.Series]
) -> None:
    """A logged window where 1 of 3 features drifted: 'no drift', and the 50% that decides."""
    from datetime import UTC, datetime

    from dockyard.monitoring.encoding import to_table
    from dockyard.monitoring.records import Batch, ModelCall, Source
    from dockyard.monitoring.store import MonitoringStore

    model = fitted[0]
    settings = Settings(home=home, user="tester")
    live = np.random.default_rng(9).normal(size=(600, 3))
    live[:, 0] += 2.0  # 'a' drifts
    probabilities = model.predict_proba(pd.DataFrame(live, columns=COLUMNS))
    source = Source(
        endpoint="ep",
        revision=1,
        model="clf",
        version="1.0.0",
        columns=tuple(COLUMNS),
        classes=("0", "1"),
        positive=1,
    )
    batch = Batch(source)
    call = ModelCall(live, probabilities.argmax(axis=1), probabilities)
    now = datetime.now(UTC)
    for i in range(len(live)):
        batch.add(f"r{i}", now.timestamp() - 60 + i * 0.01, 0.001, call, i, 1)
    store = MonitoringStore(settings.resolved_monitoring_url)
    store.write_predictions("ep", to_table(batch), now.replace(minute=0, second=0, microsecond=0))

    verdict = run(home, "monitor", "drift", "ep", "--window", "all").stdout.splitlines()[0]
    assert "no drift" in verdict
    assert "features drifted" in verdict
    assert re.search(r"\(\d+%; the dataset drifts at 50% or more\)$", verdict), verdict
