"""The prediction log's encoding: buffered requests to numpy columns, then to Arrow tables.

:func:`chunk` turns one model's :class:`~dockyard.monitoring.records.Batch` into a
:class:`Chunk` of numpy columns (each model call's arrays stacked once), and
:func:`chunks_table` joins chunks into the Arrow table a Parquet segment is written from (the
columns of :mod:`dockyard.monitoring.store`); :func:`failures_table` does the same for failed
requests. Arrow arrays are built from their buffers (:func:`numbers`, :func:`strings`), never
with ``pa.array``: pyarrow's pandas shim imports pandas on its first call, and a serving
process whose models take arrays has no other use for pandas (~45 MiB). When each runs (on
the server's loop, in short slices) is the log's business:
:class:`~dockyard.monitoring.predictions.PredictionLog`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dockyard.monitoring.records import Batch, Failure, ModelCall, Source
from dockyard.monitoring.store import INPUT_PREFIX
from dockyard.schema.labels import label_text
from dockyard.schema.validation import FrameColumns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(slots=True, eq=False)
class Chunk:
    """One model's requests of one conversion slice, as numpy columns, one entry per row (see
    :meth:`~dockyard.monitoring.predictions.PredictionLog.convert`); every
    :data:`~dockyard.monitoring.predictions.TABULATE_INTERVAL_S` the chunks gathered are
    joined into Arrow tables (:func:`chunks_table`)."""

    source: Source
    request_ids: tuple[str, ...]  # one per request
    repeats: np.ndarray[Any, Any] | None  # each request's row count; None: one row each
    rows: np.ndarray[Any, Any] | None  # each row's index in its request; None: all 0
    times: np.ndarray[Any, Any]  # unix seconds
    latencies: np.ndarray[Any, Any]  # seconds
    predicted: np.ndarray[Any, Any]  # numbers or booleans, or an object array of text
    probabilities: np.ndarray[Any, Any] | None  # (rows, classes), float64
    inputs: np.ndarray[Any, Any] | dict[str, pa.Array]  # a numeric matrix, or Arrow columns

    @property
    def kind(self) -> tuple[Any, ...]:
        """Chunks of one kind are joined by concatenating their columns."""
        inputs = self.inputs
        shape = (
            (inputs.dtype, inputs.shape[1])
            if isinstance(inputs, np.ndarray)
            else tuple((name, column.type) for name, column in inputs.items())
        )
        width = None if self.probabilities is None else self.probabilities.shape[1]
        return (id(self.source), self.predicted.dtype, width, shape)


def chunk(batch: Batch) -> Chunk:
    """One model's buffered requests as numpy columns, one entry per predicted row.

    Each model call's arrays are stacked once; when the requests cover their calls' rows in
    order (every request logged, the usual case) the stacked rows are the chunk's rows,
    otherwise (sampling, a request split over calls) the requests' rows are taken out."""
    _, ids, times_, latencies_, calls, starts, counts_ = zip(*batch.records, strict=True)
    n = len(ids)
    unique = list(dict.fromkeys(calls))  # each call once, in order of first use
    sizes = np.array([len(call.predictions) for call in unique], np.int64)
    counts = np.array(counts_, np.int64)
    total = int(counts.sum())
    where = {call: index for index, call in enumerate(unique)}
    first = (np.cumsum(sizes) - sizes)[[where[call] for call in calls]] + np.array(starts)
    expected = np.cumsum(counts) - counts
    take = None
    if int(sizes.sum()) != total or not np.array_equal(first, expected):
        take = np.repeat(first - expected, counts) + np.arange(total)
    predicted, probabilities, inputs = _answers(batch.source, unique, sizes, take)

    times = np.array(times_, np.float64)
    latencies = np.array(latencies_, np.float64)
    repeats = rows = None
    if total != n:
        repeats = counts
        offsets = np.repeat(expected, counts)
        rows = (np.arange(total) - offsets).astype(np.int32)
        times = np.repeat(times, counts)
        latencies = np.repeat(latencies, counts)
    return Chunk(
        batch.source, ids, repeats, rows, times, latencies, predicted, probabilities, inputs
    )


