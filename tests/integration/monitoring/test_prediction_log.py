"""The prediction log and its store on real folders and a real S3-compatible server."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from _pandas import values
from dockyard.errors import InvalidRequestError
from dockyard.monitoring import predictions
from dockyard.monitoring.encoding import to_table
from dockyard.monitoring.feedback import parse_feedback, record_feedback
from dockyard.monitoring.predictions import PredictionLog
from dockyard.monitoring.records import Batch, ModelCall, Source
from dockyard.monitoring.store import MonitoringStore
from dockyard.windows import Window, parse_window

NUMERIC = Source("churn", 3, "churn", "1.2.0", ("a", "b"), ("0", "1"), 1)
FRAME = Source("penguins", 1, "penguins", "2.0.0", None, ("Adelie", "Gentoo"), None)


def _numeric(log: PredictionLog, n: int, prefix: str = "r") -> list[str]:
    ids = []
    for i in range(n):
        ids.append(f"{prefix}{i}")
        log.record(
            NUMERIC,
            ids[-1],
            200,
            0.002,
            ModelCall(
                np.array([[float(i), -float(i)]]), np.array([i % 2]), np.array([[0.25, 0.75]])
            ),
        )
    return ids


def test_records_round_trip_with_inputs_outputs_and_failures(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    ids = _numeric(log, 5)
    log.record(NUMERIC, "broken", 400, 0.001)
    assert log.flush() == 6
    frame = store.predictions("churn", Window(), only_ok=False)
    assert len(frame) == 6
    ok = frame[frame["status"] == 200].sort_values("request_id")
    assert ok["request_id"].tolist() == sorted(ids)
    assert ok["input.a"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert ok["prediction"].tolist() == ["0", "1", "0", "1", "0"]
    assert ok["score"].tolist() == [0.75] * 5  # P(positive class)
    assert ok["classes"].iloc[0] == '["0","1"]'
    assert set(ok["version"]) == {"1.2.0"}
    assert set(ok["revision"]) == {3}
    assert ok["latency_ms"].iloc[0] == pytest.approx(2.0)
    failed = frame[frame["status"] == 400]
    assert failed["request_id"].tolist() == ["broken"]
    assert failed["prediction"].isna().all()
    assert failed["input.a"].isna().all()
    assert len(store.predictions("churn", Window())) == 5  # only answered predictions


def test_frames_with_categories_booleans_missing_values_and_several_rows(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    first = pd.DataFrame(
        {"island": ["Biscoe", None], "mass": [3500.0, np.nan], "ok": [True, False]}
    )
    second = pd.DataFrame({"island": ["Dream"], "mass": [4100.0], "extra": [1]})
    log.record(FRAME, "two", 200, 0.01, ModelCall(first, np.array(["Adelie", "Gentoo"])))
    log.record(FRAME, "one", 200, 0.01, ModelCall(second, np.array(["Gentoo"])))
    log.flush()
    frame = store.predictions("penguins", Window()).sort_values(["request_id", "row"])
    assert frame[["request_id", "row"]].values.tolist() == [["one", 0], ["two", 0], ["two", 1]]
    assert values(frame["input.island"]) == ["Dream", "Biscoe", None]
    assert frame["input.mass"].isna().tolist() == [False, False, True]
    assert frame["input.extra"].isna().tolist() == [False, True, True]  # absent: null
    assert frame["prediction"].tolist() == ["Gentoo", "Adelie", "Gentoo"]


def test_requests_answered_in_one_model_call_get_their_own_rows_of_it(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    inputs = np.arange(12.0).reshape(6, 2)
    batch = ModelCall(inputs, np.array([0, 1, 0, 1, 1, 0]), np.linspace(0, 1, 12).reshape(6, 2))
    alone = ModelCall(np.array([[100.0, 101.0]]), np.array([1]), np.array([[0.5, 0.5]]))
    # a call of three requests (rows 0, 1-3, 4-5), a request answered alone in between;
    # then the same call logged in part and out of order (as sampling or a shadow would)
    log.record(NUMERIC, "a", 200, 0.001, batch, 0, 1)
    log.record(NUMERIC, "b", 200, 0.001, batch, 1, 3)
    log.record(NUMERIC, "solo", 200, 0.001, alone)
    log.record(NUMERIC, "c", 200, 0.001, batch, 4, 2)
    log.flush()
    log.record(NUMERIC, "c2", 200, 0.001, batch, 4, 2)
    log.record(NUMERIC, "a2", 200, 0.001, batch, 0, 1)
    log.flush()

    frame = store.predictions("churn", Window())
    rows = {
        (r["request_id"], r["row"]): (r["input.a"], r["prediction"], r["score"])
        for r in frame.to_dict("records")
    }
    expected = {
        ("a", 0): 0,
        ("b", 0): 1,
        ("b", 1): 2,
        ("b", 2): 3,
        ("c", 0): 4,
        ("c", 1): 5,
        ("c2", 0): 4,
        ("c2", 1): 5,
        ("a2", 0): 0,
    }
    assert len(frame) == len(expected) + 1
    for (request, row), index in expected.items():
        assert rows[(request, row)] == (
            inputs[index, 0],
            str(batch.predictions[index]),
            batch.probabilities[index, 1],
        )
    assert rows[("solo", 0)] == (100.0, "1", 0.5)


def test_slices_become_tables_in_one_pass_and_only_tables_are_written(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    canary = Source("churn", 4, "churn", "1.3.0", ("a", "b"), ("no", "yes"), 1)
    # slices as the server's loop makes them: two versions of one endpoint, numeric labels
    # from one and text labels from the other, several slices before a table pass
    first = _numeric(log, 3, prefix="p")
    log.record(
        canary,
        "t0",
        200,
        0.001,
        ModelCall(np.array([[7.0, 8.0]]), np.array(["yes"], dtype=object), np.array([[0.1, 0.9]])),
    )
    log.convert(tabulate=False)
    second = _numeric(log, 2, prefix="q")
    log.convert(tabulate=False)
    assert log.flush(convert=False) == 0  # the writer only writes tables
    assert store.predictions("churn", Window()).empty
    log.convert(tabulate=True)
    late = _numeric(log, 1, prefix="z")  # recorded after the pass: not in its table
    assert log.flush(convert=False) == 6
    assert log.buffered == 1
    assert log.flush() == 1  # a full flush converts what is left
    assert log.buffered == 0

    frame = store.predictions("churn", Window()).set_index("request_id")
    assert sorted(frame.index) == sorted([*first, *second, *late, "t0"])
    assert frame.loc["t0", "prediction"] == "yes"
    assert frame.loc["t0", "version"] == "1.3.0"
    assert frame.loc["t0", "score"] == pytest.approx(0.9)
    assert frame.loc["t0", "input.b"] == 8.0
    assert frame.loc["q1", "prediction"] == "1"
    assert frame.loc["q1", "input.a"] == 1.0
    assert set(frame.loc[[*first, *second], "version"]) == {"1.2.0"}


def test_a_table_pass_comes_early_once_the_chunks_hold_tabulate_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at a high volume a pass over 0.2 s of rows held the event loop for milliseconds
    monkeypatch.setattr(predictions, "TABULATE_INTERVAL_S", 3600.0)
    monkeypatch.setattr(predictions, "TABULATE_ROWS", 5)
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    _numeric(log, 3, prefix="a")
    log.convert()
    assert log.flush(convert=False) == 0  # 3 rows: no pass yet
    _numeric(log, 3, prefix="b")
    log.convert()
    assert log.flush(convert=False) == 6  # 6 rows: the pass came
    _numeric(log, 4, prefix="c")
    log.convert()
    assert log.flush(convert=False) == 0  # the count started over
    assert log.buffered == 4


def test_a_server_log_imports_arrows_kernels_at_start_not_in_its_first_table_pass(
    tmp_path: Path,
) -> None:
    # the import takes ~30 ms; in the first pass it held the event loop that long
    code = (
        "import sys\n"
        "from dockyard.monitoring.predictions import PredictionLog\n"
        "from dockyard.monitoring.store import MonitoringStore\n"
        f"log = PredictionLog(MonitoringStore({str(tmp_path / 'm')!r}))\n"
        "before = 'pyarrow.compute' in sys.modules\n"
        "log.start(converting=True)\n"
        "print(before, 'pyarrow.compute' in sys.modules)\n"
        "log.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_a_full_buffer_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    counted: list[tuple[int, int]] = []
    log = PredictionLog(
        MonitoringStore(str(tmp_path / "m")),
        buffer_rows=100,
        on_flush=lambda written, dropped: counted.append((written, dropped)),
    )
    _numeric(log, 150)
    assert log.dropped == 50
    assert log.buffered == 100
    assert log.flush() == 100
    assert counted == [(100, 50)]
    _numeric(log, 10, prefix="s")
    assert log.flush() == 10
    assert counted[-1] == (10, 0)


def test_a_failed_write_is_retried_then_succeeds(tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.write_text("a file where the folder should be")
    log = PredictionLog(MonitoringStore(str(root)))
    _numeric(log, 3)
    assert log.flush() == 0
    assert log.failures == 1
    assert log.last_error is not None
    assert log.buffered == 3  # kept for the next flush
    root.unlink()
    assert log.flush() == 3
    assert log.dropped == 0


def test_background_thread_flushes_and_close_flushes_the_rest(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store, flush_interval_s=0.05)
    log.start()
    _numeric(log, 20)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while log.written < 20 and datetime.now(UTC) < deadline:
        pass
    assert log.written == 20
    _numeric(log, 5, prefix="late")
    log.close()
    assert len(store.predictions("churn", Window())) == 25


def test_records_taken_while_another_thread_converts_are_kept_once(tmp_path: Path) -> None:
    """Recording takes no lock: requests recorded while the loop converts and other threads
    flush (the writer; the watcher's pass) are all written, none twice, and the count of
    buffered rows returns to 0."""
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store, flush_interval_s=0.001, flush_rows=50)
    log.start(converting=True)  # the writer writes as fast as it can
    flushing = threading.Event()

    def flush_often() -> None:  # a second taker, as the watcher's pass is
        while not flushing.is_set():
            log.flush()

    other = threading.Thread(target=flush_often)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as the interpreter can
    other.start()
    try:
        ids = []
        for part in range(100):  # the loop records, and converts between requests
            ids += _numeric(log, 30, prefix=f"r{part}-")
            log.convert()
        log.record(NUMERIC, "broken", 500, 0.001)
    finally:
        sys.setswitchinterval(interval)
        flushing.set()
        other.join()
        log.close()
    assert log.buffered == 0
    assert log.dropped == 0
    assert log.written == 3001
    frame = store.predictions("churn", Window(), only_ok=False)
    assert sorted(frame["request_id"]) == sorted([*ids, "broken"])


def test_sampling_keeps_about_the_rate_and_every_failure(tmp_path: Path) -> None:
    sampled = Source("churn", 1, "churn", "1.0.0", ("a", "b"), None, None, sample_rate=0.3)
    log = PredictionLog(MonitoringStore(str(tmp_path / "m")))
    kept = sum(
        log.record(sampled, f"r{i}", 200, 0.001, ModelCall(np.zeros((1, 2)), np.array([1.0])))
        for i in range(4000)
    )
    assert 1080 <= kept <= 1320  # 0.3 ± 4.5 standard deviations
    assert all(log.record(sampled, f"f{i}", 500, 0.001) for i in range(20))


def test_windows_by_time_and_last_n_across_hours_and_retention(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    now = datetime.now(UTC).replace(microsecond=0)
    for hours_ago in (30, 2, 1, 0):
        moment = now - timedelta(hours=hours_ago)
        batch = Batch(NUMERIC)
        for i in range(10):
            at = moment.timestamp() + i
            batch.add(f"h{hours_ago}-{i}", at, 0.001, ModelCall(np.ones((1, 2)), [1], [[0.1, 0.9]]))
        store.write_predictions("churn", to_table(batch), moment)
    assert len(store.predictions("churn", Window())) == 40
    recent = store.predictions("churn", parse_window("90m", now=now + timedelta(seconds=30)))
    assert set(recent["request_id"].str.split("-").str[0]) == {"h1", "h0"}
    last = store.predictions("churn", Window(last=15))
    assert len(last) == 15
    assert last["time"].is_monotonic_increasing
    assert set(last["request_id"].str.split("-").str[0]) == {"h1", "h0"}
    assert store.known_request_ids("churn", ["h30-1", "nope", "h0-9"]) == {"h30-1", "h0-9"}
    removed = store.delete_before("churn", now - timedelta(days=1))
    assert removed == 1
    assert len(store.predictions("churn", Window())) == 30


def test_a_sampled_read_of_a_busy_window_reads_a_bounded_share_of_its_segments(
    tmp_path: Path,
) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    for segment in range(60):  # sixty flushes of 500 rows: 30,000 rows in the hour
        _numeric(log, 500, prefix=f"s{segment}-")
        log.flush()
    assert len(store.prediction_segments("churn")) == 60
    everything = store.predictions("churn", Window())
    assert len(everything) == 30_000

    sampled = store.predictions("churn", Window(), sample=1_000)
    read = set(sampled["request_id"].str.split("-").str[0])
    assert len(sampled) == 1_000
    # whole segments holding about 4 x 1,000 rows: 8 of the 60, spread over the window
    assert 6 <= len(read) <= 10
    assert sampled["time"].is_monotonic_increasing
    assert set(sampled["request_id"]) <= set(everything["request_id"])
    again = store.predictions("churn", Window(), sample=1_000)
    assert again["request_id"].tolist() == sampled["request_id"].tolist()  # repeatable
    # a sample as big as the window reads all of it; "last N" is never thinned
    assert len(store.predictions("churn", Window(), sample=30_000)) == 30_000
    assert len(store.predictions("churn", Window(last=20_000), sample=25_000)) == 20_000


def test_feedback_joins_by_request_and_row_and_the_latest_label_wins(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    log.record(
        FRAME, "two", 200, 0.01, ModelCall(pd.DataFrame({"x": [1, 2]}), ["Adelie", "Gentoo"])
    )
    log.record(FRAME, "one", 200, 0.01, ModelCall(pd.DataFrame({"x": [3]}), ["Gentoo"]))
    log.flush()
    first = record_feedback(
        store,
        "penguins",
        parse_feedback([{"request_id": "two", "label": ["Adelie", "Adelie"]}]),
        now=datetime.now(UTC) - timedelta(minutes=1),
    )
    second = record_feedback(
        store,
        "penguins",
        parse_feedback(
            [{"request_id": "two", "row": 1, "label": "Gentoo"}, {"request_id": "x", "label": 1}]
        ),
    )
    assert first.accepted == 2
    assert second.to_dict() == {"accepted": 1, "unknown_request_ids": ["x"]}
    frame = store.predictions("penguins", Window(), with_feedback=True)
    labels = dict(
        zip(zip(frame["request_id"], frame["row"], strict=True), frame["label"], strict=True)
    )
    assert labels[("two", 0)] == "Adelie"
    assert labels[("two", 1)] == "Gentoo"  # re-sent: the later label wins
    assert pd.isna(labels[("one", 0)])


def test_labelled_only_columns_are_read_where_a_label_arrived(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    ids = _numeric(log, 4)
    log.flush()
    wanted = ["time", "version", "prediction", "proba"]
    before = store.predictions(
        "churn", Window(), columns=wanted, with_feedback=True, labelled_only=["proba"]
    )
    assert before["proba"].isna().all()  # no feedback at all yet
    assert before["label"].isna().all()
    record_feedback(store, "churn", parse_feedback([{"request_id": ids[1], "label": "1"}]))
    frame = store.predictions(
        "churn", Window(), columns=wanted, with_feedback=True, labelled_only=["proba"]
    )
    assert list(frame.columns) == [*wanted, "label", "label_value"]  # no join keys
    assert values(frame["label"]) == [None, "1", None, None]  # oldest first
    assert frame["proba"].isna().tolist() == [True, False, True, True]
    assert frame["proba"].iloc[1].tolist() == [0.25, 0.75]
    everything = store.predictions("churn", Window(), with_feedback=True, labelled_only=["proba"])
    assert {"request_id", "row", "input.a", "input.b"} <= set(everything.columns)
    assert everything["proba"].isna().tolist() == [True, False, True, True]


def test_inputs_adds_every_input_column_and_a_window_without_any_reads_without_them(
    tmp_path: Path,
) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    log = PredictionLog(store)
    log.record(NUMERIC, "failed", 500, 0.001)  # a failure logs no inputs
    log.flush()
    wanted = ["time", "version", "prediction"]
    failures = store.predictions("churn", Window(), columns=wanted, inputs=True, only_ok=False)
    assert list(failures.columns) == wanted
    assert len(failures) == 1
    ids = _numeric(log, 3)
    log.flush()
    frame = store.predictions("churn", Window(), columns=wanted, inputs=True)
    assert list(frame.columns) == [*wanted, "input.a", "input.b"]  # no ids, classes, proba
    assert frame["input.b"].tolist() == [0.0, -1.0, -2.0]
    record_feedback(store, "churn", parse_feedback([{"request_id": ids[2], "label": "0"}]))
    joined = store.predictions("churn", Window(), columns=wanted, inputs=True, with_feedback=True)
    assert list(joined.columns) == [*wanted, "input.a", "input.b", "label", "label_value"]
    assert values(joined["label"]) == [None, None, "0"]


def test_bad_feedback_lists_every_problem_and_stores_nothing() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_feedback(
            [
                {"request_id": "a"},
                {"label": 1},
                {"request_id": "b", "label": {"nested": 1}},
                {"request_id": "c", "label": [1, 2], "row": 0},
                {"request_id": "d", "label": 1, "colour": "red"},
                "not an object",
            ]
        )
    problems = caught.value.details["problems"]
    assert len(problems) == 6
    assert "item 0: label is missing" in problems
    with pytest.raises(InvalidRequestError):
        parse_feedback([])


@pytest.mark.s3
def test_the_same_code_on_s3(s3_bucket: tuple[str, dict[str, object]]) -> None:
    url, options = s3_bucket
    store = MonitoringStore(url.replace("/artifacts", "/monitoring"), options)
    log = PredictionLog(store)
    ids = _numeric(log, 30)
    assert log.flush() == 30
    frame = store.predictions("churn", Window(), with_feedback=True)
    assert sorted(frame["request_id"]) == sorted(ids)
    result = record_feedback(store, "churn", parse_feedback([{"request_id": "r3", "label": 1}]))
    assert result.accepted == 1
    labelled = store.predictions("churn", Window(), with_feedback=True)
    assert labelled.loc[labelled["request_id"] == "r3", "label"].tolist() == ["1"]


@pytest.mark.s3
def test_compaction_and_retention_on_s3(s3_bucket: tuple[str, dict[str, object]]) -> None:
    url, options = s3_bucket
    store = MonitoringStore(url.replace("/artifacts", "/monitoring"), options)
    eight, ten = datetime(2026, 12, 5, 8, tzinfo=UTC), datetime(2026, 12, 6, 10, tzinfo=UTC)
    _segments_at(store, eight, 3)
    _segments_at(store, ten, 2)
    assert store.compact("churn", before=ten) == 3
    assert len(store.prediction_segments("churn", since=eight, until=ten)) == 1
    assert store.delete_before("churn", ten - timedelta(hours=2)) == 1  # the merged one
    assert len(store.prediction_segments("churn")) == 2
    assert len(store.predictions("churn", Window())) == 4


@pytest.mark.s3
def test_segments_another_replica_writes_are_seen_at_once_on_s3(
    s3_bucket: tuple[str, dict[str, object]],
) -> None:
    """A store's listing is never a stale cache of shared storage (a replica that does not
    write itself would otherwise never see the others' segments)."""
    import fsspec

    url, options = s3_bucket
    store = MonitoringStore(url.replace("/artifacts", "/monitoring"), options)
    log = PredictionLog(store)
    _numeric(log, 5)
    log.flush()
    (first,) = store.prediction_segments("churn")  # listed: s3fs caches the listing
    other = fsspec.filesystem("s3", skip_instance_cache=True, **options)  # another process
    other.pipe(first.replace(".parquet", "-other.parquet"), store.fs.cat(first))
    assert len(store.prediction_segments("churn")) == 2
    assert len(store.predictions("churn", Window())) == 10


class _Listing(LocalFileSystem):
    """fsspec's own local filesystem, noting every folder it lists (its ``find``, ``walk``
    and ``glob`` list through ``ls`` too)."""

    def __init__(self) -> None:
        super().__init__(skip_instance_cache=True)
        self.listed: list[str] = []

    def ls(self, path: str, detail: bool = False, **kwargs: object) -> list[Any]:
        self.listed.append(self._strip_protocol(path))
        return super().ls(path, detail=detail, **kwargs)  # type: ignore[no-any-return]


def _segments_at(store: MonitoringStore, hour: datetime, count: int) -> None:
    for segment in range(count):
        batch = Batch(NUMERIC)
        for i in range(2):
            call = ModelCall(np.ones((1, 2)), [1], [[0.1, 0.9]])
            batch.add(f"{id(store)}-{hour:%d%H}-{segment}-{i}", hour.timestamp() + i, 0.001, call)
        store.write_predictions("churn", to_table(batch), hour)


def test_retention_deletes_expired_hours_and_days_whole_and_never_lists_the_hours_kept(
    tmp_path: Path,
) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    store.fs = listing = _Listing()
    now = datetime(2026, 12, 6, 10, 30, tzinfo=UTC)
    hours = {now - timedelta(hours=h): n for h, n in ((49, 2), (26, 1), (25, 1), (24, 1), (0, 3))}
    for hour, count in hours.items():
        _segments_at(store, hour.replace(minute=0), count)
    label = pa.table({"request_id": ["x"], "row": [0], "label": ["1"]})
    store.write_feedback("churn", label, now - timedelta(days=3))
    store.write_feedback("churn", label, now)
    root = tmp_path / "m" / "predictions" / "churn"
    listing.listed.clear()

    removed = store.delete_before("churn", now - timedelta(days=1))  # 2026-12-05 10:30

    assert not [path for path in listing.listed if path.endswith(("/10", "2026-12-06"))]
    assert removed == 2 + 1 + 1 + 1  # 12-04 09h; 12-05 08h and 09h; feedback of 12-03
    assert sorted(p.name for p in root.iterdir()) == ["2026-12-05", "2026-12-06"]
    assert sorted(p.name for p in (root / "2026-12-05").iterdir()) == ["10"]  # ends 11:00
    assert [p.name for p in (tmp_path / "m" / "feedback" / "churn").iterdir()] == ["2026-12-06"]
    assert len(store.prediction_segments("churn")) == 1 + 3
    assert store.delete_before("churn", now - timedelta(days=1)) == 0


def test_compaction_lists_only_the_closed_hours_this_writer_wrote_to(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    store.fs = listing = _Listing()
    other = MonitoringStore(str(tmp_path / "m"))  # another process
    eight, nine, ten = (datetime(2026, 12, 6, h, tzinfo=UTC) for h in (8, 9, 10))
    _segments_at(store, eight, 3)
    _segments_at(other, nine, 2)
    _segments_at(store, ten, 2)  # the open hour
    listing.listed.clear()

    assert store.compact("churn", before=ten) == 3
    assert [path.rsplit("/", 2)[-2:] for path in listing.listed] == [["2026-12-06", "08"]]

    _segments_at(store, eight, 2)  # a late flush into the closed hour marks it again
    listing.listed.clear()
    assert store.compact("churn", before=ten) == 2
    assert [path.rsplit("/", 1)[-1] for path in listing.listed] == ["08"]
    listing.listed.clear()
    assert store.compact("churn", before=ten) == 0
    assert listing.listed == []
    assert len(store.prediction_segments("churn")) == 2 + 2 + 2  # merged twice, other, open
    assert store.compact("churn", before=ten + timedelta(hours=1)) == 2  # 10h closed now


def test_compaction_merges_this_writers_closed_hours_and_keeps_every_row(tmp_path: Path) -> None:
    store = MonitoringStore(str(tmp_path / "m"))
    other = MonitoringStore(str(tmp_path / "m"))  # another process: its files are left alone
    now = datetime.now(UTC)
    past = now - timedelta(hours=3)
    for writer, hour, count in ((store, past, 5), (other, past, 2), (store, now, 3)):
        for segment in range(count):
            batch = Batch(NUMERIC)
            for i in range(4):
                at = hour.timestamp() + segment
                batch.add(
                    f"{id(writer)}-{hour.hour}-{segment}-{i}",
                    at,
                    0.001,
                    ModelCall(np.ones((1, 2)), [1], [[0.1, 0.9]]),
                )
            writer.write_predictions("churn", to_table(batch), hour)
    before = store.predictions("churn", Window())
    assert len(store.prediction_segments("churn")) == 10
    merged = store.compact("churn", before=now.replace(minute=0, second=0, microsecond=0))
    assert merged == 5
    segments = store.prediction_segments("churn")
    assert len(segments) == 6  # 1 merged + 2 other + 3 current
    # flushes write LZ4 (cheap for the serving process), compaction rewrites with zstd
    codecs = {
        path.endswith("-merged.parquet"): pq.ParquetFile(path)
        .metadata.row_group(0)
        .column(0)
        .compression
        for path in segments
    }
    assert codecs == {True: "ZSTD", False: "LZ4"}
    after = store.predictions("churn", Window())
    assert sorted(after["request_id"]) == sorted(before["request_id"])
    assert store.compact("churn", before=now) == 0  # nothing left to merge in closed hours
