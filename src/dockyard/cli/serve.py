"""``dockyard serve`` and ``predict``."""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import out, print_json, table
from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    from dockyard.registry import Registry
    from dockyard.serving.deployments import Deployment

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
) -> None:
    """Serve every deployed endpoint over HTTP (v1 JSON and the Open Inference Protocol)."""
    import uvicorn

    from dockyard.server.logs import FORMATS, logging_config

    if log_format not in FORMATS:
        raise InvalidRequestError(f"--log-format is {log_format!r}: use text or json.")
    auth = auth or os.environ.get("DOCKYARD_AUTH", "").lower() in ("1", "true", "yes")
    if not _loopback(host) and not auth and not insecure:
        raise InvalidRequestError(
            f"Refusing to serve on {host} without authentication.",
            hint="Add --auth (and create tokens with: dockyard tokens create), or --insecure "
            "if something else guards this network.",
        )
    home = (ctx.find_root().obj or {}).get("home")
    if home is not None:
        os.environ["DOCKYARD_HOME"] = str(home)  # the workers build settings from the env
    os.environ["DOCKYARD_AUTH"] = "true" if auth else "false"
    with open_registry(ctx) as registry:  # migrate once, before any worker starts
        names = [d.name for d in _deployments(registry)]
    metrics_dir = None  # the workers' shared Prometheus files, removed at exit
    if workers > 1:
        metrics_dir = tempfile.mkdtemp(prefix="dockyard-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    base = f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{port}"
    out.print(
        f"Dockyard serving {len(names)} endpoint(s) on {base} ({workers} worker(s))"
        + (", auth on" if auth else "")
    )
    for name in names:
        out.print(f"  {base}/v1/endpoints/{name}/predict   {base}/v2/models/{name}/infer")
    out.print(f"  docs {base}/docs   metrics {base}/metrics   ready {base}/readyz")
    try:
        uvicorn.run(
            "dockyard.server.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=logging_config(log_format, log_level),
            access_log=False,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=30,
            server_header=False,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _deployments(registry: Registry) -> list[Deployment]:
    from dockyard.serving.deployments import DeploymentStore

    return DeploymentStore(registry.db).list()


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
    as_json: JsonOption = False,
) -> None:
    """Send rows to a running server and print its predictions."""
    import httpx
    import orjson

    from dockyard.errors import NotFoundError, UnavailableError
    from dockyard.schema import read_table

    frame = read_table(data)
    records = orjson.loads(frame.to_json(orient="records"))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/endpoints/{endpoint}/predict",
            content=orjson.dumps({"instances": records}),
            headers={"content-type": "application/json", **headers},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise UnavailableError(
            f"Cannot reach {url}: {exc}.", hint="Start it with: dockyard serve"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {"error": f"{url} answered {response.status_code} with a body that is not JSON."}
    if response.status_code != 200:
        message = str(body.get("error") or response.reason_phrase)
        if response.status_code == 404:
            raise NotFoundError(message)
        if response.status_code < 500:
            raise InvalidRequestError(message)
        raise UnavailableError(message, hint="Check the server's log; retry shortly.")
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
    out.print(table(f"{endpoint} → {body['model']}@{body['version']}", columns, rows))
