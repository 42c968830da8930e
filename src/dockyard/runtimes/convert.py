"""ONNX twins of native models: converted, then proven equivalent before they are used.

onnxruntime answers a one-row request many times faster than the framework that trained the
model (a 100-tree random forest: microseconds instead of milliseconds), so where a model
converts to ONNX *and the converted graph answers like the original*, serving may run the
twin instead. :func:`convert_to_onnx` does both steps and never raises:

1. **Convert.** scikit-learn estimators and pipelines through ``skl2onnx``; LightGBM and
   XGBoost scikit-learn-style classifiers and regressors through ``onnxmltools`` (numeric
   features only). Inputs are declared ``float64`` first and ``float32`` second: the first
   candidate that passes the check wins. (Linear models match to ~1e-16 in ``float64``;
   scikit-learn trees compare ``float32`` inputs, which skl2onnx's threshold rounding
   reproduces; onnxmltools accepts only ``float32`` for boosters' classifiers.)
2. **Shape the inputs like the native model's.** ``array`` models get one 2-D tensor input;
   ``frame`` models get one ``[None, 1]`` input per column, named exactly like the sample's
   columns (numbers as ``float64``/``float32``, strings as ``string``), which is what
   :class:`~dockyard.runtimes.onnx.OnnxRuntime` feeds a DataFrame to.
3. **Check.** The artifact is loaded with :class:`~dockyard.runtimes.onnx.OnnxRuntime` and
   fed the reference sample exactly as the native model takes it (all rows, or ``max_rows``
   evenly spaced ones). Predicted labels must be *exactly* those of ``model.predict`` (same
   values, same kind: ``1``, ``1.0``, ``True`` and ``"1"`` all differ), class lists equal,
   probabilities within ``proba_tolerance`` (absolute) of ``model.predict_proba``, and
   regression outputs within ``value_tolerance`` relative to the largest native prediction
   on the sample. Relative to that scale because tree sums and dot products accumulate
   rounding in proportion to the terms' magnitude, not the result's: ``float64`` graphs land
   near 1e-16 of it, ``float32`` ones near 1e-7, and 1e-6 of a target's range is below any
   precision a consumer of the prediction uses.

Anything else — an unsupported estimator, a converter error, a mismatch — is a
:class:`Conversion` with no artifact and a ``reason``. ``skl2onnx`` and ``onnxmltools`` are
optional and imported only here, only when a conversion is asked for.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from dockyard.runtimes._estimators import qualified_name, to_python
from dockyard.runtimes.base import Artifact, LoadedModel

SKLEARN_OPSETS = {"": 17, "ai.onnx.ml": 3}
"""Opsets skl2onnx targets: supported by every onnxruntime Dockyard allows (>= 1.18)."""
ONNXMLTOOLS_OPSET = 15
"""The highest default-domain opset onnxmltools' booster converters support."""
MAX_ROWS = 5_000
"""Reference rows checked at most (evenly spaced when the sample is larger)."""
INSTALL_HINT = "reinstall Dockyard (skl2onnx and onnxmltools are dependencies)"

_DTYPES = ("float64", "float32")
_FEATURES = "dockyard_features"
_REASON_LENGTH = 300


