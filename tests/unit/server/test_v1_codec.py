"""The v1 answer's encoding: numbers as orjson writes them, not-a-number as ``null``."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from dockyard.server.protocols import v1


def answer(predictions: Any, probabilities: Any = None) -> dict[str, Any]:
    body = v1.encode_answer(
        endpoint="fraud",
        model="fraud",
        version="1.0.0",
        request_id="r1",
        predictions=predictions,
        probabilities=probabilities,
        classes=None if probabilities is None else [0, 1],
    )
    decoded: dict[str, Any] = orjson.loads(body)
    return decoded


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_not_a_number_and_infinity_are_null_in_one_and_two_dimensions(dtype: Any) -> None:
    predictions = np.array([1.5, np.nan, np.inf, -np.inf], dtype=dtype)
    probabilities = np.array([[0.25, np.nan], [np.inf, 0.75]], dtype=dtype)
    body = answer(predictions, probabilities)
    assert body["predictions"] == [1.5, None, None, None]
    assert body["probabilities"] == [[0.25, None], [None, 0.75]]


def test_an_array_in_another_order_is_written_by_its_rows() -> None:
    # a model may answer a transposed (column-ordered) array, and a request's rows of it
    # are a strided view: the answer holds the same values, not a 500
    probabilities = np.vstack([[0.1, 0.2, np.nan], [0.9, 0.8, 0.7]]).T
    assert not probabilities[1:3].flags.c_contiguous
    body = answer(np.array([0, 1]), probabilities[1:3])
    assert body["probabilities"] == [[0.2, 0.8], [None, 0.7]]


def test_labels_of_text_and_finite_numbers_are_written_as_they_are() -> None:
    assert answer(np.array(["yes", "no"], dtype=object))["predictions"] == ["yes", "no"]
    assert answer(np.array(["yes", "no"]))["predictions"] == ["yes", "no"]
    assert answer(np.array([3, 4], dtype=np.int64))["predictions"] == [3, 4]
    assert answer(np.array([0.5], dtype=np.float32))["predictions"] == [0.5]
