"""``dockyard k8s`` and ``dockyard build`` as a user runs them: files written and the next
steps printed; refusals are one line, a clear exit code, and nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.registry import Registry
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from dockyard.deploy.service import Deployments, single_route

    folder = tmp_path_factory.mktemp("ship") / "home"
    data = load_iris(as_frame=True)
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(data.data, data.target)
    with Registry.open(Settings(home=folder, user="tester")) as registry:
        registry.register(model, "iris", sample=data.data, y=data.target)
        Deployments(registry).deploy("iris", single_route("iris@1.0.0"), actor="tester")
    return folder


def _dockyard(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env |= {"DOCKYARD_HOME": str(home), "COLUMNS": "200"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_k8s_writes_the_manifests_and_names_the_secrets(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = _dockyard(home, "k8s", "iris", "--replicas", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "configmap.yaml", "deployment.yaml", "hpa.yaml", "kustomization.yaml", "pdb.yaml",
        "service.yaml", "servicemonitor.yaml",
    ]  # fmt: skip
    assert "kubectl create secret generic dockyard-iris-secrets" in result.stdout
    assert "kubectl create secret generic dockyard-iris-metrics" in result.stdout
    assert "replicas: 3" in (out / "deployment.yaml").read_text()
    assert "No shared artifact store is configured" in result.stdout  # a folder is one pod's

    shared = tmp_path / "shared"
    result = _dockyard(home, "k8s", "iris", "--out", str(shared),
                       "--artifact-url", "s3://models/artifacts")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "DOCKYARD_ARTIFACT_URL: s3://models/artifacts" in (shared / "configmap.yaml").read_text()
    assert "No shared artifact store" not in result.stdout


def test_k8s_for_a_baked_image_asks_for_no_database_secret(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = _dockyard(home, "k8s", "iris", "--baked", "dockyard-iris:r1", "--queue-rows", "64",
                       "--out", str(out), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["secrets"] == ["dockyard-iris-metrics"]
    deployment = (out / "deployment.yaml").read_text()
    assert "image: dockyard-iris:r1" in deployment
    assert "secretRef" not in deployment
    assert "seriesQuery" in (out / "prometheus-adapter-rules.yaml").read_text()

    text = _dockyard(home, "k8s", "iris", "--baked", "dockyard-iris:r1", "--queue-rows", "64",
                     "--out", str(tmp_path / "text"))  # fmt: skip
    assert "dockyard-iris-secrets" not in text.stdout
    assert "kubectl create secret generic dockyard-iris-metrics" in text.stdout
    assert "prometheus-adapter-rules.yaml to the Prometheus adapter" in text.stdout

    both = _dockyard(home, "k8s", "iris", "--baked", "a:1", "--image", "b:1",
                     "--out", str(tmp_path / "both"))  # fmt: skip
    assert both.returncode != 0
    assert len(both.stderr.strip().splitlines()) == 1, both.stderr
    assert "not both" in both.stderr
    assert not (tmp_path / "both").exists()


def test_k8s_for_an_unknown_endpoint_is_one_line(home: Path, tmp_path: Path) -> None:
    result = _dockyard(home, "k8s", "nope", "--out", str(tmp_path / "k8s"))
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        "error: No endpoint named 'nope'. List endpoints with: dockyard deployments"
    ]
    assert not (tmp_path / "k8s").exists()


def test_build_without_an_engine_writes_the_context_and_says_so(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "context"
    empty = tmp_path / "bin"
    empty.mkdir()  # a PATH with neither docker nor podman
    result = _dockyard(home, "build", "iris", "--out", str(out), "--build", path=str(empty))
    assert result.returncode == 7, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "No container engine here (docker or podman not found on the PATH)" in line
    assert f"docker build -t dockyard-iris:r1 {out}" in line
    assert "token for the image" in result.stdout  # printed before the build was tried
    assert (out / "Dockerfile").is_file()
    assert (out / "registry" / "dockyard.db").is_file()

    again = _dockyard(home, "build", "iris", "--out", str(out), "--json")
    assert again.returncode == 2
    assert f"{out} is not empty" in again.stderr


def test_build_json_names_what_the_image_serves(home: Path, tmp_path: Path) -> None:
    result = _dockyard(
        home, "build", "iris@1.0.0", "--out", str(tmp_path / "c"), "--shared", "--json"
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["registry"] == "shared"
    assert body["versions"] == ["iris@1.0.0"]
    assert body["token"] is None
    assert body["built"] is None
    assert any(line.startswith("scikit-learn==") for line in body["requirements"])
