"""The prediction log's answer columns: a prediction's text is what casting it gives
(integers, however few or many labels they span, and booleans), and a column of one value
(endpoint, model, version, role, classes) reads as that value on every row of tables of any
length, the kept array growing for a longer one."""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from dockyard.monitoring.encoding import (
    _CONSTANTS,
    CONSTANT_ROWS,
    FEW_LABELS,
    KEPT_BYTES,
    _constant,
    _text,
    numbers,
)

INTEGERS: dict[str, np.ndarray[Any, Any]] = {
    "two classes": np.array([0, 1, 1, 0, 1], np.int64),
    "negative labels": np.array([-3, 7, -3, 0], np.int32),
    "unsigned": np.array([2, 255, 0], np.uint8),
    "one label": np.array([5, 5, 5], np.int16),
    "labels just under the span": np.arange(FEW_LABELS, dtype=np.int64)[::-1].copy(),
    "a span too wide to take": np.array([0, FEW_LABELS, 3], np.int64),
    "the int64 edges": np.array([2**63 - 1, 2**63 - 2], np.int64),
    "the int64 floor": np.array([-(2**63), -(2**63) + 1], np.int64),
    "uint64 past int64": np.array([2**64 - 1, 2**64 - 3], np.uint64),
    "none": np.array([], np.int64),
}


@pytest.mark.parametrize("case", list(INTEGERS))
def test_integer_predictions_read_as_their_cast(case: str) -> None:
    values = INTEGERS[case]

    text = _text(values)

    assert text.type == pa.string()
    assert text.to_pylist() == numbers(values).cast(pa.string()).to_pylist()
    assert text.to_pylist() == [str(v) for v in values.tolist()]


def test_boolean_predictions_read_as_python_writes_them() -> None:
    values = np.array([True, False, False, True])

    assert _text(values).to_pylist() == ["True", "False", "False", "True"]
    assert _text(values[::2]).to_pylist() == ["True", "False"]  # a strided view


@pytest.mark.parametrize("rows", [0, 1, 5, CONSTANT_ROWS, CONSTANT_ROWS + 1, 3 * CONSTANT_ROWS])
def test_a_constant_column_holds_its_value_on_every_row(rows: int) -> None:
    column: Any = _constant("an-endpoint", rows)

    assert len(column) == rows
    assert column.type == pa.string()
    assert column.null_count == 0
    assert column.to_pylist() == ["an-endpoint"] * rows


def test_constant_columns_of_other_values_and_lengths_stay_apart() -> None:
    long, short = _constant("v1", 2 * CONSTANT_ROWS + 3), _constant("v2", 4)
    again = _constant("v1", 2)

    assert set(long.to_pylist()) == {"v1"}
    assert short.to_pylist() == ["v2"] * 4
    assert again.to_pylist() == ["v1", "v1"]
    assert _constant(None, 3).to_pylist() == [None, None, None]
    table = pa.table({"a": long.slice(0, 4), "b": short})  # as a table pass builds one
    assert table.to_pydict() == {"a": ["v1"] * 4, "b": ["v2"] * 4}


def test_the_kept_constant_columns_stay_within_their_bytes() -> None:
    """A long text (a classifier's many class names) is made for its table, not kept, and
    many values never keep more than the budget: a server of many endpoints holds a few
    MiB for its constant columns, whatever its tables' lengths."""
    long_text = "x" * (KEPT_BYTES // CONSTANT_ROWS)

    column = _constant(long_text, 3)

    assert column.to_pylist() == [long_text] * 3
    assert long_text not in _CONSTANTS
    for index in range(200):
        assert _constant(f"endpoint-{index}", 10).to_pylist() == [f"endpoint-{index}"] * 10
        assert sum(kept.nbytes for kept in _CONSTANTS.values()) <= KEPT_BYTES


def test_constant_columns_made_on_two_threads_at_once_hold_their_values() -> None:
    """The loop's table pass and a watcher's flush (on its own thread) may both make
    constant columns: keeping, growing and letting go of them under each other's feet
    raises nothing and mixes no values."""
    errors: list[BaseException] = []

    def make(thread: int) -> None:
        try:
            for round_ in range(30):
                for index in range(60):
                    value = f"t{thread}-{index}"
                    rows = 1 + (round_ * 7 + index) % 40
                    assert _constant(value, rows).to_pylist() == [value] * rows
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over as often as possible
    try:
        threads = [threading.Thread(target=make, args=(thread,)) for thread in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors[0]
