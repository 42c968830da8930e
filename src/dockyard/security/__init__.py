"""Security: API tokens (stored only as hashes) and the scopes they grant.

:mod:`.scopes` is pure and imported eagerly; :mod:`.tokens` (the SQL adapter and the
per-request cache) loads on first use, so checking a scope never imports SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.security.scopes import SCOPES, allows, expand, parse_scopes

if TYPE_CHECKING:
    from dockyard.security.tokens import (
        Principal,
        TokenCache,
        TokenInfo,
        TokenStore,
        hash_secret,
    )

_LAZY = frozenset({"Principal", "TokenCache", "TokenInfo", "TokenStore", "hash_secret"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from dockyard.security import tokens

        return getattr(tokens, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCOPES",
    "Principal",
    "TokenCache",
    "TokenInfo",
    "TokenStore",
    "allows",
    "expand",
    "hash_secret",
    "parse_scopes",
]
