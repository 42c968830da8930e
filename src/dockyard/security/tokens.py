"""API tokens: created once, stored only as a hash, checked on every request.

A secret is ``dky_`` followed by 32 random bytes (``secrets.token_urlsafe``). It is shown to
its creator once and never stored: the ``tokens`` table keeps its SHA-256 hex digest, the
name, the scopes, who created it, when it expires and when it was revoked. Revoked tokens
keep their row (and their name) for the audit trail. Every change appends an event in the
same transaction; events carry the token's name and scopes, never the secret or its hash.

Why a plain SHA-256 is enough: a secret has 256 bits of entropy, so there is no dictionary
to attack and a slow password hash would only slow every request. Verification hashes the
presented secret and looks the digest up through the unique index; the lookup's timing
depends on the digest, not on how many leading characters of a real secret were guessed,
so there is nothing to learn from it (the same design as GitHub's tokens).

:class:`TokenCache` is what the server calls on every request. It remembers digest →
principal (and digest → "no such token") for ``ttl_s`` seconds, so the hot path hashes
once and reads a dict; a revocation or an expiry takes effect in every process within
``ttl_s`` (and at the exact expiry time for entries cached close to it).
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from dockyard.errors import ConflictError, InvalidRequestError, NotFoundError
from dockyard.names import TOKEN_NAME
from dockyard.registry import tables as t
from dockyard.registry.database import Database
from dockyard.registry.events import record_event
from dockyard.security.scopes import SCOPES, allows, parse_scopes

PREFIX: Final = "dky_"
"""Every secret starts with this, so scanners (and people) recognise a leaked one."""

_MAX_SECRET_CHARS = 256
_LISTED = [c for c in t.tokens.c if c.name not in ("id", "hash")]  # never read the hash out

TokenStatus = Literal["active", "expired", "revoked"]


@dataclass(frozen=True)
class Principal:
    """Who a verified secret belongs to and what it may do."""

    name: str
    scopes: frozenset[str]
    expires_at: datetime | None = None
    id: int | None = None  # the token's row id: names the actor in the audit trail

    def allows(self, needed: str) -> bool:
        """Whether this principal's scopes allow ``needed`` (see :mod:`.scopes`)."""
        return allows(self.scopes, needed)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: everything except the secret and its hash."""

    name: str
    scopes: tuple[str, ...]
    status: TokenStatus
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["scopes"] = list(self.scopes)
        for key in ("created_at", "expires_at", "revoked_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored for (and looked up by) a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _well_formed(secret: str) -> bool:
    return secret.startswith(PREFIX) and len(secret) <= _MAX_SECRET_CHARS


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_token_name(name: str) -> str:
    """``name`` unchanged if it is a valid token name; see :mod:`dockyard.names`."""
    return TOKEN_NAME.check(name)


class TokenStore:
    """SQL adapter for API tokens (SQLite or PostgreSQL).

    ``now`` is the wall clock used for creation, expiry and revocation times; tests inject
    one to expire tokens without waiting.
    """

    def __init__(self, db: Database, *, now: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.now = now

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        actor: str,
        expires_in: timedelta | None = None,
    ) -> tuple[TokenInfo, str]:
        """Create a token; returns its record and the plaintext secret, which is never
        available again. Names are unique forever (revoked tokens keep theirs)."""
        check_token_name(name)
        granted = parse_scopes(scopes)
        if not granted:
            raise InvalidRequestError(
                "A token needs at least one scope.", hint=f"Choose from: {', '.join(SCOPES)}."
            )
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidRequestError(
                "A token's lifetime must be positive.", hint="Leave it out for no expiry."
            )
        ordered = [scope for scope in SCOPES if scope in granted]
        secret = PREFIX + secrets.token_urlsafe(32)
        now = _utc(self.now())
        expires_at = now + expires_in if expires_in is not None else None
        try:
            with self.db.write() as conn:
                if self._row(conn, name) is not None:
                    raise _name_taken(name)
                conn.execute(
                    t.tokens.insert().values(
                        name=name,
                        hash=hash_secret(secret),
                        scopes=ordered,
                        created_at=now,
                        created_by=actor,
                        expires_at=expires_at,
                        revoked_at=None,
                    )
                )
                record_event(
                    conn,
                    actor,
                    "token.create",
                    None,
                    None,
                    after={
                        "name": name,
                        "scopes": ordered,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                    details={"token": name, "scopes": ordered},
                )
                row = self._row(conn, name)
                assert row is not None
        except sa.exc.IntegrityError as exc:  # a concurrent create won the race for the name
            raise _name_taken(name) from exc
        return _info(row, now), secret

    def verify(self, secret: str) -> Principal | None:
        """The principal a secret belongs to, or ``None`` when it is unknown, malformed,
        revoked or expired. One indexed query; see :class:`TokenCache` for the hot path."""
        if not _well_formed(secret):
            return None
        return self.lookup(hash_secret(secret))

    def lookup(self, digest: str) -> Principal | None:
        """:meth:`verify` for an already hashed secret."""
        c = t.tokens.c
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(c.id, c.name, c.scopes, c.expires_at, c.revoked_at).where(
                    c.hash == digest
                )
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        expires_at = _utc(row.expires_at) if row.expires_at is not None else None
        if expires_at is not None and expires_at <= _utc(self.now()):
            return None
        return Principal(row.name, frozenset(row.scopes or ()), expires_at, row.id)

    def revoke(self, name: str, *, actor: str) -> TokenInfo:
        """Revoke a token for good. Revoking a revoked token changes nothing (no event)."""
        c = t.tokens.c
        with self.db.write() as conn:
            row = self._row(conn, name, lock=True)
            if row is None:
                raise _not_found(name)
            if row.revoked_at is None:
                now = _utc(self.now())
                conn.execute(t.tokens.update().where(c.name == name).values(revoked_at=now))
                record_event(
                    conn,
                    actor,
                    "token.revoke",
                    None,
                    None,
                    before={"name": name, "revoked_at": None},
                    after={"name": name, "revoked_at": now.isoformat()},
                    details={"token": name, "scopes": list(row.scopes or ())},
                )
                row = self._row(conn, name)
                assert row is not None
        return _info(row, _utc(self.now()))

    def get(self, name: str) -> TokenInfo:
        with self.db.read() as conn:
            row = self._row(conn, name)
        if row is None:
            raise _not_found(name)
        return _info(row, _utc(self.now()))

    def _row(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any] | None:
        c = t.tokens.c
        query = sa.select(*_LISTED).where(c.name == name)
        if lock and self.db.dialect == "postgresql":
            query = query.with_for_update()
        return conn.execute(query).first()

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, revoked and expired ones included, by name; never a hash."""
        c = t.tokens.c
        with self.db.read() as conn:
            rows = conn.execute(sa.select(*_LISTED).order_by(c.name)).all()
        now = _utc(self.now())
        return [_info(row, now) for row in rows]


