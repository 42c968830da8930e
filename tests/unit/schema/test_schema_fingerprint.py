from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dockyard.errors import InvalidRequestError
from dockyard.schema import DataFingerprint, fingerprint


def test_fingerprint_is_stable_and_ignores_the_index(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    first = fingerprint(x)
    assert fingerprint(x) == first
    assert fingerprint(x.copy()) == first
    assert fingerprint(x.set_axis(range(1000, 1000 + len(x)))) == first
    assert (first.rows, first.columns) == (344, tuple(x.columns))
    assert len(first.sha256) == 64


def test_fingerprint_changes_with_any_value_name_dtype_or_order(
    penguins: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = penguins
    digest = fingerprint(x).sha256
    one_value = x.copy()
    one_value.loc[100, "body_mass_g"] += 1
    one_string = x.copy()
    one_string.loc[5, "island"] = "Dream" if x.loc[5, "island"] != "Dream" else "Biscoe"
    one_null = x.copy()
    one_null.loc[0, "year"] = np.nan  # int64 -> float64 as well
    renamed = x.rename(columns={"year": "Year"})
    retyped = x.astype({"year": "float64"})
    reordered = x.iloc[::-1]
    others = [one_value, one_string, one_null, renamed, retyped, reordered, x.head(343)]
    digests = {fingerprint(frame).sha256 for frame in others}
    assert digest not in digests
    assert len(digests) == len(others)


def test_fingerprint_round_trips_through_json(cancer: tuple[pd.DataFrame, pd.Series]) -> None:
    x, _ = cancer
    print_ = fingerprint(x)
    restored = DataFingerprint.from_dict(json.loads(json.dumps(print_.to_dict())))
    assert restored == print_


def test_empty_frames_have_a_fingerprint_too() -> None:
    assert fingerprint(pd.DataFrame({"a": []})).rows == 0
    assert fingerprint(pd.DataFrame({"a": []})) != fingerprint(pd.DataFrame({"b": []}))


def test_unhashable_values_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="cannot fingerprint"):
        fingerprint(pd.DataFrame({"a": [[1, 2], [3]]}))
