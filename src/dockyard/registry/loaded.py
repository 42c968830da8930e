"""A registered version loaded and ready to predict, with its signature's validator in front."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dockyard.registry.types import Version

if TYPE_CHECKING:
    from dockyard.explain import Explainer, Explanation
    from dockyard.runtimes import LoadedModel
    from dockyard.schema import Signature, ValidatedInput, Validator


class RegisteredModel:
    """What :func:`dockyard.load` returns.

    ``predict`` and ``predict_proba`` accept records (a list of dicts, or one dict), a dict of
    columns, a DataFrame or a 2-D array; input is checked against the version's signature and
    every problem is reported at once (:class:`~dockyard.errors.SchemaValidationError`).
    """

    def __init__(
        self,
        version: Version,
        model: LoadedModel,
        profile: Callable[[], Mapping[str, Any] | None] | None = None,
    ) -> None:
        self.version = version
        self.model = model
        self._profile = profile  # read only when an explanation needs reference rows

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

    def explain(self, data: Any, method: str = "auto") -> Explanation:
        """Why the model answers as it does on ``data``: per row, one additive attribution
        per input column, the base value and the output they add up to (see
        :mod:`dockyard.explain`). ``method="lime"`` asks for LIME instead."""
        return self.explainer.explain(self.validate(data).data, method)

    @cached_property
    def explainer(self) -> Explainer:
        """The version's explainer, background rows from its reference profile."""
        from dockyard.explain import build_explainer

        profile = self._profile() if self._profile is not None else None
        return build_explainer(self.model, self.columns, self.reference_rows(profile))

    @property
    def columns(self) -> tuple[str, ...]:
        """The input columns explanations are given in."""
        if self.signature is not None:
            return tuple(self.signature.column_names)
        names = self.model.feature_names
        if names is None:
            from dockyard.errors import UnsupportedModelError

            raise UnsupportedModelError(
                "This version has no signature, so its columns cannot be named.",
                hint="Register it with a sample.",
            )
        return tuple(names)

    def reference_rows(self, profile: Mapping[str, Any] | None) -> Any:
        """The profile's example rows as validated model input, or ``None``."""
        examples = (profile or {}).get("examples") or []
        if not examples or self._validator is None:
            return None
        return self.validate(list(examples)).data

    def __repr__(self) -> str:
        return f"<RegisteredModel {self.version.ref} runtime={self.version.runtime}>"
