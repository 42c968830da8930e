"""Inferring a :class:`Signature` from a training sample, and probing the model.

Column dtypes, categories and ranges come from the sample. Two policies need the model
itself, because the sample cannot tell: whether a column may be null, and whether a string
or category value the sample never showed is acceptable. When the caller passes
``accepts`` (a callable that says whether the real model predicts without error on a
frame), :func:`infer_signature` asks it, on a few sample rows rebuilt exactly as serving
would rebuild them:

- ``nullable`` = nulls were seen in the sample **or** the model accepts a null there;
- ``unseen`` = ``allow`` when the model accepts a value outside the known categories
  (:data:`UNSEEN_PROBE_VALUE` for string columns; for pandas ``category`` columns an unseen
  value is served as NaN, so the probe is a NaN), else ``reject``.

Without ``accepts``: ``nullable`` = nulls were seen, ``unseen`` = ``reject``. Free-text
string columns (more than :data:`~dockyard.schema.signature.STRING_CATEGORY_LIMIT` distinct
values) have no categories and accept any string.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from dockyard.errors import InvalidRequestError, SchemaValidationError
from dockyard.schema._json import finite_or_none, to_json_value
from dockyard.schema.layout import InputLayout
from dockyard.schema.signature import (
    STRING_CATEGORY_LIMIT,
    ColumnKind,
    ColumnSpec,
    OutputSpec,
    Signature,
)
from dockyard.schema.validation import Validator

__all__ = ["PROBE_ROWS", "UNSEEN_PROBE_VALUE", "infer_column", "infer_output", "infer_signature"]

UNSEEN_PROBE_VALUE = "__dockyard_unseen__"
"""The string a probe puts in a string column to see whether the model takes unseen values."""

PROBE_ROWS = 3
"""How many sample rows each probe sends to the model."""

_OBJECT_KINDS: dict[str, ColumnKind] = {
    "string": "string",
    "empty": "string",
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
}


def infer_signature(
    sample: pd.DataFrame,
    *,
    layout: InputLayout,
    predictions: Any,
    classes: Sequence[Any] | None,
    has_proba: bool,
    accepts: Callable[[pd.DataFrame], bool] | None = None,
) -> Signature:
    """The signature of a model trained on data like ``sample``.

    ``predictions`` are the model's predictions on (part of) the sample and ``classes`` its
    class labels when it has them; see :func:`infer_output`. ``accepts(frame)`` returns
    whether the model predicts without error on ``frame`` (a DataFrame with the signature's
    columns and dtypes; for an ``array`` model the caller converts it). It is called at most
    ``1 + 2 × columns`` times on :data:`PROBE_ROWS` rows, with warnings silenced; an exception
    counts as a refusal.
    """
    if not isinstance(sample, pd.DataFrame):
        raise InvalidRequestError(
            f"the sample must be a DataFrame, got {type(sample).__name__}",
            hint="Convert it with dockyard.schema.as_frame().",
        )
    if sample.shape[1] == 0 or len(sample) == 0:
        raise InvalidRequestError(
            f"the sample is empty ({sample.shape[0]} rows, {sample.shape[1]} columns)",
            hint="Pass some training rows as the sample.",
        )
    names = [str(column) for column in sample.columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidRequestError(
            f"the sample has repeated column names: {repeated}",
            hint="Give every column a distinct name.",
        )
    columns = tuple(infer_column(name, sample.iloc[:, i]) for i, name in enumerate(names))
    signature = Signature(columns, infer_output(predictions, classes, has_proba), layout)
    if accepts is None:
        return signature
    return _probe(signature, sample, accepts)


def infer_column(name: str, series: pd.Series) -> ColumnSpec:
    """The :class:`ColumnSpec` for one sample column (``nullable`` = nulls seen)."""
    dtype = series.dtype
    nullable = bool(series.isna().any())
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        return ColumnSpec(
            name=name,
            dtype="category",
            pandas_dtype="category",
            nullable=nullable,
            categories=tuple(categories.tolist()),
            ordered=bool(dtype.ordered),
            categories_dtype=str(categories.dtype),
        )
    kind = _column_kind(name, series)
    spec = ColumnSpec(name=name, dtype=kind, pandas_dtype=str(dtype), nullable=nullable)
    if kind in ("float", "integer"):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            spec = replace(
                spec, minimum=finite_or_none(finite.min()), maximum=finite_or_none(finite.max())
            )
    elif kind == "string":
        distinct = series.dropna().unique()
        if len(distinct) <= STRING_CATEGORY_LIMIT:
            spec = replace(spec, categories=tuple(sorted(str(value) for value in distinct)))
        else:
            spec = replace(spec, unseen="allow")  # free text: any string
    return spec


def _column_kind(name: str, series: pd.Series) -> ColumnKind:
    dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in _OBJECT_KINDS:
            return _OBJECT_KINDS[inferred]
        raise InvalidRequestError(
            f"column {name!r} holds values of mixed or unsupported types ({inferred})",
            hint=f"Give {name!r} one type, e.g. df[{name!r}] = df[{name!r}].astype(str).",
        )
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype):
        return "string"
    raise InvalidRequestError(
        f"column {name!r} has the unsupported dtype {dtype}",
        hint="Use numbers, booleans, strings, categories or datetimes.",
    )


def infer_output(predictions: Any, classes: Sequence[Any] | None, has_proba: bool) -> OutputSpec:
    """What the model outputs, conservatively.

    ``classification`` when ``classes`` are given, or when 1-D predictions are strings or
    booleans, or when the model has ``predict_proba`` (classes are then the sorted distinct
    predictions); ``regression`` for float predictions without those; ``other`` otherwise —
    integer predictions without classes or probabilities could be counts as well as labels.
    """
    array = None if predictions is None else np.asarray(predictions)
    dtype = "unknown" if array is None else str(array.dtype)
    if classes is not None:
        return OutputSpec("classification", _labels(classes), has_proba, dtype)
    if array is None or array.ndim == 0:
        return OutputSpec("other", None, has_proba, dtype)
    if array.ndim == 1:
        kind: str = array.dtype.kind
        if kind == "O":
            inferred = pd.api.types.infer_dtype(array, skipna=True)
            kind = {"string": "U", "boolean": "b", "integer": "i", "floating": "f"}.get(
                inferred, "O"
            )
        labels = kind in "bUS" or (has_proba and kind in "iuf")
        distinct = _distinct(array) if labels else None
        if distinct is not None and len(distinct) <= STRING_CATEGORY_LIMIT:
            return OutputSpec("classification", distinct, has_proba, dtype)
    if array.dtype.kind == "f":
        return OutputSpec("regression", None, has_proba, dtype)
    return OutputSpec("other", None, has_proba, dtype)


def _labels(values: Any) -> tuple[Any, ...]:
    return tuple(to_json_value(value) for value in values)


def _distinct(array: Any) -> tuple[Any, ...] | None:
    present = array[~pd.isna(array)]
    try:
        return _labels(np.unique(present))
    except TypeError:  # unorderable mixture
        return None


# -- probing --------------------------------------------------------------------------------


def _probe(
    signature: Signature, sample: pd.DataFrame, accepts: Callable[[pd.DataFrame], bool]
) -> Signature:
    relaxed = Validator(
        Signature(
            tuple(replace(column, nullable=True, unseen="allow") for column in signature.columns),
            signature.output,
            "frame",
        )
    )
    head = sample.head(PROBE_ROWS)
    base = {
        column.name: head.iloc[:, i].to_numpy(dtype=object)
        for i, column in enumerate(signature.columns)
    }

    def accepted(changes: Sequence[tuple[str, Any]] = ()) -> bool:
        """Whether the model predicts on probe rows: one per change (that change applied to
        the first sample row), or the unchanged head when there are no changes."""
        if changes:
            columns = {name: np.repeat(values[:1], len(changes)) for name, values in base.items()}
            for row, (name, value) in enumerate(changes):
                columns[name][row] = value
        else:
            columns = base
        try:
            frame = relaxed.validate(columns).data
        except SchemaValidationError:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return bool(accepts(frame))
            except Exception:  # the model refusing the probe is the answer, not a failure
                return False

    if not accepted():
        return signature  # the model refuses its own sample rows: nothing to learn
    # One probe per question; asked all at once first, since most models accept them all
    # (or reject at input validation, which is cheap), then one by one if that fails.
    questions: list[tuple[str, Any]] = []
    for column in signature.columns:
        # An unseen value in a category column is served as NaN: one probe answers both.
        if column.dtype == "category" or not column.nullable:
            questions.append((column.name, None))
        if column.dtype == "string" and column.categories is not None:
            questions.append((column.name, UNSEEN_PROBE_VALUE))
    if questions and accepted(questions):
        answers = dict.fromkeys(questions, True)
    else:
        answers = {question: accepted([question]) for question in questions}
    probed: list[ColumnSpec] = []
    for column in signature.columns:
        null_ok = answers.get((column.name, None), True)
        unseen = column.unseen
        if column.dtype == "category":
            unseen = "allow" if null_ok else "reject"
        elif column.dtype == "string" and column.categories is not None:
            unseen = "allow" if answers[(column.name, UNSEEN_PROBE_VALUE)] else "reject"
        probed.append(replace(column, nullable=column.nullable or null_ok, unseen=unseen))
    return replace(signature, columns=tuple(probed))
