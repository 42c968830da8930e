"""Turning what users hand over into a pandas DataFrame.

:func:`as_frame` accepts the in-memory shapes a data scientist has at hand; :func:`read_table`
reads the files the CLI's ``--sample`` and ``--data`` options name. Reading a file is the only
I/O in :mod:`dockyard.schema`, and it lives here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dockyard.errors import InvalidRequestError, UnreadableFileError

__all__ = ["as_frame", "read_table"]

_AS_FRAME_HINT = (
    "Pass a pandas DataFrame, a 1-D or 2-D numpy array, a dict of column lists, "
    "a list of records (dicts), a pandas Series or a pyarrow Table."
)
_SUFFIXES = (".parquet", ".pq", ".csv", ".json", ".jsonl", ".ndjson")


def as_frame(data: Any, *, feature_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Return ``data`` as a DataFrame.

    - a DataFrame is returned as is;
    - a numpy array: 2-D gives one column per array column, 1-D gives a single column (one
      feature, many rows — scikit-learn's own reading of a 1-D ``X`` is ambiguous, a sample
      is what is meant here); columns are named ``feature_names`` or ``x0 .. x{n-1}``;
    - a dict of column lists, a list of record dicts, or a list of row lists (named by
      ``feature_names`` or ``x0..``);
    - a pandas Series becomes one column (named after the Series, else ``feature_names[0]``
      or ``x0``);
    - anything with a ``to_pandas()`` method returning a DataFrame (pyarrow and polars
      tables).

    Raises :class:`InvalidRequestError` for anything else, for empty lists and for
    ``feature_names`` of the wrong length.
    """
    names = list(feature_names) if feature_names is not None else None
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        name = data.name if data.name is not None else (names[0] if names else "x0")
        return data.to_frame(name=name)
    if isinstance(data, np.ndarray):
        return _array_frame(data, names)
    if isinstance(data, Mapping):
        return _construct(lambda: pd.DataFrame(dict(data)), "a dict of columns")
    if isinstance(data, (list, tuple)):
        return _list_frame(list(data), names)
    to_pandas = getattr(data, "to_pandas", None)
    if callable(to_pandas):
        frame = to_pandas()
        if isinstance(frame, pd.DataFrame):
            return frame
    raise InvalidRequestError(
        f"cannot use a {type(data).__name__} as tabular data", hint=_AS_FRAME_HINT
    )


def _array_frame(array: np.ndarray[Any, Any], names: list[str] | None) -> pd.DataFrame:
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise InvalidRequestError(
            f"expected a 1-D or 2-D array, got {array.ndim} dimensions",
            hint="Reshape the array to (rows, features).",
        )
    width = array.shape[1]
    return pd.DataFrame(array, columns=_names(names, width))


def _list_frame(items: list[Any], names: list[str] | None) -> pd.DataFrame:
    if not items:
        raise InvalidRequestError("the data has no rows", hint=_AS_FRAME_HINT)
    if all(isinstance(item, Mapping) for item in items):
        return _construct(lambda: pd.DataFrame.from_records(items), "a list of records")
    if all(isinstance(item, (list, tuple)) for item in items):
        widths = {len(item) for item in items}
        if len(widths) != 1:
            raise InvalidRequestError(
                f"rows have different lengths: {sorted(widths)}",
                hint="Every row needs one value per feature.",
            )
        return pd.DataFrame(items, columns=_names(names, widths.pop()))
    raise InvalidRequestError(
        "a list of data must hold only records (dicts) or only rows (lists)",
        hint=_AS_FRAME_HINT,
    )


def _names(names: list[str] | None, width: int) -> list[str]:
    if names is None:
        return [f"x{i}" for i in range(width)]
    if len(names) != width:
        raise InvalidRequestError(
            f"{len(names)} feature names given for {width} columns",
            hint="Pass exactly one name per column.",
        )
    return names


def _construct(build: Any, what: str) -> pd.DataFrame:
    try:
        frame: pd.DataFrame = build()
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"cannot build a table from {what}: {exc}",
            hint="Columns need lists of equal length; records need to be dicts.",
        ) from exc
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet, CSV, JSON (a list of records or a dict of columns) or JSON Lines file.

    The format comes from the suffix: ``.parquet``/``.pq``, ``.csv``, ``.json``,
    ``.jsonl``/``.ndjson``. Raises :class:`UnreadableFileError` naming the file and what to do
    when it is missing, is a folder, has another suffix or cannot be parsed.
    """
    file = Path(path)
    if not file.exists():
        raise UnreadableFileError(
            f"file not found: {file}", hint="Check the path; it is relative to where you ran it."
        )
    if not file.is_file():
        raise UnreadableFileError(f"not a file: {file}", hint="Name a data file, not a folder.")
    suffix = file.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UnreadableFileError(
            f"unknown data file type {suffix or '(no suffix)'!r}: {file}",
            hint=f"Use one of {', '.join(_SUFFIXES)}.",
        )
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(file)
        if suffix == ".csv":
            return pd.read_csv(file)
        if suffix == ".json":
            return _json_frame(json.loads(file.read_text(encoding="utf-8")))
        return _json_lines_frame(file)
    except UnreadableFileError:
        raise
    except InvalidRequestError as exc:
        raise UnreadableFileError(
            f"cannot read {file}: {exc.message}", hint=exc.hint, details={"path": str(file)}
        ) from exc
    # Parsers raise a zoo of types (ParserError, ArrowInvalid, JSONDecodeError, OSError...).
    except Exception as exc:
        raise UnreadableFileError(
            f"cannot read {file} as {suffix[1:]}: {exc}",
            hint=f"Check that the file is valid {suffix[1:]} (open it, or re-export it).",
            details={"path": str(file), "reason": str(exc)},
        ) from exc


def _json_frame(document: Any) -> pd.DataFrame:
    if isinstance(document, list):
        if not document:
            return pd.DataFrame()
        if not all(isinstance(item, dict) for item in document):
            raise InvalidRequestError(
                "a JSON list must hold records (objects)",
                hint='Write [{"column": value, ...}, ...] or {"column": [values]}.',
            )
        return pd.DataFrame.from_records(document)
    if isinstance(document, dict):
        return as_frame(document)
    raise InvalidRequestError(
        "a JSON data file must hold a list of records or an object of columns",
        hint='Write [{"column": value, ...}, ...] or {"column": [values]}.',
    )


def _json_lines_frame(file: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {number}: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise ValueError(f"line {number}: expected a JSON object, got {record!r:.40}")
            records.append(record)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()
