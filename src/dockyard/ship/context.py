"""``dockyard build``: an OCI build context that serves an endpoint (or one version).

The context, and the image it builds::

    Dockerfile          two stages: a virtualenv built from requirements.txt, then a slim
                        runtime stage with that venv, this Dockyard's code and (baked) the
                        registry snapshot; user 10001, HEALTHCHECK on /healthz, and
                        ``python -m dockyard serve`` in exec form (PID 1, so SIGTERM starts
                        the graceful shutdown)
    requirements.txt    pinned (:mod:`dockyard.ship.requirements`)
    lib/dockyard/       this Dockyard's code, exactly the version running the build
    registry/           baked only: a sealed SQLite snapshot and its artifacts
    .dockerignore

Everything lives under :data:`ROOT` in the image, mirrored by the context's layout, so the
context's own files run the same command (the build test does exactly that). The root
filesystem can be read-only: the server writes only under ``DOCKYARD_HOME`` (a volume) and
``/tmp``. A baked registry is opened with SQLite's ``immutable`` mode and every artifact's
digest is verified as it loads; a shared registry comes from ``DOCKYARD_DATABASE_URL``,
``DOCKYARD_ARTIFACT_URL`` and friends at run time.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard._version import __version__
from dockyard.errors import InvalidRequestError
from dockyard.ship.manifests import HOME, PORT
from dockyard.ship.requirements import extras_for, pinned

if TYPE_CHECKING:
    from dockyard.deploy.spec import DeploymentSpec
    from dockyard.registry import Registry, Version
    from dockyard.settings import Settings

ROOT = "/opt/dockyard"
USER_ID = 10001
DEFAULT_BASE = "python:{python}-slim"


@dataclass(frozen=True)
class BuildContext:
    """What ``dockyard build`` wrote."""

    folder: Path
    endpoint: str
    tag: str
    baked: bool
    versions: tuple[str, ...]
    requirements: tuple[str, ...]
    token: str | None
    """Baked only: a predict+read token made for the image (only its hash is in it)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "endpoint": self.endpoint,
            "tag": self.tag,
            "registry": "baked" if self.baked else "shared",
            "versions": list(self.versions),
            "requirements": list(self.requirements),
            "token": self.token,
        }


