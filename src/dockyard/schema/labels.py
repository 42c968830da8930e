"""Labels as text: the one form predictions, feedback labels and a model's classes are compared in.

The prediction log stores a class prediction as text, feedback arrives as JSON, and a model's
classes may be numpy scalars; :func:`label_text` maps all of them to the same string, so the
log, performance, drift, the gate and registration's calibration agree on what "the same
label" means. Pure and cheap to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["label_text"]


def label_text(value: Any) -> str | None:
    """A label or prediction as the text both are compared by: ``1``, ``1.0`` and ``"1"`` are
    all ``"1"``; booleans are ``"True"``/``"False"``; ``None`` and NaN are missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return label_text(value.item())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
