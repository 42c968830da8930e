"""The artifact store: model files addressed by their SHA-256 digest, through fsspec.

Layout under the store's root (a local folder, or ``s3://bucket/prefix``)::

    sha256/ab/abcdef0123...   the artifact whose digest is abcdef0123...
    tmp/<uuid>                an upload in progress (safe to delete when older than a day)

A write goes to ``tmp/``, is read back and verified, then renamed into place, so a
content address never names incomplete bytes. Every read re-hashes what it got. Paths are
derived from digests only: clients never choose where anything is stored.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from dockyard.errors import ArtifactIntegrityError, StorageError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Content-addressed blobs on any fsspec filesystem."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        """Nothing is opened yet: the filesystem (and fsspec's imports) comes with
        the first artifact read or written, so a command that only reads metadata skips it."""
        self.url = url
        self._options = dict(options or {})

    @cached_property
    def _opened(self) -> tuple[Any, str, bool]:
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self._options)
        except (ImportError, ValueError) as exc:
            raise StorageError(
                f"Cannot open the artifact store {self.url!r}: {exc}.",
                hint="For s3:// URLs install the extra: pip install 'dockyard[s3]'.",
            ) from exc
        return fs, root.rstrip("/"), "file" in _protocols(fs)

    @property
    def fs(self) -> Any:
        """The fsspec filesystem holding the artifacts."""
        return self._opened[0]

    @property
    def root(self) -> str:
        return self._opened[1]

    @property
    def _local(self) -> bool:
        return self._opened[2]

    def path(self, digest: str) -> str:
        """Where the artifact with ``digest`` lives (derived, never chosen)."""
        if not _DIGEST.match(digest):
            raise ArtifactIntegrityError(f"{digest!r} is not a SHA-256 digest.")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its digest. Idempotent: identical bytes are stored once."""
        digest = sha256(data)
        final = self.path(digest)
        try:
            if self.fs.exists(final) and self._digest_of(final) == digest:
                return digest
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
            self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
            with self.fs.open(tmp, "wb") as out:
                out.write(data)
                if self._local:
                    out.flush()
                    os.fsync(out.fileno())
            written = self._digest_of(tmp)
            if written != digest:
                self.fs.rm(tmp)
                raise StorageError(
                    f"The artifact store returned different bytes than were written "
                    f"({written[:12]} != {digest[:12]}).",
                    hint="Check the storage backend's health and retry.",
                )
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(tmp, final)
        except OSError as exc:
            raise StorageError(
                f"Cannot write to the artifact store {self.url!r}: {exc}.",
                hint="Check DOCKYARD_ARTIFACT_URL, permissions and free space.",
            ) from exc
        return digest

    def get(self, digest: str) -> bytes:
        """The artifact's bytes, verified against ``digest``."""
        path = self.path(digest)
        try:
            with self.fs.open(path, "rb") as stream:
                data: bytes = stream.read()
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"The artifact {digest[:12]}… is missing from the store {self.url!r}.",
                hint="Restore it from a backup, or register the model again.",
            ) from None
        except OSError as exc:
            raise StorageError(f"Cannot read from the artifact store {self.url!r}: {exc}.") from exc
        actual = sha256(data)
        if actual != digest:
            raise ArtifactIntegrityError(
                f"The artifact {digest[:12]}… is corrupted: its bytes hash to {actual[:12]}…, "
                "not the digest recorded at registration. It was not loaded.",
                hint="Restore the file from a backup, or register the model again.",
            )
        return data

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self.path(digest)))

    def _digest_of(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
