"""MLflow model directories: read the ``MLmodel`` file, hand the model to its flavour's runtime.

This runtime only *imports*: :meth:`MlflowRuntime.read` returns an artifact of the
``onnx``, ``xgboost``, ``lightgbm``, ``sklearn`` (or, trusted, ``pickle``) runtime, so an
MLflow model is stored and loaded like any other. MLflow itself is not needed; ``MLmodel``
is parsed as plain YAML (``yaml.safe_load``, which never builds Python objects).

Flavours, in the order they are preferred when a directory has several:

* ``onnx``: the ``data`` file, as is;
* ``xgboost``: the native ``data`` file, read as ``model_class`` (e.g. ``XGBClassifier``);
* ``lightgbm``: a native booster file, or a pickled scikit-learn-API model (trusted only);
* ``sklearn``: ``serialization_format: skops`` is read with skops; a ``pickle`` or
  ``cloudpickle`` model is unpickled (trusted only) and converted to skops.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dockyard.errors import ModelLoadError, UnreadableFileError, UnsupportedModelError
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, LoadedModel, Runtime
from dockyard.runtimes.lightgbm import LightGBMRuntime
from dockyard.runtimes.onnx import OnnxRuntime
from dockyard.runtimes.pickle import (
    PickleRuntime,
    unpickle_file,
    untrusted_pickle,
    with_pickle_trust,
)
from dockyard.runtimes.sklearn import SklearnRuntime
from dockyard.runtimes.xgboost import XGBoostRuntime

MLMODEL = "MLmodel"
FLAVOURS = ("onnx", "xgboost", "lightgbm", "sklearn")


class MlflowRuntime:
    """Reads MLflow model directories through the runtimes of their flavours."""

    name = "mlflow"

    def __init__(
        self,
        *,
        sklearn: SklearnRuntime | None = None,
        xgboost: XGBoostRuntime | None = None,
        lightgbm: LightGBMRuntime | None = None,
        onnx: OnnxRuntime | None = None,
        pickle: PickleRuntime | None = None,
    ) -> None:
        self.sklearn = sklearn or SklearnRuntime()
        self.xgboost = xgboost or XGBoostRuntime()
        self.lightgbm = lightgbm or LightGBMRuntime()
        self.onnx = onnx or OnnxRuntime()
        self.pickle = pickle or PickleRuntime()

    def handles(self, obj: object) -> bool:
        return False

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        raise UnsupportedModelError("The mlflow runtime only reads MLflow model directories.")

    def recognises(self, path: Path) -> bool:
        return path.is_dir() and (path / MLMODEL).is_file()

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        flavours = _flavours(path)
        readers: dict[str, Callable[[Path, Mapping[str, Any], bool], Artifact]] = {
            "onnx": self._read_onnx,
            "xgboost": self._read_xgboost,
            "lightgbm": self._read_lightgbm,
            "sklearn": self._read_sklearn,
        }
        for flavour in FLAVOURS:
            if flavour in flavours:
                return readers[flavour](path, _mapping(flavours[flavour], flavour), trusted)
        raise UnsupportedModelError(
            f"{path} is an MLflow model of flavour(s) {', '.join(map(str, flavours))}, which "
            "Dockyard cannot read.",
            hint=f"Dockyard reads the {', '.join(FLAVOURS)} flavours.",
        )

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        raise ModelLoadError(
            "Artifacts are never stored under the mlflow runtime; MLflow models are stored "
            "under their flavour's runtime."
        )

    def environment(self) -> dict[str, str]:
        return versions("pyyaml")

    def _read_onnx(self, path: Path, spec: Mapping[str, Any], trusted: bool) -> Artifact:
        return self.onnx.read(_member(path, spec, "data"), trusted=trusted)

    def _read_xgboost(self, path: Path, spec: Mapping[str, Any], trusted: bool) -> Artifact:
        model_class = str(spec.get("model_class", "xgboost.core.Booster"))
        return self.xgboost.read_as(
            _member(path, spec, "data"), estimator=model_class.rsplit(".", 1)[-1]
        )

    def _read_lightgbm(self, path: Path, spec: Mapping[str, Any], trusted: bool) -> Artifact:
        model_class = str(spec.get("model_class", "lightgbm.basic.Booster"))
        file = _member(path, spec, "data")
        if model_class.endswith(".Booster"):
            return self.lightgbm.read(file, trusted=trusted)
        return self._from_pickle(file, self.lightgbm, trusted)

    def _read_sklearn(self, path: Path, spec: Mapping[str, Any], trusted: bool) -> Artifact:
        file = _member(path, spec, "pickled_model")
        if spec.get("serialization_format") == "skops":
            return self.sklearn.read(file, trusted=trusted)
        return self._from_pickle(file, self.sklearn, trusted)

    def _from_pickle(self, file: Path, runtime: Runtime, trusted: bool) -> Artifact:
        if not trusted:
            raise untrusted_pickle(f"MLflow stored {file.name} as a pickle")
        obj = unpickle_file(file)
        target = runtime if runtime.handles(obj) else self.pickle
        return with_pickle_trust(target.dump(obj, trusted=True))


def _flavours(path: Path) -> Mapping[str, Any]:
    yaml = require("yaml")
    try:
        spec = yaml.safe_load((path / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UnreadableFileError(
            f"Cannot parse {path / MLMODEL}: {framework_message(exc)}"
        ) from exc
    if not isinstance(spec, dict):
        raise UnreadableFileError(f"{path / MLMODEL} is not an MLmodel mapping.")
    return _mapping(spec.get("flavors"), "flavors")


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise UnreadableFileError(f"The MLmodel file's {what!r} entry is not a mapping.")
    return value


def _member(directory: Path, spec: Mapping[str, Any], key: str) -> Path:
    """The file ``spec[key]`` names, which must lie inside ``directory``."""
    name = spec.get(key)
    if not isinstance(name, str) or not name:
        raise UnreadableFileError(f"The MLmodel flavour has no {key!r} file.")
    root = directory.resolve()
    file = (root / name).resolve()
    if not file.is_relative_to(root):
        raise UnreadableFileError(f"The MLmodel file points outside its directory: {name}.")
    if not file.is_file():
        raise UnreadableFileError(f"The MLmodel file names {name}, which does not exist.")
    return file


def declared_signature(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The column-based ``signature`` an MLmodel file declares: its ``inputs`` and
    ``outputs`` as lists of ``{"name", "type", "required"}``; ``None`` when the directory
    declares none, or a tensor-based one (no column names to check requests against)."""
    yaml = require("yaml")
    try:
        spec = yaml.safe_load((path / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # read() has already refused an unreadable MLmodel
    signature = spec.get("signature") if isinstance(spec, dict) else None
    if not isinstance(signature, dict) or not isinstance(signature.get("inputs"), str):
        return None
    try:
        inputs = json.loads(signature["inputs"])
        outputs = json.loads(signature.get("outputs") or "[]")
    except ValueError as exc:
        raise UnreadableFileError(f"The MLmodel signature is not valid JSON: {exc}.") from exc
    columns = [c for c in inputs if isinstance(c, dict) and isinstance(c.get("name"), str)]
    if (
        not columns
        or len(columns) != len(inputs)
        or any(c.get("type") == "tensor" for c in columns)
    ):
        return None
    return columns, [o for o in outputs if isinstance(o, dict)]
