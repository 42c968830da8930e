"""Kubernetes manifests for replicas of ``dockyard serve``, as plain dicts (pure: no I/O).

The shape, and why:

* **Deployment.** The image from ``dockyard build`` runs ``dockyard serve --host 0.0.0.0
  --auth``. A startup probe on ``/healthz`` gives loading models time (the server answers
  once its start-up load pass is over); then readiness on ``/readyz`` and liveness on
  ``/healthz``. On deletion a ``preStop`` sleep (the kubelet's own action: no shell in the
  image) keeps the pod serving while the endpoints controller and the load balancer drop
  it; then SIGTERM starts the server's graceful shutdown (in-flight requests finish within
  :data:`~dockyard.settings.SHUTDOWN_GRACE_S`), and the termination grace covers both.
  Non-root, no privilege escalation, every capability dropped, the runtime's default
  seccomp profile, a read-only root filesystem: the server writes only under
  ``DOCKYARD_HOME`` and ``/tmp``, both ``emptyDir`` volumes.
* **Configuration.** Non-secret settings in a ConfigMap this generator writes; the database
  URL, storage options and webhook secret in a Secret it only names (``envFrom``), created
  by the operator (``kubectl create secret generic``): secrets never land in generated files.
  A baked image (``dockyard build`` without ``--shared``) carries its registry, read-only,
  and its artifacts: its pods reference no database Secret and get no artifact URL that
  would point them away from what the image holds.
* **Scaling.** A HorizontalPodAutoscaler on CPU, and, when asked, on the endpoint's queue
  (``dockyard_queue_rows``, rows waiting to batch) through the Prometheus adapter as a
  ``Pods`` metric, with the adapter's rule that exposes it (a ConfigMap in the adapter's
  ``config.yaml`` format, beside the HPA but not in the kustomization: it belongs to the
  adapter's installation, in its namespace); a PodDisruptionBudget keeps all but one
  replica through node drains.
* **Metrics.** A Prometheus-operator ``ServiceMonitor`` scrapes ``/metrics`` with a bearer
  token (the route needs the ``read`` scope under ``--auth``) from a second named Secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.settings import SHUTDOWN_GRACE_S

PORT = 8000
DRAIN_S = 5
"""Seconds a deleted pod keeps serving before SIGTERM, while it is taken out of rotation."""
HOME = "/var/lib/dockyard"
TLS_MOUNT = "/etc/dockyard/tls"
QUEUE_METRIC = "dockyard_queue_rows"
ADAPTER_RULES = "prometheus-adapter-rules.yaml"
"""The Prometheus adapter's rule for the queue metric: written beside the HPA, applied to the
adapter (its namespace, its ConfigMap), so not one of the kustomization's resources."""


@dataclass(frozen=True)
class ClusterPlan:
    """What to generate for one endpoint's replicas."""

    endpoint: str
    image: str
    replicas: int = 2
    max_replicas: int = 8
    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_target_percent: int = 70
    queue_rows_per_pod: int | None = None
    """Also scale on the queue (rows waiting per pod, averaged) through the Prometheus
    adapter; ``None``: CPU only."""
    tls_secret: str | None = None
    """A ``kubernetes.io/tls`` Secret to serve HTTPS with; ``None``: plain HTTP in the pod."""
    namespace: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    """Non-secret ``DOCKYARD_*`` settings for the ConfigMap."""
    baked: bool = False
    """The image carries its own read-only registry (``dockyard build`` without
    ``--shared``): no database Secret."""

    @property
    def name(self) -> str:
        return f"dockyard-{self.endpoint}".lower().replace("_", "-")

    @property
    def secret(self) -> str:
        """The Secret the operator creates (database URL, storage options, tokens)."""
        return f"{self.name}-secrets"

    @property
    def secrets(self) -> list[str]:
        """Every Secret the manifests name, for the operator to create."""
        return [self.metrics_secret] if self.baked else [self.secret, self.metrics_secret]

    @property
    def metrics_secret(self) -> str:
        """The Secret holding a read-scope token for Prometheus (key ``token``)."""
        return f"{self.name}-metrics"

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "dockyard", "app.kubernetes.io/instance": self.name}


def manifests(plan: ClusterPlan) -> dict[str, dict[str, Any]]:
    """Every manifest by file name, ``kustomization.yaml`` last (it lists the others, but
    not the Prometheus adapter's rule: :data:`ADAPTER_RULES`)."""
    files = {
        "configmap.yaml": _configmap(plan),
        "deployment.yaml": _deployment(plan),
        "service.yaml": _service(plan),
        "hpa.yaml": _autoscaler(plan),
        "pdb.yaml": _disruption_budget(plan),
        "servicemonitor.yaml": _service_monitor(plan),
    }
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
        "labels": [{"pairs": plan.labels, "includeSelectors": False}],
    }
    if plan.namespace:
        kustomization["namespace"] = plan.namespace
    adapter = {} if plan.queue_rows_per_pod is None else {ADAPTER_RULES: _adapter_rules(plan)}
    return {**files, **adapter, "kustomization.yaml": kustomization}


