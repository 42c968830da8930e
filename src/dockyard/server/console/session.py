"""The console's browser session and its CSRF defence. Pure: cookies and HMACs, no I/O.

- **Session.** Signing in with a token sets :data:`~dockyard.server.access.SESSION_COOKIE`
  to that token: ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page sends it), ``Path=/ui`` (the API never takes it; see
  :func:`~dockyard.server.access.credential`), ``Secure`` when the request came over TLS or
  the settings say the server sits behind a TLS proxy. Every request re-checks the token
  exactly like a bearer header, so revoking it signs the browser out.
- **CSRF.** Every form carries a token that is the HMAC of a random per-browser nonce (the
  :data:`CSRF_COOKIE`, also ``HttpOnly`` and ``SameSite=Strict``) keyed by the session's
  token: a signed double-submit token. Another site can neither read the nonce nor compute
  the HMAC without the session token; with auth off (loopback only) the nonce alone must be
  echoed, which a cross-site form cannot do. A request whose ``Origin`` is another host is
  refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Final

from dockyard.errors import PermissionDeniedError
from dockyard.server.access import SESSION_COOKIE, UI_PREFIX

CSRF_COOKIE: Final = "dockyard_csrf"
CSRF_FIELD: Final = "csrf"
SESSION_MAX_AGE_S: Final = 12 * 3600
"""How long a browser stays signed in (the token's own expiry still applies)."""


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(nonce: str, session: str | None) -> str:
    """The form token for this browser's nonce and session token (``None``: auth off)."""
    key = (session or "").encode()
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


def check_csrf(
    form: Mapping[str, str],
    cookies: Mapping[str, str],
    session: str | None,
    *,
    origin: str | None,
    host: str | None,
) -> None:
    """Refuse (403) a form without the token this browser's nonce and session give, or one
    posted from another origin."""
    if origin is not None and origin != "null" and host and origin.split("://", 1)[-1] != host:
        raise PermissionDeniedError("This form was posted from another site.")
    nonce = cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not nonce or not sent or not hmac.compare_digest(sent, csrf_token(nonce, session)):
        raise PermissionDeniedError(
            "The form's CSRF token is missing or wrong.",
            hint="Reload the page and submit the form again.",
        )


def cookie(name: str, value: str, *, secure: bool, max_age: int | None) -> str:
    """A ``Set-Cookie`` value with the console's flags."""
    parts = [f"{name}={value}", f"Path={UI_PREFIX}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def session_cookie(secret: str, *, secure: bool) -> str:
    return cookie(SESSION_COOKIE, secret, secure=secure, max_age=SESSION_MAX_AGE_S)


def cleared_session(*, secure: bool) -> str:
    return cookie(SESSION_COOKIE, "", secure=secure, max_age=0)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path, never another site (``//host``)."""
    if (
        target
        and target.startswith(UI_PREFIX)
        and not target.startswith("//")
        and "\\" not in target
        and all(ch.isprintable() and not ch.isspace() for ch in target)
    ):
        return target
    return UI_PREFIX


__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "SESSION_MAX_AGE_S",
    "check_csrf",
    "cleared_session",
    "cookie",
    "csrf_token",
    "new_nonce",
    "safe_next",
    "session_cookie",
]
