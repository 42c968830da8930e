from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from dockyard.errors import InvalidRequestError, UnreadableFileError
from dockyard.schema import as_frame, read_table


def test_dataframe_is_returned_as_is(penguins: tuple[pd.DataFrame, pd.Series]) -> None:
    x, _ = penguins
    assert as_frame(x) is x


def test_2d_array_gets_x_names_or_feature_names(
    cancer: tuple[pd.DataFrame, pd.Series],
) -> None:
    x, _ = cancer
    array = x.to_numpy()[:5, :3]
    assert list(as_frame(array).columns) == ["x0", "x1", "x2"]
    named = as_frame(array, feature_names=["a", "b", "c"])
    assert list(named.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(named.to_numpy(), array)


def test_1d_array_is_one_feature_column() -> None:
    frame = as_frame(np.array([1.5, 2.5, 3.5]))
    assert frame.shape == (3, 1)
    assert list(frame.columns) == ["x0"]


def test_wrong_number_of_feature_names_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="2 feature names given for 3 columns"):
        as_frame(np.zeros((2, 3)), feature_names=["a", "b"])


def test_3d_array_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        as_frame(np.zeros((2, 3, 4)))
    assert caught.value.hint is not None
    assert "Reshape" in caught.value.hint


def test_records_columns_rows_series_and_arrow_give_the_same_frame() -> None:
    expected = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    records = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    pd.testing.assert_frame_equal(as_frame(records), expected)
    pd.testing.assert_frame_equal(as_frame({"a": [1, 2], "b": ["x", "y"]}), expected)
    pd.testing.assert_frame_equal(
        as_frame([[1, "x"], [2, "y"]], feature_names=["a", "b"]), expected
    )
    pd.testing.assert_frame_equal(as_frame(pa.table({"a": [1, 2], "b": ["x", "y"]})), expected)
    pd.testing.assert_frame_equal(as_frame(expected["a"]), expected[["a"]])


def test_unnamed_series_is_named_x0() -> None:
    assert list(as_frame(pd.Series([1.0, 2.0])).columns) == ["x0"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a table", "cannot use a str"),
        (42, "cannot use a int"),
        ([], "no rows"),
        ([{"a": 1}, [1]], "only records"),
        ([[1, 2], [3]], "different lengths"),
        ({"a": [1, 2], "b": [1]}, "cannot build a table from a dict"),
        ({"a": 1, "b": 2}, "cannot build a table from a dict"),
    ],
)
def test_unusable_data_is_refused(data: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as caught:
        as_frame(data)
    assert caught.value.hint


@pytest.fixture
def small_frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 2.0]})


@pytest.mark.filterwarnings("ignore:Mismatched null-like values:FutureWarning")  # pandas 2
def test_read_table_reads_every_supported_format(tmp_path: Path, small_frame: pd.DataFrame) -> None:
    small_frame.to_parquet(tmp_path / "data.parquet")
    small_frame.to_csv(tmp_path / "data.csv", index=False)
    records = json.loads(small_frame.to_json(orient="records"))
    (tmp_path / "data.json").write_text(json.dumps(records))
    (tmp_path / "columns.json").write_text(small_frame.to_json(orient="columns"))
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    for name in ["data.parquet", "data.csv", "data.json", "data.jsonl"]:
        frame = read_table(tmp_path / name)
        pd.testing.assert_frame_equal(frame, small_frame, check_dtype=False)
        assert frame["a"].tolist() == [1, 2, 3]
    assert read_table(str(tmp_path / "data.parquet"))["b"].isna().sum() == 1


def test_read_table_says_when_the_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="file not found") as caught:
        read_table(tmp_path / "nope.csv")
    assert caught.value.hint


def test_read_table_refuses_folders_and_unknown_suffixes(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="not a file"):
        read_table(tmp_path)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(UnreadableFileError, match=r"unknown data file type '\.xlsx'") as caught:
        read_table(tmp_path / "data.xlsx")
    assert caught.value.hint is not None
    assert ".parquet" in caught.value.hint


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.parquet", b"not parquet at all", "cannot read"),
        ("bad.json", b"{not json", "cannot read"),
        ("scalar.json", b"42", "list of records or an object of columns"),
        ("mixed.json", b'[{"a": 1}, 2]', "must hold records"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n', "line 2"),
        ("list.jsonl", b'{"a": 1}\n[1]\n', "line 2: expected a JSON object"),
        ("bad.csv", b'a,b\n1,"unterminated\n', "cannot read"),
        ("latin.csv", "a\n\xe9t\xe9\n".encode("latin-1"), "cannot read"),
    ],
)
def test_read_table_explains_unparseable_files(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UnreadableFileError, match=message) as caught:
        read_table(tmp_path / name)
    assert caught.value.hint
    assert caught.value.details["path"] == str(tmp_path / name)
