"""Smaller ONNX graphs for the edge, and how far their answers move from the original's.

* :func:`quantize`: ``int8`` is onnxruntime's dynamic quantization (weights of ``MatMul`` /
  ``Gemm`` / ``Conv``-style nodes stored as int8, activations quantized at run time);
  ``fp16`` is onnxconverter-common's float16 conversion, inputs and outputs kept in their
  types and the ``ai.onnx.ml`` operators (trees, linear models, scalers) left in float32 with
  casts around them, since onnxruntime has no float16 kernels for them. Both compress only
  float32 tensors: a graph that is all ``ai.onnx.ml`` operators or float64 (scikit-learn's
  linear models convert in float64) comes back the same size, and the report says so.
* :func:`stamp`: ``metadata_props`` on a graph (the exported file's ref, signature, ...).
* :func:`compare`: the compressed graph's answers against the original model's on the same
  reference rows: labels that changed (the most accuracy can change on those rows), the
  largest probability difference, and for regressors the largest and mean absolute error.

onnxconverter-common is an optional dependency (the ``export`` extra), imported only for
``fp16``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidRequestError
from dockyard.runtimes._estimators import to_python
from dockyard.runtimes.base import LoadedModel

__all__ = ["QUANTIZATIONS", "Comparison", "compare", "quantize", "stamp"]

QUANTIZATIONS = ("int8", "fp16")
_DEFAULT_OPSET = 17  # the one skl2onnx targets (convert.SKLEARN_OPSETS)


def quantize(data: bytes, kind: str) -> bytes:
    """The ONNX graph ``data`` compressed as ``kind`` (``int8`` or ``fp16``)."""
    if kind == "int8":
        return _int8(data)
    if kind == "fp16":
        return _fp16(data)
    raise InvalidRequestError(
        f"Unknown quantization {kind!r}.", hint=f"Choose one of: {', '.join(QUANTIZATIONS)}."
    )


def _int8(data: bytes) -> bytes:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()  # the quantizer logs advice about pre-processing at WARNING
    level = quiet.level
    import onnx

    model = _declared_once(onnx.load_from_string(data))
    with tempfile.TemporaryDirectory(prefix="dockyard-quantize-") as work:
        source, target = Path(work) / "model.onnx", Path(work) / "model.int8.onnx"
        source.write_bytes(model.SerializeToString())
        try:
            quiet.setLevel(logging.ERROR)
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            quiet.setLevel(level)
        return target.read_bytes()


def _fp16(data: bytes) -> bytes:
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise InvalidRequestError(
            "fp16 export needs onnxconverter-common.",
            hint="pip install 'dockyard[export]'",
        ) from None
    model = _without_noop_casts(_declared_once(onnx.load_from_string(data)))
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    result: bytes = converted.SerializeToString()
    return result


def _declared_once(model: Any) -> Any:
    """``model`` with the default operator domain declared exactly once, as the quantizer
    and the float16 converter's shape inference need (converters may declare it twice, as
    ``ai.onnx``, or not at all: a graph of ai.onnx.ml operators only), and every node named
    (the float16 converter keeps nodes apart by name; unnamed ones end up half-converted)."""
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    others = [(o.domain, o.version) for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.add(domain="", version=max(default, default=_DEFAULT_OPSET))
    for domain, version in others:
        model.opset_import.add(domain=domain, version=version)
    for index, node in enumerate(model.graph.node):  # the converters tell nodes by name
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


def _without_noop_casts(model: Any) -> Any:
    """``model`` without ``Cast`` nodes from a float32 graph input to float32 (skl2onnx puts
    one first): the float16 converter leaves their target type alone, so the graph after them
    would get float32 where it now takes float16."""
    from onnx import TensorProto

    floats = {i.name for i in model.graph.input if i.type.tensor_type.elem_type == 1}
    renames: dict[str, str] = {}
    kept = []
    for node in model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        noop = node.op_type == "Cast" and to == TensorProto.FLOAT and node.input[0] in floats
        if noop and node.output[0] not in {o.name for o in model.graph.output}:
            renames[node.output[0]] = node.input[0]
        else:
            kept.append(node)
    if not renames:
        return model
    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = renames.get(name, name)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def stamp(data: bytes, properties: Mapping[str, str]) -> bytes:
    """``data`` with ``properties`` set in its ``metadata_props`` (replacing same keys)."""
    import onnx

    model = onnx.load_from_string(data)
    kept = [p for p in model.metadata_props if p.key not in properties]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in properties.items():
        model.metadata_props.add(key=key, value=value)
    result: bytes = model.SerializeToString()
    return result


@dataclass(frozen=True)
class Comparison:
    """A candidate's answers against the original's on ``rows`` reference rows.

    Classifiers: ``label_changes`` rows got another label, so accuracy on them can change by
    at most ``accuracy_change`` (``label_changes / rows``); ``max_proba_diff`` is the largest
    absolute probability difference. Regressors: ``max_abs_error`` and ``mean_abs_error``
    of the predictions, and ``relative_error``: the largest error over the largest
    prediction's magnitude.
    """

    task: str
    rows: int
    label_changes: int | None = None
    accuracy_change: float | None = None
    max_proba_diff: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    relative_error: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def compare(original: LoadedModel, candidate: LoadedModel, reference: Any) -> Comparison:
    """How ``candidate`` answers ``reference`` (the original's own input) against
    ``original``."""
    import numpy as np

    expected = np.asarray(original.predict(reference))
    got = np.asarray(candidate.predict(reference))
    rows = len(expected)
    if original.classes is not None or original.has_proba:
        changed = sum(a != b for a, b in zip(to_python(expected), to_python(got), strict=True))
        proba_diff = None
        if original.has_proba and candidate.has_proba:
            native = np.asarray(original.predict_proba(reference), dtype="float64")
            twin = np.asarray(candidate.predict_proba(reference), dtype="float64")
            proba_diff = float(np.max(np.abs(native - twin))) if native.size else 0.0
        return Comparison(
            "classification",
            rows,
            label_changes=int(changed),
            accuracy_change=changed / rows if rows else 0.0,
            max_proba_diff=proba_diff,
        )
    error = np.abs(np.asarray(got, dtype="float64") - np.asarray(expected, dtype="float64"))
    scale = float(np.max(np.abs(expected))) if rows else 0.0
    largest = float(np.max(error)) if rows else 0.0
    return Comparison(
        "regression",
        rows,
        max_abs_error=largest,
        mean_abs_error=float(np.mean(error)) if rows else 0.0,
        relative_error=largest / scale if scale else largest,
    )
