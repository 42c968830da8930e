"""Semantic versions (https://semver.org): parsing, ordering and bumping. Pure code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from dockyard.errors import InvalidVersionError
from dockyard.names import MAX_VERSION_CHARS, shown

Bump = Literal["major", "minor", "patch"]
BUMPS: tuple[Bump, ...] = ("major", "minor", "patch")

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?",
    re.ASCII,
)
_MAX_PART = 2**31 - 1


@dataclass(frozen=True, order=False)
class SemVer:
    """``MAJOR.MINOR.PATCH[-PRERELEASE]``; build metadata is refused (it does not order)."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = (
            _SEMVER.fullmatch(text)
            if isinstance(text, str) and len(text) <= MAX_VERSION_CHARS
            else None
        )
        if match is None:
            raise InvalidVersionError(
                f"{shown(text)} is not a semantic version of at most {MAX_VERSION_CHARS} "
                "characters.",
                hint="Use MAJOR.MINOR.PATCH, for example 1.4.0 or 2.0.0-rc.1.",
            )
        major, minor, patch = (int(part) for part in match.group(1, 2, 3))
        if max(major, minor, patch) > _MAX_PART:
            raise InvalidVersionError(f"{text!r} has a part larger than {_MAX_PART}.")
        return cls(major, minor, patch, match.group(4) or "")

    def bump(self, part: Bump) -> SemVer:
        """The next release after this one (a prerelease bumps to its own release first)."""
        if part == "major":
            if self.prerelease and self.minor == 0 and self.patch == 0:
                return SemVer(self.major, 0, 0)
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            if self.prerelease and self.patch == 0:
                return SemVer(self.major, self.minor, 0)
            return SemVer(self.major, self.minor + 1, 0)
        if part == "patch":
            if self.prerelease:
                return SemVer(self.major, self.minor, self.patch)
            return SemVer(self.major, self.minor, self.patch + 1)
        raise InvalidVersionError(
            f"Unknown bump {part!r}.", hint=f"Use one of: {', '.join(BUMPS)}."
        )

    def sort_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Semver precedence: a release sorts after its prereleases; numeric identifiers
        sort numerically and before alphanumeric ones."""
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        idents = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in self.prerelease.split(".")
        )
        return (self.major, self.minor, self.patch, 0, idents)

    def __lt__(self, other: SemVer) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: SemVer) -> bool:
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: SemVer) -> bool:
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: SemVer) -> bool:
        return self.sort_key() >= other.sort_key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core


FIRST = SemVer(1, 0, 0)
"""The version a new model gets when neither a version nor a bump base exists."""


def next_version(latest: SemVer | None, bump: Bump) -> SemVer:
    """The version to register after ``latest`` (``1.0.0`` for a model's first version)."""
    if bump not in BUMPS:
        raise InvalidVersionError(
            f"Unknown bump {bump!r}.", hint=f"Use one of: {', '.join(BUMPS)}."
        )
    return FIRST if latest is None else latest.bump(bump)
