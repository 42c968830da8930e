"""The set of runtimes a Dockyard process knows, and choosing one for an object or a file.

:class:`Runtimes` is a plain value built once at the composition root (usually with
:meth:`Runtimes.discover`) and passed down; there is no module-level registry to mutate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from dockyard.errors import (
    DockyardError,
    UnreadableFileError,
    UnsupportedModelError,
    UntrustedModelError,
)
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import qualified_name
from dockyard.runtimes.base import Artifact, Runtime
from dockyard.runtimes.lightgbm import LightGBMRuntime
from dockyard.runtimes.mlflow import MlflowRuntime
from dockyard.runtimes.onnx import OnnxRuntime
from dockyard.runtimes.pickle import (
    PickleRuntime,
    is_pickle_file,
    unpickle_file,
    untrusted_pickle,
    with_pickle_trust,
)
from dockyard.runtimes.sklearn import SklearnRuntime
from dockyard.runtimes.torch import TorchRuntime
from dockyard.runtimes.xgboost import XGBoostRuntime

ENTRY_POINT_GROUP = "dockyard.runtimes"
FALLBACK = PickleRuntime.name
"""The runtime used only when nothing safer handles an object, and only when trusted."""

_DESCRIPTIONS = {
    "xgboost": "XGBoost boosters and wrappers (.ubj, .json)",
    "lightgbm": "LightGBM boosters and wrappers (.txt)",
    "sklearn": "scikit-learn estimators and pipelines (.skops)",
    "onnx": "ONNX models (.onnx)",
    "torch": "TorchScript modules (.pt)",
    "mlflow": "MLflow model directories",
    "pickle": "pickles of objects with predict (trusted only)",
}


def builtin_runtimes() -> list[Runtime]:
    """Fresh instances of every runtime Dockyard ships, in the order they are tried.

    The XGBoost and LightGBM runtimes come before scikit-learn's, which would otherwise
    take their scikit-learn wrappers; the pickle fallback comes last.
    """
    sklearn, xgboost, lightgbm = SklearnRuntime(), XGBoostRuntime(), LightGBMRuntime()
    onnx, pickle = OnnxRuntime(), PickleRuntime()
    mlflow = MlflowRuntime(
        sklearn=sklearn, xgboost=xgboost, lightgbm=lightgbm, onnx=onnx, pickle=pickle
    )
    return [xgboost, lightgbm, sklearn, onnx, TorchRuntime(), mlflow, pickle]


class Runtimes:
    """An ordered, immutable collection of runtimes with unique names."""

    def __init__(self, runtimes: Sequence[Runtime]) -> None:
        names = [runtime.name for runtime in runtimes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Runtime names must be unique; repeated: {', '.join(duplicates)}")
        self._runtimes = tuple(runtimes)

    @classmethod
    def discover(cls, group: str = ENTRY_POINT_GROUP) -> Runtimes:
        """The built-in runtimes plus those installed packages register under ``group``.

        An entry point loads to a runtime class (instantiated without arguments) or
        instance. One named like a built-in replaces it in place; others are tried after
        the built-ins, before the pickle fallback.
        """
        runtimes = builtin_runtimes()
        for entry_point in entry_points(group=group):
            runtime = _load_entry_point(entry_point)
            names = [existing.name for existing in runtimes]
            if runtime.name in names:
                runtimes[names.index(runtime.name)] = runtime
            else:
                at = names.index(FALLBACK) if FALLBACK in names else len(runtimes)
                runtimes.insert(at, runtime)
        return cls(runtimes)

    @property
    def names(self) -> tuple[str, ...]:
        """Runtime names, in the order they are tried."""
        return tuple(runtime.name for runtime in self._runtimes)

    def __iter__(self) -> Iterator[Runtime]:
        return iter(self._runtimes)

    def __len__(self) -> int:
        return len(self._runtimes)

    def get(self, name: str) -> Runtime:
        """The runtime called ``name`` (as stored on a model version)."""
        for runtime in self._runtimes:
            if runtime.name == name:
                return runtime
        raise UnsupportedModelError(
            f"No runtime named {name!r} is installed.",
            hint=f"Known runtimes: {', '.join(self.names)}. A third-party runtime needs its "
            "package installed.",
        )

    def artifact_from_object(self, obj: object, *, trusted: bool = False) -> Artifact:
        """Serialise a fitted model with the first runtime that handles it.

        Objects nothing else handles are pickled when ``trusted`` and a pickle runtime is
        present; otherwise ``UnsupportedModelError`` lists what is supported.
        """
        fallback = None
        for runtime in self._runtimes:
            if runtime.name == FALLBACK:
                fallback = runtime
            elif runtime.handles(obj):
                return runtime.dump(obj, trusted=trusted)
        if fallback is not None and fallback.handles(obj):
            if trusted:
                return fallback.dump(obj, trusted=True)
            raise UntrustedModelError(
                f"A {qualified_name(obj)} can only be stored as a pickle, and loading a pickle "
                "can run arbitrary code.",
                hint="If you trust this object, register it with trusted=True (--trusted); "
                "the trust is recorded in the audit log.",
            )
        raise UnsupportedModelError(
            f"Dockyard does not know how to store a {qualified_name(obj)}.",
            hint=f"Supported: {self._describe()}.",
        )

    def artifact_from_path(self, path: str | Path, *, trusted: bool = False) -> Artifact:
        """Turn a model file (or MLflow directory) someone hands over into an artifact.

        Pickle and joblib files (by suffix or magic bytes) are refused unless ``trusted``;
        trusted ones are unpickled and stored like the object inside them, with ``pickle``
        in the artifact's ``trusted_types``. Other files go to the first runtime that
        recognises them.
        """
        path = Path(path)
        if not path.exists():
            raise UnreadableFileError(f"{path} does not exist.")
        if not (path.is_file() or path.is_dir()):
            raise UnreadableFileError(f"{path} is neither a regular file nor a directory.")
        try:
            pickled = is_pickle_file(path)
            if path.is_dir():
                next(path.iterdir(), None)
        except OSError as exc:
            raise UnreadableFileError(f"Cannot read {path}: {exc}") from exc
        if pickled:
            if not trusted:
                raise untrusted_pickle(f"{path} is a pickle")
            artifact = self.artifact_from_object(unpickle_file(path), trusted=True)
            return with_pickle_trust(artifact)
        for runtime in self._runtimes:
            if runtime.recognises(path):
                try:
                    return runtime.read(path, trusted=trusted)
                except DockyardError:
                    raise
                except Exception as exc:  # a framework's own error: one line, and what to do
                    raise UnreadableFileError(
                        f"{path} is not a readable {runtime.name} model: {framework_message(exc)}",
                        hint=f"Check that the file is complete and was saved by {runtime.name}'s "
                        "own save function (export it again if in doubt).",
                    ) from exc
        raise UnsupportedModelError(
            f"Dockyard does not recognise {path} as a model.",
            hint=f"Supported: {self._describe()}.",
        )

    def _describe(self) -> str:
        return "; ".join(_DESCRIPTIONS.get(name, name) for name in self.names)


def _load_entry_point(entry_point: EntryPoint) -> Runtime:
    name, value = entry_point.name, entry_point.value
    try:
        loaded = entry_point.load()
        runtime = loaded() if isinstance(loaded, type) else loaded
    except Exception as exc:
        raise DockyardError(
            f"The runtime plug-in {name!r} ({value}) failed to load: {exc}",
            hint="Fix or uninstall the package that provides it.",
        ) from exc
    if not isinstance(runtime, Runtime):
        raise DockyardError(
            f"The runtime plug-in {name!r} ({value}) is not a Runtime.",
            hint="An entry point in the dockyard.runtimes group must name a class or object "
            "with name, handles, dump, recognises, read, load and environment.",
        )
    return runtime
