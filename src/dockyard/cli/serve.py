"""``dockyard serve`` and ``predict``."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import secrets
import shutil
import tempfile
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.context import open_registry, settings_for
from dockyard.cli.render import out, print_json, table
from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    from dockyard.deploy.spec import Deployment
    from dockyard.registry import Registry

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    auth: Annotated[
        bool, typer.Option("--auth", help="Require bearer tokens (see dockyard tokens).")
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow binding beyond loopback without auth.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text, or json: one JSON object per line (500s with request id).")
    ] = "text",
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Also serve the Open Inference Protocol over gRPC on this port."
        ),
    ] = None,
    ssl_certfile: Annotated[
        Path | None,
        typer.Option(
            envvar="DOCKYARD_SSL_CERTFILE",
            help="PEM certificate chain: serve HTTPS only (checked before binding).",
        ),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option(
            envvar="DOCKYARD_SSL_KEYFILE",
            help="The certificate's unencrypted PEM key (omit if it is in the certificate file).",
        ),
    ] = None,
) -> None:
    """Serve every deployed endpoint over HTTP (v1 JSON and the Open Inference Protocol)."""
    import uvicorn

    from dockyard.server.logs import FORMATS, logging_config
    from dockyard.server.tls import check_certificate
    from dockyard.settings import SHUTDOWN_GRACE_S

    if log_format not in FORMATS:
        raise InvalidRequestError(f"--log-format is {log_format!r}: use text or json.")
    auth = auth or os.environ.get("DOCKYARD_AUTH", "").lower() in ("1", "true", "yes")
    if not _loopback(host) and not auth and not insecure:
        raise InvalidRequestError(
            f"Refusing to serve on {host} without authentication.",
            hint="Add --auth (and create tokens with: dockyard tokens create), or --insecure "
            "if something else guards this network.",
        )
    check_certificate(ssl_certfile, ssl_keyfile)  # before binding: one line, nothing bound
    _export_tls(ssl_certfile, ssl_keyfile)
    home = (ctx.find_root().obj or {}).get("home")
    if home is not None:
        os.environ["DOCKYARD_HOME"] = str(home)  # the workers build settings from the env
    os.environ["DOCKYARD_AUTH"] = "true" if auth else "false"
    # Arrow's buffers (the prediction log's chunks) from the system allocator in the workers
    # and the monitor process: jemalloc, pyarrow's default, keeps freed pages for reuse, ~6 MiB
    # more in a steady serving process, for small chunks that gain nothing from it
    # (benchmarks/start.py). An operator's own choice wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    from dockyard.server.connections import (
        ConnectionLimits,
        GuardedProtocol,
        RefusalLog,
        fitted_cap,
        listen,
        raise_fd_limit,
    )
    from dockyard.server.monitor_workers import MONITOR_KEY_ENV

    listener = listen(host, port)  # a busy port fails here, before anything loads
    if grpc_port is not None:
        _grpc_environment(host, grpc_port)
    port = listener.getsockname()[1]  # --port 0: the one the system chose
    settings = settings_for(ctx)
    limits = ConnectionLimits.from_settings(settings)
    fd_limit = raise_fd_limit()
    cap = fitted_cap(limits.max_connections, fd_limit)
    if cap < limits.max_connections:
        out.print(
            f"[yellow]The open-file limit is {fd_limit}: at most {cap} connections per "
            "process (DOCKYARD_MAX_CONNECTIONS asks for more).[/]"
        )
        limits = dataclasses.replace(limits, max_connections=cap)
    with open_registry(ctx) as registry:  # migrate once, before any worker starts
        names = [d.name for d in _deployments(registry)]
    metrics_dir = None  # the workers' shared Prometheus files, removed at exit
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="dockyard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        # the key of the lead worker's monitor process socket, for the workers alone
        os.environ[MONITOR_KEY_ENV] = secrets.token_hex(32)
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    scheme = "https" if settings.tls else "http"
    base = f"{scheme}://{f'[{local}]' if ':' in local else local}:{port}"
    banner = [
        f"Dockyard serving {len(names)} endpoint(s) on {base} ({workers} worker(s))"
        + (", auth on" if auth else "")
        + (", TLS on" if settings.tls else ""),
        *(f"  {base}/v1/endpoints/{n}/predict   {base}/v2/models/{n}/infer" for n in names),
        f"  docs {base}/docs   metrics {base}/metrics   ready {base}/readyz",
    ]
    if grpc_port is not None:
        grpc_host = f"[{local}]" if ":" in local else local
        secure = " over TLS" if settings.tls else ""
        banner.append(f"  gRPC (Open Inference Protocol) {grpc_host}:{grpc_port}{secure}")
    config = uvicorn.Config(
        "dockyard.server.app:factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=logging_config(log_format, log_level),
        access_log=False,
        loop="uvloop",
        # no websocket routes: uvicorn would otherwise import websockets (or wsproto)
        # wherever it is installed (uvicorn[standard] brings it) into the serving process
        ws="none",
        http=functools.partial(GuardedProtocol, limits=limits, refusals=RefusalLog()),  # type: ignore[arg-type]
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        server_header=False,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    server = uvicorn.Server(config)
    stop = threading.Event()
    threading.Thread(
        target=_announce,
        args=(local, port, settings.tls, banner, stop),
        name="dockyard-banner",
        daemon=True,
    ).start()
    try:
        if workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[listener]).run()
        else:
            server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        listener.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn's startup failure (it has logged why)


def _grpc_environment(host: str, port: int) -> None:
    """Check the gRPC port is free and the grpc extra installed, then tell the workers
    (they build their settings from the environment) to serve gRPC there."""
    import importlib.util
    import socket

    if importlib.util.find_spec("grpc") is None:
        raise InvalidRequestError(
            "--grpc-port needs the grpc extra.", hint="pip install 'dockyard[grpc]'"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidRequestError(
                f"Cannot serve gRPC on {host}:{port}: {exc.strerror or exc}.",
                hint="Choose another --grpc-port.",
            ) from None
    os.environ["DOCKYARD_GRPC_PORT"] = str(port)
    os.environ["DOCKYARD_GRPC_HOST"] = host


def _export_tls(certfile: Path | None, keyfile: Path | None) -> None:
    """Hand the TLS files to the workers' settings (built from the environment), as absolute
    paths; neither set: TLS off, whatever the environment said."""
    for name, path in (("DOCKYARD_SSL_CERTFILE", certfile), ("DOCKYARD_SSL_KEYFILE", keyfile)):
        if path is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(path.resolve())


def _announce(host: str, port: int, tls: bool, banner: list[str], stop: threading.Event) -> None:
    """Print the banner once the server answers ``/healthz``: its models are loaded and it
    is listening (the socket is bound before they load, so requests wait, not fail). Under
    TLS the check does not verify the certificate: it is this process's own server."""
    import http.client
    import ssl

    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    while not stop.is_set():
        connection: http.client.HTTPConnection = (
            http.client.HTTPSConnection(host, port, timeout=10, context=unverified)
            if tls
            else http.client.HTTPConnection(host, port, timeout=10)
        )
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                break
        except OSError:
            pass
        finally:
            connection.close()
        stop.wait(0.1)
    else:
        return
    for line in banner:
        out.print(line, soft_wrap=True)


