"""Settings: built once at the composition root and passed down; nothing reads the environment
at import time.

Every field can be set by an environment variable with the ``DOCKYARD_`` prefix
(``DOCKYARD_HOME``, ``DOCKYARD_DATABASE_URL``...) or passed to :class:`Settings` directly.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any, Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SHUTDOWN_GRACE_S: Final = 30
"""Seconds ``dockyard serve`` lets in-flight requests finish after SIGTERM before it closes
what is left; generated Kubernetes manifests size the pod's termination grace from it."""


def _default_home() -> Path:
    return Path.home() / ".dockyard"


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


class Settings(BaseSettings):
    """Where Dockyard keeps its state, and who is acting."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", extra="forbid")

    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the default SQLite database and artifact store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default: SQLite under home. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    artifact_url: str | None = Field(
        default=None,
        description="fsspec URL of the artifact store (a folder, or s3://bucket/prefix); "
        "default: home/artifacts.",
    )
    artifact_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options as JSON, e.g. "
        '{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}} for S3-compatible stores.',
    )
    user: str = Field(
        default_factory=_default_user,
        description="Who is acting; recorded on every audit event.",
    )
    code_revision: str | None = Field(
        default=None,
        description="Code revision recorded in each new version's lineage (e.g. a git SHA).",
    )
    sqlite_busy_timeout_s: float = Field(
        default=60.0,
        description="How long a SQLite writer waits for the write lock before failing.",
    )
    auth: bool = Field(
        default=False,
        description="Require a bearer token with the right scope on every route but health.",
    )
    console_secure_cookies: bool = Field(
        default=False,
        description="Mark the web console's cookies Secure even on plain HTTP (behind a TLS "
        "proxy); requests that arrive over TLS get Secure cookies anyway.",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM certificate chain the server presents (dockyard serve "
        "--ssl-certfile): set, the server speaks HTTPS only.",
    )
    ssl_keyfile: Path | None = Field(
        default=None,
        description="The certificate's unencrypted PEM private key (dockyard serve "
        "--ssl-keyfile); unset when the key is in the certificate file.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body the server accepts (after decompression); 413 beyond.",
    )
    grpc_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Also serve the Open Inference Protocol over gRPC on this port (dockyard "
        "serve --grpc-port; needs the grpc extra).",
    )
    grpc_host: str = Field(
        default="127.0.0.1",
        description="Interface the gRPC port binds (dockyard serve sets it to --host).",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Deadline for a request's line and headers, from the connection's opening "
        "(or the request's first byte on a kept-alive connection): 408 and closed beyond; a "
        "connection that sent nothing is closed.",
    )
    body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Deadline for a request's whole body, from the end of its headers: 408 and "
        "closed beyond.",
    )
    keep_alive_timeout_s: int = Field(
        default=5,
        ge=1,
        description="Seconds an idle connection is kept open between requests.",
    )
    max_connections: int = Field(
        default=2048,
        ge=1,
        description="Open connections per server process; one more is answered 503 at once "
        "and closed, /healthz included.",
    )
    poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the server checks the registry for changed deployments.",
    )
    model_threads: int = Field(
        default=1,
        ge=1,
        description="Threads one ONNX model call may use in the server. 1 (the default) suits "
        "small online batches: a second intra-op thread spins on a core the event loop and "
        "other requests need; raise it for endpoints that score large requests.",
    )
    compute_threads: int = Field(
        default=2,
        ge=1,
        description="Threads per server process running model batches (off the event loop).",
    )
    inline_compute_us: float = Field(
        default=500.0,
        ge=0,
        description="A model whose full batch is measured at warm-up to take at most this "
        "many microseconds (CPU time) runs its batches on the event loop: cheaper than "
        "handing them to a compute thread and back. It also bounds how long one batch holds "
        "the loop. 0 always uses the compute threads.",
    )

    explain_max_rows: int = Field(
        default=100,
        ge=1,
        description="Rows one explain request may ask about (413 above): explanations cost "
        "many model calls per row.",
    )
    explain_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes per server process computing explanations, at a lower "
        "CPU priority, so explaining never stalls or queues predictions.",
    )
    explain_queue: int = Field(
        default=8,
        ge=1,
        description="Explain requests waiting for a thread before more are refused (503).",
    )

    monitoring_url: str | None = Field(
        default=None,
        description="fsspec URL where the prediction log and feedback are kept (a folder, or "
        "s3://bucket/prefix); default: home/monitoring.",
    )
    monitoring_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options for monitoring_url as JSON (like artifact_options).",
    )
    log_buffer_rows: int = Field(
        default=100_000,
        ge=100,
        description="Most prediction rows held in memory before they are written; beyond it "
        "records are dropped and counted (a request is never blocked). A SIGKILL loses at most "
        "this many rows.",
    )
    log_flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often buffered prediction records are written as Parquet segments; a "
        "SIGKILL loses at most about this much traffic.",
    )
    monitor_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the server evaluates alert rules, refreshes drift and performance "
        "gauges, and deletes log segments past their endpoint's retention.",
    )
    monitor_process: bool = Field(
        default=True,
        description="Compute the monitoring gauges' statistics (drift, performance) and the "
        "console's reports in a child process at idle CPU priority, so they never hold the "
        "serving process's GIL; false computes them on the server's threads, which saves "
        "that process's memory (DuckDB, scipy and pandas once more) and lets a pass slow "
        "the requests answered meanwhile.",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Secret for the HMAC-SHA256 signature (X-Dockyard-Signature) of alert "
        "webhooks; unsigned when unset.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow alert webhooks to private, loopback and link-local addresses "
        "(refused by default).",
    )
    retrain_commands: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Commands alert rules may run by name, as JSON: {"retrain": ["python", '
        '"train.py", "{data}"]}; {data} becomes the exported window\'s Parquet file.',
    )

    protected_aliases: list[str] = Field(
        default_factory=lambda: ["production"],
        description="Aliases moved only with a passing gate result the registry recorded "
        "(the API, dockyard models alias --gate, dockyard gate --promote), kept on the event.",
    )
    gate_max_age_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long a recorded gate result can justify a promotion, in seconds.",
    )

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS: the one place a component asks (a cookie is
        marked Secure under it, a URL says https)."""
        return self.ssl_certfile is not None

    @property
    def resolved_monitoring_url(self) -> str:
        """The prediction log's URL in effect."""
        return self.monitoring_url or str(self.home / "monitoring")

    @property
    def resolved_database_url(self) -> str:
        """The database URL in effect."""
        return self.database_url or f"sqlite:///{self.home / 'dockyard.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        """The artifact store URL in effect."""
        return self.artifact_url or str(self.home / "artifacts")
