"""Pydantic's validation errors as Dockyard's: one clear line per bad field.

Deployment specs, rollout plans, alert rules and the control plane's request bodies all
report problems the same way: ``field.path: what is wrong``, every problem at once, in an
``InvalidRequestError`` whose ``details`` list them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dockyard.errors import InvalidRequestError

Model = TypeVar("Model", bound=BaseModel)


def problems(errors: Iterable[Mapping[str, Any]], root: str = "body") -> list[str]:
    """One ``path: message`` line per pydantic error (``root`` names a whole-object one)."""
    return [
        f"{'.'.join(str(p) for p in error['loc']) or root}: "
        f"{str(error['msg']).removeprefix('Value error, ')}"
        for error in errors
    ]


def validate(model: type[Model], data: Any, *, what: str, root: str) -> Model:
    """``model.model_validate(data)``, refusing bad data with every problem named."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = problems(exc.errors(), root)
        raise InvalidRequestError(
            f"Invalid {what}: {'; '.join(found)}.",
            hint=f"See the {what} fields in the README.",
            details={"problems": found},
        ) from None