@dataclass(frozen=True)
class Conversion:
    """The outcome of :func:`convert_to_onnx`.

    ``artifact`` is an ``onnx`` runtime artifact when the converted model was equivalent on
    the reference sample, else ``None`` and ``reason`` says why. ``max_abs_diff`` is the
    largest difference seen in probabilities (classifiers) or predictions (regressors) for
    the candidate the reason describes; ``None`` when nothing was compared.
    """

    artifact: Artifact | None
    reason: str
    rows_checked: int = 0
    max_abs_diff: float | None = None

    @property
    def equivalent(self) -> bool:
        """Whether there is an artifact to serve."""
        return self.artifact is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe facts without the bytes; ``runtime`` only when there is an artifact.

        The registry stores this as a version's ``accelerated`` field, adding the
        artifact's digest and size.
        """
        facts: dict[str, Any] = {
            "rows_checked": self.rows_checked,
            "max_abs_diff": self.max_abs_diff,
            "reason": self.reason,
        }
        if self.artifact is not None:
            return {"runtime": self.artifact.runtime, **facts}
        return facts


class _Refused(Exception):
    """A conversion step that cannot go on; its message becomes the reason."""


def convert_to_onnx(
    model: LoadedModel,
    sample: Any,
    *,
    proba_tolerance: float = 1e-6,
    value_tolerance: float = 1e-6,
    max_rows: int = MAX_ROWS,
) -> Conversion:
    """Convert ``model`` to ONNX and return the artifact only if it answers identically.

    ``sample`` is the model's reference input exactly as ``model.predict`` takes it (a
    DataFrame for ``frame`` layout, a 2-D numpy array for ``array``). See the module
    documentation for what is supported and how equivalence is judged. Never raises for a
    model or sample it cannot handle: the :class:`Conversion` says why.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, not {max_rows}")
    try:
        reference = _reference_rows(sample, max_rows)
        rows = _row_count(reference)
        if rows == 0:
            return Conversion(None, "the reference sample has no rows")
        converter = _converter(model, reference)
    except _Refused as exc:
        return Conversion(None, str(exc))
    except Exception as exc:
        return Conversion(None, f"cannot prepare a conversion: {_say(exc)}")
    try:
        expected = _Outputs.of(model, reference)
    except Exception as exc:
        return Conversion(None, f"the model cannot predict its reference sample: {_say(exc)}")

    failures: list[str] = []
    closest: float | None = None
    for dtype in _DTYPES:
        try:
            proto = converter(dtype)
            artifact = _artifact(proto, keep_proba=expected.proba is not None)
            diff = _compare(expected, artifact, reference, proba_tolerance, value_tolerance)
        except _Mismatch as exc:
            failures.append(f"{dtype}: {exc}")
            if exc.diff is not None and (closest is None or exc.diff < closest):
                closest = exc.diff
            continue
        except _Refused as exc:
            failures.append(f"{dtype}: {exc}")
            continue
        except Exception as exc:  # converters raise anything; the reason says what
            failures.append(f"{dtype}: {_say(exc)}")
            continue
        reason = f"equivalent on {rows} reference rows with {dtype} inputs"
        return Conversion(artifact, reason, rows, diff)
    return Conversion(None, "; ".join(failures), rows, closest)


# --- choosing a converter -------------------------------------------------------------------

Converter = Callable[[str], Any]
"""Takes an input dtype (``float64`` or ``float32``); returns an ``onnx.ModelProto``."""


def _converter(model: LoadedModel, reference: Any) -> Converter:
    runtime = model.runtime
    estimator = getattr(model, "estimator", None)
    if runtime in {"sklearn", "pickle"} and estimator is not None:
        return _sklearn_converter(estimator, reference, model.input_layout)
    if runtime == "lightgbm" and hasattr(model, "booster"):
        return _lightgbm_converter(model, reference)
    if runtime == "xgboost" and hasattr(model, "predictor"):
        return _xgboost_converter(model, reference)
    raise _Refused(f"models of the {runtime} runtime are not converted to ONNX")


def _sklearn_converter(estimator: Any, reference: Any, layout: str) -> Converter:
    skl2onnx = _optional("skl2onnx")
    types = _optional("skl2onnx.common.data_types")
    columns = _frame_columns(reference) if layout == "frame" else None
    _check_tree_thresholds(estimator)
    # zipmap=False: probabilities as one 2-D tensor, not a list of {label: p} dicts.
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None

    def one_tensor(dtype: str) -> Any:
        tensor = types.DoubleTensorType if dtype == "float64" else types.FloatTensorType
        inputs = [(_FEATURES, tensor([None, _column_count(reference)]))]
        return skl2onnx.convert_sklearn(
            estimator, initial_types=inputs, options=options, target_opset=SKLEARN_OPSETS
        )

    def per_column(dtype: str, columns: list[tuple[str, bool]]) -> Any:
        tensor = types.DoubleTensorType if dtype == "float64" else types.FloatTensorType
        inputs = [
            (name, types.StringTensorType([None, 1]) if text else tensor([None, 1]))
            for name, text in columns
        ]
        proto = skl2onnx.convert_sklearn(
            estimator, initial_types=inputs, options=options, target_opset=SKLEARN_OPSETS
        )
        _restore_input_names(proto, [name for name, _ in columns])
        return proto

    def convert(dtype: str) -> Any:
        if columns is None:
            return one_tensor(dtype)
        if any(text for _, text in columns):
            return per_column(dtype, columns)
        # Numeric frames: one tensor behind our own per-column Concat keeps float64 exact
        # (skl2onnx's own per-column inputs go through a float32 FeatureVectorizer); a
        # ColumnTransformer that selects columns by name needs skl2onnx's inputs instead.
        try:
            proto = one_tensor(dtype)
        except Exception:
            return per_column(dtype, columns)
        return _one_input_per_column(proto, [name for name, _ in columns], dtype)

    return convert


