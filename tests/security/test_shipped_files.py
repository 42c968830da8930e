"""Attack: reading secrets out of what ``dockyard build`` and ``dockyard k8s`` write.

An image or a manifest folder travels further than the registry it came from (image
registries, git repositories, CI logs). Nothing in them may carry what the registry
guards: other tokens (even hashed), other models' metadata, the database password, the
storage credentials. The baked snapshot holds only the served versions and the one token
made for the image; the shared-registry context and the manifests carry settings by name
only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.registry import Registry
from dockyard.security.tokens import TokenStore, hash_secret
from dockyard.settings import Settings
from dockyard.ship.context import write_context
from dockyard.ship.kubernetes import write_manifests
from dockyard.ship.manifests import ClusterPlan

PASSWORD = "hunter2-do-not-ship"
S3_SECRET = "s3-secret-do-not-ship"


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[Settings, str]:
    """A registry with the served model, a private one, and an admin token; returns the
    settings (with credentials in them, as an operator's would be) and the token."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from dockyard.deploy.service import Deployments, single_route

    data = load_iris(as_frame=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(data.data, data.target)
    settings = Settings(home=tmp_path / "home", user="tester")
    with Registry.open(settings) as registry:
        registry.register(model, "iris", sample=data.data, y=data.target)
        registry.register(model, "secret-project", sample=data.data, y=data.target)
        Deployments(registry).deploy("iris", single_route("iris@1.0.0"), actor="tester")
        _, admin = TokenStore(registry.db).create("ops", ["admin"], actor="tester")
    exposed = settings.model_copy(
        update={
            "artifact_options": {"key": "AKIA", "secret": S3_SECRET},
            "webhook_secret": PASSWORD,
        }
    )
    return exposed, admin


def _everything(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("baked", [True, False])
def test_a_build_context_carries_no_other_secret(
    guarded: tuple[Settings, str], tmp_path: Path, baked: bool
) -> None:
    settings, admin = guarded
    with Registry.open(settings) as registry:
        context = write_context(registry, settings, "iris", tmp_path / "ctx", baked=baked)
    blob = _everything(context.folder)
    for secret in (admin, hash_secret(admin), PASSWORD, S3_SECRET, "secret-project"):
        assert secret.encode() not in blob, secret
    if baked:
        snapshot = Settings(home=tmp_path / "run", database_url=(
            f"sqlite:///{context.folder / 'registry' / 'dockyard.db'}"))  # fmt: skip
        with Registry.open(snapshot) as registry:
            assert [t.name for t in TokenStore(registry.db).list()] == ["image-iris"]
            assert [m.name for m in registry.list_models()] == ["iris"]
            assert registry.events(action="token.create")[0].details["token"] == "image-iris"


def test_manifests_name_secrets_and_hold_none(
    guarded: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, admin = guarded
    shared = settings.model_copy(
        update={
            "database_url": f"postgresql+psycopg://dockyard:{PASSWORD}@db/dockyard",
            "artifact_url": "s3://models/artifacts",
        }
    )
    # the metadata is read from the real registry; the URL only shapes what is written
    with Registry.open(settings) as registry:
        write_manifests(registry, shared, ClusterPlan(endpoint="iris", image=""), tmp_path / "k8s")
    blob = _everything(tmp_path / "k8s")
    for secret in (admin, PASSWORD, S3_SECRET):
        assert secret.encode() not in blob, secret
    assert b"s3://models/artifacts" in blob  # what is not secret is configuration
    assert b"kind: Secret\n" not in blob
