"""Dockyard: take machine-learning models to production and keep them healthy there.

Importing this package is cheap: the registry, the frameworks and the database driver load
on first use (a test holds this).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard._version import __version__
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.api import load, register, score
    from dockyard.registry import Registry, Version
    from dockyard.registry.loaded import RegisteredModel
    from dockyard.settings import Settings

__all__ = [
    "DockyardError",
    "RegisteredModel",
    "Registry",
    "Settings",
    "Version",
    "__version__",
    "load",
    "register",
    "score",
]

_LAZY = {
    "load": "dockyard.api",
    "register": "dockyard.api",
    "score": "dockyard.api",
    "Registry": "dockyard.registry",
    "Version": "dockyard.registry",
    "RegisteredModel": "dockyard.registry.loaded",
    "Settings": "dockyard.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