def _check_tree_thresholds(estimator: Any) -> None:
    """Refuse trees that split at thresholds beyond float32's range.

    scikit-learn puts an infinite threshold on splits learned from missing values;
    skl2onnx's float32 threshold adjustment never terminates on those.
    """
    import numpy as np

    limit = float(np.finfo(np.float32).max)
    for tree in _sklearn_trees(estimator):
        thresholds = tree.threshold[tree.children_left >= 0]
        if not bool(np.all(np.abs(thresholds) < limit)):
            raise _Refused(
                "a tree splits at an infinite threshold (learned from missing values), "
                "which skl2onnx cannot convert"
            )


def _sklearn_trees(estimator: Any) -> Iterator[Any]:
    """Every fitted ``tree_`` inside ``estimator``: in pipelines, transformers, ensembles."""
    import numpy as np

    seen: set[int] = set()
    stack = [estimator]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        tree = getattr(item, "tree_", None)
        if tree is not None and hasattr(tree, "threshold"):
            yield tree
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, np.ndarray) and item.dtype == object:
            stack.extend(item.ravel().tolist())
        elif hasattr(item, "get_params") and hasattr(item, "__dict__"):
            stack.extend(vars(item).values())


def _lightgbm_converter(model: Any, reference: Any) -> Converter:
    kind = str(getattr(model, "kind", ""))
    if kind not in {"LGBMClassifier", "LGBMRegressor"}:
        raise _Refused(f"LightGBM {kind} models are not converted (only LGBMClassifier/Regressor)")
    if model.booster.pandas_categorical:
        raise _Refused("LightGBM models with categorical features are not converted")
    onnxmltools = _optional("onnxmltools")
    parse = _optional("onnxmltools.convert.lightgbm._parse")
    types = _optional("onnxmltools.convert.common.data_types")
    columns = _numeric_columns(reference) if model.input_layout == "frame" else None
    width = _column_count(reference)

    def convert(dtype: str) -> Any:
        # The booster alone would get labels 0..n-1; hand the converter the real classes.
        wrapped = parse.WrappedBooster(model.booster)
        if model.class_labels is not None:
            wrapped.classes_ = model.class_labels
        tensor = types.DoubleTensorType if dtype == "float64" else types.FloatTensorType
        proto = onnxmltools.convert_lightgbm(
            wrapped,
            initial_types=[(_FEATURES, tensor([None, width]))],
            zipmap=False,
            target_opset=ONNXMLTOOLS_OPSET,
        )
        return _one_input_per_column(proto, columns, dtype) if columns else proto

    return convert


def _xgboost_converter(model: Any, reference: Any) -> Converter:
    kind = str(getattr(model, "kind", ""))
    if kind not in {"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"}:
        raise _Refused(f"XGBoost {kind} models are not converted (only XGB*Classifier/Regressor)")
    booster = model.booster
    if booster.feature_types is not None and "c" in booster.feature_types:
        raise _Refused("XGBoost models with categorical features are not converted")
    onnxmltools = _optional("onnxmltools")
    types = _optional("onnxmltools.convert.common.data_types")
    columns = _numeric_columns(reference) if model.input_layout == "frame" else None
    width = _column_count(reference)

    def convert(dtype: str) -> Any:
        # onnxmltools reads features from the tree dump, where they must be "f0", "f1"...
        anonymous = booster.copy()
        anonymous.feature_names = None
        anonymous.feature_types = None
        tensor = types.DoubleTensorType if dtype == "float64" else types.FloatTensorType
        proto = onnxmltools.convert_xgboost(
            anonymous,
            initial_types=[(_FEATURES, tensor([None, width]))],
            target_opset=ONNXMLTOOLS_OPSET,
        )
        return _one_input_per_column(proto, columns, dtype) if columns else proto

    return convert