class TokenCache:
    """The per-request check: :meth:`TokenStore.verify` behind a short-lived memory.

    Entries map a secret's digest to its principal, or to ``None`` for a digest that is
    unknown, revoked or expired (so a flood of bad secrets does not reach the database).
    An entry lives ``ttl_s`` seconds by ``clock`` (monotonic by default), and never past
    its token's expiry. Hence:

    - a revocation, or a new token's creation in another process, takes effect within
      ``ttl_s`` (call :meth:`clear` after revoking in this process for "at once");
    - an expiry takes effect on time;
    - when the database is unreachable a miss raises
      :class:`~dockyard.errors.StorageError` (fail closed; no stale grants are served
      beyond their TTL).

    At most ``max_entries`` are kept (expired ones are dropped first, then the oldest).
    Thread-safe. :meth:`verify` may query the database on a miss; async code calls
    :meth:`peek` on the event loop and only sends misses to a worker thread.
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        if ttl_s < 0 or max_entries < 1:
            raise ValueError("ttl_s must be >= 0 and max_entries >= 1")
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def peek(self, secret: str) -> tuple[bool, Principal | None]:
        """``(True, principal_or_None)`` when the answer is known without I/O (cached, or a
        malformed secret), else ``(False, None)``."""
        if not _well_formed(secret):
            return True, None
        entry = self._entries.get(hash_secret(secret))
        if entry is not None and entry[0] > self.clock():
            return True, entry[1]
        return False, None

    def verify(self, secret: str) -> Principal | None:
        """Like :meth:`TokenStore.verify`, answered from memory when the entry is fresh."""
        if not _well_formed(secret):
            return None
        digest = hash_secret(secret)
        entry = self._entries.get(digest)
        now = self.clock()
        if entry is not None and entry[0] > now:
            return entry[1]
        principal = self.store.lookup(digest)
        lifetime = self.ttl_s
        if principal is not None and principal.expires_at is not None:
            remaining = (principal.expires_at - _utc(self.store.now())).total_seconds()
            lifetime = min(lifetime, remaining)
        self._remember(digest, now + lifetime, principal)
        return principal

    def clear(self) -> None:
        """Forget everything (for example right after revoking a token in this process)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _remember(self, digest: str, deadline: float, principal: Principal | None) -> None:
        with self._lock:
            self._entries.pop(digest, None)
            if len(self._entries) >= self.max_entries:
                now = self.clock()
                for key in [k for k, (until, _) in self._entries.items() if until <= now]:
                    del self._entries[key]
                while len(self._entries) >= self.max_entries:
                    del self._entries[next(iter(self._entries))]
            self._entries[digest] = (deadline, principal)


def _info(row: Row[Any], now: datetime) -> TokenInfo:
    expires_at = _utc(row.expires_at) if row.expires_at is not None else None
    revoked_at = _utc(row.revoked_at) if row.revoked_at is not None else None
    status: TokenStatus = "active"
    if revoked_at is not None:
        status = "revoked"
    elif expires_at is not None and expires_at <= now:
        status = "expired"
    return TokenInfo(
        name=row.name,
        scopes=tuple(row.scopes or ()),
        status=status,
        created_at=_utc(row.created_at),
        created_by=row.created_by,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


def _name_taken(name: str) -> ConflictError:
    return ConflictError(
        f"A token named {name!r} already exists.",
        hint="Token names are never reused, even after revocation; choose another name.",
    )


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(f"No token named {name!r}.", hint="List tokens with: dockyard tokens list")


__all__ = [
    "PREFIX",
    "Principal",
    "TokenCache",
    "TokenInfo",
    "TokenStatus",
    "TokenStore",
    "check_token_name",
    "hash_secret",
]
