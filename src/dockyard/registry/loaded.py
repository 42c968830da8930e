"""A registered version loaded and ready to predict, with its signature's validator in front."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from dockyard.registry.types import Version

if TYPE_CHECKING:
    from dockyard.runtimes import LoadedModel
    from dockyard.schema import Signature, ValidatedInput, Validator


class RegisteredModel:
    """What :func:`dockyard.load` returns.

    ``predict`` and ``predict_proba`` accept records (a list of dicts, or one dict), a dict of
    columns, a DataFrame or a 2-D array; input is checked against the version's signature and
    every problem is reported at once (:class:`~dockyard.errors.SchemaValidationError`).
    """

    def __init__(self, version: Version, model: LoadedModel) -> None:
        self.version = version
        self.model = model

    @cached_property
    def signature(self) -> Signature | None:
        from dockyard.schema import Signature

        return Signature.from_dict(self.version.signature) if self.version.signature else None

    @cached_property
    def _validator(self) -> Validator | None:
        from dockyard.schema import Validator

        return Validator(self.signature) if self.signature is not None else None

    @property
    def classes(self) -> Any:
        return self.model.classes

    def validate(self, data: Any) -> ValidatedInput:
        """Check ``data`` against the signature and convert it to the model's input."""
        from dockyard.schema import ValidatedInput

        if self._validator is None:
            return ValidatedInput(data=data, rows=len(data), notes=("no signature: unchecked",))
        return self._validator.validate(data)

    def predict(self, data: Any) -> Any:
        """Predictions, exactly as the original model gives them."""
        return self.model.predict(self.validate(data).data)

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities (rows x classes) for classifiers that have them."""
        return self.model.predict_proba(self.validate(data).data)

    def __repr__(self) -> str:
        return f"<RegisteredModel {self.version.ref} runtime={self.version.runtime}>"
