"""Live endpoints: loaded, warmed versions with their validator and batcher.

Everything derivable is computed once, when a version is loaded: the validator (with its
fast path for all-numeric input), class labels, the predictor (the verified ONNX twin
when the version has one and the deployment allows it, else the native model). A request
then costs: decode, validate, queue, one batched model call, encode.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Executor
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from dockyard.deploy.spec import Deployment
from dockyard.errors import SchemaValidationError
from dockyard.monitoring.records import ModelCall, Source
from dockyard.registry.types import Version
from dockyard.runtimes.base import LoadedModel
from dockyard.schema import Signature, Validator
from dockyard.schema.labels import label_text
from dockyard.schema.numeric_rows import ColumnValues, NumericRows
from dockyard.schema.validation import FrameColumns
from dockyard.serving.batching import Batcher, BatchPolicy
from dockyard.serving.calls import concat_rows, run_batched
from dockyard.serving.ranges import OutOfRange, Ranges

CALIBRATION_RUNS = 5
"""Timed full batches at warm-up; the fastest decides where batches run."""


class Prediction(NamedTuple):
    """One request's rows of output: rows ``start`` onwards of the model ``call`` that
    answered it (with the other requests of its batch; the prediction log keeps the call).
    A named tuple: one is made per request, and a tuple is made for less than a frozen
    dataclass."""

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None
    call: ModelCall
    start: int = 0


def split_call(call: ModelCall, counts: Sequence[int]) -> list[Prediction]:
    """Cut one model call's answers back into its requests' predictions (views)."""
    predictions, probabilities = call.predictions, call.probabilities
    total = sum(counts)
    if len(predictions) != total or (probabilities is not None and len(probabilities) != total):
        raise ValueError(f"the model returned {len(predictions)} rows for {total}")
    if len(counts) == 1:
        return [Prediction(predictions, probabilities, call)]
    answers: list[Prediction] = []
    start = 0
    for count in counts:
        end = start + count
        answers.append(
            Prediction(
                predictions[start:end],
                None if probabilities is None else probabilities[start:end],
                call,
                start,
            )
        )
        start = end
    return answers


def numeric_feed(
    signature: Signature | None, predictor: LoadedModel
) -> tuple[NumericRows | None, Callable[[np.ndarray[Any, Any]], Any] | None]:
    """For a model fitted on a DataFrame of numbers (the usual scikit-learn case): the
    validator's numeric fast path, which turns a request of plain numbers into one 2-D array,
    and how a batch of such arrays becomes the model's input, once per batch: an ONNX graph
    with one input per column gets the array's columns by name (views), a native model one
    DataFrame with each column's own dtype (the validator's fast path has checked that an
    integer column holds whole numbers only). ``(rows, None)``: the array is the model's
    input as it is (a one-input ONNX twin). ``(None, None)``: requests go through the
    validator alone, which builds the DataFrame the model was fitted on.

    A DataFrame per request, and pandas' concat of a batch of them, cost far more than the
    model itself; requests with anything but plain numbers still take the full path, so
    every answer and every error stays the validator's."""
    if signature is None or signature.layout != "frame":
        return None, None
    rows = NumericRows.for_signature(signature, layout="array")
    if rows is None:
        return None, None
    names = list(signature.column_names)
    if predictor.runtime == "onnx":
        if predictor.input_layout == "array":
            return rows, None
        return rows, lambda array: {name: array[:, i] for i, name in enumerate(names)}
    import pandas as pd  # a native model fed DataFrames

    dtypes = [np.dtype(column.pandas_dtype) for column in signature.columns]
    if all(dtype == rows.dtype for dtype in dtypes):
        return rows, lambda array: pd.DataFrame(array, columns=names, copy=False)
    return rows, lambda array: pd.DataFrame(
        {
            name: array[:, i].astype(dtype)
            for i, (name, dtype) in enumerate(zip(names, dtypes, strict=True))
        },
        copy=False,
    )


