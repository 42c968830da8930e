"""The request's tensors as the validator takes them: one 2-D tensor as its array, or one
tensor per column as named columns (:func:`tabular_input`); layout problems listed, every
one, in one :class:`~dockyard.errors.SchemaValidationError`.

Pure: no I/O and no web framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from numpy.typing import NDArray

from dockyard.errors import SchemaValidationError
from dockyard.schema import Problem
from dockyard.server.protocols.v2.tensors import ColumnBlock, InferRequest, Tensor, listing

__all__ = ["rows_as_sent", "tabular_input"]


def tabular_input(
    request: InferRequest, column_names: Sequence[str]
) -> NDArray[Any] | dict[str, list[Any] | NDArray[Any]]:
    """The request's values as the validator takes them, columns in ``column_names`` order.

    Two layouts are accepted. *Tensor*: a single input (any name that is not a column's)
    shaped ``[rows, len(column_names)]`` with columns in signature order, or
    ``[len(column_names)]`` for one row (for a one-column model a 1-D input is the column):
    it comes back as that 2-D array, as sent (a view), for the validator's array path.
    *Columns* (MLServer's pandas codec): one 1-D or ``[rows, 1]`` input per column, named
    after it: a dict of 1-D columns. Numeric and boolean values stay numpy arrays; in
    ``BYTES`` values ``""`` (missing) becomes ``None``. A layout problem is listed, every one
    of them, in one :class:`~dockyard.errors.SchemaValidationError`'s ``details.problems``
    (each a :class:`~dockyard.schema.Problem`, the validator's type); the values themselves are the
    validator's to check.
    """
    sent = rows_as_sent(request, column_names)
    if sent is not None:
        return sent
    names = list(column_names)
    problems: list[Problem] = []
    inputs = request.inputs
    data: NDArray[Any] | dict[str, list[Any] | NDArray[Any]]
    if type(inputs) is ColumnBlock and (in_order := _block_order(inputs, names)) is not None:
        return inputs.values if in_order is True else inputs.values[:, in_order]
    if len(inputs) == 1 and inputs[0].name not in names:
        data = _tensor_rows(inputs[0], names, problems)
    else:
        data = _named_columns(inputs, names, problems)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise SchemaValidationError(
            f"{count} in the input: {problems[0].message}",
            hint=_layout_hint(names),
            details={"problems": [problem.to_dict() for problem in problems], "columns": names},
        )
    return data


def rows_as_sent(request: InferRequest, column_names: Sequence[str]) -> NDArray[Any] | None:
    """The array :func:`tabular_input` hands on as it was sent, for the two layouts it
    takes so: a block of exactly the columns, in their order, or one 2-D tensor of values
    other than text (not named after a column) as wide as the columns are many; ``None``
    for any other request. The inference plane gives such an array straight to the model's
    numeric path."""
    inputs = request.inputs
    if type(inputs) is ColumnBlock:
        return inputs.values if inputs.names == tuple(column_names) else None
    if len(inputs) != 1:
        return None
    tensor = inputs[0]
    data = tensor.data
    if data.ndim != 2 or data.shape[1] != len(column_names) or data.dtype.kind == "O":
        return None
    return None if tensor.name in column_names else data


def _block_order(block: ColumnBlock, names: list[str]) -> Literal[True] | list[int] | None:
    """How a block's columns map to the model's: ``True`` in the same order, else the
    positions to take them in; ``None`` when they are not exactly the model's columns (the
    per-column path then lists what is wrong)."""
    if len(block.names) != len(names):
        return None
    if block.names == tuple(names):
        return True
    position = {name: index for index, name in enumerate(block.names)}
    order = [position.get(name, -1) for name in names]
    return None if -1 in order else order


def _tensor_rows(tensor: Tensor, names: list[str], problems: list[Problem]) -> NDArray[Any]:
    data, width = tensor.data, len(names)
    if data.ndim == 1:
        data = data.reshape(-1, 1) if width == 1 else data.reshape(1, -1)
    if data.ndim != 2 or data.shape[1] != width:
        got = f"shape {list(tensor.shape)}"
        problems.append(
            _problem(
                None, f"[rows, {width}] (or [{width}] for one row)", got,
                f"input {tensor.name!r} has {got} but the model takes {width} columns "
                f"({listing(names)})",
            )
        )  # fmt: skip
        return data
    if data.dtype.kind == "O":
        missing = (data == "") | (data == b"")
        if missing.any():
            data = data.copy()
            data[missing] = None
    return data


def _named_columns(
    inputs: Sequence[Tensor], names: list[str], problems: list[Problem]
) -> dict[str, list[Any] | NDArray[Any]]:
    known = set(names)
    by_name = {tensor.name: tensor for tensor in inputs}
    for tensor in inputs:
        if tensor.name not in known:
            problems.append(
                _problem(
                    tensor.name, f"one of the columns {listing(names)}", "an unknown input",
                    f"input {tensor.name!r} is not a column of this model; expected inputs "
                    f"named {listing(names)}",
                )
            )  # fmt: skip
    columns: dict[str, list[Any] | NDArray[Any]] = {}
    rows: dict[str, int] = {}
    for name in names:
        found = by_name.get(name)
        if found is None:
            problems.append(
                _problem(name, f"an input named {name!r}", "missing", f"missing column {name!r}")
            )
            continue
        shape = found.shape
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
            columns[name] = _column(found.data.reshape(-1))
            rows[name] = shape[0]
        else:
            problems.append(
                _problem(
                    name, "shape [rows] or [rows, 1]", f"shape {list(shape)}",
                    f"column input {name!r} has shape {list(shape)}; a column is 1-D",
                )
            )  # fmt: skip
    counts = list(rows.values())
    if len(set(counts)) > 1:
        usual = max(counts, key=counts.count)  # the most common; ties: the first column
        for name, count in rows.items():
            if count != usual:
                problems.append(
                    _problem(
                        name, f"{usual} rows (like the other columns)", f"{count} rows",
                        f"column {name!r} has {count} rows but the others have {usual}",
                    )
                )  # fmt: skip
    return columns


def _column(values: NDArray[Any]) -> list[Any] | NDArray[Any]:
    if values.dtype.kind != "O":
        return values
    return [None if item == "" or item == b"" else item for item in values.tolist()]


def _problem(column: str | None, expected: str, got: str, message: str) -> Problem:
    return Problem(None, column, expected, got, message)


def _layout_hint(names: list[str]) -> str:
    return (
        f"Send one 2-D tensor [rows, {len(names)}] with the columns in this order: "
        f"{listing(names)}; or one 1-D tensor per column, named after it."
    )
