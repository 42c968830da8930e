"""XGBoost models in XGBoost's own UBJSON format (``.ubj``).

Handles raw ``xgboost.Booster`` objects and the scikit-learn wrappers (``XGBClassifier``,
``XGBRegressor``...). The booster file keeps trees, objective, feature names and
categorical feature types; ``options`` adds what only the wrapper knows:

* ``estimator``: ``"Booster"`` or the wrapper class name (``"XGBClassifier"``), so loading
  rebuilds the same wrapper and ``predict``/``predict_proba`` answer exactly as before;
* ``missing``: the wrapper's missing-value marker when it is not NaN.

Files read from disk (``.ubj``, ``.json``, ``.xgb``, ``.model``, ``.bst``) are recognised
by content; a wrapper saved with ``XGBModel.save_model`` says which kind it was.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import (
    ModelLoadError,
    UnreadableFileError,
    UnsupportedModelError,
)
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import mro_names, no_proba, qualified_name, to_python
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, LoadedModel
from dockyard.schema.layout import InputLayout

SUFFIX = ".ubj"
FILE_SUFFIXES = frozenset({".ubj", ".json", ".xgb", ".model", ".bst"})
BOOSTER = "Booster"
ESTIMATORS = frozenset(
    {"XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"}
)
CLASSIFIERS = frozenset({"XGBClassifier", "XGBRFClassifier"})
_KIND_BY_ESTIMATOR_TYPE = {
    "classifier": "XGBClassifier",
    "regressor": "XGBRegressor",
    "ranker": "XGBRanker",
}


class XGBoostRuntime:
    """XGBoost boosters and scikit-learn wrappers, stored natively."""

    name = "xgboost"

    def handles(self, obj: object) -> bool:
        names = mro_names(obj)
        return "xgboost.core.Booster" in names or "xgboost.sklearn.XGBModel" in names

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        xgb = require("xgboost", extra="xgboost")
        if isinstance(obj, xgb.Booster):
            return self._artifact(obj, {"estimator": BOOSTER})
        kind = _estimator_kind(obj)
        try:
            booster = obj.get_booster()  # type: ignore[attr-defined]
        except Exception as exc:
            raise UnsupportedModelError(
                f"Cannot store this {kind}: {exc}", hint="Fit the model before registering it."
            ) from exc
        options: dict[str, Any] = {"estimator": kind}
        missing = getattr(obj, "missing", math.nan)
        if not (isinstance(missing, float) and math.isnan(missing)):
            options["missing"] = to_python(missing)
        return self._artifact(booster, options)

    def recognises(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in FILE_SUFFIXES:
            return False
        with path.open("rb") as file:
            head = file.read(256)
        # UBJSON and JSON models both open with the "learner" object.
        return b"learner" in head

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        return self.read_as(path, estimator=None)

    def read_as(self, path: Path, *, estimator: str | None) -> Artifact:
        """Read a native model file as ``estimator`` (a wrapper class name or ``Booster``).

        Without ``estimator`` the kind comes from the file (wrappers' ``save_model`` records
        it), else ``Booster``.
        """
        xgb = require("xgboost", extra="xgboost", error=UnsupportedModelError)
        booster = xgb.Booster()
        try:
            data = path.read_bytes()
            if (problem := structure_problem(data)) is not None:
                raise UnreadableFileError(
                    f"{path} is not a whole XGBoost model: {problem}.",
                    hint="Save the model again with XGBoost's save_model.",
                )
            booster.load_model(bytearray(data))
        except (OSError, xgb.core.XGBoostError) as exc:
            raise UnreadableFileError(
                f"{path} is not a readable XGBoost model: {framework_message(exc)}",
                hint="Check that the file is complete and was written by XGBoost's save_model.",
            ) from exc
        if estimator is None:
            recorded = json.loads(booster.attr("scikit_learn") or "{}")
            estimator = _KIND_BY_ESTIMATOR_TYPE.get(recorded.get("_estimator_type"), BOOSTER)
        if estimator != BOOSTER and estimator not in ESTIMATORS:
            raise UnsupportedModelError(f"Unknown XGBoost model class {estimator!r}.")
        return self._artifact(booster, {"estimator": estimator})

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        xgb = require("xgboost", extra="xgboost")
        kind = str(options.get("estimator", BOOSTER))
        try:
            if kind == BOOSTER:
                booster = xgb.Booster()
                booster.load_model(bytearray(data))
                return XGBoostModel(kind, booster, booster)
            if kind not in ESTIMATORS:
                raise ModelLoadError(f"Unknown XGBoost estimator {kind!r} in the options.")
            params = {"missing": options["missing"]} if "missing" in options else {}
            model = getattr(xgb, kind)(**params)
            model.load_model(bytearray(data))
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(
                f"XGBoost could not load the model: {framework_message(exc)}"
            ) from exc
        return XGBoostModel(kind, model, model.get_booster())

    def environment(self) -> dict[str, str]:
        return versions("xgboost", "numpy")

    def _artifact(self, booster: Any, options: dict[str, Any]) -> Artifact:
        data = bytes(booster.save_raw(raw_format="ubj"))
        return Artifact(runtime=self.name, data=data, suffix=SUFFIX, options=options)


@dataclass(frozen=True)
class XGBoostModel:
    """A loaded XGBoost model: a wrapper (``predictor``) or a raw booster."""

    kind: str
    predictor: Any
    booster: Any
    runtime: str = "xgboost"

    @property
    def input_layout(self) -> InputLayout:
        return "frame" if self.booster.feature_names is not None else "array"

    @property
    def feature_names(self) -> Sequence[str] | None:
        names = self.booster.feature_names
        return list(names) if names is not None else None

    @property
    def classes(self) -> Sequence[Any] | None:
        if self.kind not in CLASSIFIERS:
            return None
        return list(to_python(self.predictor.classes_))

    @property
    def has_proba(self) -> bool:
        return self.kind in CLASSIFIERS

    def predict(self, x: Any) -> Any:
        import numpy as np

        if self.kind == BOOSTER:
            xgb = require("xgboost", extra="xgboost")
            return np.asarray(self.booster.predict(xgb.DMatrix(x, enable_categorical=True)))
        return np.asarray(self.predictor.predict(x))

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        if not self.has_proba:
            raise no_proba(self.runtime)
        return np.asarray(self.predictor.predict_proba(x))

    def metadata(self) -> dict[str, Any]:
        config = json.loads(self.booster.save_config())
        return {
            "estimator": self.kind,
            "objective": config["learner"]["objective"]["name"],
            "boosted_rounds": int(self.booster.num_boosted_rounds()),
            "n_features": int(self.booster.num_features()),
        }


def _estimator_kind(obj: object) -> str:
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("xgboost.") and cls.__name__ in ESTIMATORS:
            return cls.__name__
    raise UnsupportedModelError(
        f"Dockyard does not know the XGBoost estimator {qualified_name(obj)}.",
        hint="Register its booster instead: model.get_booster().",
    )


# --- checking a file's structure before XGBoost parses it ---------------------------------

_FIXED = {
    b: n
    for n, markers in ((0, b"ZTF"), (1, b"iUC"), (2, b"I"), (4, b"ld"), (8, b"LD"))
    for b in markers
}
_INTEGERS = {ord("i"): ">b", ord("U"): ">B", ord("I"): ">h", ord("l"): ">i", ord("L"): ">q"}
_MAX_DEPTH = 64


class _Broken(Exception):
    """Where a UBJSON document stops making sense."""


def structure_problem(data: bytes) -> str | None:
    """What is wrong with a JSON or UBJSON model file's structure, or ``None``.

    XGBoost's own parsers trust the lengths a file states: a damaged ``.ubj`` made it
    allocate without bound (``std::bad_alloc``) or corrupt memory and crash the process
    later. So a file that starts like a JSON object must parse as JSON, and a UBJSON one
    must be well formed (every length inside the file, known markers, bounded nesting)
    before XGBoost sees it. Other (legacy binary) files are left to XGBoost.
    """
    head = data[:2]
    if head[:1] != b"{":
        return None
    if head[1:2] in (b'"', b"}", b" ", b"\n", b"\r", b"\t"):
        try:
            json.loads(data)
        except (ValueError, RecursionError) as exc:
            return f"it is not valid JSON ({str(exc).splitlines()[0]})"
        return None
    try:
        end = _ubj_value(data, 0, 0, None)
    except _Broken as exc:
        return f"it is not well-formed UBJSON ({exc})"
    return None if end == len(data) else "it has bytes after the end of its UBJSON document"


def _ubj_need(data: bytes, end: int) -> None:
    if end > len(data):
        raise _Broken(f"it ends at byte {len(data)} where {end} are needed")


def _ubj_int(data: bytes, pos: int) -> tuple[int, int]:
    _ubj_need(data, pos + 1)
    fmt = _INTEGERS.get(data[pos])
    if fmt is None:
        raise _Broken(f"byte {pos} should start a length")
    size = struct.calcsize(fmt)
    _ubj_need(data, pos + 1 + size)
    value = struct.unpack_from(fmt, data, pos + 1)[0]
    if value < 0 or value > len(data):
        raise _Broken(f"the length at byte {pos} is {value}")
    return int(value), pos + 1 + size


def _ubj_value(data: bytes, pos: int, depth: int, marker: int | None) -> int:
    if marker is None:
        _ubj_need(data, pos + 1)
        marker, pos = data[pos], pos + 1
    if marker in _FIXED:
        _ubj_need(data, pos + _FIXED[marker])
        return pos + _FIXED[marker]
    if marker in b"SH":
        length, pos = _ubj_int(data, pos)
        _ubj_need(data, pos + length)
        return pos + length
    if marker in b"[{":
        if depth >= _MAX_DEPTH:
            raise _Broken(f"it nests deeper than {_MAX_DEPTH} levels")
        return _ubj_container(data, pos, depth + 1, marker == ord("{"))
    raise _Broken(f"unknown marker {chr(marker)!r} at byte {pos - 1}")


def _ubj_container(data: bytes, pos: int, depth: int, is_object: bool) -> int:
    typed: int | None = None
    count: int | None = None
    _ubj_need(data, pos + 1)
    if data[pos] == ord("$"):
        _ubj_need(data, pos + 3)
        typed, pos = data[pos + 1], pos + 2
        if data[pos] != ord("#"):
            raise _Broken(f"a typed container at byte {pos} has no count")
    if data[pos] == ord("#"):
        count, pos = _ubj_int(data, pos + 1)
    if count is None:
        close = ord("}" if is_object else "]")
        while True:
            _ubj_need(data, pos + 1)
            if data[pos] == close:
                return pos + 1
            if is_object:
                length, pos = _ubj_int(data, pos)
                pos += length
            pos = _ubj_value(data, pos, depth, None)
    if typed is not None and typed in _FIXED and not is_object:
        _ubj_need(data, pos + count * _FIXED[typed])
        return pos + count * _FIXED[typed]
    for _ in range(count):
        if is_object:
            length, pos = _ubj_int(data, pos)
            pos += length
        pos = _ubj_value(data, pos, depth, typed)
    return pos
