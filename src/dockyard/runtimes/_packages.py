"""Which framework packages are installed, and importing them on demand.

Runtimes call :func:`require` inside their methods, never at module level, so that importing
:mod:`dockyard.runtimes` stays cheap and a missing optional framework only matters once a
model of its kind is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import platform
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from importlib.machinery import ModuleSpec
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


@contextmanager
def refusing_imports(packages: Iterable[str]) -> Iterator[None]:
    """While inside, imports of the top-level ``packages`` fail with ``ImportError`` — in
    this thread only, and only for those not imported already.

    For importing a library that imports more than it needs (see
    :func:`dockyard.runtimes.sklearn.skops_io`): code that treats the refused packages as
    optional skips them, and since nothing of theirs runs, nothing is left half-imported.
    Other threads import as usual meanwhile.
    """
    refused = frozenset(name for name in packages if name not in sys.modules)
    finder = _Refuser(refused, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _Refuser(importlib.abc.MetaPathFinder):
    def __init__(self, refused: frozenset[str], thread: int) -> None:
        self.refused = refused
        self.thread = thread

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.refused and threading.get_ident() == self.thread:
            raise ImportError(f"{fullname} is not imported here", name=fullname)
        return None
