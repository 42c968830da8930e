"""ONNX models (``.onnx``), run with onnxruntime on the CPU.

ONNX graphs are data, not code, so they need no trust. ``options`` is empty: everything
loading needs is in the model bytes. How inputs and outputs are read:

* one input: ``array`` layout, the 2-D array is cast to the input's element type;
* several inputs (skl2onnx's one-input-per-column ``[None, 1]`` style): ``frame`` layout,
  each DataFrame column is fed to the input of the same name, cast to its type;
* the first output is the prediction (``[n, 1]`` flattened to ``[n]``);
* probabilities are the output whose name contains ``prob``, else a 2-D float second
  output; ZipMap's list of ``{label: probability}`` becomes a 2-D array in class order;
* class labels come from the ``ZipMap`` or ``*Classifier`` node's ``classlabels_*``.

A model must be self-contained. ONNX lets a tensor keep its bytes in an external file
(``external_data``'s ``location``), which onnxruntime reads relative to the model's folder
— for a model handed over as bytes, the server's working directory — so a crafted model
would serve any file there back as its outputs. A version's stored artifact set is the one
model blob and nothing else, so no external location can be inside it: every tensor with
external data (initializers, sparse initializers, attribute tensors, in subgraphs and
functions alike) is refused, before onnxruntime sees the bytes, at registration and at load.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from dockyard.errors import (
    DockyardError,
    ModelLoadError,
    SchemaValidationError,
    UnreadableFileError,
    UnsupportedModelError,
)
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import mro_names, no_proba
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, LoadedModel
from dockyard.schema.layout import InputLayout

SUFFIX = ".onnx"
_LABEL_ATTRIBUTES = frozenset({"classlabels_strings", "classlabels_int64s", "classlabels_ints"})
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint64)": "uint64",
    "tensor(uint32)": "uint32",
    "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


@dataclass(frozen=True)
class ModelFacts:
    """What Dockyard reads from an ONNX model's graph (onnxruntime does not expose nodes)."""

    opsets: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    class_labels: list[Any] | None = None


def read_model_facts(data: bytes) -> ModelFacts:
    """Opset per domain, producer and classifier labels, parsed with the ``onnx`` package.

    Labels come from the ``ZipMap`` node when there is one, else from the last node with a
    ``classlabels_*`` attribute (``LinearClassifier``, ``TreeEnsembleClassifier``...).
    """
    return _facts_of(_parse(data))


def _facts_of(model: Any) -> ModelFacts:
    labels: list[Any] | None = None
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name not in _LABEL_ATTRIBUTES:
                continue
            if attribute.name == "classlabels_strings":
                labels = [value.decode("utf-8", "replace") for value in attribute.strings]
            else:
                labels = [int(value) for value in attribute.ints]
        if labels is not None and node.op_type == "ZipMap":
            break
    return ModelFacts(
        opsets={entry.domain: int(entry.version) for entry in model.opset_import},
        producer=str(model.producer_name),
        class_labels=labels,
    )


def external_data(data: bytes) -> list[tuple[str, str]]:
    """``(tensor name, location)`` for every tensor in the model whose bytes live elsewhere.

    Parses without loading external data, and looks everywhere a tensor can be: graph
    initializers and sparse initializers, tensors in node attributes, and the graphs nested
    in attributes (``If``/``Loop`` bodies) and in model-local functions.
    """
    return _external_of(_parse(data))


