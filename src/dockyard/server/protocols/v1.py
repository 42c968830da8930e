"""Dockyard's simple JSON protocol (v1): ``POST /v1/endpoints/{name}/predict``.

A request is ``{"instances": [...]}`` — records (``{"column": value}``), one record, or rows
(lists of values in the signature's column order) — or ``{"inputs": {"column": [...]}}``.
:func:`decode_request` hands those values on as they are, for the validator; the answer
(:func:`encode_answer`) carries the predictions, probabilities and classes where the model
has them, the validator's notes, and the training-range warnings.

Pure: no I/O and no web framework.

Not-a-number in answers: NaN and ±infinity among floating-point predictions are written as
``null``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from dockyard.errors import InvalidRequestError
from dockyard.server.http import json_body

__all__ = ["decode_request", "encode_answer"]

_HINT = 'Send {"instances": [{"column": value, ...}]} or {"inputs": {"column": [...]}}.'


def decode_request(body: bytes) -> tuple[Any, Any]:
    """``(payload, data)``: the whole JSON body and the values for the model; raise
    :class:`InvalidRequestError` when the body is not JSON or has neither key."""
    payload = json_body(body, hint=_HINT)
    if isinstance(payload, dict):
        if "instances" in payload and isinstance(payload["instances"], list | dict):
            return payload, payload["instances"]
        if "inputs" in payload and isinstance(payload["inputs"], dict):
            return payload, payload["inputs"]
    raise InvalidRequestError(
        'The body needs "instances" (a list of records) or "inputs" (a dict of columns).',
        hint=_HINT,
    )


def encode_answer(
    *,
    endpoint: str,
    model: str,
    version: str,
    request_id: str,
    predictions: np.ndarray[Any, Any],
    probabilities: np.ndarray[Any, Any] | None,
    classes: Sequence[Any] | None,
    notes: Sequence[str] = (),
    warnings: Sequence[str] | None = None,
) -> bytes:
    """The answer body. ``classes`` go with ``probabilities`` only; ``warnings`` (inputs
    beyond what the model was trained on, still answered) only when given."""
    answer: dict[str, Any] = {
        "endpoint": endpoint,
        "model": model,
        "version": version,
        "request_id": request_id,
        "predictions": _jsonable(predictions),
    }
    if probabilities is not None:
        answer["probabilities"] = _jsonable(probabilities)
        if classes is not None:
            answer["classes"] = classes
    if notes:
        answer["notes"] = list(notes)
    if warnings is not None:
        answer["warnings"] = list(warnings)
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _jsonable(array: np.ndarray[Any, Any]) -> Any:
    """Numbers as a C-ordered array (what orjson writes: NaN and infinity as ``null``), text
    and objects as Python values."""
    if array.dtype.kind in "OUS":
        return array.tolist()
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)
