"""A model that takes arrays is validated, and its predictions logged, without pandas: the
serving process of such models never imports it (~45 MiB). Checked in a fresh interpreter,
since this one has pandas loaded; ``isna``'s numpy answer is checked against pandas' own."""

from __future__ import annotations

import decimal
import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dockyard.schema import _pandas

SCRIPT = r"""
import io, json, sys
import numpy as np
import pyarrow.parquet as pq
from dockyard.errors import SchemaValidationError
from dockyard.monitoring.encoding import chunks_table, chunk, failures_table, numpy_of
from dockyard.monitoring.records import Batch, ModelCall, Source
from dockyard.schema.signature import ColumnSpec, OutputSpec, Signature
from dockyard.schema.validation import Validator

columns = (
    ColumnSpec("a", "float", "float64", nullable=False),
    ColumnSpec("b", "float", "float64", nullable=True),
    ColumnSpec("n", "integer", "int64", nullable=False),
)
signature = Signature(columns, OutputSpec("classification", ("0", "1"), True, "int64"), "array")
validator = Validator(signature)
answers = {}
for name, data in {
    "records": [{"a": 1.5, "b": 2.0, "n": 3}],
    "rows": [[1.5, 2.0, 3]],
    "columns": {"a": [1.5], "b": [2.0], "n": [3]},
    "array": np.array([[1.5, 2.0, 3.0]]),
    "null where allowed": [{"a": 1.5, "b": None, "n": 3}],
    "extra column": [{"a": 1.5, "b": 2.0, "n": 3, "z": "x"}],
}.items():
    answers[name] = validator.validate(data).data.tolist()
problems = {}
for name, data in {
    "text": [{"a": "x", "b": 2.0, "n": 3}],
    "null": [{"a": None, "b": 2.0, "n": 3}],
    "fraction": [{"a": 1.0, "b": 2.0, "n": 3.5}],
    "missing": [{"a": 1.0}],
    "short row": [[1.0, 2.0]],
}.items():
    try:
        validator.validate(data)
    except SchemaValidationError as error:
        problems[name] = [p["message"] for p in error.details["problems"]]

source = Source("ep", 1, "m", "1.0.0", ("a", "b", "n"), ("0", "1"), 1)
batch = Batch(source)
inputs = np.array([[1.5, 2.0, 3.0], [0.5, np.nan, 1.0]])
call = ModelCall(inputs, np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]))
batch.add("r1", 1.7e9, 0.001, call, 0, 1)
batch.add("r2", 1.7e9, 0.002, call, 1, 1)
table = chunks_table([chunk(batch)])
failed = failures_table([(source, "r3", 1.7e9, 400, 0.001)])
pq.write_table(table, io.BytesIO())
hours = numpy_of(table["time"], np.int64).tolist()
loaded = "pandas" in sys.modules  # reading the tables back below (to_pydict) imports it
print(json.dumps({
    "answers": answers,
    "problems": problems,
    "log": table.to_pydict()["score"] + table.to_pydict()["input.b"],
    "requests": table.to_pydict()["request_id"] + failed.to_pydict()["request_id"],
    "hours": hours,
    "pandas": loaded,
}, default=str))
"""


def test_array_models_validate_and_log_without_importing_pandas() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["pandas"] is False
    assert json.dumps(found["answers"]) == json.dumps(
        {
            "records": [[1.5, 2.0, 3.0]],
            "rows": [[1.5, 2.0, 3.0]],
            "columns": [[1.5, 2.0, 3.0]],
            "array": [[1.5, 2.0, 3.0]],
            "null where allowed": [[1.5, float("nan"), 3.0]],
            "extra column": [[1.5, 2.0, 3.0]],
        }
    )  # NaN written alike on both sides
    problems = found["problems"]
    assert problems["text"] == ["row 0: 'a' expected a number, got 'x' (string)"]
    assert problems["null"] == [
        "row 0: 'a' is null or missing, and the model does not accept nulls there"
    ]
    assert problems["fraction"] == ["row 0: 'n' expected an integer, got 3.5 (float)"]
    assert problems["missing"] == ["missing column 'b'", "missing column 'n'"]
    assert problems["short row"] == ["row 0 has 2 values but the model takes 3 columns"]
    assert found["log"][:3] == [0.8, 0.1, 2.0]  # the scores, then input b
    assert found["requests"] == ["r1", "r2", "r3"]
    assert found["hours"] == [1_700_000_000_000_000] * 2


VALUES: list[Any] = [
    *(None, float("nan"), np.float32("nan"), np.datetime64("NaT"), np.timedelta64("NaT")),
    *(decimal.Decimal("NaN"), complex("nan"), 1, 0.5, "a", "", True, [1], {}, (1,)),
    *(np.datetime64("2026-01-01"), np.array([1, 2]), decimal.Decimal("1.5"), float("inf")),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_isna_answers_as_pandas_does_before_pandas_is_loaded(
    value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = np.empty(3, dtype=object)
    objects[:] = [1.0, value, "x"]
    expected = pd.isna(objects)
    monkeypatch.setattr(_pandas, "loaded", lambda: None)  # as in a process without pandas
    assert _pandas.isna(objects).tolist() == expected.tolist()