def join_inputs(items: Sequence[Any]) -> Any:
    """A batch's inputs as one: requests' columns joined column by column
    (:meth:`FrameColumns.join`), arrays or DataFrames stacked (:func:`concat_rows`)."""
    if type(items[0]) is FrameColumns:
        return FrameColumns.join(list(items))
    return concat_rows(items)


class LiveModel:
    """One version, loaded and ready: validator in front, batched predictor behind."""

    def __init__(
        self,
        version: Version,
        predictor: LoadedModel,
        *,
        accelerated: bool,
        policy: BatchPolicy,
        executor: Executor,
        on_batch: Any = None,
        inline_budget_s: float = 0.0,
    ) -> None:
        self.version = version
        self.predictor = predictor
        self.accelerated = accelerated
        self.signature = Signature.from_dict(version.signature) if version.signature else None
        self.validator = Validator(self.signature) if self.signature is not None else None
        self.column_names = self.signature.column_names if self.signature is not None else None
        classes = predictor.classes
        if classes is None and self.signature is not None:
            classes = self.signature.output.classes
        self.classes = list(classes) if classes is not None else None
        self.has_proba = bool(predictor.has_proba)
        self._numbers, self._feed = numeric_feed(self.signature, predictor)
        # plain numbers read from JSON (prepare_numbers): the DataFrame model's, else the
        # validator's numeric path; records are read as its columns
        numbers = self._numbers
        if numbers is None and self.validator is not None:
            numbers = self.validator.numeric
        self._plain_numbers = numbers
        # interned, as a remembered layout's names are: their comparison is by identity
        columns = self.column_names
        self.record_columns = (
            None if numbers is None or columns is None else tuple(map(sys.intern, columns))
        )
        self._both = getattr(predictor, "predict_with_proba", None) if self.has_proba else None
        # combine the requests, call the model once, cut the answer back by request (a
        # failing request is retried alone, so only it fails)
        self._run = run_batched(self._call, combine=join_inputs, split=split_call)
        self.batcher: Batcher[Any, Prediction] = Batcher(
            self._run,
            policy,
            executor=executor,
            on_batch=on_batch,
            inline_budget_s=inline_budget_s,
            name=version.ref,
        )
        self.runtime = (
            f"onnx (accelerated from {version.runtime})" if accelerated else version.runtime
        )
        self.log_source: Source | None = None  # set by the manager when the endpoint logs
        self.ranges: Ranges | None = None  # set by the manager from the reference profile

    def source_for(
        self, endpoint: str, revision: int, sample_rate: float, role: str = "primary"
    ) -> Source:
        """How this model's answers are labelled in the prediction log."""
        classes = None if self.classes is None else tuple(str(label_text(c)) for c in self.classes)
        binary = classes is not None and len(classes) == 2 and self.has_proba
        return Source(
            endpoint=endpoint,
            revision=revision,
            model=self.version.model,
            version=self.version.version,
            columns=None if self.column_names is None else tuple(self.column_names),
            classes=classes,
            positive=1 if binary else None,
            sample_rate=sample_rate,
            role=role,
        )

    @property
    def ref(self) -> str:
        return self.version.ref

    def prepare(self, data: Any, *, finite: bool = False) -> tuple[Any, int, tuple[str, ...]]:
        """Validate ``data`` into the model's input: (input, rows, notes). Cheap; runs on the
        event loop. Raises ``SchemaValidationError`` listing every problem. ``finite``: its
        numbers are known to hold no NaN or infinity (JSON parsed by orjson, which refuses
        them), so the numeric path skips that check."""
        if self.validator is None:
            if isinstance(data, np.ndarray):
                return data, len(data), ("no signature: input unchecked",)
            import pandas as pd

            frame = pd.DataFrame(data if isinstance(data, list) else [data])
            return frame, len(frame), ("no signature: input unchecked",)
        if self._numbers is not None:  # plain numbers for a DataFrame model: one array
            array = self._numbers.decode(data, finite=finite)
            if array is not None:
                return array, len(array), ()
        validated = self.validator.validate(data, as_columns=True, finite=finite)
        return validated.data, validated.rows, validated.notes

    def prepare_numbers(
        self, values: NDArray[np.float64] | ColumnValues, *, finite: bool = False
    ) -> tuple[Any, int, tuple[str, ...]] | None:
        """What :meth:`prepare` makes of plain numbers read from JSON (rows, or records read
        as :attr:`record_columns`, as a 2-D array, or columns as one block; integers and
        floats alike), when the numeric path takes them as they are; ``None``: the caller
        validates the request as it came, which names every problem as that shape of it
        shows them. ``finite``: the values are known finite (see
        :meth:`~dockyard.schema.numeric_rows.NumericRows.decode`)."""
        numbers = self._plain_numbers
        array = None if numbers is None else numbers.decode(values, finite=finite)
        return None if array is None else (array, len(array), ())

    def predict(self, model_input: Any, rows: int) -> Coroutine[Any, Any, Prediction]:
        """Queue for the next batch (await the answer); the model runs in the executor, or on
        the loop when calibrated cheaper than the hand-off (see :meth:`warm`). The batcher's
        own coroutine, not one around it: one frame less a request."""
        return self.batcher.submit(model_input, rows)

    def _call(self, model_input: Any) -> ModelCall:
        """Predictions and probabilities (or None) in one model call where the runtime can.
        A batch's :class:`FrameColumns` become the model's DataFrame, and the call keeps
        the columns (what the prediction log reads, without pandas)."""
        logged = model_input
        if type(model_input) is FrameColumns:
            model_input = model_input.frame()
        outside = None if self.ranges is None else self.ranges.rows_outside(model_input)
        feed = model_input
        if self._feed is not None and type(model_input) is np.ndarray:
            feed = self._feed(model_input)
        if self._both is not None:
            predictions, probabilities = self._both(feed)
            return ModelCall(logged, np.asarray(predictions), probabilities, outside)
        predictions = np.asarray(self.predictor.predict(feed))
        probabilities = np.asarray(self.predictor.predict_proba(feed)) if self.has_proba else None
        return ModelCall(logged, predictions, probabilities, outside)

    def out_of_range(self, prediction: Prediction, rows: int) -> OutOfRange | None:
        """What the request answered by ``prediction`` (its ``rows`` rows of the call) sent
        outside the training range; ``None`` when nothing, which costs one attribute read
        (the call was checked once, for its whole batch)."""
        call = prediction.call
        if call.outside is None or self.ranges is None:
            return None
        end = prediction.start + rows
        if not call.outside[prediction.start : end].any():
            return None
        inputs = call.inputs
        whole = not prediction.start and end == len(inputs)
        if type(inputs) is FrameColumns:  # this request's rows, then their DataFrame
            inputs = (inputs if whole else inputs.rows_in(prediction.start, end)).frame()
        elif not whole:
            inputs = (
                inputs[prediction.start : end]
                if isinstance(inputs, np.ndarray)
                else (inputs.iloc[prediction.start : end])
            )
        return self.ranges.check(inputs)

    @property
    def compute(self) -> str:
        """Where batches run: ``event loop`` (calibrated cheap) or ``threads``."""
        return "event loop" if self.batcher.inline else "threads"

    @property
    def full_batch_s(self) -> float | None:
        """A full batch's time measured by :meth:`warm` (``None`` without a budget)."""
        return self.batcher.calibrated_s

    def describe(self) -> str:
        """Runtime and compute, with the warm-up figure that chose the compute."""
        text = f"{self.ref} ({self.runtime}; batches on {self.compute}"
        if self.full_batch_s is not None:
            rows = self.batcher.policy.max_batch_size
            text += f", {rows} rows in {self.full_batch_s * 1e6:.0f} µs at warm-up"
        return text + ")"

    def warm(self, examples: Sequence[dict[str, Any]]) -> None:
        """Run the reference examples through the whole path once, synchronously, so the
        first real request does not pay for lazy initialisation; time a one-row call and a
        full batch to anchor the queue's cost model (``Admission.anchor``); then time a
        full batch of one-row requests, the costliest batch the batcher forms, to decide
        whether batches may run on the event loop (:meth:`Batcher.calibrate`). Runs off the
        loop."""
        if not examples:
            return
        try:
            model_input, _, _ = self.prepare(list(examples))
        except SchemaValidationError:
            return  # examples from an older schema; the model itself loaded fine
        self._call(model_input)
        first, _, _ = self.prepare([dict(examples[0])])
        self._call(first)
        # a one-row call and a full batch, timed quietly, anchor the queue's cost model
        # (its per-row slope, which one kind of traffic alone cannot tell: admission.py)
        started = time.perf_counter()
        self._run([first])
        self.batcher.admission.anchor(1, time.perf_counter() - started)
        wall, cpu = self._full_batch_seconds(first)
        self.batcher.admission.anchor(self.batcher.policy.max_batch_size, wall)
        if self.batcher.inline_budget_s > 0:
            self.batcher.calibrate(cpu)

    def _full_batch_seconds(self, one_row: Any) -> tuple[float, float]:
        """The fastest of a few timed calls of ``run`` on ``max_batch_size`` one-row
        requests (one try when batches never run on the loop, or when that alone is far over
        the budget), in wall time (the queue's anchor) and in this thread's CPU time (the
        inline decision: waiting for the GIL or for a core is not the model's cost; the
        batcher's own wall-clock timing of inline calls catches a model slower than this on
        the loop)."""
        items = [one_row] * self.batcher.policy.max_batch_size
        budget = self.batcher.inline_budget_s
        walls, cpus = [], []
        for _ in range(CALIBRATION_RUNS if budget > 0 else 1):
            started, cpu = time.perf_counter(), time.thread_time()
            self._run(items)
            cpus.append(time.thread_time() - cpu)
            walls.append(time.perf_counter() - started)
            if cpus[0] > 4 * budget:
                break
        return min(walls), min(cpus)

    async def close(self) -> None:
        await self.batcher.close()


