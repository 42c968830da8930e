"""Batch scoring through its one service function, on real files and a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from _batch import FEATURES, Scoring, make_scoring
from _pandas import text_as
from dockyard.batch.service import RejectRateError, jobs, score, score_frame
from dockyard.errors import InvalidRequestError, SchemaValidationError, UnreadableFileError
from dockyard.registry import Registry


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Scoring:
    return make_scoring(tmp_path_factory.mktemp("batch") / "home")


def test_a_parquet_file_is_scored_in_order_with_kept_columns(
    scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(1000)
    frame.to_parquet(tmp_path / "in.parquet")
    summary = score(
        "churn@production",
        str(tmp_path / "in.parquet"),
        out=str(tmp_path / "out.parquet"),
        settings=scoring.settings,
        keep=["id"],
        batch_rows=128,
        workers=1,
    )
    output = pd.read_parquet(tmp_path / "out.parquet")
    assert list(output.columns) == ["id", "prediction", "proba_0", "proba_1", "version"]
    assert output["id"].tolist() == frame["id"].tolist()
    assert (output["prediction"].to_numpy() == scoring.expected(frame)).all()
    assert np.allclose(output["proba_0"] + output["proba_1"], 1.0, atol=1e-5)
    assert set(output["version"]) == {"churn@1.0.0"}
    assert (summary.rows_in, summary.rows_scored, summary.rows_rejected) == (1000, 1000, 0)
    assert summary.runtime.startswith("onnx")  # the version's twin
    assert summary.rejects is None
    assert not (tmp_path / "out.rejects.parquet").exists()


def test_the_native_model_scores_without_acceleration(scoring: Scoring, tmp_path: Path) -> None:
    scoring.rows(200).to_parquet(tmp_path / "in.parquet")
    summary = score(
        "churn@1.0.0", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
        settings=scoring.settings, accelerate=False, workers=1,
    )  # fmt: skip
    assert summary.runtime == "sklearn"


@pytest.mark.parametrize("dtype", ["object", "str"])  # how pandas reads the CSV's text
def test_bad_rows_go_to_the_rejects_file_with_row_number_and_every_problem(
    scoring: Scoring, tmp_path: Path, dtype: str
) -> None:
    frame = scoring.rows(300)
    text = frame.astype({"f1": object, "f2": object})
    text.loc[7, "f1"] = "seven"
    text.loc[7, "f2"] = None
    text.loc[250, "f2"] = "n/a"
    text.to_csv(tmp_path / "in.csv", index=False)
    with text_as(dtype):
        summary = score(
            "churn@production", str(tmp_path / "in.csv"), out=str(tmp_path / "out.csv"),
            settings=scoring.settings, keep=["id"], batch_rows=100, workers=1,
        )  # fmt: skip
    assert (summary.rows_in, summary.rows_scored, summary.rows_rejected) == (300, 298, 2)
    output = pd.read_csv(tmp_path / "out.csv")
    assert 1007 not in output["id"].tolist()
    assert 1250 not in output["id"].tolist()
    good = frame.drop(index=[7, 250])
    assert output["id"].tolist() == good["id"].tolist()
    assert (output["prediction"].to_numpy() == scoring.expected(good)).all()
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["row"].tolist() == [7, 250]
    assert rejects["id"].tolist() == [1007, 1250]
    first = json.loads(rejects["problems"][0])
    assert {problem["column"] for problem in first} == {"f1", "f2"}  # both, not the first
    assert "seven" in json.dumps(first)


def test_a_folder_and_a_glob_are_read_as_one_input_in_name_order(
    scoring: Scoring, tmp_path: Path
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = scoring.rows(600)
    for index in range(3):
        frame.iloc[index * 200 : (index + 1) * 200].to_parquet(folder / f"part-{index}.parquet")
    for source in (str(folder), str(folder / "part-*.parquet")):
        out = tmp_path / f"out-{len(source)}.parquet"
        summary = score(
            "churn@production", source, out=str(out), settings=scoring.settings,
            keep=["id"], workers=1,
        )  # fmt: skip
        assert summary.rows_scored == 600
        assert pd.read_parquet(out)["id"].tolist() == frame["id"].tolist()


def test_json_lines_are_scored(scoring: Scoring, tmp_path: Path) -> None:
    frame = scoring.rows(50)
    frame.to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    summary = score(
        "churn@production", str(tmp_path / "in.jsonl"), out=str(tmp_path / "out.parquet"),
        settings=scoring.settings, keep=["id"], workers=1,
    )  # fmt: skip
    assert summary.rows_scored == 50
    assert pd.read_parquet(tmp_path / "out.parquet")["id"].tolist() == frame["id"].tolist()


def test_two_workers_give_the_same_output_as_one(scoring: Scoring, tmp_path: Path) -> None:
    frame = scoring.rows(2000)
    frame.loc[1500, "f3"] = np.nan
    frame.to_parquet(tmp_path / "in.parquet")
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}.parquet"
        summary = score(
            "churn@production", str(tmp_path / "in.parquet"), out=str(out),
            settings=scoring.settings, keep=["id"], batch_rows=100, workers=workers,
        )  # fmt: skip
        assert summary.workers == workers
        assert summary.rows_rejected == 1
        outputs.append(pq.read_table(out))
    assert outputs[0].equals(outputs[1])


def test_too_many_rejects_fail_the_job_and_publish_nothing(
    scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(100)
    frame.loc[:9, "f0"] = np.nan  # 10% of the rows
    frame.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(RejectRateError, match=r"over the --max-reject-rate of 5\.00%"):
        score(
            "churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
            settings=scoring.settings, max_reject_rate=0.05, workers=1, batch_rows=10,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]
    with Registry.open(scoring.settings) as registry:
        last = jobs(registry, limit=1)[0]
    assert last["status"] == "failed"
    assert "RejectRateError" in last["error"]
    assert last["rows_rejected"] >= 10


def test_an_input_without_the_models_columns_fails_before_any_work(
    scoring: Scoring, tmp_path: Path
) -> None:
    scoring.rows(10).drop(columns=["f3"]).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(SchemaValidationError, match="lacks required columns: 'f3'"):
        score(
            "churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
            settings=scoring.settings, keep=["id"],
        )  # fmt: skip
    with pytest.raises(SchemaValidationError, match="'customer'"):
        score(
            "churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
            settings=scoring.settings, keep=["customer"],
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_missing_and_unknown_inputs_are_one_clear_error(scoring: Scoring, tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="No input at"):
        score("churn@production", str(tmp_path / "nope.parquet"), out=str(tmp_path / "o.parquet"),
              settings=scoring.settings)  # fmt: skip
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnreadableFileError, match="not of one known format"):
        score("churn@production", str(tmp_path / "notes.txt"), out=str(tmp_path / "o.parquet"),
              settings=scoring.settings)  # fmt: skip
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableFileError, match="Cannot read"):
        score("churn@production", str(tmp_path / "broken.parquet"),
              out=str(tmp_path / "o.parquet"), settings=scoring.settings)  # fmt: skip
    assert not (tmp_path / "o.parquet").exists()


def test_every_job_is_an_audit_event(scoring: Scoring, tmp_path: Path) -> None:
    scoring.rows(20).to_parquet(tmp_path / "in.parquet")
    summary = score(
        "churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
        settings=scoring.settings, workers=1,
    )  # fmt: skip
    with Registry.open(scoring.settings) as registry:
        recorded = jobs(registry, limit=5)
        events = registry.events(action="batch.completed", limit=1)
    job = next(job for job in recorded if job["job_id"] == summary.job_id)
    assert job["status"] == "completed"
    assert job["version"] == "churn@1.0.0"
    assert job["fingerprint"].startswith("sha256:")
    assert job["rows_in"] == 20
    assert job["output"] == str(tmp_path / "out.parquet")
    assert events[0].model == "churn"
    assert events[0].version == "1.0.0"


def test_a_dataframe_is_scored_in_process(scoring: Scoring) -> None:
    frame = scoring.rows(30)
    frame.index = frame.index + 500
    frame.loc[510, "f0"] = np.nan
    result = score_frame("churn@production", frame, settings=scoring.settings, keep=["id"])
    assert 510 not in result.index
    assert list(result.index) == [i for i in frame.index if i != 510]
    good = frame.drop(index=510)
    assert (result["prediction"].to_numpy() == scoring.expected(good)).all()
    assert result.attrs["rejects"]["row"].tolist() == [10]


@pytest.mark.s3
def test_an_s3_input_is_scored_into_an_s3_output(
    scoring: Scoring, tmp_path: Path, s3_bucket: tuple[str, dict[str, object]]
) -> None:
    import fsspec

    url, options = s3_bucket
    frame = scoring.rows(300)
    fs = fsspec.filesystem("s3", **options)
    with fs.open(f"{url}/in/part-0.parquet", "wb") as file:
        frame.to_parquet(file)
    summary = score(
        "churn@production", f"{url}/in/", out=f"{url}/out/scored.parquet",
        settings=scoring.settings, keep=["id"], storage_options=options, workers=1,
    )  # fmt: skip
    assert summary.rows_scored == 300
    with fs.open(f"{url}/out/scored.parquet", "rb") as file:
        output = pd.read_parquet(file)
    assert output["id"].tolist() == frame["id"].tolist()
    assert [p.rsplit("/", 1)[1] for p in fs.ls(f"{url}/out/")] == ["scored.parquet"]
    assert set(FEATURES).isdisjoint(output.columns)


def test_the_python_api_scores_frames_and_files(scoring: Scoring, tmp_path: Path) -> None:
    import dockyard

    frame = scoring.rows(40)
    scored = dockyard.score("churn@production", frame, settings=scoring.settings)
    assert isinstance(scored, pd.DataFrame)
    assert (scored["prediction"].to_numpy() == scoring.expected(frame)).all()
    frame.to_parquet(tmp_path / "in.parquet")
    summary = dockyard.score(
        "churn@production", tmp_path / "in.parquet", out=tmp_path / "out.parquet",
        settings=scoring.settings, workers=1,
    )  # fmt: skip
    assert not isinstance(summary, pd.DataFrame)
    assert summary.rows_scored == 40
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 40


def test_an_output_that_would_replace_the_input_is_refused(
    scoring: Scoring, tmp_path: Path
) -> None:
    frame = scoring.rows(10)
    frame.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(InvalidRequestError, match="would replace an input file"):
        score("churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "in.parquet"),
              settings=scoring.settings)  # fmt: skip
    assert pd.read_parquet(tmp_path / "in.parquet").equals(frame)
