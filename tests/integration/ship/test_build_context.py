"""``dockyard build``'s context: the Dockerfile's promises, requirements with only the
extras the served runtimes need, and a baked registry that holds only what it serves, opens
read-only and still verifies every artifact it loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import (
    ArtifactIntegrityError,
    InvalidRequestError,
    StorageError,
    UnavailableError,
)
from dockyard.registry import Registry
from dockyard.registry.snapshot import read_only_url
from dockyard.settings import Settings
from dockyard.ship.context import BuildContext, write_context
from dockyard.ship.engine import build_image


def _build(settings: Settings, target: str, out: Path, **options: Any) -> BuildContext:
    with Registry.open(settings) as registry:
        return write_context(registry, settings, target, out, **options)


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    return [
        (line.split(" ", 1)[0], line.split(" ", 1)[1])
        for line in dockerfile.splitlines()
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_is_multi_stage_non_root_and_exec_form(
    deployed: Settings, tmp_path: Path
) -> None:
    context = _build(deployed, "cancer", tmp_path / "ctx")
    steps = _instructions((context.folder / "Dockerfile").read_text())
    assert [arg for op, arg in steps if op == "FROM"] == ["${BASE} AS build", "${BASE}"]
    assert ("USER", "10001:10001") in steps
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    assert all(op != "RUN" for op, _ in steps[last_user:])  # nothing runs as root after
    (health,) = [arg for op, arg in steps if op == "HEALTHCHECK"]
    assert "/healthz" in health
    (entrypoint,) = [arg for op, arg in steps if op == "ENTRYPOINT"]
    (command,) = [arg for op, arg in steps if op == "CMD"]
    assert json.loads(entrypoint) == ["python", "-m", "dockyard"]  # exec form: PID 1 is python
    assert json.loads(command)[:1] == ["serve"]
    assert "--auth" in json.loads(command)
    assert ("VOLUME", '["/var/lib/dockyard"]') in steps
    assert "ARG BASE=python:3.11-slim" in (context.folder / "Dockerfile").read_text()
    assert context.tag == "dockyard-cancer:r1"


def test_requirements_pin_the_recorded_environment_and_only_needed_extras(
    deployed: Settings, tmp_path: Path, penguins: tuple[Any, Any, Any]
) -> None:
    context = _build(deployed, "cancer", tmp_path / "ctx")
    pins = dict(line.split("==") for line in context.requirements)
    with Registry.open(deployed) as registry:
        recorded = registry.get_version("cancer@production").environment
    assert pins["scikit-learn"] == recorded["scikit-learn"]
    assert pins["skops"] == recorded["skops"]
    assert "dockyard" not in pins  # its code is in lib/, exactly this version
    assert {"torch", "lightgbm", "xgboost", "psycopg", "s3fs"}.isdisjoint(pins)
    assert (context.folder / "lib" / "dockyard" / "__init__.py").is_file()
    assert not list((context.folder / "lib").rglob("__pycache__"))

    model, X, y = penguins
    with Registry.open(deployed) as registry:
        registry.register(model, "penguins", sample=X, y=y)
    boosted = _build(deployed, "penguins@1.0.0", tmp_path / "boosted")
    names = {line.split("==")[0] for line in boosted.requirements}
    assert "lightgbm" in names
    assert "torch" not in names
    assert boosted.endpoint == "penguins"
    assert boosted.versions == ("penguins@1.0.0",)
    assert boosted.tag == "dockyard-penguins:1.0.0"  # a version's image is tagged by it


def test_the_baked_registry_holds_only_what_it_serves(
    deployed: Settings, tmp_path: Path, penguins: tuple[Any, Any, Any]
) -> None:
    model, X, y = penguins
    with Registry.open(deployed) as registry:
        registry.register(model, "penguins", sample=X, y=y)
    context = _build(deployed, "cancer", tmp_path / "ctx")
    assert context.token is not None
    database = context.folder / "registry" / "dockyard.db"
    assert sorted(p.name for p in database.parent.iterdir()) == ["artifacts", "dockyard.db"]
    baked = Settings(
        home=tmp_path / "run",
        database_url=read_only_url(database),
        artifact_url=str(context.folder / "registry" / "artifacts"),
        user="image",
    )
    with Registry.open(baked) as registry:
        assert [m.name for m in registry.list_models()] == ["cancer"]
        assert registry.get_version("cancer@production").version == "1.0.0"
        registry.load("cancer@production")  # loads, digest verified
        with pytest.raises(StorageError):
            registry.set_alias("cancer@1.0.0", "staging")  # SQLite refuses: read-only
        from dockyard.deploy.service import Deployments

        assert [d.name for d in Deployments(registry).list()] == ["cancer"]
        from dockyard.security.tokens import TokenStore

        principal = TokenStore(registry.db).verify(context.token)
        assert principal is not None
        assert set(principal.scopes) == {"predict", "read"}
    assert sorted(p.name for p in database.parent.iterdir()) == ["artifacts", "dockyard.db"]


def test_a_tampered_baked_artifact_is_refused_at_load(deployed: Settings, tmp_path: Path) -> None:
    context = _build(deployed, "cancer", tmp_path / "ctx")
    with Registry.open(deployed) as registry:
        digest = registry.get_version("cancer@production").digest
    blob = next((context.folder / "registry" / "artifacts").rglob(digest))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped
    blob.write_bytes(bytes(data))
    baked = Settings(
        home=tmp_path / "run",
        database_url=read_only_url(context.folder / "registry" / "dockyard.db"),
        artifact_url=str(context.folder / "registry" / "artifacts"),
    )
    with Registry.open(baked) as registry, pytest.raises(ArtifactIntegrityError):
        registry.load("cancer@production")


def test_a_shared_registry_context_bakes_nothing(deployed: Settings, tmp_path: Path) -> None:
    context = _build(deployed, "cancer", tmp_path / "ctx", baked=False)
    assert not (context.folder / "registry").exists()
    assert context.token is None
    dockerfile = (context.folder / "Dockerfile").read_text()
    assert "DOCKYARD_DATABASE_URL" not in dockerfile
    assert "COPY registry/" not in dockerfile


def test_refusals_change_nothing(deployed: Settings, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InvalidRequestError, match="is not empty"):
        _build(deployed, "cancer", busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]


def test_without_an_engine_the_build_says_so(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError) as caught:
        build_image(tmp_path, "dockyard-x:r1", engines=("no-such-engine-here",))
    assert "No container engine here" in caught.value.message
    assert f"docker build -t dockyard-x:r1 {tmp_path}" in (caught.value.hint or "")