def to_table(batch: Batch) -> pa.Table:
    """One model's buffered requests as an Arrow table, one row per predicted row (the loop's
    and the writer's parts of the conversion in one call)."""
    return chunks_table([chunk(batch)])


def _answers(
    source: Source, calls: list[ModelCall], sizes: np.ndarray[Any, Any], take: Any
) -> tuple[Any, Any, Any]:
    """Every row of the calls (or the rows ``take`` picks): predictions (text as text
    labels), probabilities and inputs."""
    total = int(sizes.sum())
    predicted = _stack([call.predictions for call in calls])
    if predicted.ndim > 1:
        predicted = predicted.reshape(total, -1)[:, 0]
    if predicted.dtype.kind not in "biuf":  # as feedback labels are compared by
        predicted = np.array([label_text(v) for v in predicted.tolist()], dtype=object)
    probabilities = None
    if all(call.probabilities is not None for call in calls):
        stacked = _stack([call.probabilities for call in calls])
        probabilities = stacked.astype(np.float64).reshape(total, -1)
    inputs = _input_columns(source, [call.inputs for call in calls], sizes.tolist(), total)
    if take is not None:
        predicted = predicted[take]
        probabilities = None if probabilities is None else probabilities[take]
        if isinstance(inputs, np.ndarray):
            inputs = inputs[take]
        else:
            index = numbers(take)
            inputs = {name: column.take(index) for name, column in inputs.items()}
    return predicted, probabilities, inputs