def _metadata(plan: ClusterPlan, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or plan.name, "labels": dict(plan.labels)}
    if plan.namespace:
        meta["namespace"] = plan.namespace
    return meta


def _configmap(plan: ClusterPlan) -> dict[str, Any]:
    data = {
        "DOCKYARD_HOME": HOME,
        "DOCKYARD_AUTH": "true",
        **plan.config,
    }
    if plan.tls_secret:
        data["DOCKYARD_SSL_CERTFILE"] = f"{TLS_MOUNT}/tls.crt"
        data["DOCKYARD_SSL_KEYFILE"] = f"{TLS_MOUNT}/tls.key"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(plan, f"{plan.name}-config"),
        "data": dict(sorted(data.items())),
    }


def _probe(plan: ClusterPlan, path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {
            "path": path,
            "port": "http",
            "scheme": "HTTPS" if plan.tls_secret else "HTTP",
        },
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _deployment(plan: ClusterPlan) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [
        {"name": "home", "mountPath": HOME},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "home", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    if plan.tls_secret:
        mounts.append({"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": plan.tls_secret}})
    container = {
        "name": "dockyard",
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
            "--auth",
            "--log-format",
            "json",
        ],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "envFrom": [
            {"configMapRef": {"name": f"{plan.name}-config"}},
            *([] if plan.baked else [{"secretRef": {"name": plan.secret}}]),
        ],
        "resources": {
            "requests": {"cpu": plan.cpu, "memory": plan.memory},
            "limits": {"memory": plan.memory},
        },
        "startupProbe": _probe(plan, "/healthz", period=5, failures=60),
        "readinessProbe": _probe(plan, "/readyz", period=5, failures=2),
        "livenessProbe": _probe(plan, "/healthz", period=10, failures=3),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_S}}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(plan),
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": dict(plan.labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": dict(plan.labels)},
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_S + SHUTDOWN_GRACE_S + 5,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _service(plan: ClusterPlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(plan),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(plan.labels),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _autoscaler(plan: ClusterPlan) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": plan.cpu_target_percent},
            },
        }
    ]
    if plan.queue_rows_per_pod is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {
                        "name": QUEUE_METRIC,
                        "selector": {"matchLabels": {"endpoint": plan.endpoint}},
                    },
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(plan.queue_rows_per_pod),
                    },
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(plan),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": plan.name},
            "minReplicas": plan.replicas,
            "maxReplicas": max(plan.max_replicas, plan.replicas),
            "metrics": metrics,
        },
    }


def adapter_rule() -> dict[str, Any]:
    """prometheus-adapter's rule exposing :data:`QUEUE_METRIC` as a per-pod custom metric:
    the series Prometheus scraped (the ServiceMonitor puts ``namespace`` and ``pod`` on them)
    mapped to those resources, summed per pod over the label matchers the HPA's selector
    adds (``endpoint``)."""
    return {
        "seriesQuery": f'{QUEUE_METRIC}{{namespace!="",pod!=""}}',
        "resources": {
            "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
        },
        "name": {"matches": f"^{QUEUE_METRIC}$", "as": QUEUE_METRIC},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }


def _adapter_rules(plan: ClusterPlan) -> dict[str, Any]:
    import yaml

    config = yaml.safe_dump({"rules": [adapter_rule()]}, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{plan.name}-adapter-rules", "labels": dict(plan.labels)},
        "data": {"config.yaml": config},
    }


def _disruption_budget(plan: ClusterPlan) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(plan),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(plan.labels)}},
    }


def _service_monitor(plan: ClusterPlan) -> dict[str, Any]:
    endpoint: dict[str, Any] = {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
        "scheme": "https" if plan.tls_secret else "http",
        "authorization": {
            "type": "Bearer",
            "credentials": {"name": plan.metrics_secret, "key": "token"},
        },
    }
    if plan.tls_secret:
        endpoint["tlsConfig"] = {
            "ca": {"secret": {"name": plan.tls_secret, "key": "ca.crt"}},
            "serverName": f"{plan.name}.{plan.namespace or 'default'}.svc",
        }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(plan),
        "spec": {"selector": {"matchLabels": dict(plan.labels)}, "endpoints": [endpoint]},
    }
