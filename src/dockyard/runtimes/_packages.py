"""Which framework packages are installed, and importing them on demand.

Runtimes call :func:`require` inside their methods, never at module level, so that importing
:mod:`dockyard.runtimes` stays cheap and a missing optional framework only matters once a
model of its kind is used.
"""

from __future__ import annotations

import importlib
import platform
from importlib import metadata
from types import ModuleType

from dockyard.errors import DockyardError, ModelLoadError


def require(
    module: str, *, extra: str | None = None, error: type[DockyardError] = ModelLoadError
) -> ModuleType:
    """Import ``module`` or raise ``error`` saying how to install it.

    ``extra`` names the ``dockyard[...]`` extra that provides the package; without one the
    package is a core dependency and the hint says to reinstall Dockyard.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        hint = (
            f"Install it with: pip install 'dockyard[{extra}]'"
            if extra
            else "Reinstall Dockyard: pip install --force-reinstall dockyard"
        )
        raise error(f"The {package} package is not installed ({exc}).", hint=hint) from exc


def versions(*packages: str) -> dict[str, str]:
    """``{"python": "3.11.9", package: version, ...}`` for the installed ``packages``.

    Reads installed distribution metadata only; nothing is imported. Packages that are not
    installed are left out.
    """
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found
