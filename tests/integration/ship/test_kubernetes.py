"""``dockyard k8s``: every manifest validates against the Kubernetes OpenAPI schema
(kubernetes-validate's bundled schemas, strict: unknown fields fail), the ServiceMonitor
against the prometheus-operator CRD's models, and the manifests say what operations rely on
(probes, drain, non-root, read-only root, HPA metrics, secrets by reference only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dockyard.errors import InvalidRequestError, NotFoundError
from dockyard.registry import Registry
from dockyard.settings import SHUTDOWN_GRACE_S, Settings
from dockyard.ship.kubernetes import write_manifests
from dockyard.ship.manifests import ADAPTER_RULES, DRAIN_S, ClusterPlan

KUBERNETES = kubernetes_validate.latest_version()

PLANS = {
    "plain": ClusterPlan(endpoint="cancer", image=""),
    "everything": ClusterPlan(
        endpoint="cancer",
        image="registry.example/dockyard-cancer:r1",
        replicas=3,
        max_replicas=12,
        queue_rows_per_pod=256,
        tls_secret="cancer-tls",
        namespace="models",
        config={"DOCKYARD_POLL_INTERVAL_S": "5"},
    ),
}


def _write(settings: Settings, plan: ClusterPlan, out: Path) -> dict[str, dict[str, Any]]:
    with Registry.open(settings) as registry:
        written = write_manifests(registry, settings, plan, out)
    assert sorted(p.name for p in written) == sorted(p.name for p in out.iterdir())
    return {path.name: yaml.safe_load(path.read_text()) for path in written}


def _validate_service_monitor(body: dict[str, Any]) -> None:
    """The CRD's own models (cloudcoil's, generated from prometheus-operator's CRD): the
    manifest parses, and nothing in it is dropped as unknown on the way back."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    parsed = ServiceMonitor.model_validate(body)
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == body


@pytest.mark.parametrize("case", PLANS)
def test_every_manifest_validates(deployed: Settings, tmp_path: Path, case: str) -> None:
    files = _write(deployed, PLANS[case], tmp_path / "out")
    assert set(files) - {ADAPTER_RULES} == {
        "configmap.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml",
        "servicemonitor.yaml", "kustomization.yaml",
    }  # fmt: skip
    for name, body in files.items():
        if body["kind"] == "ServiceMonitor":
            _validate_service_monitor(body)
        elif body["kind"] == "Kustomization":  # no schema ships for it: its one job, checked
            assert sorted(body["resources"]) == sorted(set(files) - {name, ADAPTER_RULES})
        else:
            kubernetes_validate.validate(body, KUBERNETES, strict=True)