def chunks_table(chunks: list[Chunk]) -> pa.Table:
    """Chunks of one endpoint as one Arrow table. Chunks of one kind (the same model, answers
    and inputs of the same types) are concatenated column by column, so a pass over several
    slices costs a few dozen Arrow calls, not a few dozen per slice."""
    import pyarrow as pa

    runs: dict[tuple[Any, ...], list[Chunk]] = {}
    for part in chunks:
        runs.setdefault(part.kind, []).append(part)
    tables = [_run_table(run) for run in runs.values()]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _run_table(run: list[Chunk]) -> pa.Table:
    import pyarrow as pa

    def joined(parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    source = run[0].source
    times = joined([part.times for part in run])
    total = len(times)
    if all(part.rows is None for part in run):
        rows = np.zeros(total, np.int32)
    else:
        rows = joined([np.zeros(len(p.times), np.int32) if p.rows is None else p.rows for p in run])
    request_ids = strings([request_id for part in run for request_id in part.request_ids])
    if any(part.repeats is not None for part in run):  # a request of many rows: its id each
        repeats = joined(
            [np.ones(len(p.times), np.int64) if p.repeats is None else p.repeats for p in run]
        )
        request_ids = request_ids.take(numbers(np.repeat(np.arange(len(request_ids)), repeats)))
    latencies = joined([part.latencies for part in run]) * 1000.0
    columns: dict[str, Any] = {
        "request_id": request_ids,
        "row": numbers(rows.astype(np.int32, copy=False)),
        "time": numbers((times * 1e6).astype(np.int64), _time_type()),
        "endpoint": _constant(source.endpoint, total),
        "revision": numbers(np.full(total, source.revision, np.int32)),
        "model": _constant(source.model, total),
        "version": _constant(source.version, total),
        "status": numbers(np.full(total, 200, np.int16)),
        "role": _constant(source.role, total),
        "latency_ms": numbers(latencies.astype(np.float32)),
    }
    predicted = joined([part.predicted for part in run])
    columns["prediction"] = _text(predicted)
    if run[0].probabilities is not None:
        matrix = joined([part.probabilities for part in run])
        width = matrix.shape[1]
        offsets = numbers(np.arange(0, (total + 1) * width, width, dtype=np.int32))
        scores = matrix[:, source.positive] if source.positive is not None else None
        columns["score"] = numbers(scores) if scores is not None else _nulls(total)
        columns["proba"] = pa.ListArray.from_arrays(offsets, numbers(matrix.ravel()))
        names = None if source.classes is None else _classes_json(source.classes)
        columns["classes"] = _constant(names, total)
    else:
        numeric = predicted.dtype.kind in "fiu" and source.classes is None
        columns["score"] = (
            numbers(predicted.astype(np.float64)) if numeric else _nulls(total, pa.float64())
        )
        columns["proba"] = _nulls(total, pa.list_(pa.float64()))
        columns["classes"] = _nulls(total, pa.string())
    first = run[0].inputs
    if isinstance(first, np.ndarray):
        by_column = _by_column([part.inputs for part in run])  # each column zero-copy
        features = len(by_column)
        input_names = source.columns or tuple(f"x{i}" for i in range(features))
        for index, name in enumerate(input_names[:features]):
            columns[INPUT_PREFIX + name] = numbers(by_column[index])
    else:
        for name in first:
            parts = [part.inputs[name] for part in run]
            columns[INPUT_PREFIX + name] = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
    return pa.table(columns)


TRANSPOSED_ROWS = 2048
"""Rows turned column-major at a time (:func:`_by_column`): ~320 KiB of 20 float64
features, which stays in the CPU's cache while it is read once per feature."""


def _by_column(parts: list[Any]) -> np.ndarray[Any, Any]:
    """The parts' rows (matrices of one dtype and width) as one ``(features, rows)``
    C-contiguous array, in one copy made block by block. A tall matrix transposed in one
    call is read once per feature, each time from memory once it is past the cache: a
    table pass of 60,000 rows x 20 spent 30-70 ms on the event loop there (the parts
    joined first, then transposed), at 100-row requests' volume."""
    total = sum(len(part) for part in parts)
    out = np.empty((parts[0].shape[1], total), parts[0].dtype)
    offset = 0
    for part in parts:
        for start in range(0, len(part), TRANSPOSED_ROWS):
            block = part[start : start + TRANSPOSED_ROWS]
            out[:, offset : offset + len(block)] = block.T
            offset += len(block)
    return out


def failures_table(failures: list[Failure]) -> pa.Table:
    """Failed requests: one row each, no inputs or outputs."""
    import pyarrow as pa

    n = len(failures)
    return pa.table(
        {
            "request_id": strings([f[1] for f in failures]),
            "row": numbers(np.zeros(n, np.int32)),
            "time": numbers(
                (np.array([f[2] for f in failures], np.float64) * 1e6).astype(np.int64),
                _time_type(),
            ),
            "endpoint": strings([f[0].endpoint for f in failures]),
            "revision": numbers(np.array([f[0].revision for f in failures], np.int32)),
            "model": strings([f[0].model for f in failures]),
            "version": strings([f[0].version for f in failures]),
            "status": numbers(np.array([f[3] for f in failures], np.int16)),
            "role": strings([f[0].role for f in failures]),
            "latency_ms": numbers(np.array([f[4] * 1000.0 for f in failures], np.float32)),
            "prediction": _nulls(n, pa.string()),
            "score": _nulls(n, pa.float64()),
            "proba": _nulls(n, pa.list_(pa.float64())),
            "classes": _nulls(n, pa.string()),
        }
    )


def _stack(parts: list[Any]) -> np.ndarray[Any, Any]:
    """The calls' arrays stacked into one, in one call (the common case: ndarrays)."""
    try:
        return np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])
    except ValueError:  # ragged (a list, a scalar): one at a time
        return np.concatenate([np.asarray(p).reshape(len(np.asarray(p)), -1) for p in parts])


