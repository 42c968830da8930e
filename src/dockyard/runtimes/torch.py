"""PyTorch models as TorchScript archives (``.pt``), run on the CPU.

TorchScript keeps a module's code as TorchScript source inside a zip archive, and
``torch.jit.load`` rebuilds it without running arbitrary Python, so no trust is needed.
A plain ``nn.Module`` has no such form: script or trace it first. A ``torch.save`` file is a
pickle in a zip archive and is refused unless ``trusted=True``; even then only a
TorchScript module inside it can be stored. ``options`` is empty.

Needs the optional extra: ``pip install 'dockyard[torch]'``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dockyard.errors import (
    ModelLoadError,
    UnreadableFileError,
    UnsupportedModelError,
    UntrustedModelError,
)
from dockyard.runtimes._estimators import mro_names, no_proba, qualified_name
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, InputLayout, LoadedModel

SUFFIX = ".pt"
FILE_SUFFIXES = frozenset({".pt", ".pth", ".ptc"})
_SCRIPT_HINT = (
    "Convert it to TorchScript first: torch.jit.script(model) or "
    "torch.jit.trace(model, example_input), then register that."
)


class TorchRuntime:
    """TorchScript modules (``torch.jit.ScriptModule``)."""

    name = "torch"

    def handles(self, obj: object) -> bool:
        # Every nn.Module, so that a plain one gets a clear "script it first" error.
        return "torch.nn.modules.module.Module" in mro_names(obj)

    def dump(self, obj: object, *, trusted: bool = False) -> Artifact:
        torch = require("torch", extra="torch", error=UnsupportedModelError)
        if not isinstance(obj, torch.jit.ScriptModule):
            raise UnsupportedModelError(
                f"A plain {qualified_name(obj)} cannot be stored without pickling its code.",
                hint=_SCRIPT_HINT,
            )
        buffer = io.BytesIO()
        torch.jit.save(obj, buffer)
        return Artifact(runtime=self.name, data=buffer.getvalue(), suffix=SUFFIX)

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in FILE_SUFFIXES and zipfile.is_zipfile(path)

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise UnreadableFileError(f"Cannot read {path}: {exc}") from exc
        if _is_torchscript(names):
            data = path.read_bytes()
            self.load(data, {})  # fails early on a broken archive
            return Artifact(runtime=self.name, data=data, suffix=SUFFIX)
        if not any(name.endswith("data.pkl") for name in names):
            raise UnreadableFileError(f"{path} is neither a TorchScript nor a torch.save file.")
        if not trusted:
            raise UntrustedModelError(
                f"{path} was written by torch.save, which pickles: loading it can run any "
                "code it contains.",
                hint="Save a TorchScript module instead (torch.jit.script(model).save(path)), "
                "or pass trusted=True (CLI: --trusted) if you trust where it came from.",
            )
        torch = require("torch", extra="torch", error=UnsupportedModelError)
        obj = torch.load(path, map_location="cpu", weights_only=False)
        return replace(self.dump(obj, trusted=True), trusted_types=("pickle",))

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        torch = require("torch", extra="torch")
        try:
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError subclasses of many kinds
            raise ModelLoadError(f"torch could not load the TorchScript archive: {exc}") from exc
        module.eval()
        return TorchModel(module)

    def environment(self) -> dict[str, str]:
        return versions("torch", "numpy")


def _is_torchscript(names: Sequence[str]) -> bool:
    return any(name.endswith("constants.pkl") or "/code/" in name for name in names)


@dataclass(frozen=True)
class TorchModel:
    """A TorchScript module in eval mode, fed float32 tensors."""

    module: Any
    runtime: str = "torch"
    input_layout: InputLayout = "array"
    feature_names: Sequence[str] | None = None
    classes: Sequence[Any] | None = None
    has_proba: bool = False

    def predict(self, x: Any) -> Any:
        import numpy as np
        import torch

        with torch.inference_mode():
            # torch.tensor copies: pandas hands out read-only arrays torch will not wrap.
            output = self.module(torch.tensor(np.asarray(x, dtype=np.float32)))
        if isinstance(output, tuple | list):
            output = output[0]
        return output.detach().cpu().numpy()

    def predict_proba(self, x: Any) -> Any:
        raise no_proba(self.runtime)

    def metadata(self) -> dict[str, Any]:
        return {
            "module": str(self.module.original_name),
            "parameters": int(sum(p.numel() for p in self.module.parameters())),
        }