def test_the_validators_refuse_what_kubernetes_would(deployed: Settings, tmp_path: Path) -> None:
    files = _write(deployed, PLANS["plain"], tmp_path / "out")
    broken = files["deployment.yaml"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    monitor = files["servicemonitor.yaml"]
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(AssertionError):
        _validate_service_monitor(monitor)


def test_the_deployment_probes_drains_and_runs_unprivileged(
    deployed: Settings, tmp_path: Path
) -> None:
    files = _write(deployed, PLANS["plain"], tmp_path / "out")
    deployment = files["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "dockyard-cancer:r1"  # dockyard build's tag for revision 1
    assert container["args"][:3] == ["serve", "--host", "0.0.0.0"]
    assert "--auth" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": DRAIN_S}}
    assert pod["terminationGracePeriodSeconds"] > DRAIN_S + SHUTDOWN_GRACE_S
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    writable = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert writable == {"/var/lib/dockyard", "/tmp"}
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert files["hpa.yaml"]["spec"]["minReplicas"] == 2
    assert [m["type"] for m in files["hpa.yaml"]["spec"]["metrics"]] == ["Resource"]
    assert files["pdb.yaml"]["spec"]["maxUnavailable"] == 1


def test_secrets_are_named_never_written(deployed: Settings, tmp_path: Path) -> None:
    files = _write(deployed, PLANS["everything"], tmp_path / "out")
    assert not any(body["kind"] == "Secret" for body in files.values())
    (container,) = files["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "dockyard-cancer-secrets"}} in container["envFrom"]
    config = files["configmap.yaml"]["data"]
    assert "DOCKYARD_DATABASE_URL" not in config
    assert config["DOCKYARD_POLL_INTERVAL_S"] == "5"
    assert config["DOCKYARD_SSL_CERTFILE"] == "/etc/dockyard/tls/tls.crt"
    monitor = files["servicemonitor.yaml"]["spec"]["endpoints"][0]
    assert monitor["authorization"]["credentials"] == {
        "name": "dockyard-cancer-metrics",
        "key": "token",
    }
    assert monitor["scheme"] == "https"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    queue = files["hpa.yaml"]["spec"]["metrics"][1]["pods"]
    assert queue["metric"]["name"] == "dockyard_queue_rows"
    assert queue["target"]["averageValue"] == "256"
    assert all(body["metadata"].get("namespace") == "models" for n, body in files.items()
               if n not in ("kustomization.yaml", ADAPTER_RULES))  # fmt: skip


def test_shared_storage_urls_in_effect_become_configuration(
    deployed: Settings, tmp_path: Path
) -> None:
    shared = deployed.model_copy(
        update={"artifact_url": "s3://models/artifacts", "monitoring_url": "s3://models/log"}
    )
    files = _write(shared, PLANS["plain"], tmp_path / "out")
    config = files["configmap.yaml"]["data"]
    assert config["DOCKYARD_ARTIFACT_URL"] == "s3://models/artifacts"
    assert config["DOCKYARD_MONITORING_URL"] == "s3://models/log"
    local = _write(deployed, PLANS["plain"], tmp_path / "local")
    assert "DOCKYARD_ARTIFACT_URL" not in local["configmap.yaml"]["data"]  # one pod's folder


def test_an_unknown_endpoint_writes_nothing(deployed: Settings, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        _write(deployed, ClusterPlan(endpoint="nope", image=""), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_baked_image_references_no_database_secret(deployed: Settings, tmp_path: Path) -> None:
    shared = deployed.model_copy(
        update={"artifact_url": "s3://models/artifacts", "monitoring_url": "s3://models/log"}
    )
    plan = ClusterPlan(endpoint="cancer", image="dockyard-cancer:r1", baked=True)
    files = _write(shared, plan, tmp_path / "out")
    for body in files.values():
        if body["kind"] not in ("ServiceMonitor", "Kustomization"):
            kubernetes_validate.validate(body, KUBERNETES, strict=True)
    (container,) = files["deployment.yaml"]["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "dockyard-cancer-config"}}]
    assert "secretKeyRef" not in yaml.safe_dump(files)
    config = files["configmap.yaml"]["data"]
    assert "DOCKYARD_ARTIFACT_URL" not in config  # the image's own artifacts stay in use
    assert config["DOCKYARD_MONITORING_URL"] == "s3://models/log"  # a log can still be shared
    assert plan.secrets == ["dockyard-cancer-metrics"]  # Prometheus still needs its token


def test_a_baked_image_told_where_its_registry_is_writes_nothing(
    deployed: Settings, tmp_path: Path
) -> None:
    plan = ClusterPlan(
        endpoint="cancer",
        image="dockyard-cancer:r1",
        baked=True,
        config={"DOCKYARD_ARTIFACT_URL": "s3://models/artifacts"},
    )
    with pytest.raises(InvalidRequestError, match="carries its own registry"):
        _write(deployed, plan, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_queue_metric_comes_with_the_prometheus_adapter_rule(
    deployed: Settings, tmp_path: Path
) -> None:
    files = _write(deployed, PLANS["everything"], tmp_path / "out")
    rules = files[ADAPTER_RULES]
    kubernetes_validate.validate(rules, KUBERNETES, strict=True)
    assert ADAPTER_RULES not in files["kustomization.yaml"]["resources"]  # the adapter's own
    (rule,) = yaml.safe_load(rules["data"]["config.yaml"])["rules"]
    assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
    (queue,) = [m for m in files["hpa.yaml"]["spec"]["metrics"] if m["type"] == "Pods"]
    metric = queue["pods"]["metric"]["name"]
    assert re.fullmatch(rule["name"]["matches"], metric)
    assert rule["name"]["as"] == metric  # the name the HPA asks the adapter for
    assert rule["seriesQuery"].startswith(f"{metric}{{")
    # the series carry the pod and namespace the HPA's Pods metric is averaged over
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]
    plain = _write(deployed, PLANS["plain"], tmp_path / "plain")  # CPU only: no rule
    assert ADAPTER_RULES not in plain