def _external_of(model: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    _external_in_graph(model.graph, found)
    for function in model.functions:
        _external_in_nodes(function.node, found)
    return found


def _parse(data: bytes) -> Any:
    """The model's ``ModelProto``; ``ValueError`` when the bytes are not one."""
    try:
        return _model_proto().FromString(data)
    except Exception as exc:  # DecodeError and friends
        raise ValueError(str(exc) or type(exc).__name__) from exc


@functools.cache
def _model_proto() -> Any:
    """``onnx.ModelProto`` without ``import onnx`` where possible.

    Reading labels, opsets and external-data locations needs only the protobuf message
    class, but ``import onnx`` also loads its operator schemas, checker, helpers and
    ``ml_dtypes``: ~12 MiB of a serving process that never uses them (against ~2 MiB for the
    message classes; ``benchmarks/RESULTS.md``, start and memory). So the package's own
    generated module (``onnx/onnx_ml_pb2.py``, what ``onnx.ModelProto`` is) is loaded from
    where the package is installed, without running the package's ``__init__``. Where onnx
    is already imported, or its layout differs, it is ``onnx.ModelProto`` itself."""
    if "onnx" in sys.modules:
        return sys.modules["onnx"].ModelProto
    package = importlib.util.find_spec("onnx")
    folders = package.submodule_search_locations if package is not None else None
    generated = Path(next(iter(folders)), "onnx_ml_pb2.py") if folders else None
    module_spec = (
        importlib.util.spec_from_file_location("dockyard.runtimes._onnx_ml_pb2", generated)
        if generated is not None and generated.is_file()
        else None
    )
    if module_spec is None or module_spec.loader is None:  # require says how to install it
        return require("onnx").ModelProto
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.ModelProto


def _external_in_graph(graph: Any, found: list[tuple[str, str]]) -> None:
    for tensor in graph.initializer:
        _external_tensor(tensor, found)
    for sparse in graph.sparse_initializer:
        _external_tensor(sparse.values, found)
        _external_tensor(sparse.indices, found)
    _external_in_nodes(graph.node, found)


def _external_in_nodes(nodes: Any, found: list[tuple[str, str]]) -> None:
    for node in nodes:
        for attribute in node.attribute:
            tensors = [attribute.t, *attribute.tensors]
            for sparse in [attribute.sparse_tensor, *attribute.sparse_tensors]:
                tensors += [sparse.values, sparse.indices]
            for tensor in tensors:
                _external_tensor(tensor, found)
            for graph in [attribute.g, *attribute.graphs]:
                _external_in_graph(graph, found)


def _external_tensor(tensor: Any, found: list[tuple[str, str]]) -> None:
    external = tensor.data_location == 1  # TensorProto.EXTERNAL
    if not (external or len(tensor.external_data)):
        return
    entries = {entry.key: entry.value for entry in tensor.external_data}
    found.append((str(tensor.name), str(entries.get("location", ""))))


def _parse_refusing_external(data: bytes, *, error: type[DockyardError]) -> Any:
    """The model's ``ModelProto``, parsed once for every check and fact read at load;
    ``error`` when the bytes are not a model or keep tensors in files outside it."""
    try:
        model = _parse(data)
    except ValueError as exc:
        raise error(f"Not a well-formed ONNX model: {framework_message(exc)}") from exc
    external = _external_of(model)
    if external:
        raise error(
            "The ONNX model keeps tensor data in files outside the model, which Dockyard "
            "does not read: "
            + ", ".join(f"{name!r} in {location!r}" for name, location in external[:10])
            + ".",
            hint="Save the model with its weights inside: onnx.save_model(onnx.load(path), "
            "out, save_as_external_data=False) (models under 2 GB), then register that.",
            details={"external_data": list(dict.fromkeys(loc for _, loc in external))},
        )
    return model


class OnnxRuntime:
    """ONNX models through onnxruntime's CPU execution provider.

    ``intra_op_threads`` bounds the threads one inference uses (default: up to 4), so that
    several models and server workers on one machine do not oversubscribe its cores.
    """

    name = "onnx"

    def __init__(self, *, intra_op_threads: int | None = None) -> None:
        self.intra_op_threads = intra_op_threads or min(4, os.cpu_count() or 1)

    def handles(self, obj: object) -> bool:
        return any(
            name.startswith("onnx.") and name.endswith(".ModelProto") for name in mro_names(obj)
        )

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        data = bytes(obj.SerializeToString())  # type: ignore[attr-defined]
        self._session(data, error=UnsupportedModelError)
        return Artifact(runtime=self.name, data=data, suffix=SUFFIX)

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() == SUFFIX

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableFileError(f"Cannot read {path}: {exc}") from exc
        self._session(data, error=UnreadableFileError)
        return Artifact(runtime=self.name, data=data, suffix=SUFFIX)

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        return OnnxModel(*self._session(data, error=ModelLoadError))

    def environment(self) -> dict[str, str]:
        return versions("onnxruntime", "onnx", "numpy")

    def _session(self, data: bytes, *, error: type[DockyardError]) -> tuple[Any, ModelFacts]:
        """An inference session for ``data`` and the facts read from its graph, which is
        parsed once (and let go before onnxruntime builds the session)."""
        facts = _facts_of(_parse_refusing_external(data, error=error))
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise error(f"onnxruntime cannot load the model: {framework_message(exc)}") from exc
        return session, facts


@dataclass(frozen=True)
class OnnxModel:
    """A loaded ONNX model: an inference session and facts read from its bytes."""

    session: Any
    facts: ModelFacts
    runtime: str = "onnx"
    _calls: _Calls = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_calls", _Calls.of(self.session))

    @property
    def input_layout(self) -> InputLayout:
        return "array" if len(self._calls.inputs) == 1 else "frame"

    @property
    def feature_names(self) -> Sequence[str] | None:
        if self.input_layout == "array":
            return None
        return [name for name, _, _, _ in self._calls.inputs]

    @property
    def classes(self) -> Sequence[Any] | None:
        return self.facts.class_labels

    @property
    def has_proba(self) -> bool:
        return self._calls.proba is not None

    def predict(self, x: Any) -> Any:
        import numpy as np

        calls = self._calls
        result = np.asarray(self.session.run([calls.label], self._feeds(x), calls.options)[0])
        if result.ndim == 2 and result.shape[1] == 1:
            return result.reshape(-1)
        return result

    def predict_proba(self, x: Any) -> Any:
        import numpy as np

        calls = self._calls
        if calls.proba is None:
            raise no_proba(self.runtime)
        result = self.session.run([calls.proba], self._feeds(x), calls.options)[0]
        if not isinstance(result, list):
            return np.asarray(result)
        return self._unzipped(result)

    def predict_with_proba(self, x: Any) -> tuple[Any, Any]:
        """Predictions and probabilities from ONE session run (the serving hot path)."""
        import numpy as np

        calls = self._calls
        if calls.proba is None:
            return self.predict(x), None
        labels, probabilities = self.session.run(calls.both, self._feeds(x), calls.options)
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.reshape(-1)
        if isinstance(probabilities, list):
            return labels, self._unzipped(probabilities)
        return labels, np.asarray(probabilities)

    def metadata(self) -> dict[str, Any]:
        opsets = self.facts.opsets
        return {
            "opset": opsets.get("", opsets.get("ai.onnx")),
            "opsets": dict(opsets),
            "producer": self.facts.producer,
            "inputs": [_describe(node) for node in self.session.get_inputs()],
            "outputs": [_describe(node) for node in self.session.get_outputs()],
        }

    def _unzipped(self, rows: list[dict[Any, float]]) -> Any:
        """ZipMap's ``{label: probability}`` per row as a 2-D array, in the class order."""
        import numpy as np

        labels = self.facts.class_labels or (list(rows[0]) if rows else [])
        return np.array([[row[label] for label in labels] for row in rows], self._calls.zipped)

    def _feeds(self, x: Any) -> dict[str, Any]:
        import numpy as np

        inputs = self._calls.inputs
        if len(inputs) == 1:
            ((name, dtype, node_type, _),) = inputs
            return {name: np.asarray(x, dtype=dtype or _unfed(name, node_type))}
        feeds = {}
        for name, dtype, node_type, two_d in inputs:
            try:
                column = x[name]
            except (KeyError, IndexError, TypeError) as exc:
                raise SchemaValidationError(
                    f"The model wants a column named {name!r}.",
                    hint="Pass a DataFrame with one column per model input.",
                ) from exc
            values = np.asarray(column, dtype=dtype or _unfed(name, node_type))
            feeds[name] = values.reshape(-1, 1) if two_d else values
        return feeds


class _Calls(NamedTuple):
    """What every call of one session asks of it, read once when it loads: its inputs
    (name, numpy type or ``None`` where Dockyard cannot feed it, the ONNX type, and whether
    it is 2-D), its outputs' names (the prediction; the probabilities, if any; both) and
    the type ZipMap's probabilities become, and the run's options. ``run`` without options
    builds default ones in every call; these are only read during a run (a ``const``
    argument of onnxruntime's ``Run``), so concurrent runs share them."""

    inputs: tuple[tuple[str, Any, str, bool], ...]  # Any: numpy.dtype | None
    label: str
    proba: str | None
    both: list[str]
    zipped: str
    options: Any

    @classmethod
    def of(cls, session: Any) -> _Calls:
        ort = require("onnxruntime")
        inputs = tuple(
            (node.name, _numpy_type(node.type), node.type, len(node.shape) == 2)
            for node in session.get_inputs()
        )
        outputs = session.get_outputs()
        proba = _proba_output(outputs)
        label = outputs[0].name
        zipped = "float32"
        if proba is not None and not proba.type.endswith("tensor(float)))"):
            zipped = "float64"
        both = [label] if proba is None else [label, proba.name]
        name = None if proba is None else proba.name
        return cls(inputs, label, name, both, zipped, ort.RunOptions())


def _proba_output(outputs: Sequence[Any]) -> Any:
    """The output of the probabilities: the first after the prediction whose name has
    ``prob``, else a 2-D float second output; ``None`` when there is none."""
    for output in outputs[1:]:
        if "prob" in output.name.lower():
            return output
    if (
        len(outputs) > 1
        and outputs[1].type in {"tensor(float)", "tensor(double)"}
        and len(outputs[1].shape) == 2
    ):
        return outputs[1]
    return None


def _numpy_type(node_type: str) -> Any:
    """The numpy type fed to an input of ONNX type ``node_type`` (a ``numpy.dtype``: cheaper
    to convert to than its name); ``None`` where Dockyard has none."""
    import numpy as np

    name = _DTYPES.get(node_type)
    return None if name is None else np.dtype(name)


def _unfed(name: str, node_type: str) -> NoReturn:
    """Refuses an input Dockyard has no numpy type for: such a model loads, and says so
    when it is called."""
    raise UnsupportedModelError(
        f"The model's input {name!r} has type {node_type}, which Dockyard cannot feed.",
        hint="Export the model with inputs of a numeric, bool or string tensor type.",
    )


def _describe(node: Any) -> dict[str, Any]:
    return {"name": node.name, "type": node.type, "shape": list(node.shape)}
