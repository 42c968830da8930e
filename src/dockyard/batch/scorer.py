"""Scoring one record batch: validate through the signature, set bad rows aside, predict.

A :class:`Scorer` holds one loaded version (its ONNX twin when it has one and the job
accelerates, its native model otherwise) and the signature's
:class:`~dockyard.schema.Validator`, the same one the server puts in front of every request.
A batch that passes is predicted whole; one that does not has its bad rows taken out (the
validator names each bad row) and revalidated until the rest passes, and each rejected row
is then checked on its own group of rows so that the rejects file lists every problem of
every rejected row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dockyard.errors import SchemaValidationError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from dockyard.registry import Registry, Version
    from dockyard.runtimes import LoadedModel
    from dockyard.schema import Signature, Validator
    from dockyard.schema.numeric_rows import NumericRows

__all__ = ["Scored", "Scorer", "load_predictor"]

PREDICTION = "prediction"
VERSION = "version"
PROBA_PREFIX = "proba_"
REJECT_ROW = "row"
REJECT_PROBLEMS = "problems"
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

Problems = dict[int, list[dict[str, Any]]]
"""Each rejected row's position in its batch → every problem of it."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One batch scored: the output rows (input order), the rejected rows, and what the
    prediction log needs (the model's input and answers for the output rows)."""

    output: pa.Table
    rejects: pa.Table | None
    rows: int
    inputs: Any = None
    predictions: Any = None
    probabilities: Any = None
    ids: Any = None

    @property
    def rejected(self) -> int:
        return 0 if self.rejects is None else self.rejects.num_rows


def load_predictor(
    registry: Registry, version: Version, *, accelerate: bool, threads: int | None = None
) -> tuple[LoadedModel, bool]:
    """The version's verified ONNX twin when it has one and ``accelerate``, else its native
    model (both digest-checked on load); and whether the twin was taken."""
    from dockyard.runtimes.onnx import OnnxRuntime

    twin = version.accelerated or {}
    if accelerate and twin.get("digest"):
        data = registry.artifacts.get(str(twin["digest"]))
        return OnnxRuntime(intra_op_threads=threads).load(data, {}), True
    if version.runtime == "onnx":
        data = registry.artifacts.get(version.digest)
        return OnnxRuntime(intra_op_threads=threads).load(data, {}), False
    return registry.load(version.ref).model, False


class Scorer:
    """Scores record batches with one loaded version; build once per process.

    Without a ``predictor`` it only describes the job (columns, classes, runtime): what the
    parent of worker processes needs, which need not load the model itself."""

    def __init__(
        self,
        version: Version,
        predictor: LoadedModel | None,
        *,
        keep: Sequence[str] = (),
        id_column: str | None = None,
        for_log: bool = False,
        accelerated: bool = False,
    ) -> None:
        from dockyard.schema import Signature, Validator
        from dockyard.schema.labels import label_text
        from dockyard.schema.numeric_rows import NumericRows

        self.version = version
        self.predictor = predictor
        self.accelerated = accelerated
        self.keep = tuple(keep)
        self.id_column = id_column
        self.for_log = for_log
        self.signature: Signature | None = (
            Signature.from_dict(version.signature) if version.signature else None
        )
        self.validator: Validator | None = (
            Validator(self.signature) if self.signature is not None else None
        )
        self.features: tuple[str, ...] | None = (
            None if self.signature is None else self.signature.column_names
        )
        classes = None if predictor is None else predictor.classes
        if classes is None and self.signature is not None:
            classes = self.signature.output.classes
        proba = True if predictor is None else bool(predictor.has_proba)
        self.has_proba = proba and classes is not None
        self.classes: tuple[str, ...] | None = (
            None if classes is None else tuple(str(label_text(c)) for c in classes)
        )
        self._both = getattr(predictor, "predict_with_proba", None) if self.has_proba else None
        # Numbers straight from Arrow to the model, for a model that takes an array, or an
        # ONNX graph fed column by column (its inputs are looked up by name).
        layout = None if predictor is None else predictor.input_layout
        self._by_name = layout == "frame" and predictor is not None and _onnx(predictor)
        self._rows: NumericRows | None = (
            None
            if self.signature is None or not (layout == "array" or self._by_name)
            else NumericRows.for_signature(self.signature, layout="array")
        )
        self._numeric = (
            {}
            if self.signature is None
            else {
                c.name: c.dtype
                for c in self.signature.columns
                if c.dtype in ("float", "integer", "boolean")
            }
        )

    @classmethod
    def open(
        cls,
        registry: Registry,
        ref: str,
        *,
        accelerate: bool = True,
        workers: int = 1,
        keep: Sequence[str] = (),
        id_column: str | None = None,
        for_log: bool = False,
        load: bool = True,
    ) -> Scorer:
        """Load ``ref`` (digest-verified) from ``registry``; with ``workers`` processes
        sharing the cores, each ONNX session takes its share of them. ``load=False``: a
        scorer that only describes the job (see the class)."""
        version = registry.get_version(ref)
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))
        predictor: LoadedModel | None = None
        accelerated = accelerate and bool((version.accelerated or {}).get("digest"))
        if load:
            predictor, accelerated = load_predictor(
                registry, version, accelerate=accelerate, threads=threads
            )
        return cls(
            version,
            predictor,
            keep=keep,
            id_column=id_column,
            for_log=for_log,
            accelerated=accelerated,
        )

    @property
    def runtime(self) -> str:
        return (
            f"onnx (twin of {self.version.runtime})" if self.accelerated else self.version.runtime
        )

    def output_columns(self) -> list[str]:
        """The output's columns, in order."""
        probas = [PROBA_PREFIX + name for name in self.classes or ()] if self.has_proba else []
        return [*self.keep, PREDICTION, *probas, VERSION]

    def missing(self, names: Sequence[str]) -> list[str]:
        """The signature's columns and the kept and id columns absent from ``names``."""
        present = set(names)
        wanted = [*(self.features or ()), *self.keep]
        if self.id_column is not None:
            wanted.append(self.id_column)
        return [name for name in dict.fromkeys(wanted) if name not in present]

    # --- one batch -------------------------------------------------------------------------

    def score(self, batch: pa.RecordBatch, first_row: int) -> Scored:
        """Score ``batch``, whose first row is row ``first_row`` of the input."""
        model_input: Any
        logged: Any = None
        fast = self._numeric_rows(batch)
        if fast is not None:
            model_input, logged = fast
            good = np.arange(batch.num_rows)
            rejects = None
        else:
            frame = self._frame(batch)
            good, validated, problems = self._validate(frame)
            rejects = self._rejects(batch, problems, first_row) if problems else None
            if len(good) == 0:
                return Scored(self._empty(batch), rejects, batch.num_rows)
            model_input = validated if validated is not None else frame
            logged = model_input
        predictions, probabilities = self._predict(model_input)
        take = None if len(good) == batch.num_rows else _indices(good)
        output = self._output(batch, take, predictions, probabilities)
        ids = None
        if self.for_log and self.id_column is not None:
            column = batch.column(self.id_column)
            ids = (column if take is None else column.take(take)).to_pylist()
        return Scored(
            output,
            rejects,
            batch.num_rows,
            inputs=logged if self.for_log else None,
            predictions=predictions if self.for_log else None,
            probabilities=probabilities if self.for_log else None,
            ids=ids,
        )

    def _numeric_rows(self, batch: pa.RecordBatch) -> tuple[Any, Any] | None:
        """(the model's input, the array the prediction log takes) for a batch whose
        signature columns are all numbers, straight from Arrow (no pandas), through the
        validator's own :class:`NumericRows` checks; ``None`` for anything those do not pass
        clean (a null, NaN, text, a fraction in an integer column...): the full path then
        checks the batch and sets bad rows aside."""
        import pyarrow as pa

        if self._rows is None or self.features is None or not batch.num_rows:
            return None
        columns: dict[str, Any] = {}
        for name in self.features:
            column = batch.column(name)
            kind = column.type
            if column.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                return None
            columns[name] = column.to_numpy(zero_copy_only=False)
        if self._by_name:
            if not self._rows.clean_columns(columns):
                return None
            logged = np.column_stack(list(columns.values())) if self.for_log else None
            return columns, logged
        array = self._rows.decode(columns)
        return None if array is None else (array, array)

    def _frame(self, batch: pa.RecordBatch) -> pd.DataFrame:
        """The signature's columns of ``batch`` as pandas (text from CSV that did not
        convert: numbers where they parse, the text where not). Arrow text arrives as
        ``object`` or, on pandas 3, in its ``str`` dtype: both are parsed."""
        import pandas as pd

        names = list(self.features) if self.features is not None else batch.schema.names
        frame: pd.DataFrame = batch.select(names).to_pandas()
        for name, kind in self._numeric.items():
            series = frame[name]
            text = series.dtype == object or isinstance(series.dtype, pd.StringDtype)
            if not text or not _texts(series):
                continue
            if kind == "boolean":
                parsed = series.str.lower().map(
                    {"true": True, "false": False, "1": True, "0": False}
                )
            else:
                parsed = pd.to_numeric(series, errors="coerce")
            mixed = parsed.astype(object)
            bad = parsed.isna() & series.notna()
            mixed[bad] = series[bad]
            mixed[series.isna()] = np.nan
            frame[name] = mixed if bad.any() else parsed
        return frame

    def _validate(
        self, frame: pd.DataFrame
    ) -> tuple[np.ndarray[Any, Any], Any, dict[int, list[dict[str, Any]]]]:
        """(positions of the good rows, their validated input, each bad row's problems)."""
        rows = np.arange(len(frame))
        if self.validator is None:
            return rows, None, {}
        bad: list[np.ndarray[Any, Any]] = []
        good = rows
        part = frame
        while len(good):
            try:
                validated = self.validator.validate(part).data
                break
            except SchemaValidationError as exc:
                named = _rows(exc)
                if named is None:  # a problem of the whole input, not of rows
                    raise
                bad.append(good[named])
                keep = np.ones(len(good), bool)
                keep[named] = False
                good = good[keep]
                part = frame.iloc[good].reset_index(drop=True)
        else:
            validated = None
        if not bad:
            return good, validated, {}
        rejected = np.sort(np.concatenate(bad))
        return good, validated, self._problems(frame, rejected)

    def _problems(
        self, frame: pd.DataFrame, rejected: np.ndarray[Any, Any]
    ) -> dict[int, list[dict[str, Any]]]:
        """Every problem of each rejected row: checked in groups small enough that the
        validator lists all of them (it lists a bounded number per column)."""
        from dockyard.schema.problems import PROBLEM_LIMIT

        assert self.validator is not None
        found: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(rejected), PROBLEM_LIMIT):
            group = rejected[start : start + PROBLEM_LIMIT]
            try:
                self.validator.validate(frame.iloc[group].reset_index(drop=True))
            except SchemaValidationError as exc:
                for problem in exc.details["problems"]:
                    row = problem.pop("row")
                    if row is not None:
                        found.setdefault(int(group[row]), []).append(problem)
        return found

    def _predict(self, model_input: Any) -> tuple[Any, Any]:
        assert self.predictor is not None, "a describing scorer does not score"
        if self._both is not None:
            predictions, probabilities = self._both(model_input)
        else:
            predictions = self.predictor.predict(model_input)
            probabilities = self.predictor.predict_proba(model_input) if self.has_proba else None
        predictions = np.asarray(predictions)
        if predictions.ndim > 1:
            predictions = predictions.reshape(len(predictions), -1)[:, 0]
        if probabilities is not None:
            probabilities = np.asarray(probabilities)
            if probabilities.dtype.kind != "f":
                probabilities = probabilities.astype(np.float64)
        return predictions, probabilities

    def _output(
        self, batch: pa.RecordBatch, take: Any, predictions: Any, probabilities: Any
    ) -> pa.Table:
        import pyarrow as pa

        columns: dict[str, Any] = {}
        for name in self.keep:
            column = batch.column(name)
            columns[name] = column if take is None else column.take(take)
        columns[PREDICTION] = _arrow(predictions)
        if probabilities is not None and self.classes is not None:
            for index, name in enumerate(self.classes):
                columns[PROBA_PREFIX + name] = pa.array(probabilities[:, index])
        columns[VERSION] = _constant(self.version.ref, len(predictions))
        return pa.table(columns)

    def _empty(self, batch: pa.RecordBatch) -> pa.Table:
        """No row of the batch passed: an output table with no rows (types as far as known)."""
        import pyarrow as pa

        fields = [batch.schema.field(name) for name in self.keep]
        fields.append(pa.field(PREDICTION, pa.null()))
        if self.has_proba:
            fields += [pa.field(PROBA_PREFIX + n, pa.float64()) for n in self.classes or ()]
        fields.append(pa.field(VERSION, _constant("", 0).type))
        return pa.schema(fields).empty_table()

    def _rejects(self, batch: pa.RecordBatch, problems: Problems, first_row: int) -> pa.Table:
        """Each rejected row: its row number in the input, every problem (JSON), and the
        columns the job keeps (to find it again)."""
        import orjson
        import pyarrow as pa

        positions = np.array(sorted(problems), dtype=np.int64)
        columns: dict[str, Any] = {
            REJECT_ROW: pa.array(positions + first_row, pa.int64()),
            REJECT_PROBLEMS: pa.array(
                [orjson.dumps(problems[int(p)]).decode() for p in positions], pa.string()
            ),
        }
        for name in self.keep:
            columns[name] = batch.column(name).take(pa.array(positions))
        return pa.table(columns)


def _rows(exc: SchemaValidationError) -> np.ndarray[Any, Any] | None:
    """The rows a validation error names, or ``None`` when one of its problems is about the
    whole input (a missing column, a wrong shape)."""
    rows = {problem.get("row") for problem in (exc.details or {}).get("problems", ())}
    if not rows or None in rows:
        return None
    return np.array(sorted(rows), dtype=np.int64)


def _onnx(predictor: LoadedModel) -> bool:
    from dockyard.runtimes.onnx import OnnxModel

    return isinstance(predictor, OnnxModel)


def _constant(text: str, rows: int) -> pa.Array:
    """One value on every row, dictionary-encoded: one string, not one per row, to build
    and to write."""
    import pyarrow as pa

    indices = pa.array(np.zeros(rows, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array([text], pa.string()))


def _texts(series: pd.Series) -> bool:
    first = series.first_valid_index()
    return first is not None and isinstance(series[first], str)


def _indices(positions: np.ndarray[Any, Any]) -> pa.Array:
    import pyarrow as pa

    return pa.array(positions, pa.int64())


def _arrow(values: np.ndarray[Any, Any]) -> pa.Array:
    import pyarrow as pa

    if values.dtype == object:
        return pa.array(values.tolist())
    return pa.array(values)
