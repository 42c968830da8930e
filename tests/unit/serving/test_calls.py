"""The once-per-batch ``run`` built by ``run_batched`` (alone, and through a real batcher and
thread pool), and the joining and splitting of inputs and outputs it uses by default."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.serving.batching import Batcher, BatchPolicy
from dockyard.serving.calls import concat_rows, run_batched, split_rows


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool


def doubling(calls: list[int]) -> Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    def predict(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(len(x))
        if np.isnan(x).any():
            raise ValueError("NaN in input")
        return x[:, 0] * 2

    return predict


def test_run_batched_predicts_once_and_splits_by_rows() -> None:
    calls: list[int] = []
    run_all = run_batched(doubling(calls))
    inputs = [np.full((n, 2), float(n)) for n in (1, 3, 2)]

    results = run_all(inputs)

    assert calls == [6]
    assert [r.tolist() for r in results if isinstance(r, np.ndarray)] == [
        [2.0],
        [6.0, 6.0, 6.0],
        [4.0, 4.0],
    ]


def test_run_batched_retries_alone_so_only_the_bad_input_fails() -> None:
    calls: list[int] = []
    run_all = run_batched(doubling(calls))
    bad = np.array([[np.nan, 1.0]])

    good_before, failed, good_after = run_all([np.ones((2, 2)), bad, np.ones((1, 2))])

    assert calls == [4, 2, 1, 1]
    assert isinstance(failed, ValueError)
    assert isinstance(good_before, np.ndarray)
    assert good_before.tolist() == [2.0, 2.0]
    assert isinstance(good_after, np.ndarray)
    assert good_after.tolist() == [2.0]


def test_run_batched_through_a_batcher_keeps_boundaries(executor: ThreadPoolExecutor) -> None:
    calls: list[int] = []
    run_all = run_batched(doubling(calls))

    async def scenario() -> list[Any]:
        batcher: Batcher[np.ndarray[Any, Any], np.ndarray[Any, Any]] = Batcher(
            run_all, BatchPolicy(max_batch_size=16), executor=executor
        )
        inputs = [np.full((n % 4 + 1, 3), float(n)) for n in range(40)]
        return list(await asyncio.gather(*(batcher.submit(x, len(x)) for x in inputs)))

    answers = asyncio.run(asyncio.wait_for(scenario(), 20))

    assert [a.tolist() for a in answers] == [[2.0 * n] * (n % 4 + 1) for n in range(40)]
    assert len(calls) < 40


def test_frames_with_different_dtypes_are_predicted_alone_not_coerced() -> None:
    seen: list[list[str]] = []

    def predict(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        seen.append([str(dtype) for dtype in frame.dtypes])
        return frame["a"].to_numpy()

    run_all = run_batched(predict)
    ints, floats = pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [0.5]})
    same = pd.DataFrame({"a": [3, 4]})

    assert [r.tolist() for r in run_all([ints, same])] == [[1, 2], [3, 4]]
    assert [r.tolist() for r in run_all([ints, floats])] == [[1, 2], [0.5]]
    assert seen == [["int64"], ["int64"], ["float64"]]


def test_concat_and_split_round_trip_tuples_and_frames() -> None:
    frames = [
        pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]}),
        pd.DataFrame({"x": [3.0], "s": ["c"]}),
    ]
    combined = concat_rows(frames)
    labels, proba = combined["s"].to_numpy(), np.arange(6.0).reshape(3, 2)

    pieces = split_rows((labels, proba, None), [2, 1])

    assert combined["x"].tolist() == [1.0, 2.0, 3.0]
    assert [piece[0].tolist() for piece in pieces] == [["a", "b"], ["c"]]
    assert [piece[1].tolist() for piece in pieces] == [[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0]]]
    assert [piece[2] for piece in pieces] == [None, None]
    assert [p["s"].tolist() for p in split_rows(combined, [1, 2])] == [["a"], ["b", "c"]]
    with pytest.raises(ValueError, match="3 rows for 4"):
        split_rows(labels, [2, 2])
