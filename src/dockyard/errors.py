"""Every error Dockyard raises on purpose.

Each class carries the HTTP status an API answers with, a stable machine-readable ``code``,
and the exit code the CLI ends with. One ASGI handler and one CLI handler translate them;
nothing else formats errors.

    DockyardError                       500  internal              exit 1
    ├── InvalidRequestError             400  invalid_request       exit 2
    │   ├── InvalidReferenceError       400  invalid_reference
    │   ├── InvalidVersionError         400  invalid_version
    │   ├── InvalidNameError            400  invalid_name
    │   ├── SchemaValidationError       400  schema_validation     (details: every problem)
    │   ├── UnsupportedModelError       400  unsupported_model
    │   ├── UnreadableFileError         400  unreadable_file
    │   ├── UntrustedModelError         400  untrusted_model
    │   └── RejectRateError             400  reject_rate_exceeded  (in batch.service)
    ├── AuthenticationError             401  unauthenticated       exit 3
    ├── PermissionDeniedError           403  forbidden             exit 3
    ├── PayloadTooLargeError            413  payload_too_large     exit 2
    ├── RequestTimeoutError             408  request_timeout       exit 7
    ├── NotFoundError                   404  not_found             exit 4
    │   ├── ModelNotFoundError          404  model_not_found
    │   ├── VersionNotFoundError        404  version_not_found
    │   └── AliasNotFoundError          404  alias_not_found
    ├── ConflictError                   409  conflict              exit 5
    │   ├── VersionExistsError          409  version_exists
    │   ├── VersionAliasedError         409  version_aliased
    │   ├── VersionArchivedError        409  version_archived
    │   └── UnreadableSpecError         409  spec_unreadable       (a newer Dockyard's spec)
    ├── ArtifactIntegrityError          500  artifact_corrupted    exit 6
    ├── ModelLoadError                  500  model_load_failed     exit 6
    ├── StorageError                    503  storage_unavailable   exit 7
    └── UnavailableError                503  unavailable           exit 7
        └── QueueFullError              503  queue_full            (in serving.batching)

The wire shape, shared by every HTTP route, is ``{"error": message, "code": code,
"details": details}`` (the Open Inference Protocol's ``{"error": ...}`` extended).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class DockyardError(Exception):
    """Root of every deliberate Dockyard error.

    ``message`` says what was wrong; ``hint`` says what to do about it. ``details`` is
    JSON-serialisable structured data (for example every validation problem at once).
    """

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal"
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        joiner = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{joiner}{self.hint}"

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape."""
        return {"error": str(self), "code": self.code, "details": self.details}


class InvalidRequestError(DockyardError):
    """The caller asked for something malformed; nothing was changed."""

    status = HTTPStatus.BAD_REQUEST
    code = "invalid_request"
    exit_code = 2


class InvalidReferenceError(InvalidRequestError):
    """A model reference is not ``name``, ``name@version`` or ``name@alias``."""

    code = "invalid_reference"


class InvalidVersionError(InvalidRequestError):
    """A version string is not semantic (``MAJOR.MINOR.PATCH``) or a bump is unknown."""

    code = "invalid_version"


class InvalidNameError(InvalidRequestError):
    """A model, alias or tag name uses characters outside the allowed set."""

    code = "invalid_name"


class SchemaValidationError(InvalidRequestError):
    """Input does not match a model's signature; ``details`` lists every problem."""

    code = "schema_validation"


class UnsupportedModelError(InvalidRequestError):
    """No runtime knows how to store or load this object or file."""

    code = "unsupported_model"


class UnreadableFileError(InvalidRequestError):
    """A file the caller named does not exist or cannot be parsed."""

    code = "unreadable_file"


class UntrustedModelError(InvalidRequestError):
    """Loading would execute arbitrary code (pickle, unknown types) and trust was not given."""

    code = "untrusted_model"


class AuthenticationError(DockyardError):
    """No valid bearer token: missing, unknown, revoked or expired."""

    status = HTTPStatus.UNAUTHORIZED
    code = "unauthenticated"
    exit_code = 3


class PermissionDeniedError(DockyardError):
    """The token is valid but lacks the scope this route needs."""

    status = HTTPStatus.FORBIDDEN
    code = "forbidden"
    exit_code = 3


class PayloadTooLargeError(DockyardError):
    """The request body exceeds the server's limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    exit_code = 2


class RequestTimeoutError(DockyardError):
    """The client did not send its request's headers or body within the server's deadline
    (``DOCKYARD_HEADER_TIMEOUT_S``, ``DOCKYARD_BODY_TIMEOUT_S``)."""

    status = HTTPStatus.REQUEST_TIMEOUT
    code = "request_timeout"
    exit_code = 7


class NotFoundError(DockyardError):
    """The named thing does not exist."""

    status = HTTPStatus.NOT_FOUND
    code = "not_found"
    exit_code = 4


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class AliasNotFoundError(NotFoundError):
    code = "alias_not_found"


class ConflictError(DockyardError):
    """The request contradicts the registry's current state."""

    status = HTTPStatus.CONFLICT
    code = "conflict"
    exit_code = 5


class VersionExistsError(ConflictError):
    """Versions are immutable: a version number is never registered twice."""

    code = "version_exists"


class VersionAliasedError(ConflictError):
    """An aliased version cannot be archived; move the alias first."""

    code = "version_aliased"


class VersionArchivedError(ConflictError):
    """The version is archived; restore it before pointing an alias at it."""

    code = "version_archived"


class UnreadableSpecError(ConflictError):
    """A stored deployment spec this version of Dockyard cannot read, even leaving out the
    keys it does not know (a newer version's value for a setting it knows, say)."""

    code = "spec_unreadable"


class ArtifactIntegrityError(DockyardError):
    """An artifact's bytes do not match the SHA-256 digest recorded at registration."""

    code = "artifact_corrupted"
    exit_code = 6


class ModelLoadError(DockyardError):
    """A verified artifact could not be turned into a working model."""

    code = "model_load_failed"
    exit_code = 6


class StorageError(DockyardError):
    """The metadata database or the artifact store could not be reached."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "storage_unavailable"
    exit_code = 7


class UnavailableError(DockyardError):
    """The server cannot answer now (not ready, shutting down, overloaded); retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "unavailable"
    exit_code = 7


__all__ = [
    "AliasNotFoundError",
    "ArtifactIntegrityError",
    "AuthenticationError",
    "ConflictError",
    "DockyardError",
    "InvalidNameError",
    "InvalidReferenceError",
    "InvalidRequestError",
    "InvalidVersionError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "SchemaValidationError",
    "StorageError",
    "UnavailableError",
    "UnreadableFileError",
    "UnreadableSpecError",
    "UnsupportedModelError",
    "UntrustedModelError",
    "VersionAliasedError",
    "VersionArchivedError",
    "VersionExistsError",
    "VersionNotFoundError",
]
