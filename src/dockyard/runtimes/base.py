"""The runtime contract: how a model framework is stored, recognised and loaded.

A runtime is a small object satisfying :class:`Runtime`. It turns a fitted Python object
(or a file a user hands over) into an :class:`Artifact` — bytes in a safe, native format plus
the JSON options loading needs — and turns those bytes back into a :class:`LoadedModel`.
Runtimes import their framework lazily, inside methods, so that ``import dockyard`` stays
cheap and a missing optional framework only matters when a model of its kind is used.

Third-party runtimes register under the ``dockyard.runtimes`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from dockyard.schema.layout import InputLayout


@dataclass(frozen=True)
class Artifact:
    """A model serialised by a runtime, ready for the artifact store.

    ``options`` is JSON-serialisable and stored beside the version; the same runtime gets it
    back at load time (for example class labels a native booster file does not keep).
    ``trusted_types`` names what had to be trusted to produce or load it (recorded in the
    audit event); empty for fully safe formats.
    """

    runtime: str
    data: bytes
    suffix: str
    options: Mapping[str, Any] = field(default_factory=dict)
    trusted_types: tuple[str, ...] = ()


@runtime_checkable
class LoadedModel(Protocol):
    """A model ready to answer: what the registry's ``load`` returns underneath."""

    @property
    def runtime(self) -> str:
        """Name of the runtime that loaded it (``sklearn``, ``onnx``...)."""
        ...

    @property
    def input_layout(self) -> InputLayout:
        """What ``predict`` wants: a DataFrame (``frame``) or a 2-D array (``array``)."""
        ...

    @property
    def feature_names(self) -> Sequence[str] | None:
        """Input column names the model knows, in order, when it knows them."""
        ...

    @property
    def classes(self) -> Sequence[Any] | None:
        """Class labels for classifiers (the order of ``predict_proba`` columns)."""
        ...

    @property
    def has_proba(self) -> bool:
        """Whether :meth:`predict_proba` is available."""
        ...

    def predict(self, x: Any) -> Any:
        """Predictions as a numpy array, exactly as the original model gives them."""
        ...

    def predict_proba(self, x: Any) -> Any:
        """Class probabilities, shape ``(rows, classes)``; raises if ``has_proba`` is false."""
        ...

    def metadata(self) -> dict[str, Any]:
        """Facts about the model worth showing (estimator class, trees, opset...)."""
        ...


@runtime_checkable
class Runtime(Protocol):
    """Stores, recognises and loads one family of model formats."""

    name: str
    """Stable identifier stored on every version (``sklearn``, ``xgboost``...)."""

    def handles(self, obj: object) -> bool:
        """Whether this runtime can serialise the fitted Python object ``obj``.

        Must not import the framework unless the object's class comes from it (check the
        class's module name first).
        """
        ...

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        """Serialise ``obj``; raise ``UntrustedModelError`` when that needs trust not given."""
        ...

    def recognises(self, path: Path) -> bool:
        """Whether a user-supplied file (or MLflow directory) is in this runtime's format."""
        ...

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        """Turn a user-supplied file into an artifact (reading, never executing, it)."""
        ...

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        """Load verified artifact bytes; raise ``UntrustedModelError`` or ``ModelLoadError``."""
        ...

    def environment(self) -> dict[str, str]:
        """Versions of the packages this runtime's models depend on (name -> version)."""
        ...