def _input_columns(
    source: Source, inputs: list[Any], rows: list[int], total: int
) -> np.ndarray[Any, Any] | dict[str, pa.Array]:
    """Inputs as one numeric matrix when every call's are numeric arrays of one width
    (stacked in one call); a frame model's columns (:class:`FrameColumns`) as Arrow columns
    joined with numpy; anything else (frames, mixed shapes, failures to read) as Arrow
    columns, through pandas."""
    first = inputs[0]
    if isinstance(first, np.ndarray) and first.ndim == 2 and first.dtype.kind in "fiu":
        try:
            stacked = np.concatenate(inputs)
        except ValueError:
            stacked = None
        if stacked is not None and stacked.ndim == 2 and len(stacked) == total:
            return stacked
    if type(first) is FrameColumns:
        columns = _frame_columns(inputs, total)
        if columns is not None:
            return columns
        inputs = [i.frame() if type(i) is FrameColumns else i for i in inputs]
    frame = _input_frame(
        [(source.columns, block, count) for block, count in zip(inputs, rows, strict=True)]
    )
    if len(frame) != total:
        raise ValueError(f"{len(frame)} input rows for {total} predicted rows")
    return {str(name): _input_array(frame[name]) for name in frame.columns}


def _text(values: np.ndarray[Any, Any]) -> pa.Array:
    """Predictions as the text labels and feedback are compared by (see ``label_text``)."""
    import pyarrow as pa

    kind = values.dtype.kind
    if kind == "b":
        return _bool_text().take(numbers(values.view(np.int8)))
    if kind in "iu":
        if len(values):  # a classifier's labels: each label's text made once, then taken
            low, high = int(values.min()), int(values.max())
            if high - low < FEW_LABELS:
                labels = numbers(np.arange(low, high + 1, dtype=values.dtype))
                return labels.cast(pa.string()).take(numbers(values - values.dtype.type(low)))
        return numbers(values).cast(pa.string())
    if kind == "f":
        finite = np.isfinite(values)
        text = numbers(np.where(finite, values, 0.0)).cast(pa.string())
        if finite.all():
            return text
        _, offsets, data = text.buffers()
        return pa.Array.from_buffers(pa.string(), len(text), [_bitmap(finite), offsets, data])
    return strings(values.tolist())  # text labels (see ``_answers``)


_CLASSES_JSON: dict[tuple[str, ...], str] = {}

FEW_LABELS = 1024
"""Integer predictions spanning fewer values than this are written as text by taking each
value's text, made once per table, rather than by casting every row."""

CONSTANT_ROWS = 16_384
"""The length a constant column's kept array starts at (a table pass's rows, see
``predictions.TABULATE_ROWS``); it doubles when a longer table asks."""
KEPT_BYTES = 8 << 20
"""What the kept constant columns may hold in all (a value's text times its rows); one
that would take more than an eighth of it is made for its table alone, and past it all
are let go."""
_CONSTANTS: dict[str, pa.Array] = {}


@functools.cache
def _time_type() -> pa.DataType:
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC")


def _classes_json(names: tuple[str, ...]) -> str:
    cached = _CLASSES_JSON.get(names)
    if cached is None:
        import orjson

        cached = _CLASSES_JSON.setdefault(names, orjson.dumps(list(names)).decode())
    return cached


def _constant(value: str | None, n: int) -> pa.Array:
    """``value`` ``n`` times: a slice of one array kept per value (Arrow arrays are
    immutable, a slice shares its buffers), so a table pays nothing per row for its
    endpoint, model, version, role and classes."""
    import pyarrow as pa

    if value is None:
        return pa.nulls(n, pa.string())
    kept = _CONSTANTS.get(value)
    if kept is not None and len(kept) >= n:
        return kept.slice(0, n)
    size = max(n, CONSTANT_ROWS, 2 * len(kept) if kept is not None else 0)
    if size * (len(value.encode()) + 4) > KEPT_BYTES // 8:  # a long text: this table's own
        return pa.repeat(strings([value])[0], n)
    # the values copied first: a watcher's flush may be converting on another thread
    if sum(column.nbytes for column in list(_CONSTANTS.values())) > KEPT_BYTES // 8 * 7:
        _CONSTANTS.clear()
    kept = _CONSTANTS[value] = pa.repeat(strings([value])[0], size)
    return kept.slice(0, n)


