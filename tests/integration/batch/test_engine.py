"""The local engine and the scorer's fast path, on a real registry: batches are shared
between the calling process and its workers, a small input starts no worker, clean numeric
batches skip pandas without skipping a check, and in-memory jobs are audited too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from _batch import FEATURES, Scoring, make_scoring
from _pandas import text_as
from dockyard.batch.engine import Tally, WorkerSpec, numbered, scored
from dockyard.batch.scorer import Scorer
from dockyard.batch.service import jobs, score, score_frame
from dockyard.registry import Registry


@pytest.fixture(scope="module")
def scoring(tmp_path_factory: pytest.TempPathFactory) -> Scoring:
    return make_scoring(tmp_path_factory.mktemp("engine") / "home")


def _scorer(scoring: Scoring, **options: object) -> Scorer:
    with Registry.open(scoring.settings) as registry:
        return Scorer.open(registry, "churn@1.0.0", keep=("id",), **options)  # type: ignore[arg-type]


def _batches(scoring: Scoring, count: int, rows: int) -> list[pa.RecordBatch]:
    frame = scoring.rows(count * rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.to_batches(max_chunksize=rows)


def test_the_calling_process_and_a_worker_share_the_batches(scoring: Scoring) -> None:
    batches = _batches(scoring, 12, 200)
    scorer = _scorer(scoring, workers=2)
    spec = WorkerSpec(scoring.settings, "churn@1.0.0", True, ("id",), None, False, 2)
    tally = Tally()

    def once_a_worker_is_ready() -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(batches):
            if index == 2:  # the first batches are scored here while the worker starts
                deadline = time.monotonic() + 120
                while not tally.ready:
                    assert time.monotonic() < deadline, "the worker never became ready"
                    time.sleep(0.05)
            yield batch

    results = list(scored(numbered(once_a_worker_is_ready()), scorer=scorer, spec=spec,
                          workers=2, tally=tally))  # fmt: skip
    assert tally.here >= 1  # the first batch at least: scored here while the worker started
    assert tally.on_workers >= 1
    assert tally.here + tally.on_workers == 12
    expected = [scorer.score(batch, 0).output for batch in batches]
    assert [result.output for result in results] == expected  # in input order


def test_a_small_input_starts_no_worker(scoring: Scoring, tmp_path: Path) -> None:
    scoring.rows(2000).to_parquet(tmp_path / "in.parquet")
    summary = score(
        "churn@production", str(tmp_path / "in.parquet"), out=str(tmp_path / "out.parquet"),
        settings=scoring.settings, batch_rows=1000, workers=2,
    )  # fmt: skip
    assert summary.workers == 1
    assert summary.extra["batches"].on_workers == 0
    assert summary.rows_scored == 2000


def test_clean_numeric_batches_skip_pandas_and_give_the_same_output(scoring: Scoring) -> None:
    fast = _scorer(scoring)
    assert fast.accelerated
    assert fast._rows is not None  # the twin is fed column by column, straight from Arrow
    full = _scorer(scoring)
    full._rows = None
    for batch in _batches(scoring, 3, 500):
        assert fast._numeric_rows(batch) is not None
        assert fast.score(batch, 0).output.equals(full.score(batch, 0).output)


@pytest.mark.parametrize(
    ("bad", "rejected"),
    [
        (pa.array([None, 1.0, 2.0, 3.0]), 1),  # a null
        (pa.array([np.nan, 1.0, 2.0, 3.0]), 1),  # NaN
        (pa.array(["x", "1", "2", "3"]), 1),  # text
        (pa.array([np.inf, 1.0, 2.0, 3.0]), 0),  # infinity: the full path's to judge
    ],
)
def test_a_batch_the_fast_path_refuses_is_checked_row_by_row(
    scoring: Scoring, bad: pa.Array, rejected: int
) -> None:
    fast, full = _scorer(scoring), _scorer(scoring)
    full._rows = None
    frame = scoring.rows(4)
    batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
    batch = batch.set_column(batch.schema.get_field_index("f2"), "f2", bad)
    assert fast._numeric_rows(batch) is None
    got, want = fast.score(batch, 10), full.score(batch, 10)
    assert got.rejected == want.rejected == rejected
    if rejected:
        assert got.rejects is not None
        assert want.rejects is not None
        assert got.rejects.equals(want.rejects)
        assert got.rejects.column("row").to_pylist() == [10]
    assert got.output.equals(want.output)


@pytest.mark.parametrize("dtype", ["object", "str"])
def test_text_in_a_numeric_column_rejects_its_row_whichever_dtype_pandas_reads_text_as(
    scoring: Scoring, dtype: str
) -> None:
    scorer = _scorer(scoring)
    batch = pa.RecordBatch.from_pandas(scoring.rows(4), preserve_index=False)
    text = pa.array(["x", "1.5", None, "-2"])  # a CSV column that did not convert
    batch = batch.set_column(batch.schema.get_field_index("f2"), "f2", text)
    with text_as(dtype):
        scored = scorer.score(batch, 0)
    assert scored.rejects is not None
    assert scored.rejects.column("row").to_pylist() == [0, 2]  # the text and the null
    assert scored.output.column("id").to_pylist() == [1001, 1003]


def test_an_in_memory_job_is_an_audit_event(scoring: Scoring) -> None:
    frame = scoring.rows(25)
    frame.loc[3, FEATURES[0]] = np.nan
    score_frame("churn@production", frame, settings=scoring.settings)
    score_frame("churn@production", frame, settings=scoring.settings)
    score_frame("churn@production", scoring.rows(25, seed=2), settings=scoring.settings)
    with Registry.open(scoring.settings) as registry:
        recorded = jobs(registry, limit=3)
    assert [job["input"] for job in recorded] == ["DataFrame"] * 3
    assert recorded[2]["status"] == "completed"
    assert recorded[2]["version"] == "churn@1.0.0"
    assert (recorded[2]["rows_in"], recorded[2]["rows_scored"]) == (25, 24)
    assert recorded[2]["rows_rejected"] == 1
    assert recorded[2]["output"] is None
    assert recorded[2]["fingerprint"].startswith("sha256:")
    assert recorded[1]["fingerprint"] == recorded[2]["fingerprint"]  # the same frame
    assert recorded[0]["fingerprint"] != recorded[1]["fingerprint"]  # another one
