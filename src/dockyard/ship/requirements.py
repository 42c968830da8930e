"""The pinned requirements of an image: what this Dockyard needs to serve some versions.

The policy, in order:

1. **Roots.** Dockyard's own dependencies, plus the extras the served runtimes need and
   nothing else (a forest never pulls torch), plus the storage extras a shared registry
   needs (``psycopg`` for PostgreSQL, ``s3fs`` for S3).
2. **Closure.** Every package those roots need, walked through the installed
   distributions' metadata with markers evaluated for this interpreter and platform, so
   the image installs the set of packages known to work together here.
3. **Pins.** Each at the version the served versions recorded in their environment
   (the packages their models were trained and registered with), else at the version
   installed here. Dockyard itself is not a requirement: the image carries this exact
   code (:mod:`dockyard.ship.context`), so its version is the one running now.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from dockyard.errors import InvalidRequestError

RUNTIME_EXTRAS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "torch": "torch"}
"""The Dockyard extra a runtime's models need (the other runtimes ship with the core)."""

NOT_PINNED = frozenset({"dockyard", "pip", "setuptools", "wheel"})


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    source: str
    """``recorded`` (a served version's environment) or ``installed`` (this machine)."""

    def line(self) -> str:
        return f"{self.name}=={self.version}"


def extras_for(runtimes: Iterable[str], *, postgres: bool = False, s3: bool = False) -> set[str]:
    """Dockyard's extras for models of ``runtimes`` and the shared stores in use."""
    extras = {RUNTIME_EXTRAS[r] for r in runtimes if r in RUNTIME_EXTRAS}
    if postgres:
        extras.add("postgres")
    if s3:
        extras.add("s3")
    return extras


def pinned(extras: Iterable[str], recorded: Mapping[str, str]) -> list[Pin]:
    """Every package Dockyard with ``extras`` needs here, pinned (see the module docstring),
    sorted by name. ``recorded`` maps package names to the versions the served models
    recorded (``python`` among them is the interpreter, not a package)."""
    wanted = {
        canonicalize_name(name): version for name, version in recorded.items() if name != "python"
    }
    try:
        own = metadata.requires("dockyard") or []
    except metadata.PackageNotFoundError:
        raise InvalidRequestError(
            "Dockyard is not installed as a package here, so its requirements are unknown.",
            hint="Install it (pip install dockyard, or pip install -e . in a checkout) and "
            "build again.",
        ) from None
    pins: dict[str, _Seen] = {}
    queue: list[tuple[Requirement, frozenset[str]]] = [
        (Requirement(text), frozenset(extras)) for text in own
    ]
    while queue:
        requirement, active = queue.pop()
        if not _applies(requirement, active):
            continue
        name = canonicalize_name(requirement.name)
        if name in NOT_PINNED:
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise InvalidRequestError(
                f"{requirement.name} is needed in the image but is not installed here, so "
                "its version cannot be pinned.",
                hint=f"pip install '{requirement}' and build again.",
            ) from None
        chosen = requirement.extras - pins[name].extras if name in pins else requirement.extras
        if name not in pins:
            source = "recorded" if name in wanted else "installed"
            version = wanted.get(name, distribution.version)
            pins[name] = _Seen(name, version, source, set(requirement.extras))
        elif not chosen:
            continue
        else:
            pins[name].extras.update(chosen)
        queue.extend(
            (Requirement(text), frozenset(requirement.extras))
            for text in distribution.requires or []
        )
    return sorted((Pin(p.name, p.version, p.source) for p in pins.values()), key=lambda p: p.name)


@dataclass
class _Seen:
    name: str
    version: str
    source: str
    extras: set[str]


def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    marker = requirement.marker
    return any(marker.evaluate({"extra": extra}) for extra in {"", *extras})
