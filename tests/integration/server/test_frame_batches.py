"""A model fitted on a DataFrame of mixed columns (text, numbers, flags): concurrent requests
share one model call, fed one DataFrame joined column by column, and each gets what the
model answers for its own rows; a request whose column arrives in another dtype (a null in
an integer column) is predicted alone, and answered all the same. Text in pandas 3's default
``str`` dtype batches the same way and reaches the model in that dtype."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _pandas import text_as
from dockyard.registry import Registry
from dockyard.schema.validation import FrameColumns
from dockyard.serving.batching import BatchPolicy
from dockyard.serving.endpoint import LiveModel
from dockyard.serving.ranges import Ranges
from dockyard.settings import Settings


def _fitted(text: str = "object") -> tuple[Any, pd.DataFrame, np.ndarray[Any, Any]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame(
        {
            "color": pd.Series(rng.choice(["red", "green", "blue"], n), dtype=text),
            "size": rng.normal(10, 3, n),
            "member": rng.random(n) < 0.5,
            "count": rng.integers(0, 10, n),
        }
    )
    labels = np.where((frame["size"] > 10) ^ frame["member"], "yes", "no")
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["color"]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["size", "count"]),
            ("flags", "passthrough", ["member"]),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(frame, labels)
    return model, frame, labels


def _served(tmp_path: Path, model: Any, frame: pd.DataFrame, labels: Any) -> tuple[Any, Any]:
    """The model registered, and the version and loaded model a server would serve."""
    with Registry.open(Settings(home=tmp_path / "home", user="tester")) as registry:
        version = registry.register(model, "mixed", sample=frame, y=labels, accelerate=False)
        return version, registry.load(version.ref).model


def _live(version: Any, predictor: Any, executor: Any, on_batch: Any = None) -> LiveModel:
    """The live model a server makes of the version: batches of up to 64, 50 ms to gather."""
    policy = BatchPolicy(max_batch_size=64, max_wait_ms=50)
    return LiveModel(
        version, predictor, accelerated=False, policy=policy, executor=executor, on_batch=on_batch
    )


def _answers(
    version: Any, predictor: Any, records: list[dict[str, Any]], on_batch: Any = None
) -> list[Any]:
    """Each record as a request of its own, all at once, to the live model."""

    async def ask_all() -> list[Any]:
        with ThreadPoolExecutor(1) as executor:
            live = _live(version, predictor, executor, on_batch)
            prepared = [live.prepare([record]) for record in records]
            assert all(type(model_input) is FrameColumns for model_input, _, _ in prepared)
            try:
                return list(
                    await asyncio.gather(*(live.predict(i, rows) for i, rows, _ in prepared))
                )
            finally:
                await live.close()

    return asyncio.run(ask_all())


def test_mixed_requests_share_a_call_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    model, frame, labels = _fitted()
    version, predictor = _served(tmp_path, model, frame, labels)
    records = frame.head(24).astype(object).to_dict("records")
    records[5] = {**records[5], "count": None}  # a null integer: float64 in this request
    batches: list[tuple[int, int]] = []

    answers = _answers(version, predictor, records, lambda rows, n: batches.append((rows, n)))

    assert max(requests for _, requests in batches) > 1  # batched, not one call a request
    for record, answer in zip(records, answers, strict=True):
        alone = pd.DataFrame([record]).astype({"size": "float64", "member": "bool"})
        if record["count"] is not None:
            alone = alone.astype({"count": "int64"})
        else:
            alone["count"] = alone["count"].astype("float64")
        assert answer.predictions.tolist() == model.predict(alone).tolist()
        np.testing.assert_allclose(answer.probabilities, model.predict_proba(alone))


def test_a_request_in_a_batch_is_warned_of_its_own_rows_outside_the_training_range(
    tmp_path: Path,
) -> None:
    model, frame, labels = _fitted()
    version, predictor = _served(tmp_path, model, frame, labels)
    records = frame.head(12).astype(object).to_dict("records")
    records[7] = {**records[7], "size": 1000.0}  # the seventh request of the batch

    async def ask_all() -> list[Any]:
        with ThreadPoolExecutor(1) as executor:
            live = _live(version, predictor, executor)
            size = frame["size"]
            live.ranges = Ranges(["size"], [1], 4, [size.min()], [size.max()])
            prepared = [live.prepare([record]) for record in records]
            try:
                answers = await asyncio.gather(*(live.predict(i, n) for i, n, _ in prepared))
                return [(answer, live.out_of_range(answer, 1)) for answer in answers]
            finally:
                await live.close()

    checked = asyncio.run(ask_all())

    assert len({id(answer.call) for answer, _ in checked}) < len(records)  # batched
    assert all(type(answer.call.inputs) is FrameColumns for answer, _ in checked)
    for position, (answer, outside) in enumerate(checked):
        if position == 7:
            assert len(answer.call.inputs) > 1  # its rows taken out of the batch's
            assert outside is not None
            assert outside.columns == ("size",)
            assert outside.rows == 1
        else:
            assert outside is None, position


def test_text_in_pandas_3s_str_dtype_is_batched_and_reaches_the_model_in_it(
    tmp_path: Path,
) -> None:
    with text_as("str"):
        model, frame, labels = _fitted("str")
        assert isinstance(frame["color"].dtype, pd.StringDtype)
        version, predictor = _served(tmp_path, model, frame, labels)
        records = frame.head(16).astype(object).to_dict("records")
        records[3] = {**records[3], "color": None}  # a null: the text dtype's own

        answers = _answers(version, predictor, records)

        assert len({id(answer.call) for answer in answers}) < len(records)  # batched
        assert answers[0].call.inputs.frame()["color"].dtype == frame["color"].dtype
        for position, answer in enumerate(answers):
            alone = frame.iloc[[position]].reset_index(drop=True)
            if position == 3:
                alone["color"] = pd.Series([None], dtype=frame["color"].dtype)
            assert answer.predictions.tolist() == model.predict(alone).tolist()
            np.testing.assert_allclose(answer.probabilities, model.predict_proba(alone))
