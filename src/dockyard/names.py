"""User-chosen identifiers: one rule per kind, matched whole and bounded. Pure code.

Model and endpoint names, aliases, tag and metric keys, token names and alert-rule slugs end
up in file paths, log lines, metric labels and URLs, so each kind is a closed character set
matched against the *whole* string (``re.fullmatch``: ``^...$`` with ``re.match`` lets a
trailing newline through) and a maximum length checked before the pattern runs. Nothing is
stripped: ``" abc"`` and ``"abc\\n"`` are refused, not silently changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidNameError

_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable length for an error message."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return f"{text[:_SHOWN_CHARS]}...{size}"


@dataclass(frozen=True)
class NameRule:
    """One kind of identifier: its characters (matched whole), its length, how to fix it."""

    what: str
    pattern: re.Pattern[str]
    max_length: int
    hint: str

    def matches(self, value: object) -> bool:
        """Whether ``value`` is a string of this kind (the length is checked first)."""
        return (
            isinstance(value, str)
            and 0 < len(value) <= self.max_length
            and self.pattern.fullmatch(value) is not None
        )

    def check(self, value: object) -> str:
        """``value`` unchanged, or an :class:`InvalidNameError` naming the kind and the fix."""
        if not self.matches(value):
            raise InvalidNameError(f"{shown(value)} is not a valid {self.what}.", hint=self.hint)
        return value  # type: ignore[return-value]  # matches() proved it is a str


MODEL_NAME = NameRule(
    "model name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII),
    128,
    "Use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)
"""Models and endpoints (an endpoint is named like a model)."""

ALIAS = NameRule(
    "alias",
    re.compile(r"[A-Za-z][A-Za-z0-9_-]*", re.ASCII),
    64,
    "Use up to 64 letters, digits, '_' or '-', starting with a letter "
    "(for example production, staging, champion).",
)

TAG_KEY = NameRule(
    "tag key",
    re.compile(r"[A-Za-z0-9_.:/-]+", re.ASCII),
    128,
    "Use up to 128 letters, digits, or any of _ . : / -",
)
"""Tag keys and metric names."""

TOKEN_NAME = NameRule(
    "token name",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII),
    128,
    "Use up to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)

SLUG = NameRule(
    "slug",
    re.compile(r"[a-z0-9][a-z0-9_-]*", re.ASCII),
    63,
    "Use a lower-case slug: [a-z0-9][a-z0-9_-]{0,62}.",
)
"""Alert-rule names and retrain command names."""

MAX_TAG_VALUE_CHARS = 4096
"""A tag's value is free text, but bounded."""

MAX_VERSION_CHARS = 128
"""A semantic version's whole text, prerelease included."""
