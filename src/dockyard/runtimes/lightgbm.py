"""LightGBM models in LightGBM's own text format (``.txt``).

Handles raw ``lightgbm.Booster`` objects and the scikit-learn wrappers (``LGBMClassifier``,
``LGBMRegressor``, ``LGBMRanker``). The model text keeps the trees, feature names and the
categories of pandas ``category`` columns, but not what the wrapper adds on top, so
``options`` holds:

* ``estimator``: ``"Booster"`` or the wrapper class name;
* ``input_layout``: ``"frame"`` when the model was trained on a DataFrame;
* ``classes`` and ``classes_dtype`` (classifiers): the labels in ``predict_proba`` column
  order, JSON-safe, and the numpy dtype they had, so that ``predict`` returns exactly what
  ``LGBMClassifier.predict`` returned (``classes[argmax(proba)]``, with binary
  probabilities stacked into two columns as LightGBM does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import ModelLoadError, UnreadableFileError, UnsupportedModelError
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import mro_names, no_proba, qualified_name, to_python
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, LoadedModel
from dockyard.schema.layout import InputLayout

SUFFIX = ".txt"
FILE_SUFFIXES = frozenset({".txt", ".lgb", ".model"})
BOOSTER = "Booster"
CLASSIFIER = "LGBMClassifier"
ESTIMATORS = frozenset({CLASSIFIER, "LGBMRegressor", "LGBMRanker"})


class LightGBMRuntime:
    """LightGBM boosters and scikit-learn wrappers, stored as model text."""

    name = "lightgbm"

    def handles(self, obj: object) -> bool:
        names = mro_names(obj)
        return "lightgbm.basic.Booster" in names or "lightgbm.sklearn.LGBMModel" in names

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        lgb = require("lightgbm", extra="lightgbm")
        if isinstance(obj, lgb.Booster):
            return self._artifact(obj, {"estimator": BOOSTER})
        kind = _estimator_kind(obj)
        if callable(getattr(obj, "objective", None)):
            raise UnsupportedModelError(
                f"This {kind} was trained with a custom objective function, which the model "
                "file cannot keep.",
                hint="Register its booster (model.booster_) and post-process raw scores.",
            )
        try:
            booster = obj.booster_  # type: ignore[attr-defined]
        except Exception as exc:
            raise UnsupportedModelError(
                f"Cannot store this {kind}: {exc}", hint="Fit the model before registering it."
            ) from exc
        options: dict[str, Any] = {
            "estimator": kind,
            "input_layout": "frame" if hasattr(obj, "feature_names_in_") else "array",
        }
        if kind == CLASSIFIER:
            classes = obj.classes_  # type: ignore[attr-defined]
            options["classes"] = to_python(classes)
            options["classes_dtype"] = str(classes.dtype)
        return self._artifact(booster, options)

    def recognises(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in FILE_SUFFIXES:
            return False
        with path.open("rb") as file:
            head = file.read(256)
        return head.startswith(b"tree\n") and b"version=v" in head

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        lgb = require("lightgbm", extra="lightgbm", error=UnsupportedModelError)
        try:
            text = path.read_text(encoding="utf-8")
            if (problem := check_trees(text)) is not None:
                raise UnreadableFileError(
                    f"{path} is not a whole LightGBM model: {problem}.",
                    hint="Save the model again with LightGBM's save_model.",
                )
            booster = lgb.Booster(model_str=text)
        except (OSError, UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise UnreadableFileError(
                f"{path} is not a readable LightGBM model: {framework_message(exc)}",
                hint="Check that the file is complete and was written by LightGBM's save_model.",
            ) from exc
        layout = "frame" if booster.pandas_categorical is not None else "array"
        return self._artifact(booster, {"estimator": BOOSTER, "input_layout": layout})

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        lgb = require("lightgbm", extra="lightgbm")
        import numpy as np

        kind = str(options.get("estimator", BOOSTER))
        if kind != BOOSTER and kind not in ESTIMATORS:
            raise ModelLoadError(f"Unknown LightGBM estimator {kind!r} in the options.")
        text = data.decode("utf-8")
        if (problem := check_trees(text)) is not None:
            raise ModelLoadError(f"Not a whole LightGBM model: {problem}.")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(
                f"LightGBM could not load the model: {framework_message(exc)}"
            ) from exc
        classes = None
        if kind == CLASSIFIER:
            try:
                classes = np.asarray(options["classes"], dtype=options.get("classes_dtype"))
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"The classifier's class labels are unusable: {exc}") from exc
        layout: InputLayout = "frame" if options.get("input_layout") == "frame" else "array"
        return LightGBMModel(kind, booster, layout, classes, _header(text))

    def environment(self) -> dict[str, str]:
        return versions("lightgbm", "numpy", "pandas")

    def _artifact(self, booster: Any, options: dict[str, Any]) -> Artifact:
        data = str(booster.model_to_string()).encode("utf-8")
        return Artifact(runtime=self.name, data=data, suffix=SUFFIX, options=options)


@dataclass(frozen=True)
class LightGBMModel:
    """A loaded LightGBM booster answering as the wrapper it came from did."""

    kind: str
    booster: Any
    input_layout: InputLayout
    class_labels: Any = None
    header: dict[str, str] = field(default_factory=dict)
    runtime: str = "lightgbm"

    @property
    def feature_names(self) -> Sequence[str] | None:
        if self.input_layout != "frame":
            return None
        return list(self.booster.feature_name())

    @property
    def classes(self) -> Sequence[Any] | None:
        return None if self.class_labels is None else list(to_python(self.class_labels))

    @property
    def has_proba(self) -> bool:
        return self.kind == CLASSIFIER

    def predict(self, x: Any) -> Any:
        import numpy as np

        if self.kind != CLASSIFIER:
            return np.asarray(self.booster.predict(_frame_or_array(x)))
        return self.class_labels[np.argmax(self.predict_proba(x), axis=1)]

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        if not self.has_proba:
            raise no_proba(self.runtime)
        result = np.asarray(self.booster.predict(_frame_or_array(x)))
        if result.ndim == 1:  # binary: LightGBM gives P(class 1) only
            return np.vstack((1.0 - result, result)).transpose()
        return result

    def metadata(self) -> dict[str, Any]:
        return {
            "estimator": self.kind,
            "objective": self.header.get("objective", "").split(" ")[0] or None,
            "trees": int(self.booster.num_trees()),
            "n_features": int(self.booster.num_feature()),
        }


def _frame_or_array(x: Any) -> Any:
    if hasattr(x, "columns") or hasattr(x, "shape"):
        return x
    import numpy as np

    return np.asarray(x)


def check_trees(text: str) -> str | None:
    """What is wrong with a model text's structure, or ``None`` when it is whole.

    LightGBM parses the trees at the byte offsets its ``tree_sizes`` header line gives, and
    reads the parameters section to its end marker, without checking either: a truncated
    file crashed the whole process (segmentation fault) instead of raising. So before a
    text reaches LightGBM, every tree must start where the header says, ``end of trees``
    must follow the last one, and a ``parameters:`` section must reach ``end of parameters``.
    """
    data = text.encode("utf-8")
    start = data.find(b"\nTree=0\n")
    if start < 0:
        return "it has no trees"
    sizes = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.MULTILINE)
    if sizes is None:
        offset = data.find(b"\nend of trees") + 1  # 0 when absent: refused below
    else:
        offset = start + 1
        for number, size in enumerate(int(part) for part in sizes.group(1).split()):
            if not data.startswith(b"Tree=%d\n" % number, offset):
                return f"tree {number} is not where the header puts it (the file is cut or altered)"
            offset += size
    if not data.startswith(b"end of trees", offset):
        return "it ends before 'end of trees' (the file is cut or altered)"
    parameters = data.find(b"\nparameters:\n", offset)
    if parameters >= 0 and data.find(b"\nend of parameters\n", parameters) < 0:
        return "it ends before 'end of parameters' (the file is cut)"
    return None


def _header(text: str) -> dict[str, str]:
    """The ``key=value`` lines before the first tree of a model text."""
    header: dict[str, str] = {}
    end = text.find("\n\n")
    for line in text[: end if end >= 0 else len(text)].splitlines():
        key, sep, value = line.partition("=")
        if sep:
            header[key] = value
    return header


def _estimator_kind(obj: object) -> str:
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("lightgbm.") and cls.__name__ in ESTIMATORS:
            return cls.__name__
    raise UnsupportedModelError(
        f"Dockyard does not know the LightGBM estimator {qualified_name(obj)}.",
        hint="Register its booster instead: model.booster_.",
    )
