"""The Open Inference Protocol's metadata bodies: the server's (``GET /v2``) and a model's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.server.protocols.v2.tensors import (
    DATATYPES,
)

__all__ = ["model_metadata", "server_metadata"]

_EXTENSIONS = ("binary_tensor_data",)


def model_metadata(
    *,
    name: str,
    versions: Sequence[str],
    platform: str,
    inputs: Sequence[tuple[str, str, list[int]]],
    outputs: Sequence[tuple[str, str, list[int]]],
) -> dict[str, Any]:
    """The model metadata body: each tensor as ``(name, datatype, shape)``, ``-1`` = any size."""
    metadata: dict[str, Any] = {"name": name}
    if versions:
        metadata["versions"] = list(versions)
    metadata["platform"] = platform
    metadata["inputs"] = [_tensor_metadata(*tensor) for tensor in inputs]
    metadata["outputs"] = [_tensor_metadata(*tensor) for tensor in outputs]
    return metadata


def _tensor_metadata(name: str, datatype: str, shape: list[int]) -> dict[str, Any]:
    if datatype not in DATATYPES:
        raise ValueError(f"Tensor {name!r} has unknown datatype {datatype!r}.")
    if any(dim < -1 for dim in shape):
        raise ValueError(f"Tensor {name!r} has shape {shape}; use -1 for a variable dimension.")
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def server_metadata(*, name: str, version: str) -> dict[str, Any]:
    """The server metadata body (``GET /v2``)."""
    return {"name": name, "version": version, "extensions": list(_EXTENSIONS)}
