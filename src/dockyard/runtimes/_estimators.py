"""A :class:`~dockyard.runtimes.base.LoadedModel` around any object with ``predict``.

Shared by the runtimes whose loaded object already speaks the scikit-learn estimator API
(``sklearn`` through skops, ``pickle``), and the helpers that turn numpy values into the
JSON-safe Python values :attr:`Artifact.options <dockyard.runtimes.base.Artifact.options>`
holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import UnsupportedModelError
from dockyard.schema.layout import InputLayout

PIPELINE = "sklearn.pipeline.Pipeline"


def to_python(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into plain Python (JSON-safe) values."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, list | tuple):
        return [to_python(item) for item in value]
    return value


def qualified_name(obj: object) -> str:
    """``module.Class`` of ``obj``'s type, e.g. ``sklearn.pipeline.Pipeline``."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def mro_names(obj: object) -> set[str]:
    """Qualified names of every class ``obj`` is an instance of; imports nothing."""
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(obj).__mro__}


def no_proba(runtime: str) -> UnsupportedModelError:
    """The error for asking a model without class probabilities for them."""
    return UnsupportedModelError(
        f"This {runtime} model does not give class probabilities.",
        hint="Call predict instead, or register a classifier that has predict_proba.",
    )


@dataclass(frozen=True)
class EstimatorModel:
    """A loaded model that delegates to an estimator-like object's ``predict``."""

    estimator: Any
    runtime: str
    input_layout: InputLayout
    feature_names: Sequence[str] | None
    classes: Sequence[Any] | None
    has_proba: bool
    facts: dict[str, Any] = field(default_factory=dict)
    pipeline: bool = False
    """Exactly scikit-learn's ``Pipeline`` (not a subclass): its steps can be run by hand."""

    @classmethod
    def wrap(cls, estimator: Any, runtime: str) -> EstimatorModel:
        """Describe ``estimator`` from the attributes scikit-learn's API defines."""
        names = getattr(estimator, "feature_names_in_", None)
        classes = getattr(estimator, "classes_", None)
        facts: dict[str, Any] = {"estimator": qualified_name(estimator)}
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is not None:
            facts["n_features"] = int(n_features)
        return cls(
            estimator=estimator,
            runtime=runtime,
            input_layout="frame" if names is not None else "array",
            feature_names=[str(name) for name in names] if names is not None else None,
            classes=to_python(classes) if classes is not None else None,
            # scikit-learn hides predict_proba (available_if) where it cannot answer,
            # e.g. SVC(probability=False) or a pipeline ending in a regressor.
            has_proba=hasattr(estimator, "predict_proba"),
            facts=facts,
            pipeline=facts["estimator"] == PIPELINE,
        )

    def predict(self, x: Any) -> Any:
        import numpy as np

        return np.asarray(self.estimator.predict(x))

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        if not self.has_proba:
            raise no_proba(self.runtime)
        return np.asarray(self.estimator.predict_proba(x))

    def predict_with_proba(self, x: Any) -> tuple[Any, Any]:
        """Predictions and probabilities with one pass through a scikit-learn ``Pipeline``'s
        transformers: its final estimator answers both, as ``Pipeline.predict`` and
        ``predict_proba`` each do after transforming the input on their own (for a pipeline
        of encoders, the transforms are most of the call). Any other estimator, a subclass
        of ``Pipeline`` included (it may override either), is asked twice."""
        import numpy as np

        if not self.has_proba:
            raise no_proba(self.runtime)
        estimator, xt = self.estimator, x
        if self.pipeline:
            for _, step in estimator.steps[:-1]:
                if step is not None and not (isinstance(step, str) and step == "passthrough"):
                    xt = step.transform(xt)
            estimator = estimator.steps[-1][1]
        return np.asarray(estimator.predict(xt)), np.asarray(estimator.predict_proba(xt))

    def metadata(self) -> dict[str, Any]:
        return dict(self.facts)