class Endpoint:
    """A deployment revision made live: its routes' and shadows' models, ready to answer."""

    def __init__(
        self,
        deployment: Deployment,
        routes: Sequence[tuple[LiveModel, int]],
        shadows: Sequence[tuple[LiveModel, float]] = (),
    ) -> None:
        self.deployment = deployment
        self.name = deployment.name
        self.revision = deployment.revision
        self.routes = list(routes)
        self.shadows = list(shadows)
        self.sticky_header = deployment.spec.traffic.sticky_header.lower()
        self.sticky_field = deployment.spec.traffic.sticky_field
        self._cumulative = _cumulative([weight for _, weight in self.routes])

    @property
    def key(self) -> tuple[int, tuple[str, ...]]:
        """What the endpoint serves: a changed key means a swap is due."""
        models = [model for model, _ in self.routes] + [model for model, _ in self.shadows]
        return self.revision, tuple(model.ref for model in models)

    @property
    def models(self) -> list[LiveModel]:
        return [model for model, _ in self.routes] + [model for model, _ in self.shadows]

    def choose(self, draw: float | None = None, key: str | None = None) -> LiveModel:
        """The route for one request: by weight, at random, or pinned by a caller's ``key``
        (the same key always draws the same point, so a caller keeps its variant, and as a
        canary's share grows the callers it already had stay with it)."""
        if len(self.routes) == 1:
            return self.routes[0][0]
        if draw is None:
            draw = sticky_draw(key) if key else random.random()
        return self.routes[choose_index(self._cumulative, draw)][0]

    def model_for_version(self, version: str) -> LiveModel | None:
        for model, _ in self.routes:
            if model.version.version == version:
                return model
        return None

    async def close(self) -> None:
        for model in self.models:
            await model.close()


def sticky_draw(key: str) -> float:
    """A stable point in [0, 1) for a request key (BLAKE2b, so it is the same in every
    process and replica)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _cumulative(weights: Sequence[int]) -> list[float]:
    total = float(sum(weights)) or 1.0
    running, out = 0.0, []
    for weight in weights:
        running += weight / total
        out.append(running)
    return out


def choose_index(cumulative: Sequence[float], draw: float) -> int:
    """Pure weighted choice: the first route whose cumulative share exceeds ``draw``."""
    for index, bound in enumerate(cumulative):
        if draw < bound:
            return index
    return len(cumulative) - 1
