"""From a scikit-learn Pipeline to the features its last step sees, and back to the user's
columns: which input column each transformed feature comes from.

Supported: a Pipeline whose steps before the last are a ColumnTransformer and/or
feature-wise transformers (scalers, imputers, power and quantile transforms). Inside the
ColumnTransformer a transformer may be one-to-one, a OneHotEncoder, ``passthrough``,
``drop``, a Pipeline of those, or anything at all on a single column. Anything else is not
mapped (``None``), and the model is explained by permutation over the user's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# transformers whose output feature j depends only on input feature j
_FEATURE_WISE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "SimpleImputer",
    "PowerTransformer",
    "QuantileTransformer",
    "OrdinalEncoder",
    "Binarizer",
}


@dataclass(frozen=True)
class Unwrapped:
    """The estimator to explain, how to get its input from the model input, and the input
    column (index) each of its features belongs to."""

    final: Any
    transform: Callable[[Any], Any]
    groups: Sequence[int]


def unwrap(estimator: Any, n_columns: int) -> Unwrapped | None:
    """``estimator`` split into preprocessing and final step, or ``None`` when its features
    cannot be traced back to ``n_columns`` input columns."""
    steps = getattr(estimator, "steps", None)
    if not steps:
        return Unwrapped(estimator, _dense, list(range(n_columns)))
    groups: list[int] | None = list(range(n_columns))
    for _, step in steps[:-1]:
        if groups is None:
            return None
        groups = _through(step, groups)
    if groups is None:
        return None
    transformers = [step for _, step in steps[:-1] if step not in (None, "passthrough")]

    def transform(x: Any) -> Any:
        for step in transformers:
            x = step.transform(x)
        return _dense(x)

    return Unwrapped(steps[-1][1], transform, groups)


def _through(step: Any, groups: list[int]) -> list[int] | None:
    if step is None or step == "passthrough":
        return groups
    name = type(step).__name__
    if name in _FEATURE_WISE:
        return groups if _width_kept(step, len(groups)) else None
    if name == "ColumnTransformer":
        return _column_transformer(step, groups)
    return None


def _column_transformer(ct: Any, groups: list[int]) -> list[int] | None:
    names_in = getattr(ct, "feature_names_in_", None)
    position = {str(n): i for i, n in enumerate(names_in)} if names_in is not None else {}
    out_slices = getattr(ct, "output_indices_", None)
    if out_slices is None:
        return None
    width = max((s.stop for s in out_slices.values()), default=0)
    mapped: list[int | None] = [None] * width
    for name, trans, columns in ct.transformers_:
        inputs = _indices(columns, position, len(groups))
        if inputs is None:
            return None
        out = out_slices[name]
        widths = _widths(trans, len(inputs))
        if widths is None or sum(widths) != out.stop - out.start:
            return None
        at = out.start
        for column, w in zip(inputs, widths, strict=True):
            for j in range(at, at + w):
                mapped[j] = groups[column]
            at += w
    if any(m is None for m in mapped):
        return None
    return [int(m) for m in mapped if m is not None]


def _indices(columns: Any, position: dict[str, int], n: int) -> list[int] | None:
    if isinstance(columns, slice):
        return list(range(n))[columns]
    if isinstance(columns, str | int):
        columns = [columns]
    try:
        items = list(columns)
    except TypeError:
        return None
    if items and all(isinstance(c, bool) for c in items):
        return [i for i, keep in enumerate(items) if keep]
    result = []
    for c in items:
        if isinstance(c, str):
            if c not in position:
                return None
            result.append(position[c])
        else:
            result.append(int(c))
    return result


def _widths(trans: Any, k: int) -> list[int] | None:
    """How many output features each of ``k`` input columns becomes."""
    if trans == "drop" or k == 0:
        return [0] * k
    if trans == "passthrough":
        return [1] * k
    name = type(trans).__name__
    if name == "Pipeline":
        widths: list[int] | None = [1] * k
        for _, step in trans.steps:
            inner = _widths(step, k)
            if inner is None or widths is None:
                return None
            if any(w != 1 for w in widths):  # only the last step may widen
                return None
            widths = inner
        return widths
    if name in _FEATURE_WISE:
        return [1] * k if _width_kept(trans, k) else None
    if name == "OneHotEncoder":
        return _one_hot_widths(trans, k)
    if k == 1:
        width = _n_out(trans)
        return None if width is None else [width]
    return None


def _one_hot_widths(encoder: Any, k: int) -> list[int] | None:
    if getattr(encoder, "infrequent_categories_", None) and any(
        c is not None for c in encoder.infrequent_categories_
    ):
        return None
    categories = encoder.categories_
    drops = getattr(encoder, "drop_idx_", None)
    widths = []
    for i in range(k):
        dropped = drops is not None and drops[i] is not None
        widths.append(len(categories[i]) - (1 if dropped else 0))
    return widths


def _width_kept(trans: Any, k: int) -> bool:
    width = _n_out(trans)
    return width == k


def _n_out(trans: Any) -> int | None:
    try:
        return len(trans.get_feature_names_out())
    except Exception:
        return None


def _dense(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)
