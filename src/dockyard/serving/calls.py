"""One model call per batch: the ``run`` a :class:`~dockyard.serving.batching.Batcher`
calls, built from a model's ``predict`` (:func:`run_batched`): the batch's inputs joined
(:func:`concat_rows`), one call, its output cut back by request (:func:`split_rows`), and
each input alone when that fails, so only the bad one gets the error.

Pure: numpy and pandas are imported only for inputs of theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["concat_rows", "run_batched", "split_rows"]

X = TypeVar("X")
Y = TypeVar("Y")
Z = TypeVar("Z")


def run_batched(
    predict: Callable[[X], Y],
    *,
    combine: Callable[[Sequence[X]], X] | None = None,
    split: Callable[[Y, Sequence[int]], Sequence[Z]] | None = None,
    rows: Callable[[X], int] | None = None,
) -> Callable[[Sequence[X]], list[Z | BaseException]]:
    """A :class:`Batcher` ``run`` that predicts once for a whole batch of inputs.

    The inputs are joined with ``combine`` (default :func:`concat_rows`), ``predict`` runs
    once, and ``split`` (default :func:`split_rows`) cuts its output back by each input's
    row count (``rows``, default ``len``). A batch of one is not combined. If any step fails,
    each input is predicted alone, so only the failing ones get their exception (returned in
    place, as :class:`Batcher` expects).
    """
    join = combine or concat_rows
    cut: Callable[[Y, Sequence[int]], Sequence[Z]] = split or split_rows
    count = rows or _length

    def alone(item: X) -> Z:
        return cut(predict(item), [count(item)])[0]

    def run(items: Sequence[X]) -> list[Z | BaseException]:
        if len(items) == 1:
            return [_attempt(alone, items[0])]
        try:
            parts = cut(predict(join(items)), [count(item) for item in items])
            if len(parts) == len(items):
                return list(parts)
        except Exception:
            pass  # isolate the culprits below
        return [_attempt(alone, item) for item in items]

    return run


def concat_rows(parts: Sequence[Any]) -> Any:
    """Stack inputs row-wise: DataFrames with pandas, arrays with numpy, else lists.

    Refuses (``ValueError``) inputs whose columns or dtypes differ rather than let
    concatenation change a request's types; :func:`run_batched` then predicts them alone.
    """
    first = parts[0]
    if hasattr(first, "columns") and hasattr(first, "iloc"):
        import pandas as pd

        columns, dtypes = first.columns, first.dtypes
        for part in parts[1:]:
            if not (part.columns.equals(columns) and part.dtypes.equals(dtypes)):
                raise ValueError("the frames' columns or dtypes differ")
        return pd.concat(parts, ignore_index=True)
    if hasattr(first, "dtype") and hasattr(first, "shape"):
        import numpy as np

        for part in parts[1:]:
            if part.dtype != first.dtype or part.shape[1:] != first.shape[1:]:
                raise ValueError("the arrays' dtypes or widths differ")
        return np.concatenate(parts)
    return [row for part in parts for row in part]


def split_rows(output: Any, counts: Sequence[int]) -> list[Any]:
    """Cut ``output`` into consecutive pieces of ``counts`` rows (views where possible).

    A tuple output (say predictions and probabilities) is split element-wise into tuples;
    ``None`` elements stay ``None``. Raises ``ValueError`` when the rows do not add up.
    """
    if isinstance(output, tuple):
        pieces = [
            [None] * len(counts) if part is None else split_rows(part, counts) for part in output
        ]
        return [tuple(row) for row in zip(*pieces, strict=True)]
    total = sum(counts)
    if len(output) != total:
        raise ValueError(f"the model returned {len(output)} rows for {total}")
    rows = getattr(output, "iloc", output)
    cuts: list[Any] = []
    start = 0
    for count in counts:
        cuts.append(rows[start : start + count])
        start += count
    return cuts


def _attempt(predict: Callable[[X], Z], item: X) -> Z | BaseException:
    try:
        return predict(item)
    except Exception as exc:
        return exc


def _length(item: Any) -> int:
    return len(item)