@functools.cache
def _bool_text() -> pa.Array:
    """``False`` and ``True`` as text, at their values' positions (taken by a boolean
    prediction, rather than a Python string made for each row)."""
    return strings(["False", "True"])


def numbers(values: Any, kind: pa.DataType | None = None) -> pa.Array:
    """A 1-D numeric or boolean numpy array as Arrow (of ``kind``, or the array's own type),
    sharing its memory when it is contiguous."""
    import pyarrow as pa

    array = np.ascontiguousarray(values)
    kind = kind or pa.from_numpy_dtype(array.dtype)
    data = _bitmap(array) if array.dtype.kind == "b" else pa.py_buffer(array)
    return pa.Array.from_buffers(kind, len(array), [None, data])


def strings(values: list[str | None] | tuple[str | None, ...]) -> pa.Array:
    """Text (``None`` for null) as an Arrow string array."""
    import pyarrow as pa

    n = len(values)
    validity = None
    try:
        joined = "".join(values)  # type: ignore[arg-type]
    except TypeError:  # a null among them
        present = np.fromiter((value is not None for value in values), np.bool_, count=n)
        validity = _bitmap(present)
        values = [value or "" for value in values]
        joined = "".join(values)  # type: ignore[arg-type]
    if joined.isascii():  # one byte a character: the lengths are the strings' own
        data = joined.encode()
        lengths = np.fromiter(map(len, values), np.int64, count=n)  # type: ignore[arg-type]
    else:
        encoded = [value.encode() for value in values]  # type: ignore[union-attr]
        data = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.int64, count=n)
    if len(data) >= 2**31:
        raise ValueError(f"{len(data)} bytes of text in one column: more than Arrow's 2 GiB")
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def numpy_of(column: pa.Array | pa.ChunkedArray, dtype: Any) -> np.ndarray[Any, Any]:
    """The values of a fixed-width Arrow column without nulls (a timestamp's as its integers)
    as numpy's ``dtype``, read from its buffers (``to_numpy`` imports pandas as well)."""
    dtype = np.dtype(dtype)
    parts = column.chunks if hasattr(column, "num_chunks") else [column]
    arrays = [
        np.frombuffer(
            part.buffers()[1], dtype, count=len(part), offset=part.offset * dtype.itemsize
        )
        for part in parts
        if len(part)
    ]
    if not arrays:
        return np.empty(0, dtype)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _bitmap(mask: np.ndarray[Any, Any]) -> pa.Buffer:
    """A boolean mask as Arrow's bit-packed buffer (validity or boolean values)."""
    import pyarrow as pa

    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def _nulls(n: int, kind: Any = None) -> pa.Array:
    import pyarrow as pa

    return pa.nulls(n, kind or pa.float64())


