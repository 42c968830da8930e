"""A signature a model file declares itself (MLflow's column-based ``signature``), used when
a model is registered without a sample: requests are then checked against the declared
columns and types, though there is no profile (no ranges, no categories, no drift reference).

MLflow's column types map to Dockyard's as follows (``required: false`` makes a column
nullable; a nullable integer or boolean column keeps pandas' nullable dtype)::

    double → float (float64)     float → float (float32)
    long → integer (int64)       integer → integer (int32)
    boolean → boolean            string → string (free text: any value)
    datetime → datetime

A declared ``binary`` column, or any type not above, gives no signature: the version is
registered as without a sample, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.schema.layout import InputLayout
from dockyard.schema.signature import ColumnKind, ColumnSpec, OutputSpec, Signature

_MLFLOW_TYPES: dict[str, tuple[ColumnKind, str, str]] = {
    # MLflow type: (kind, pandas dtype, pandas dtype when nullable)
    "double": ("float", "float64", "float64"),
    "float": ("float", "float32", "float32"),
    "long": ("integer", "int64", "Int64"),
    "integer": ("integer", "int32", "Int32"),
    "boolean": ("boolean", "bool", "boolean"),
    "string": ("string", "object", "object"),
    "datetime": ("datetime", "datetime64[ns]", "datetime64[ns]"),
}
_REGRESSION_OUTPUTS = ("double", "float")


def signature_from_mlflow(
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    *,
    layout: InputLayout,
    classes: Sequence[Any] | None,
    has_proba: bool,
) -> Signature | None:
    """The :class:`Signature` of MLflow's column-based ``inputs``/``outputs`` (parsed JSON),
    for a loaded model with ``classes`` and ``has_proba``; ``None`` when a column's type has
    no Dockyard equivalent."""
    columns = []
    for declared in inputs:
        mapped = _MLFLOW_TYPES.get(str(declared.get("type")))
        if mapped is None:
            return None
        kind, dtype, nullable_dtype = mapped
        nullable = declared.get("required", True) is False
        columns.append(
            ColumnSpec(
                name=str(declared["name"]),
                dtype=kind,
                pandas_dtype=nullable_dtype if nullable else dtype,
                nullable=nullable,
                unseen="allow" if kind == "string" else "reject",
            )
        )
    output_type = str(outputs[0].get("type")) if len(outputs) == 1 else None
    if classes is not None:
        output = OutputSpec("classification", tuple(classes), has_proba, output_type or "unknown")
    elif output_type in _REGRESSION_OUTPUTS:
        output = OutputSpec("regression", None, has_proba, _MLFLOW_TYPES[output_type][1])
    else:
        output = OutputSpec("other", None, has_proba, output_type or "unknown")
    return Signature(columns=tuple(columns), output=output, layout=layout)