def write_context(
    registry: Registry,
    settings: Settings,
    target: str,
    out: Path,
    *,
    base: str | None = None,
    baked: bool = True,
) -> BuildContext:
    """Write the build context for ``target`` (a deployed endpoint, or ``name@version`` /
    ``name@alias`` served as an endpoint named after the model) under ``out``, which must
    be missing or empty."""
    from dockyard.deploy.service import Deployments, single_route
    from dockyard.ship.kubernetes import image_name

    deployments = Deployments(registry)
    if "@" in target:
        version = registry.get_version(target)
        endpoint, spec = version.model, single_route(version.ref)
        tag = f"{image_name(endpoint, 1).split(':')[0]}:{version.version.replace('+', '_')}"
    else:
        deployment = deployments.get(target)
        endpoint, spec = target, deployment.spec
        tag = image_name(endpoint, deployment.revision)
    served = [registry.get_version(ref) for ref in spec.references()]
    if out.exists() and any(out.iterdir()):
        raise InvalidRequestError(
            f"{out} is not empty.", hint="Choose a new folder with --out, or empty this one."
        )
    python = _python(served)
    extras = extras_for(
        {v.runtime for v in served},
        postgres=not baked and settings.resolved_database_url.startswith("postgresql"),
        s3=not baked and settings.resolved_artifact_url.startswith("s3://"),
    )
    pins = pinned(extras, _recorded(served))
    out.mkdir(parents=True, exist_ok=True)
    token = None
    if baked:
        token = _bake(registry, endpoint, spec, served, out / "registry")
    lib = out / "lib"
    shutil.copytree(
        Path(__file__).parents[1], lib / "dockyard", ignore=shutil.ignore_patterns("__pycache__")
    )
    header = [
        f"# dockyard {__version__} (its code is in lib/), serving {endpoint}: "
        + ", ".join(v.ref for v in served),
        f"# Python {python}; pins from the served versions' recorded environment where they "
        "recorded one, else from the building machine",
    ]
    (out / "requirements.txt").write_text(
        "\n".join([*header, *(f"{p.line()}  # {p.source}" for p in pins)]) + "\n"
    )
    (out / "Dockerfile").write_text(
        dockerfile(base or DEFAULT_BASE.format(python=python), baked=baked, endpoint=endpoint)
    )
    (out / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    return BuildContext(
        folder=out,
        endpoint=endpoint,
        tag=tag,
        baked=baked,
        versions=tuple(v.ref for v in served),
        requirements=tuple(p.line() for p in pins),
        token=token,
    )


def dockerfile(base: str, *, baked: bool, endpoint: str) -> str:
    """The Dockerfile (see the module docstring)."""
    env = {
        "PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT}/lib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "DOCKYARD_HOME": HOME,
    }
    if baked:
        from dockyard.registry.snapshot import read_only_url

        env["DOCKYARD_DATABASE_URL"] = read_only_url(Path(f"{ROOT}/registry/dockyard.db"))
        env["DOCKYARD_ARTIFACT_URL"] = f"{ROOT}/registry/artifacts"
    probe = (
        "import os, ssl, urllib.request; "
        "scheme = 'https' if os.environ.get('DOCKYARD_SSL_CERTFILE') else 'http'; "
        f"urllib.request.urlopen(f'{{scheme}}://127.0.0.1:{PORT}/healthz', timeout=3, "
        "context=ssl._create_unverified_context())"
    )
    lines = [
        "# syntax=docker/dockerfile:1",
        f"# Dockyard {__version__}: serves {endpoint}. Build: docker build -t TAG .",
        f"ARG BASE={base}",
        "",
        "FROM ${BASE} AS build",
        "RUN python -m venv /opt/venv",
        "COPY requirements.txt /tmp/requirements.txt",
        "RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "
        "-r /tmp/requirements.txt",
        f"COPY lib/ {ROOT}/lib/",
        f"RUN /opt/venv/bin/python -m compileall -q {ROOT}/lib",
        "",
        "FROM ${BASE}",
        f"RUN groupadd --gid {USER_ID} dockyard "
        f"&& useradd --uid {USER_ID} --gid {USER_ID} --no-create-home --shell /usr/sbin/nologin "
        f"--home-dir {HOME} dockyard && mkdir -p {HOME} && chown {USER_ID}:{USER_ID} {HOME}",
        "COPY --from=build /opt/venv /opt/venv",
        f"COPY --from=build {ROOT}/lib {ROOT}/lib",
    ]
    if baked:
        lines.append(f"COPY registry/ {ROOT}/registry/")
    lines += [
        "ENV " + " ".join(f"{key}={json.dumps(value)}" for key, value in env.items()),
        f"USER {USER_ID}:{USER_ID}",
        f"WORKDIR {HOME}",
        f'VOLUME ["{HOME}"]',
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 "
        f"CMD {json.dumps(['python', '-c', probe])}",
        'ENTRYPOINT ["python", "-m", "dockyard"]',
        f'CMD ["serve", "--host", "0.0.0.0", "--port", "{PORT}", "--auth", "--log-format", "json"]',
        "",
    ]
    return "\n".join(lines)


def _python(served: list[Version]) -> str:
    """The ``major.minor`` Python the served versions were registered with (one only)."""
    import platform

    found = {".".join(v.environment.get("python", "").split(".")[:2]) for v in served} - {""}
    if len(found) > 1:
        raise InvalidRequestError(
            f"The served versions were registered with Python {' and '.join(sorted(found))}: "
            "one image has one interpreter.",
            hint="Build an image per version, or register them again with one Python.",
        )
    return found.pop() if found else ".".join(platform.python_version_tuple()[:2])


def _recorded(served: list[Version]) -> dict[str, str]:
    """Package versions the served versions recorded; two different ones cannot be pinned."""
    recorded: dict[str, str] = {}
    for version in served:
        for name, value in version.environment.items():
            if recorded.setdefault(name, value) != value and name != "python":
                raise InvalidRequestError(
                    f"The served versions need {name} {recorded[name]} and {value}: one image "
                    "pins one.",
                    hint="Build an image per version.",
                )
    return recorded


def _bake(
    registry: Registry, endpoint: str, spec: DeploymentSpec, served: list[Version], folder: Path
) -> str:
    """The snapshot with ``endpoint`` deployed and a token for the image; returns the token."""
    from dockyard.deploy.store import DeploymentStore
    from dockyard.registry.database import Database
    from dockyard.registry.snapshot import seal, write_snapshot
    from dockyard.security.tokens import TokenStore

    snapshot = write_snapshot(registry, [v.ref for v in served], folder)
    database = Database(snapshot.database_url)
    try:
        DeploymentStore(database).put(
            endpoint, spec, actor=registry.actor, reason=f"baked by dockyard build {__version__}"
        )
        _, secret = TokenStore(database).create(
            f"image-{endpoint}", ["predict", "read"], actor=registry.actor
        )
    finally:
        database.dispose()
    seal(snapshot)
    return secret
