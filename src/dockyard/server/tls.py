"""TLS for ``dockyard serve``: the certificate and key are checked before the port is bound.

uvicorn loads the files itself once it starts, and a problem found there is a traceback in a
worker after the port was taken. :func:`check_certificate` loads them the same way first
(``ssl.SSLContext.load_cert_chain``), so a missing, unreadable, malformed or mismatched file
is one line naming it and the command exits before anything binds or loads.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from dockyard.errors import InvalidRequestError


def check_certificate(certfile: Path | None, keyfile: Path | None) -> None:
    """Refuse a TLS configuration that uvicorn would fail to load, with the reason.

    ``certfile`` is a PEM certificate chain (leaf first); ``keyfile`` its unencrypted PEM
    private key, or ``None`` when the key is in ``certfile``. Neither: TLS is off.
    """
    if certfile is None:
        if keyfile is not None:
            raise InvalidRequestError(
                "--ssl-keyfile was given without --ssl-certfile.",
                hint="Give the certificate too: --ssl-certfile cert.pem --ssl-keyfile key.pem.",
            )
        return
    for label, path in (("certificate", certfile), ("key", keyfile)):
        if path is None:
            continue
        if not path.is_file():
            raise InvalidRequestError(f"The TLS {label} file {path} does not exist.")
        try:
            path.open("rb").close()
        except OSError as exc:
            raise InvalidRequestError(
                f"The TLS {label} file {path} cannot be read: {exc.strerror or exc}."
            ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except _EncryptedKeyError:
        raise InvalidRequestError(
            f"The TLS key in {keyfile or certfile} is encrypted.",
            hint="Give an unencrypted key (openssl pkey -in key.pem -out plain.pem), "
            "readable only by the server's user.",
        ) from None
    except ssl.SSLError as exc:
        raise InvalidRequestError(_reason(exc, certfile, keyfile)) from None


class _EncryptedKeyError(Exception):
    """The key asked for a password (never prompted for on a terminal)."""


def _no_password() -> str:
    raise _EncryptedKeyError


def _reason(exc: ssl.SSLError, certfile: Path, keyfile: Path | None) -> str:
    """OpenSSL's "PEM lib" names no file: look at the files for what is missing."""
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"The TLS key {keyfile or certfile} does not match the certificate {certfile}."
    if b"-----BEGIN CERTIFICATE-----" not in certfile.read_bytes():
        return f"The TLS certificate file {certfile} holds no PEM certificate."
    key = keyfile or certfile
    if b"PRIVATE KEY-----" not in key.read_bytes():
        return f"The TLS key file {key} holds no PEM private key."
    return f"Cannot load the TLS certificate {certfile} with the key {key}: {exc.reason or exc}."
