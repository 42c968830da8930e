"""API token scopes and what each one allows. Pure code: no I/O, no imports beyond the stdlib.

A token is granted one or more scopes; a route needs exactly one. A granted scope allows
the needed one when the matrix below has a ✓:

    granted \\ needed    read   predict   deploy   admin
    read                 ✓
    predict                     ✓
    deploy               ✓                ✓
    admin                ✓      ✓         ✓        ✓

- ``read``: look at the registry, deployments, monitoring and the audit trail.
- ``predict``: call the inference plane (predictions, feedback, explanations), nothing else;
  the credential handed to applications.
- ``deploy``: change deployments (deploy, roll back, move aliases); implies ``read``, since
  nobody deploys blind. It does not imply ``predict``: a CI pipeline that ships models does
  not get to score traffic through them.
- ``admin``: everything, including managing tokens.

``predict`` and ``read`` are independent: a serving credential leaked from an application
cannot browse the registry, and a dashboard credential cannot run models.

Scopes this version does not know grant nothing (a token stored by a newer Dockyard fails
closed here), and asking whether something is allowed for an unknown scope is a programming
error (:class:`ValueError`), so a typo in a route's requirement cannot open it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Final

from dockyard.errors import InvalidRequestError

READ: Final = "read"
PREDICT: Final = "predict"
DEPLOY: Final = "deploy"
ADMIN: Final = "admin"

SCOPES: Final[tuple[str, ...]] = (READ, PREDICT, DEPLOY, ADMIN)
"""Every scope, from least to most powerful."""

IMPLIES: Final[dict[str, frozenset[str]]] = {
    READ: frozenset({READ}),
    PREDICT: frozenset({PREDICT}),
    DEPLOY: frozenset({DEPLOY, READ}),
    ADMIN: frozenset(SCOPES),
}
"""For each scope, every scope it allows (itself included)."""


def parse_scopes(values: Iterable[str]) -> frozenset[str]:
    """Normalise scope names (case and surrounding space are ignored; duplicates collapse).

    Raises :class:`~dockyard.errors.InvalidRequestError` naming the valid scopes when one is
    unknown. An empty input gives an empty set; callers that need at least one say so.
    """
    parsed: set[str] = set()
    for value in values:
        scope = value.strip().lower()
        if scope not in IMPLIES:
            raise InvalidRequestError(
                f"{value!r} is not a scope.",
                hint=f"Valid scopes: {', '.join(SCOPES)}.",
                details={"scope": value, "valid": list(SCOPES)},
            )
        parsed.add(scope)
    return frozenset(parsed)


def expand(granted: Iterable[str]) -> frozenset[str]:
    """Every scope the granted ones allow (unknown granted scopes allow nothing)."""
    allowed: set[str] = set()
    for scope in granted:
        allowed |= IMPLIES.get(scope, frozenset())
    return frozenset(allowed)


def allows(granted: Collection[str], needed: str) -> bool:
    """Whether a token granted ``granted`` may do what needs ``needed``."""
    if needed not in IMPLIES:
        raise ValueError(f"unknown scope {needed!r}; scopes are {', '.join(SCOPES)}")
    return any(needed in IMPLIES.get(scope, ()) for scope in granted)


__all__ = [
    "ADMIN",
    "DEPLOY",
    "IMPLIES",
    "PREDICT",
    "READ",
    "SCOPES",
    "allows",
    "expand",
    "parse_scopes",
]
