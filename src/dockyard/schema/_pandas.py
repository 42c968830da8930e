"""pandas only where it is used: checks against pandas' types without importing it.

No value can be a pandas object before this process has imported pandas, so a check such as
"is this a DataFrame" or "is this ``pd.NA``" can ask :func:`loaded` and answer no when it is
``None``. That keeps pandas (~45 MiB) out of a serving process whose models take arrays and
whose clients send JSON or tensors; the paths that build frames import it when they run.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray


def loaded() -> ModuleType | None:
    """pandas if this process has imported it, else ``None`` (also while another thread is
    still importing it: no pandas object exists before its import has finished)."""
    module = sys.modules.get("pandas")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def is_missing_marker(value: Any) -> bool:
    """Whether ``value`` is pandas' ``NA`` or ``NaT``."""
    pd = loaded()
    return pd is not None and (value is pd.NA or value is pd.NaT)


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame."""
    pd = loaded()
    return pd is not None and isinstance(value, pd.DataFrame)


def is_series(value: Any) -> bool:
    """Whether ``value`` is a pandas Series."""
    pd = loaded()
    return pd is not None and isinstance(value, pd.Series)


def is_text_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is one of pandas' text dtypes: ``str`` (pandas 3's default for
    text) or ``string``."""
    pd = loaded()
    return pd is not None and isinstance(dtype, pd.StringDtype)


_NUMPY_DTYPES = frozenset(
    {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint64", "uint32"}
    | {"uint16", "uint8", "bool", "object"}
)
"""Dtype names numpy and pandas read alike (pandas' own, such as ``str``, differ)."""


def dtype_of(name: str) -> Any:
    """The numpy or pandas dtype named ``name``, as ``pandas.api.types.pandas_dtype`` reads
    it; numpy's own names do not import pandas."""
    if name in _NUMPY_DTYPES:
        return np.dtype(name)
    import pandas as pd

    return pd.api.types.pandas_dtype(name)


def isna(objects: NDArray[Any]) -> NDArray[np.bool_]:
    """Which of the object values are null: ``None``, NaN or NaT (``pandas.isna``'s answer;
    before pandas is imported none can be one of its own markers, so numpy answers)."""
    pd = loaded()
    if pd is not None:
        return np.asarray(pd.isna(objects), dtype=bool)
    try:
        with np.errstate(invalid="ignore"):
            missing = np.equal(objects, None)  # type: ignore[call-overload]
            return np.asarray(missing | np.not_equal(objects, objects), np.bool_)
    except (TypeError, ValueError, ArithmeticError):  # a value that does not compare as one
        return np.fromiter(map(_is_null, objects), dtype=bool, count=len(objects))


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError, ArithmeticError):
        return False
