"""``dockyard build`` and ``dockyard k8s``: files to run an endpoint in containers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.context import open_registry, settings_for
from dockyard.cli.render import out, print_json

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def yaml_data(path: Path) -> dict[str, str]:
    """A written ConfigMap's data."""
    import yaml

    data: dict[str, str] = yaml.safe_load(path.read_text())["data"]
    return data


def k8s(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The deployed endpoint the replicas serve.")],
    replicas: Annotated[int, typer.Option(min=1, max=1000, help="Replicas (the HPA's floor).")] = 2,
    max_replicas: Annotated[int, typer.Option(min=1, max=1000, help="The HPA's ceiling.")] = 8,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder to write (default: k8s-ENDPOINT).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Image to run (default: the tag dockyard build gives the endpoint)."),
    ] = None,
    baked: Annotated[
        str | None,
        typer.Option(
            metavar="IMAGE",
            help="Run IMAGE, built by dockyard build without --shared: it carries its "
            "registry, so the pods need no database Secret.",
        ),
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace for every object.")] = None,
    cpu: Annotated[str, typer.Option(help="CPU request per replica.")] = "500m",
    memory: Annotated[str, typer.Option(help="Memory request and limit per replica.")] = "1Gi",
    queue_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Also scale on rows waiting per pod (dockyard_queue_rows through the "
            "Prometheus adapter).",
        ),
    ] = None,
    tls_secret: Annotated[
        str | None, typer.Option(help="A kubernetes.io/tls Secret: the pods serve HTTPS with it.")
    ] = None,
    artifact_url: Annotated[
        str | None,
        typer.Option(help="Shared artifact store for the pods (default: the s3:// one in effect)."),
    ] = None,
    monitoring_url: Annotated[
        str | None,
        typer.Option(help="Shared prediction log for the pods (default: the s3:// one in effect)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write Kubernetes manifests for replicas serving ENDPOINT from a shared registry:
    Deployment, Service, HPA, PodDisruptionBudget, ServiceMonitor, ConfigMap, kustomization."""
    from dockyard.errors import InvalidRequestError
    from dockyard.ship.kubernetes import write_manifests
    from dockyard.ship.manifests import ADAPTER_RULES, ClusterPlan

    if image and baked:
        raise InvalidRequestError(
            "Give --image (a shared registry) or --baked (an image with its own), not both.",
            hint="dockyard k8s ENDPOINT --baked dockyard-ENDPOINT:r1",
        )
    plan = ClusterPlan(
        endpoint=endpoint,
        image=baked or image or "",
        baked=baked is not None,
        replicas=replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        queue_rows_per_pod=queue_rows,
        tls_secret=tls_secret,
        namespace=namespace,
        config={
            key: value
            for key, value in (
                ("DOCKYARD_ARTIFACT_URL", artifact_url),
                ("DOCKYARD_MONITORING_URL", monitoring_url),
            )
            if value
        },
    )
    folder = out_dir or Path(f"k8s-{endpoint}")
    with open_registry(ctx) as registry:
        written = write_manifests(registry, settings_for(ctx), plan, folder)
    if as_json:
        print_json({"files": [str(p) for p in written], "secrets": plan.secrets})
        return
    for path in written:
        out.print(f"wrote {path}")
    config = yaml_data(folder / "configmap.yaml")
    if not plan.baked and "DOCKYARD_ARTIFACT_URL" not in config:
        out.print(
            "[yellow]No shared artifact store is configured: each pod would use its own "
            "folder. Pass --artifact-url s3://BUCKET/PREFIX (and --monitoring-url).[/]"
        )
    database = (
        ""
        if plan.baked
        else f"  kubectl create secret generic {plan.secret} "
        "--from-literal=DOCKYARD_DATABASE_URL=postgresql+psycopg://... "
        "--from-literal=DOCKYARD_ARTIFACT_OPTIONS='{...}'\n"
    )
    token = (
        "the token dockyard build printed"
        if plan.baked
        else "dockyard tokens create prometheus --scope read"
    )
    out.print(
        "Before `kubectl apply -k "
        f"{folder}`, create the Secrets the manifests name (never written to files):\n"
        f"{database}  kubectl create secret generic {plan.metrics_secret} "
        f"--from-literal=token=READ_TOKEN   # {token}",
        soft_wrap=True,
    )
    if plan.queue_rows_per_pod is not None:
        out.print(
            f"Add the rule in {folder / ADAPTER_RULES} to the Prometheus adapter's "
            "configuration (its config.yaml, or the Helm chart's rules.custom): the HPA "
            "scales on dockyard_queue_rows through it.",
            soft_wrap=True,
        )


def build(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="A deployed endpoint, or name@version / name@alias.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder to write (default: build-TARGET).")
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="Base image (default: python:X.Y-slim for the recorded Python)."),
    ] = None,
    shared: Annotated[
        bool,
        typer.Option(
            "--shared",
            help="Bake no registry: the image reads a shared one (PostgreSQL/S3) from "
            "DOCKYARD_* variables at run time.",
        ),
    ] = False,
    run_build: Annotated[
        bool, typer.Option("--build", help="Then build the image with docker or podman.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write an OCI build context (Dockerfile, pinned requirements, this Dockyard's code and,
    unless --shared, a read-only registry snapshot) that serves TARGET."""
    from dockyard.errors import UnavailableError
    from dockyard.ship.context import write_context
    from dockyard.ship.engine import build_image

    folder = out_dir or Path(f"build-{target.replace('@', '-')}")
    with open_registry(ctx) as registry:
        context = write_context(
            registry, settings_for(ctx), target, folder, base=base, baked=not shared
        )
    if as_json:
        body = context.to_dict()
        try:
            body["built"] = build_image(context.folder, context.tag) if run_build else None
        except UnavailableError as exc:  # the token is printed all the same
            print_json({**body, "built": None, "error": exc.message})
            raise typer.Exit(exc.exit_code) from None
        print_json(body)
        return
    out.print(f"wrote {folder}: Dockerfile, requirements.txt ({len(context.requirements)} pins)"
              f", lib/dockyard{', registry/' if context.baked else ''}")  # fmt: skip
    out.print(f"serves {context.endpoint}: {', '.join(context.versions)}", soft_wrap=True)
    if context.token:
        out.print(
            f"token for the image (predict, read; shown once, only its hash is baked): "
            f"{context.token}",
            soft_wrap=True,
        )
    if not run_build:
        out.print(f"build it with: docker build -t {context.tag} {folder}", soft_wrap=True)
        return
    out.print(f"built {context.tag} with {build_image(context.folder, context.tag)}")
