"""Model references and names: ``name``, ``name@1.4.0``, ``name@production``. Pure code."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.errors import InvalidNameError, InvalidReferenceError
from dockyard.names import ALIAS, MAX_TAG_VALUE_CHARS, MODEL_NAME, TAG_KEY, shown
from dockyard.registry.semver import SemVer

LATEST = "latest"
"""A reserved alias: the highest non-archived version."""


def check_model_name(name: str) -> str:
    """``name`` unchanged if it is a valid model (or endpoint) name; see :mod:`dockyard.names`."""
    return MODEL_NAME.check(name)


def check_alias(alias: str, *, settable: bool = True) -> str:
    """``alias`` unchanged if valid; ``settable=False`` also accepts the reserved ``latest``."""
    ALIAS.check(alias)
    if settable and alias == LATEST:
        raise InvalidNameError(
            "'latest' is reserved: it always means the highest non-archived version.",
            hint="Choose another alias name.",
        )
    return alias


def check_tag_key(key: str) -> str:
    """``key`` unchanged if it is a valid tag key or metric name."""
    return TAG_KEY.check(key)


def check_tag_value(value: object) -> str:
    """A tag's value as text, refused past :data:`~dockyard.names.MAX_TAG_VALUE_CHARS`."""
    text = str(value)
    if len(text) > MAX_TAG_VALUE_CHARS:
        raise InvalidNameError(
            f"A tag value has {len(text):,} characters.",
            hint=f"Keep tag values to {MAX_TAG_VALUE_CHARS:,} characters.",
        )
    return text


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. Exactly one of ``version``/``alias`` is set, or neither
    (a bare model name)."""

    name: str
    version: SemVer | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text:
            raise InvalidReferenceError(
                "Empty model reference.", hint="Use name, name@version or name@alias."
            )
        name, sep, target = text.partition("@")
        if sep and not target:
            raise InvalidReferenceError(
                f"{text!r} ends with '@'.", hint="Use name@1.2.0 or name@production."
            )
        try:
            check_model_name(name)
        except InvalidNameError as exc:
            raise InvalidReferenceError(
                f"{shown(text)} is not a model reference: {exc.message}", hint=exc.hint
            ) from None
        if not sep:
            return cls(name)
        if target[0].isdigit():
            try:
                return cls(name, version=SemVer.parse(target))
            except Exception:
                raise InvalidReferenceError(
                    f"{shown(text)}: {shown(target)} is neither a semantic version nor an alias.",
                    hint="Use name@1.2.0 or name@production.",
                ) from None
        try:
            return cls(name, alias=check_alias(target, settable=False))
        except InvalidNameError as exc:
            raise InvalidReferenceError(f"{shown(text)}: {exc.message}", hint=exc.hint) from None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name
