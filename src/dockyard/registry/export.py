"""Exporting a version as one standalone ONNX file (``dockyard export``), optionally
compressed for the edge, with a report of what compression cost on its reference rows.

The graph is the version's ONNX twin when it has one (already proven equivalent at
registration), the artifact itself for an ONNX version, else a fresh conversion, which must
pass the same equivalence check (:func:`~dockyard.runtimes.convert.convert_to_onnx`). The file
names its version in ``metadata_props`` (``dockyard.ref``, ``dockyard.model``,
``dockyard.version``, ``dockyard.digest``: the native artifact's sha256) with its signature
(``dockyard.signature``, JSON) and compression (``dockyard.quantization``), so whoever holds
it can tell what it is and what it takes. The report compares the exported graph's answers
with the native model's on the version's reference rows (the examples kept from its
registration sample).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.errors import DockyardError, InvalidRequestError, UnsupportedModelError

if TYPE_CHECKING:
    from dockyard.registry.service import Registry
    from dockyard.runtimes.compress import Comparison

__all__ = ["Export", "export_onnx"]

FORMATS = ("onnx",)


@dataclass(frozen=True)
class Export:
    """An exported file's bytes and the report on them."""

    data: bytes
    ref: str
    quantization: str | None
    source: str
    """``twin`` (the registered ONNX twin), ``artifact`` (an ONNX version) or ``converted``."""
    native_size: int
    onnx_size: int
    comparison: Comparison

    def report(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "format": "onnx",
            "quantization": self.quantization,
            "source": self.source,
            "size": len(self.data),
            "onnx_size": self.onnx_size,
            "native_size": self.native_size,
            "size_ratio": len(self.data) / self.onnx_size if self.onnx_size else None,
            **self.comparison.to_dict(),
        }


def export_onnx(
    registry: Registry, ref: str, *, quantization: str | None = None, format: str = "onnx"
) -> Export:
    """Export ``ref`` as a standalone ONNX file, compressed as ``quantization`` (``int8``,
    ``fp16``) if given, checked on the version's reference rows."""
    from dockyard.runtimes.compress import QUANTIZATIONS, compare, quantize, stamp
    from dockyard.runtimes.onnx import OnnxRuntime

    if format not in FORMATS:
        raise InvalidRequestError(
            f"Unknown export format {format!r}.", hint=f"Formats: {', '.join(FORMATS)}."
        )
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise InvalidRequestError(
            f"Unknown quantization {quantization!r}.",
            hint=f"Choose one of: {', '.join(QUANTIZATIONS)}.",
        )
    version = registry.get_version(ref)
    registered = registry.load(version.ref)
    examples = (registry.get_profile(version.ref) or {}).get("examples") or []
    if not examples:
        raise InvalidRequestError(
            f"{version.ref} has no reference rows to check an export on.",
            hint="Register the version with a sample (sample=...).",
        )
    reference = registered.validate(examples).data
    plain, source = _onnx_graph(registry, version.ref, registered.model, reference)
    properties = {
        "dockyard.ref": version.ref,
        "dockyard.model": version.model,
        "dockyard.version": version.version,
        "dockyard.digest": version.digest,
        "dockyard.quantization": quantization or "none",
    }
    if version.signature is not None:
        properties["dockyard.signature"] = json.dumps(dict(version.signature), sort_keys=True)
    data = stamp(plain, properties)
    onnx_size = len(data)  # the uncompressed file, stamped the same: the size to beat
    if quantization is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = stamp(quantize(plain, quantization), properties)
    try:
        exported = OnnxRuntime().load(data, {})
    except DockyardError as exc:
        raise UnsupportedModelError(
            f"{version.ref} compressed as {quantization} is a graph onnxruntime rejects: {exc}",
            hint="Export it without --quantize, or with the other quantization.",
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comparison = compare(registered.model, exported, reference)
    return Export(data, version.ref, quantization, source, version.size, onnx_size, comparison)


def _onnx_graph(registry: Registry, ref: str, model: Any, reference: Any) -> tuple[bytes, str]:
    version = registry.get_version(ref)
    twin = version.accelerated or {}
    if twin.get("digest"):
        return registry.artifacts.get(str(twin["digest"])), "twin"
    if version.runtime == "onnx":
        return registry.artifacts.get(version.digest), "artifact"
    from dockyard.runtimes.convert import convert_to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conversion = convert_to_onnx(model, reference)
    if conversion.artifact is None:
        raise UnsupportedModelError(
            f"{ref} does not convert to ONNX: {conversion.reason}",
            hint="Only scikit-learn, XGBoost and LightGBM models that convert and answer "
            "identically export.",
        )
    return conversion.artifact.data, "converted"
