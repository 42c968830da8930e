"""Model references and names: ``name``, ``name@1.4.0``, ``name@production``. Pure code."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidNameError, InvalidReferenceError
from dockyard.registry.semver import SemVer

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/-]{1,128}$")
LATEST = "latest"
"""A reserved alias: the highest non-archived version."""


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidNameError(
            f"{name!r} is not a valid model name.",
            hint="Use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def check_alias(alias: str, *, settable: bool = True) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidNameError(
            f"{alias!r} is not a valid alias.",
            hint="Use up to 64 letters, digits, '_' or '-', starting with a letter "
            "(for example production, staging, champion).",
        )
    if settable and alias == LATEST:
        raise InvalidNameError(
            "'latest' is reserved: it always means the highest non-archived version.",
            hint="Choose another alias name.",
        )
    return alias


def check_tag_key(key: str) -> str:
    if not isinstance(key, str) or not _TAG_KEY.match(key):
        raise InvalidNameError(
            f"{key!r} is not a valid tag key.",
            hint="Use up to 128 letters, digits, or any of _ . : / -",
        )
    return key


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. Exactly one of ``version``/``alias`` is set, or neither
    (a bare model name)."""

    name: str
    version: SemVer | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReferenceError(
                "Empty model reference.", hint="Use name, name@version or name@alias."
            )
        name, sep, target = text.strip().partition("@")
        if sep and not target:
            raise InvalidReferenceError(
                f"{text!r} ends with '@'.", hint="Use name@1.2.0 or name@production."
            )
        try:
            check_model_name(name)
        except InvalidNameError as exc:
            raise InvalidReferenceError(
                f"{text!r} is not a model reference: {exc.message}", hint=exc.hint
            ) from None
        if not sep:
            return cls(name)
        if target[0].isdigit():
            try:
                return cls(name, version=SemVer.parse(target))
            except Exception:
                raise InvalidReferenceError(
                    f"{text!r}: {target!r} is neither a semantic version nor an alias.",
                    hint="Use name@1.2.0 or name@production.",
                ) from None
        try:
            return cls(name, alias=check_alias(target, settable=False))
        except InvalidNameError as exc:
            raise InvalidReferenceError(f"{text!r}: {exc.message}", hint=exc.hint) from None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
