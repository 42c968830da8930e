"""``dockyard score`` and ``dockyard jobs`` as a user runs them: real processes, real files,
the prediction log on disk, S3 through the moto server."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _batch import Scoring, make_scoring
from _cli import CLI


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Scoring:
    return make_scoring(tmp_path_factory.mktemp("batch-cli") / "home")


@pytest.fixture
def cli(scoring: Scoring) -> CLI:
    return CLI(scoring.home)


def test_score_writes_parquet_and_prints_a_summary(
    cli: CLI, scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(500)
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "scored.parquet"
    text = cli("score", "churn@production", str(tmp_path / "in.parquet"), "--out", str(out),
               "--keep", "id", "--workers", "1").stdout  # fmt: skip
    assert "500 rows in, 500 scored" in text
    assert "churn@1.0.0" in text
    output = pd.read_parquet(out)
    assert output["id"].tolist() == frame["id"].tolist()
    assert (output["prediction"].to_numpy() == scoring.expected(frame)).all()
    summary = cli.json("score", "churn@production", str(tmp_path / "in.parquet"),
                       "--out", str(tmp_path / "again.csv"), "--workers", "1")  # fmt: skip
    assert summary["rows_scored"] == 500
    assert summary["output"] == str(tmp_path / "again.csv")
    assert len(pd.read_csv(tmp_path / "again.csv")) == 500
    listed = cli.json("jobs", "--limit", "2")
    assert listed[0]["job_id"] == summary["job_id"]
    assert listed[0]["actor"] == "cli-user"


def test_a_csv_folder_with_bad_rows_writes_rejects_beside_the_output(
    cli: CLI, scoring: Scoring, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    frame = scoring.rows(200).astype({"f4": object})
    frame.loc[120, "f4"] = "oops"
    frame.iloc[:100].to_csv(folder / "a.csv", index=False)
    frame.iloc[100:].to_csv(folder / "b.csv", index=False)
    result = cli("score", "churn@production", str(folder), "--out", str(tmp_path / "out.csv"),
                 "--keep", "id", "--quiet")  # fmt: skip
    assert result.stdout == ""
    assert len(pd.read_csv(tmp_path / "out.csv")) == 199
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["row"].tolist() == [120]
    assert "oops" in rejects["problems"][0]


def test_the_reject_rate_limit_fails_the_job_with_nothing_published(
    cli: CLI, scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(100)
    frame.loc[:4, "f0"] = np.nan
    frame.to_parquet(tmp_path / "in.parquet")
    line = cli.fails("score", "churn@production", str(tmp_path / "in.parquet"),
                     "--out", str(tmp_path / "out.parquet"), "--max-reject-rate", "0.01",
                     code=2)  # fmt: skip
    assert "--max-reject-rate" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    assert cli.json("jobs", "--limit", "1")[0]["status"] == "failed"


def test_bad_requests_are_one_line_before_any_work(
    cli: CLI, scoring: Scoring, tmp_path: Path
) -> None:
    out = str(tmp_path / "out.parquet")
    line = cli.fails("score", "churn@production", str(tmp_path / "none.csv"), "--out", out, code=2)
    assert "No input at" in line
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    line = cli.fails("score", "churn@production", str(tmp_path / "bad.parquet"), "--out", out,
                     code=2)  # fmt: skip
    assert "Cannot read" in line
    scoring.rows(5).drop(columns=["f0", "f1"]).to_parquet(tmp_path / "narrow.parquet")
    line = cli.fails("score", "churn@production", str(tmp_path / "narrow.parquet"),
                     "--out", out, code=2)  # fmt: skip
    assert "lacks required columns: 'f0', 'f1'" in line
    line = cli.fails("score", "churn@nope", str(tmp_path / "narrow.parquet"), "--out", out, code=4)
    assert "nope" in line
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.s3
def test_score_reads_and_writes_s3(
    cli: CLI, scoring: Scoring, s3_bucket: tuple[str, dict[str, Any]], s3_server: str
) -> None:
    import fsspec

    url, options = s3_bucket
    fs = fsspec.filesystem("s3", **options)
    frame = scoring.rows(150)
    with fs.open(f"{url}/in.parquet", "wb") as file:
        frame.to_parquet(file)
    cli.env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    cli("score", "churn@production", f"{url}/in.parquet", "--out", f"{url}/out.parquet",
        "--storage-option", f"endpoint_url={s3_server}", "--keep", "id")  # fmt: skip
    with fs.open(f"{url}/out.parquet", "rb") as file:
        assert pd.read_parquet(file)["id"].tolist() == frame["id"].tolist()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_interrupted_job_leaves_no_output(
    cli: CLI, scoring: Scoring, tmp_path: Path, workers: str
) -> None:
    scoring.rows(400_000).to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out" / "scored.parquet"
    argv = cli.argv("score", "churn@production", str(tmp_path / "in.parquet"), "--out", str(out),
                    "--batch-rows", "100", "--workers", workers)  # fmt: skip
    process = subprocess.Popen(
        argv,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.parent.glob(".scored.parquet.*.partial")):  # work has begun
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []
    assert cli.json("jobs", "--limit", "1")[0]["error"] == "interrupted"


def test_a_hybrid_job_logs_rows_that_drift_and_feedback_read(
    cli: CLI, scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(400, shift=2.0)  # far from the training sample
    frame.to_parquet(tmp_path / "in.parquet")
    summary = cli.json("score", "--endpoint", "churn", str(tmp_path / "in.parquet"),
                       "--out", str(tmp_path / "out.parquet"), "--id-column", "id")  # fmt: skip
    assert summary["logged"] == 400
    assert summary["endpoint"] == "churn"
    drift = cli.json("monitor", "drift", "churn", "--window", "all", "--role", "batch")
    assert drift["report"]["rows"] == 400
    assert drift["report"]["dataset_drifted"] is True
    online = cli.json("monitor", "drift", "churn", "--window", "all")
    assert online["report"] is None  # online view: no batch rows
    output = pd.read_parquet(tmp_path / "out.parquet")
    labels = pd.DataFrame({"request_id": frame["id"].astype(str), "label": output["prediction"]})
    labels.loc[:99, "label"] = 1 - labels.loc[:99, "label"]  # a quarter wrong
    labels.to_csv(tmp_path / "labels.csv", index=False)
    assert cli.json("monitor", "feedback", "churn", str(tmp_path / "labels.csv"))["accepted"] == 400
    performance = cli.json("monitor", "performance", "churn", "--window", "all", "--role", "batch")
    figures = performance["versions"]["1.0.0"]
    assert figures["labelled"] == 400
    assert figures["accuracy"] == pytest.approx(0.75)
