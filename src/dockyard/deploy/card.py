"""A model card: what one version is for, what it was trained and judged on, who released
it, and how it is doing — assembled from what the registry, the audit trail, the deployments
and the prediction log already hold (nothing is written for it).

Sections: intended use and limitations (given at registration), the training data's
fingerprint and size, metrics, gate evaluations (with fairness results when the gate had
sensitive columns), the signature, global importance (mean |attribution|), environment,
lineage, approvals (each alias move, with the gate that justified it), and live status
(endpoints serving the version, their last drift verdict and live accuracy with its
coverage). :mod:`dockyard.deploy.card_render` turns it into Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dockyard.deploy.promotion import GATE_EVENT

if TYPE_CHECKING:
    from dockyard.monitoring.service import Monitor
    from dockyard.registry import Registry
    from dockyard.registry.types import Event

LIVE_WINDOW = "7d"


def model_card(
    registry: Registry,
    ref: str,
    routes: Sequence[tuple[str, str, int | None]] = (),
    monitor: Monitor | None = None,
) -> dict[str, Any]:
    """The card of ``ref`` (``name@version`` or ``name@alias``) as a JSON-safe dict.
    ``routes`` are what every endpoint serves now: (endpoint, ``name@version``, weight, or
    ``None`` for a shadow). Live drift and accuracy need ``monitor``; without it the live
    section names endpoints only."""
    version = registry.get_version(ref)
    profile = registry.get_profile(version.ref) or {}
    events = [
        e
        for e in registry.events(model=version.model, limit=10_000)
        if e.version == version.version
    ]
    registered = next((e for e in events if e.action == "version.register"), None)
    card = dict((registered.details if registered else {}).get("card") or {})
    return {
        "ref": version.ref,
        "model": version.model,
        "version": version.version,
        "status": version.status,
        "aliases": list(version.aliases),
        "description": version.description,
        "registered": {"at": version.created_at.isoformat(), "by": version.created_by},
        "intended_use": card.get("intended_use") or None,
        "limitations": card.get("limitations") or None,
        "runtime": version.runtime,
        "digest": version.digest,
        "data": version.lineage.get("data"),
        "metrics": dict(version.metrics),
        "gates": [_gate(e) for e in reversed(events) if e.action == GATE_EVENT],
        "signature": dict(version.signature) if version.signature else None,
        "importance": profile.get("attribution"),
        "environment": dict(version.environment),
        "lineage": {k: v for k, v in version.lineage.items() if k != "data"},
        "approvals": [_approval(e) for e in reversed(events) if e.action == "alias.set"],
        "live": _live(routes, version.ref, version.version, monitor),
    }


def _gate(event: Event) -> dict[str, Any]:
    gate: Mapping[str, Any] = event.details.get("gate") or {}
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "by": event.actor,
        "passed": gate.get("passed"),
        "against": gate.get("against"),
        "baseline": gate.get("baseline"),
        "rows": (gate.get("data") or {}).get("rows"),
        "requirements": [
            {k: r.get(k) for k in ("requirement", "passed", "candidate", "baseline", "threshold")}
            for r in gate.get("requirements") or []
        ],
        "metrics": (gate.get("metrics") or {}).get("candidate") or {},
        "baseline_metrics": (gate.get("metrics") or {}).get("baseline"),
        "fairness": gate.get("fairness"),
    }


def _approval(event: Event) -> dict[str, Any]:
    after = event.after if isinstance(event.after, Mapping) else {}
    gate = event.details.get("gate") or {}
    return {
        "at": event.at.isoformat(),
        "by": event.actor,
        "alias": after.get("alias"),
        "previous": event.before.get("version") if isinstance(event.before, Mapping) else None,
        "gate": gate.get("id"),
        "gate_passed": gate.get("passed"),
        "requirements": [r.get("requirement") for r in gate.get("requirements") or []],
    }


def _live(
    routes: Sequence[tuple[str, str, int | None]],
    ref: str,
    version: str,
    monitor: Monitor | None,
) -> list[dict[str, Any]]:
    serving = []
    for endpoint, served, weight in routes:
        if served != ref:
            continue
        entry: dict[str, Any] = {
            "endpoint": endpoint,
            "weight": weight,
            "role": "shadow" if weight is None else "route",
        }
        if monitor is not None:
            entry.update(_monitored(monitor, endpoint, version))
        serving.append(entry)
    return serving


def _monitored(monitor: Monitor, endpoint: str, version: str) -> dict[str, Any]:
    """The endpoint's last drift verdict and live accuracy for this version, over the live
    window; what cannot be measured is said, not guessed."""
    window = monitor.window(LIVE_WINDOW)
    found: dict[str, Any] = {"window": LIVE_WINDOW}
    try:
        drift = monitor.drift(endpoint, window, version=version).get("report")
        found["drift"] = (
            None
            if drift is None
            else {k: drift[k] for k in ("dataset_drifted", "drift_share", "rows") if k in drift}
        )
    except Exception as exc:  # no log yet, or none for this version
        found["drift"] = {"unavailable": str(exc)}
    try:
        performance = monitor.performance(endpoint, window)["versions"].get(version) or {}
        found["performance"] = {
            k: performance.get(k)
            for k in ("accuracy", "accuracy_ci", "rmse", "mae", "rows", "labelled", "coverage")
            if k in performance
        }
    except Exception as exc:
        found["performance"] = {"unavailable": str(exc)}
    return found
