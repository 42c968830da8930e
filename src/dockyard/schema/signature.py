"""A model's signature: the input columns it was trained on and the output it gives.

A :class:`Signature` is stored with every version as JSON (:meth:`Signature.to_dict`) and
turned back into a :class:`~dockyard.schema.validation.Validator` when the version is served.
:func:`~dockyard.schema.inference.infer_signature` builds one from a training sample.

Policies recorded per column (:class:`ColumnSpec`):

- ``nullable``: nulls were seen in the sample, or the model accepted a null when probed;
- ``unseen``: whether a string/category value outside ``categories`` is accepted (``allow``)
  or rejected (``reject``); ``allow`` only when the model accepted one when probed;
- ``categories``: for a pandas ``category`` column its categories, in order, all of them;
  for a string column the sorted distinct values when there are at most
  :data:`STRING_CATEGORY_LIMIT`, otherwise ``None`` (free text: any string is accepted);
- ``minimum``/``maximum``: the finite range seen, for information and monitoring; values
  outside it are not rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from dockyard.errors import InvalidRequestError
from dockyard.schema._json import finite_or_none, to_json_list, to_json_value
from dockyard.schema.layout import InputLayout

__all__ = [
    "STRING_CATEGORY_LIMIT",
    "ColumnKind",
    "ColumnSpec",
    "OutputKind",
    "OutputSpec",
    "Signature",
]

ColumnKind = Literal["float", "integer", "boolean", "string", "category", "datetime"]
OutputKind = Literal["classification", "regression", "other"]
UnseenPolicy = Literal["allow", "reject"]

STRING_CATEGORY_LIMIT = 1000
"""A string column with more distinct values than this in the sample is free text."""

_FORMAT = 1


@dataclass(frozen=True)
class ColumnSpec:
    """One input column.

    ``pandas_dtype`` is the sample's exact dtype (``float64``, ``Int64``, ``str``,
    ``object``, ``category``, ``datetime64[us, UTC]``...) so that validated input is rebuilt
    with it. For ``category`` columns ``ordered`` and ``categories_dtype`` (the dtype of the
    categories themselves, e.g. ``str`` or ``int64``) complete the dtype.
    """

    name: str
    dtype: ColumnKind
    pandas_dtype: str
    nullable: bool
    categories: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    unseen: UnseenPolicy = "reject"
    ordered: bool = False
    categories_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "pandas_dtype": self.pandas_dtype,
            "nullable": self.nullable,
            "categories": None if self.categories is None else to_json_list(self.categories),
            "minimum": finite_or_none(self.minimum),
            "maximum": finite_or_none(self.maximum),
            "unseen": self.unseen,
            "ordered": self.ordered,
            "categories_dtype": self.categories_dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        """Inverse of :meth:`to_dict`."""
        categories = data.get("categories")
        minimum, maximum = data.get("minimum"), data.get("maximum")
        return cls(
            name=str(data["name"]),
            dtype=_choice(data["dtype"], ColumnKind, "column dtype"),
            pandas_dtype=str(data["pandas_dtype"]),
            nullable=bool(data["nullable"]),
            categories=None if categories is None else tuple(categories),
            minimum=None if minimum is None else float(minimum),
            maximum=None if maximum is None else float(maximum),
            unseen=_choice(data.get("unseen", "reject"), UnseenPolicy, "unseen policy"),
            ordered=bool(data.get("ordered", False)),
            categories_dtype=data.get("categories_dtype"),
        )


@dataclass(frozen=True)
class OutputSpec:
    """What ``predict`` returns: the kind of task, class labels, and the dtype."""

    kind: OutputKind
    classes: tuple[Any, ...] | None
    has_proba: bool
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "classes": None if self.classes is None else to_json_list(self.classes),
            "has_proba": self.has_proba,
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        """Inverse of :meth:`to_dict`."""
        classes = data.get("classes")
        return cls(
            kind=_choice(data["kind"], OutputKind, "output kind"),
            classes=None if classes is None else tuple(classes),
            has_proba=bool(data["has_proba"]),
            dtype=str(data["dtype"]),
        )


@dataclass(frozen=True)
class Signature:
    """Input columns (in model order), output, and the input layout the model wants."""

    columns: tuple[ColumnSpec, ...]
    output: OutputSpec
    layout: InputLayout

    @property
    def column_names(self) -> tuple[str, ...]:
        """Column names in model order."""
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``; ``KeyError`` if there is none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (``json.dumps`` works on it, no NaN)."""
        return {
            "format": _FORMAT,
            "layout": self.layout,
            "columns": [column.to_dict() for column in self.columns],
            "output": self.output.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Inverse of :meth:`to_dict`; :class:`InvalidRequestError` if malformed."""
        try:
            return cls(
                columns=tuple(ColumnSpec.from_dict(column) for column in data["columns"]),
                output=OutputSpec.from_dict(data["output"]),
                layout=_choice(data["layout"], InputLayout, "layout"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError(
                f"malformed signature: {exc!r}",
                hint="Use a signature produced by Signature.to_dict().",
            ) from exc


def _choice(value: Any, options: Any, what: str) -> Any:
    allowed = get_args(options)
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {to_json_value(value)!r}")
    return cast(Any, value)
