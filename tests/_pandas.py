"""pandas' text dtypes in tests: ``str`` is pandas 3's default for text; pandas 2.3 reads
text so, and names the dtype, only with its ``future.infer_string`` option."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pandas as pd


@contextlib.contextmanager
def text_as(dtype: str) -> Iterator[None]:
    """Text read and built in pandas' ``str`` dtype inside the block when ``dtype`` is
    ``"str"`` (whichever pandas is installed); pandas' own default otherwise."""
    if dtype == "str" and pd.__version__ < "3":
        with pd.option_context("future.infer_string", True):
            yield
    else:
        yield


def values(series: pd.Series) -> list[object]:
    """The series' values with each null as ``None``: pandas 3 reads missing text in its
    ``str`` dtype as NaN, pandas 2 as ``None``."""
    return [None if pd.isna(value) else value for value in series.tolist()]