def _optional(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise _Refused(f"{package} is not installed ({INSTALL_HINT})") from exc


# --- the reference sample -------------------------------------------------------------------


def _reference_rows(sample: Any, max_rows: int) -> Any:
    total = _row_count(sample)
    if total <= max_rows:
        return sample
    step = total / max_rows
    positions = [int(i * step) for i in range(max_rows)]
    iloc = getattr(sample, "iloc", None)
    return iloc[positions] if iloc is not None else sample[positions]


def _row_count(sample: Any) -> int:
    shape = getattr(sample, "shape", None)
    if shape is None or len(shape) != 2:
        raise _Refused("the reference sample is not 2-D (a DataFrame or a 2-D array)")
    return int(shape[0])


def _column_count(sample: Any) -> int:
    return int(sample.shape[1])


def _frame_columns(sample: Any) -> list[tuple[str, bool]]:
    """``(name, is_text)`` per column of a DataFrame sample, refusing other dtypes."""
    dtypes = getattr(sample, "dtypes", None)
    if dtypes is None:
        raise _Refused("a frame-layout model needs a DataFrame sample")
    columns = []
    for name, dtype in dtypes.items():
        if not isinstance(name, str):
            raise _Refused(f"column {name!r} is not named by a string")
        kind = getattr(dtype, "kind", "O")
        if kind in "biuf":
            columns.append((name, False))
        elif kind in "OSU" or str(dtype) in {"string", "category"}:
            columns.append((name, True))
        else:
            raise _Refused(f"column {name!r} has dtype {dtype}, which ONNX inputs cannot take")
    return columns


def _numeric_columns(sample: Any) -> list[str]:
    columns = _frame_columns(sample)
    text = [name for name, is_text in columns if is_text]
    if text:
        raise _Refused(f"non-numeric columns are not converted for boosters: {text}")
    return [name for name, _ in columns]


# --- shaping the graph ----------------------------------------------------------------------


def _restore_input_names(proto: Any, columns: Sequence[str]) -> None:
    """Give skl2onnx's inputs back their column names (it rewrites them to identifiers)."""
    inputs = list(proto.graph.input)
    if len(inputs) != len(columns):
        raise _Refused(f"skl2onnx made {len(inputs)} inputs for {len(columns)} columns")
    renames = {}
    for node, column in zip(inputs, columns, strict=True):
        seed = re.sub(r"[^\w+]", "_", column)
        seed = "_" + seed if seed[:1].isdigit() else seed
        suffix = node.name[len(seed) :]
        if node.name != column and not (
            node.name.startswith(seed) and (not suffix or suffix.isdigit())
        ):
            raise _Refused(f"skl2onnx input {node.name!r} does not match column {column!r}")
        renames[node.name] = column
    _rename(proto, {old: new for old, new in renames.items() if old != new})


def _rename(proto: Any, renames: dict[str, str]) -> None:
    if not renames:
        return
    graph = proto.graph
    taken = _tensor_names(graph) - set(renames)
    clashes = sorted(set(renames.values()) & taken)
    if clashes:
        raise _Refused(f"column names clash with the graph's own names: {clashes}")
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renames.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = renames.get(name, name)


def _one_input_per_column(proto: Any, columns: Sequence[str], dtype: str) -> Any:
    """Replace the graph's one ``[None, n]`` input by ``[None, 1]`` inputs and a Concat."""
    helper = _optional("onnx.helper")
    onnx = _optional("onnx")
    graph = proto.graph
    clashes = sorted(set(columns) & _tensor_names(graph))
    if clashes:
        raise _Refused(f"column names clash with the graph's own names: {clashes}")
    (features,) = graph.input
    element = onnx.TensorProto.DOUBLE if dtype == "float64" else onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(name, element, [None, 1]) for name in columns]
    concat = helper.make_node("Concat", list(columns), [features.name], axis=1)
    del graph.input[:]
    graph.input.extend(inputs)
    graph.node.insert(0, concat)
    return proto


def _tensor_names(graph: Any) -> set[str]:
    names = {value.name for value in [*graph.input, *graph.output, *graph.initializer]}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _artifact(proto: Any, *, keep_proba: bool) -> Artifact:
    """Serialise the graph with only the outputs the native model has, batch dims open."""
    graph = proto.graph
    if not keep_proba and len(graph.output) > 1:
        # A classifier without predict_proba must not start answering with scores.
        del graph.output[1:]
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) > 0 and dims[0].HasField("dim_value"):
            dims[0].dim_param = "N"  # converters sometimes fix it to 1; ORT then warns
    from dockyard.runtimes.onnx import SUFFIX

    return Artifact(runtime="onnx", data=proto.SerializeToString(), suffix=SUFFIX)