def _deployments(registry: Registry) -> list[Deployment]:
    from dockyard.deploy.service import Deployments

    return Deployments(registry).list()


CHUNK_ROWS = 1000
"""Rows per request of ``dockyard predict``: well under an endpoint's queue (65,536 rows by
default), so a large file is scored in order without one request being refused."""


def predict(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    data: Annotated[
        Path, typer.Option(help="Rows to score: .json (records), .jsonl, .csv, .parquet.")
    ],
    url: Annotated[
        str, typer.Option(envvar="DOCKYARD_URL", help="Server URL.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(envvar="DOCKYARD_TOKEN", help="Bearer token (predict scope).")
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows per request; a larger file is sent in order.")
    ] = CHUNK_ROWS,
    as_json: JsonOption = False,
) -> None:
    """Send rows to a running server and print its predictions (a large file in requests of
    --chunk-rows rows, in order, answered as one)."""
    import orjson

    from dockyard.cli.render import err
    from dockyard.schema import read_table

    frame = read_table(data)
    records = orjson.loads(frame.to_json(orient="records"))
    target = f"{url.rstrip('/')}/v1/endpoints/{endpoint}/predict"
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    starts = range(0, len(records), chunk_rows)
    answers: list[dict[str, Any]] = []
    several = len(starts) > 1
    with err.status(f"Scoring {len(records):,} rows…") if several else nullcontext() as status:
        for start in starts:
            answers.append(_post(target, records[start : start + chunk_rows], headers, url))
            if status is not None:  # a terminal sees the count move; a log gets one line
                done = min(start + chunk_rows, len(records))
                status.update(f"Scored {done:,} of {len(records):,} rows…")
    if several:
        err.print(f"scored {len(records):,} rows in {len(starts)} requests of ≤ {chunk_rows:,}")
    body = _joined(answers)
    if as_json:
        print_json(body)
        return
    columns = ["row", "prediction"]
    probabilities = body.get("probabilities")
    if probabilities is not None:
        columns += [f"p({c})" for c in body.get("classes", range(len(probabilities[0])))]
    rows = [
        [i, p, *(probabilities[i] if probabilities is not None else [])]
        for i, p in enumerate(body["predictions"])
    ]
    served = ", ".join(f"{body['model']}@{v}" for v in body["versions"])
    out.print(table(f"{endpoint} → {served}", columns, rows))


def _post(target: str, records: list[Any], headers: dict[str, str], url: str) -> dict[str, Any]:
    """One predict request; a refusal becomes the Dockyard error its status means."""
    import httpx
    import orjson

    from dockyard.errors import NotFoundError, UnavailableError

    try:
        response = httpx.post(
            target, content=orjson.dumps({"instances": records}), headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"Cannot reach {url}: {exc}.", hint="Start it with: dockyard serve"
        ) from None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {"error": f"{url} answered {response.status_code} with a body that is not JSON."}
    if response.status_code != 200:
        message = str(body.get("error") or response.reason_phrase)
        if response.status_code == 404:
            raise NotFoundError(message)
        if response.status_code < 500:
            raise InvalidRequestError(message)
        raise UnavailableError(message, hint="Check the server's log; retry shortly.")
    return body


def _joined(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The answers to consecutive chunks as one: predictions (and probabilities) in row order,
    each request's id, the versions that served them, and every distinct note."""
    first = answers[0] if answers else {"predictions": []}
    body: dict[str, Any] = {
        key: first[key] for key in ("endpoint", "model", "version", "classes") if key in first
    }
    body["versions"] = list(dict.fromkeys(a["version"] for a in answers if "version" in a))
    body["request_ids"] = [a["request_id"] for a in answers if "request_id" in a]
    body["predictions"] = [p for a in answers for p in a["predictions"]]
    if "probabilities" in first:
        body["probabilities"] = [p for a in answers for p in a.get("probabilities", [])]
    notes = list(dict.fromkeys(n for a in answers for n in a.get("notes", [])))
    if notes:
        body["notes"] = notes
    return body
