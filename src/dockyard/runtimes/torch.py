"""PyTorch models as TorchScript archives (``.pt``), run on the CPU.

TorchScript keeps a module's code as TorchScript source inside a zip archive. That code
runs no arbitrary Python, but it is still code: ``torch.from_file`` alone reads and writes
any file. So an archive is stored and loaded without ``trusted=True`` only when
:mod:`dockyard.runtimes.torch_ops` proves, before any of its code runs, that it defines no
``__setstate__`` (run by ``torch.jit.load``) and uses only allow-listed operators; otherwise
trust is needed and :attr:`Artifact.trusted_types` records why (``torchscript:aten::from_file``).
Loading screens again unless the version was registered with trust.

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
    DockyardError,
    ModelLoadError,
    UnreadableFileError,
    UnsupportedModelError,
    UntrustedModelError,
)
from dockyard.runtimes._errors import framework_message
from dockyard.runtimes._estimators import mro_names, no_proba, qualified_name
from dockyard.runtimes._packages import require, versions
from dockyard.runtimes.base import Artifact, LoadedModel
from dockyard.runtimes.torch_ops import ArchiveError, screen_archive, unlisted_ops
from dockyard.schema.layout import InputLayout

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
        return self._artifact(buffer.getvalue(), trusted=trusted, error=UnsupportedModelError)

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in FILE_SUFFIXES and zipfile.is_zipfile(path)

    def read(self, path: Path, *, trusted: bool = False) -> Artifact:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as exc:
            raise UnreadableFileError(f"Cannot read {path}: {exc}") from exc
        if _is_torchscript(names):
            return self._artifact(path.read_bytes(), trusted=trusted, error=UnreadableFileError)
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
        artifact = self.dump(obj, trusted=True)
        return replace(artifact, trusted_types=("pickle", *artifact.trusted_types))

    def load(
        self, data: bytes, options: Mapping[str, Any], *, trusted: bool = False
    ) -> LoadedModel:
        torch = require("torch", extra="torch")
        if trusted:
            module = _jit_load(torch, data, error=ModelLoadError)
        else:
            module, needing_trust = _screened_load(torch, data, error=ModelLoadError)
            if needing_trust:
                raise _untrusted("This TorchScript model", needing_trust)
        module.eval()
        return TorchModel(module)

    def environment(self) -> dict[str, str]:
        return versions("torch", "numpy")

    def _artifact(self, data: bytes, *, trusted: bool, error: type[DockyardError]) -> Artifact:
        """``data`` as an artifact, refused without trust unless it passes the screening.

        Loads the archive once (so a broken one fails here), never running its code before
        the screening says it may, or trust is given.
        """
        torch = require("torch", extra="torch", error=error)
        module, needing_trust = _screened_load(torch, data, error=error)
        if needing_trust and not trusted:
            raise _untrusted("This TorchScript model", needing_trust)
        if module is None:  # it defines __setstate__: load (trusted) for the remaining ops
            needing_trust += unlisted_ops(_jit_load(torch, data, error=error))
        return Artifact(
            runtime=self.name,
            data=data,
            suffix=SUFFIX,
            trusted_types=tuple(f"torchscript:{reason}" for reason in needing_trust),
        )


def _screened_load(torch: Any, data: bytes, *, error: type[DockyardError]) -> tuple[Any, list[str]]:
    """The module and what in it needs trust, running none of its code.

    With a ``__setstate__`` method the archive is not loaded (that would run it): the module
    is ``None`` and the list names the method.
    """
    try:
        screened, runs_at_load = screen_archive(data)
    except ArchiveError as exc:
        raise error(f"Not a readable TorchScript archive: {framework_message(exc)}") from exc
    if runs_at_load:
        return None, runs_at_load
    module = _jit_load(torch, screened, error=error)
    return module, unlisted_ops(module)


def _jit_load(torch: Any, data: bytes, *, error: type[DockyardError]) -> Any:
    try:
        return torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError subclasses of many kinds
        raise error(
            f"torch could not load the TorchScript archive: {framework_message(exc)}"
        ) from exc


def _untrusted(what: str, needing_trust: Sequence[str]) -> UntrustedModelError:
    return UntrustedModelError(
        f"{what} uses operations Dockyard runs only with trust: "
        f"{', '.join(needing_trust)}. TorchScript is code, and operators off the allow-list "
        "(or a __setstate__ method, which runs while loading) can reach files, processes or "
        "the network.",
        hint="Script the model without them, or pass trusted=True (CLI: --trusted) if you "
        "trust where it came from; the trust is recorded on the version and its event. The "
        "operators allowed without trust are listed in dockyard/runtimes/torch_ops.py.",
        details={"operators": list(needing_trust)},
    )


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
