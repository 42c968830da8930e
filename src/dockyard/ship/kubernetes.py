"""``dockyard k8s``: the manifests of :mod:`dockyard.ship.manifests` written as YAML files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError
from dockyard.ship.manifests import ClusterPlan, manifests

if TYPE_CHECKING:
    from dockyard.registry import Registry
    from dockyard.settings import Settings

REMOTE = ("s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://")
"""Storage URLs every replica can share; a local folder is one pod's own."""


def image_name(endpoint: str, revision: int) -> str:
    """The tag ``dockyard build`` gives an endpoint's image, and manifests default to."""
    return f"dockyard-{endpoint.lower().replace('_', '-')}:r{revision}"


BAKED_OWN = ("DOCKYARD_DATABASE_URL", "DOCKYARD_ARTIFACT_URL")
"""What a baked image sets itself (its snapshot and artifacts), and a ConfigMap would override."""


def shared_config(settings: Settings, *, baked: bool = False) -> dict[str, str]:
    """The settings in effect that replicas can share as plain configuration: remote
    artifact and monitoring URLs (credentials and the database URL belong in the Secret); a
    baked image's own artifacts are not replaced."""
    config: dict[str, str] = {}
    if not baked and settings.artifact_url and settings.artifact_url.startswith(REMOTE):
        config["DOCKYARD_ARTIFACT_URL"] = settings.artifact_url
    if settings.monitoring_url and settings.monitoring_url.startswith(REMOTE):
        config["DOCKYARD_MONITORING_URL"] = settings.monitoring_url
    return config


def write_manifests(
    registry: Registry, settings: Settings, plan: ClusterPlan, out: Path
) -> list[Path]:
    """Write ``plan``'s manifests under ``out`` for an endpoint deployed in ``registry``
    (refused when it is not: ``NotFoundError``; nor for a baked image told where its
    registry is: ``InvalidRequestError``); returns the files written."""
    import yaml

    from dockyard.deploy.service import Deployments

    overridden = sorted(set(plan.config) & set(BAKED_OWN)) if plan.baked else []
    if overridden:
        raise InvalidRequestError(
            f"A baked image carries its own registry and artifacts: {', '.join(overridden)} "
            "would point it elsewhere.",
            hint="Leave out --artifact-url, or build the image with --shared.",
        )
    deployment = Deployments(registry).get(plan.endpoint)
    if not plan.image:
        plan = dataclasses.replace(plan, image=image_name(plan.endpoint, deployment.revision))
    shared = shared_config(settings, baked=plan.baked)
    plan = dataclasses.replace(plan, config={**shared, **plan.config})
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in manifests(plan).items():
        path = out / name
        path.write_text(_dump(yaml, body))
        written.append(path)
    return written


def _dump(yaml: Any, body: dict[str, Any]) -> str:
    return str(yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