# --- the check ------------------------------------------------------------------------------


class _Mismatch(Exception):
    def __init__(self, message: str, diff: float | None = None) -> None:
        super().__init__(message)
        self.diff = diff


@dataclass(frozen=True)
class _Outputs:
    """The native model's answers on the reference rows."""

    predictions: Any
    proba: Any
    classes: list[Any] | None

    @classmethod
    def of(cls, model: LoadedModel, reference: Any) -> _Outputs:
        import numpy as np

        proba = np.asarray(model.predict_proba(reference)) if model.has_proba else None
        classes = to_python(list(model.classes)) if model.classes is not None else None
        return cls(np.asarray(model.predict(reference)), proba, classes)


def _compare(
    expected: _Outputs,
    artifact: Artifact,
    reference: Any,
    proba_tolerance: float,
    value_tolerance: float,
) -> float | None:
    """The largest difference (``None`` for labels alone), or raise :class:`_Mismatch`."""
    import numpy as np

    from dockyard.runtimes.onnx import OnnxRuntime

    twin = OnnxRuntime().load(artifact.data, artifact.options)
    predictions = np.asarray(twin.predict(reference))
    if predictions.shape != expected.predictions.shape:
        raise _Mismatch(
            f"predictions have shape {predictions.shape}, not {expected.predictions.shape}"
        )
    if expected.classes is not None or expected.proba is not None:
        _same_labels(expected, twin, predictions)
        if expected.proba is None:
            return None
        proba = np.asarray(twin.predict_proba(reference), dtype="float64")
        if proba.shape != expected.proba.shape:
            raise _Mismatch(f"probabilities have shape {proba.shape}")
        diff = _max_abs_diff(proba, expected.proba)
        if not diff <= proba_tolerance:
            raise _Mismatch(f"probabilities differ by up to {diff:.3g}", diff)
        return diff
    native = np.asarray(expected.predictions, dtype="float64")
    diff = _max_abs_diff(np.asarray(predictions, dtype="float64"), native)
    scale = float(np.nanmax(np.abs(native))) if native.size else 0.0
    if not diff <= value_tolerance * max(scale, 1e-300):
        raise _Mismatch(f"predictions differ by up to {diff:.3g} (scale {scale:.3g})", diff)
    return diff


def _same_labels(expected: _Outputs, twin: LoadedModel, predictions: Any) -> None:
    if expected.classes is not None:
        if twin.classes is None:
            # OnnxRuntime reads labels from classifier nodes' classlabels_* attributes.
            raise _Mismatch("the ONNX graph does not name its class labels")
        classes = to_python(list(twin.classes))
        if _kinds(classes) != _kinds(expected.classes):
            raise _Mismatch(f"class labels are {classes}, not {expected.classes}")
    native = _kinds(to_python(expected.predictions))
    converted = _kinds(to_python(predictions))
    wrong = sum(a != b for a, b in zip(native, converted, strict=True))
    if wrong:
        raise _Mismatch(f"{wrong} of {len(native)} predicted labels differ")


def _kinds(values: Sequence[Any]) -> list[tuple[str, Any]]:
    """Values tagged with their kind, so that ``1``, ``1.0``, ``True`` and ``"1"`` differ."""
    tagged = []
    for value in values:
        if isinstance(value, bool):
            kind = "bool"
        elif isinstance(value, numbers.Integral):
            kind = "int"
        elif isinstance(value, numbers.Real):
            kind = "float"
        else:
            kind = type(value).__name__ if not isinstance(value, str) else "str"
        tagged.append((kind, value))
    return tagged


def _max_abs_diff(a: Any, b: Any) -> float:
    import numpy as np

    if a.size == 0:
        return 0.0
    same_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(same_nan, 0.0, np.abs(a - b))
    value = float(np.max(diff))
    return math.inf if math.isnan(value) else value


def _say(exc: BaseException) -> str:
    """An exception as a one-line reason."""
    text = " ".join(str(exc).split()) or qualified_name(exc)
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 1] + "…"
