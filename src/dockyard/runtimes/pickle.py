"""Arbitrary Python objects as pickles — the last resort, and only when trusted.

Unpickling runs whatever code the bytes name, so every entry point here refuses without
``trusted=True``. The catalog reaches for this runtime only when nothing safer handles an
object; a trusted pickle *file* of, say, a scikit-learn model is converted to that model's
safe format instead (see :meth:`dockyard.runtimes.Runtimes.artifact_from_path`).

``options["serializer"]`` says which library wrote the bytes (``cloudpickle`` when it is
installed, which also captures functions and classes defined in ``__main__``, else
``pickle``); either is read back with the standard ``pickle.loads``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dockyard.errors import UnreadableFileError, UnsupportedModelError, UntrustedModelError
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import EstimatorModel, qualified_name
from dockyard.runtimes._packages import versions
from dockyard.runtimes.base import Artifact, LoadedModel

SUFFIX = ".pkl"
FILE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".cloudpickle"})
TRUSTED_TYPE = "pickle"
"""What :attr:`Artifact.trusted_types` records for anything that came through a pickle."""


class PickleRuntime:
    """Objects with a ``predict`` method, pickled; every operation needs trust."""

    name = "pickle"

    def handles(self, obj: object) -> bool:
        return callable(getattr(obj, "predict", None))

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        if not trusted:
            raise untrusted_pickle(f"Storing a {qualified_name(obj)} means pickling it")
        try:
            data, serializer = _pickle_bytes(obj)
        except Exception as exc:
            raise UnsupportedModelError(f"Cannot pickle the {qualified_name(obj)}: {exc}") from exc
        return Artifact(
            runtime=self.name,
            data=data,
            suffix=SUFFIX,
            options={"serializer": serializer},
            trusted_types=(TRUSTED_TYPE,),
        )

    def recognises(self, path: Path) -> bool:
        return is_pickle_file(path)

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        if not trusted:
            raise untrusted_pickle(f"{path} is a pickle")
        return self.dump(unpickle_file(path), trusted=True)

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        if not trusted:
            raise untrusted_pickle("This model is stored as a pickle")
        return EstimatorModel.wrap(pickle.loads(data), self.name)

    def environment(self) -> dict[str, str]:
        return versions("cloudpickle", "joblib", "numpy")


def _pickle_bytes(obj: object) -> tuple[bytes, str]:
    try:
        import cloudpickle
    except ImportError:
        return pickle.dumps(obj, protocol=5), "pickle"
    return cloudpickle.dumps(obj), "cloudpickle"


def is_pickle_file(path: Path) -> bool:
    """Whether ``path`` is a pickle or joblib file, by suffix or protocol-2+ magic bytes."""
    if not path.is_file():
        return False
    if path.suffix.lower() in FILE_SUFFIXES:
        return True
    with path.open("rb") as file:
        head = file.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def unpickle_file(path: Path) -> object:
    """Unpickle ``path`` (``joblib.load`` for ``.joblib``). Runs its code: trusted only."""
    try:
        if path.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as file:
            return pickle.load(file)
    except Exception as exc:
        raise UnreadableFileError(f"Cannot unpickle {path}: {framework_message(exc)}") from exc


def with_pickle_trust(artifact: Artifact) -> Artifact:
    """``artifact`` with ``pickle`` first in its trusted types (it came from a pickle)."""
    others = tuple(name for name in artifact.trusted_types if name != TRUSTED_TYPE)
    return replace(artifact, trusted_types=(TRUSTED_TYPE, *others))


def untrusted_pickle(what: str) -> UntrustedModelError:
    """The refusal for unpickling without trust; ``what`` starts the message."""
    return UntrustedModelError(
        f"{what}, and unpickling runs any code the bytes contain.",
        hint="Save the model in a safe format (skops, ONNX, XGBoost/LightGBM native, "
        "TorchScript), or pass trusted=True (CLI: --trusted) if you trust where it came from.",
    )