def _input_frame(blocks: list[tuple[tuple[str, ...] | None, Any, int]]) -> pd.DataFrame:
    """Input blocks of consecutive requests as one frame: runs of numeric arrays with the same
    columns are stacked first (one copy, not one object per request); requests without
    inputs (failures) are null rows."""
    import pandas as pd

    frames: list[pd.DataFrame] = []
    run: list[np.ndarray[Any, Any]] = []
    run_names: tuple[str, ...] | None = None

    def close_run() -> None:
        if run:
            stacked = np.concatenate(run) if len(run) > 1 else run[0]
            frames.append(pd.DataFrame(stacked, columns=list(run_names or ())))
            run.clear()

    for names, block, rows in blocks:
        if isinstance(block, np.ndarray) and block.ndim == 2:
            width = block.shape[1]
            block_names = (names or tuple(f"x{i}" for i in range(width)))[:width]
            if run and (block_names != run_names or block.dtype != run[0].dtype):
                close_run()
            run_names = block_names
            run.append(block)
            continue
        close_run()
        if hasattr(block, "columns") and hasattr(block, "iloc"):  # a DataFrame
            frame = block  # the model's input: never changed in place
            index = frame.index
            if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
                frame = frame.reset_index(drop=True)
            if not all(type(name) is str for name in frame.columns):
                frame = frame.set_axis([str(name) for name in frame.columns], axis=1)
            frames.append(frame)
        else:
            frames.append(pd.DataFrame(index=range(rows)))
    close_run()
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _frame_columns(inputs: list[Any], total: int) -> dict[str, pa.Array] | None:
    """Calls' :class:`FrameColumns` as Arrow columns, each joined by numpy first; ``None``
    when a call's are not all numpy columns of the same names (extension arrays:
    categories, nullable dtypes, datetimes), which pandas then reads."""
    first = inputs[0]
    if any(type(i) is not FrameColumns or i.names != first.names for i in inputs):
        return None
    if sum(len(i) for i in inputs) != total:
        raise ValueError(f"{sum(len(i) for i in inputs)} input rows for {total} predicted rows")
    columns: dict[str, pa.Array] = {}
    for position, name in enumerate(first.names):
        pieces = [i.arrays[position] for i in inputs]
        if any(type(piece) is not np.ndarray for piece in pieces):
            return None
        values = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        array = _numpy_input(values)
        columns[str(name)] = array if array is not None else _pandas_input(values)
    return columns


def _input_array(series: pd.Series) -> pa.Array:
    """One input column as Arrow: numbers, booleans, or text (anything else as its text);
    NaN and ``None`` are nulls. numpy columns and text are converted without pandas' and
    pyarrow's per-call inference (tens of µs a column, more than the rows of a batch)."""
    if isinstance(series.dtype, np.dtype):
        array = _numpy_input(series.to_numpy())
        if array is not None:
            return array
    return _pandas_input(series)


def _numpy_input(values: np.ndarray[Any, Any]) -> pa.Array | None:
    """Numbers and booleans from their buffers, text (with NaN and ``None``) in one Arrow
    call; ``None`` for anything else, which :func:`_pandas_input` reads."""
    import pyarrow as pa

    kind = values.dtype.kind
    if kind in "biuf":
        if kind == "f":
            nan = np.isnan(values)
            if nan.any():
                array = numbers(values)
                return pa.Array.from_buffers(
                    array.type, len(array), [_bitmap(~nan), array.buffers()[1]]
                )
        return numbers(values)
    if kind == "O":
        types = set(map(type, values))
        if str in types and types <= _TEXT_TYPES:
            try:  # text, NaN and None: Arrow converts them (a float but NaN is refused)
                return pa.array(values, pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass
    return None


def _pandas_input(column: Any) -> pa.Array:
    """One input column pandas reads: numbers or booleans inferred from objects, anything
    else as its text."""
    import pandas as pd
    import pyarrow as pa

    series = column if isinstance(column, pd.Series) else pd.Series(column)
    values = series.to_numpy() if isinstance(series.dtype, np.dtype) else None
    if values is not None and values.dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("floating", "integer", "mixed-integer-float"):
            series = pd.to_numeric(series, errors="coerce")
        elif inferred == "boolean":
            series = series.astype("boolean")
        else:
            series = series.map(lambda v: None if v is None or v != v else str(v))
    elif isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object).map(lambda v: None if v is None or v != v else str(v))
    array = pa.Array.from_pandas(series)
    # pandas' str dtype is Arrow's large_string: logged as string, as object text is (one
    # flush's tables join only when their types agree)
    return array.cast(pa.string()) if pa.types.is_large_string(array.type) else array


_TEXT_TYPES = frozenset({str, float, type(None)})
