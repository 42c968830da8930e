"""What the console's pages show, shaped from what the services answer. Pure: no I/O, no
web framework; each function takes service results and returns plain values for a
template (tested in milliseconds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HEAT_LEVELS = 6
"""Shades of the drift heatmap: a cell's effect size over its feature's threshold, in
steps; the last step is at or over the threshold (drifted)."""


@dataclass(frozen=True)
class Pager:
    """Links for a paged list (``page`` counts from 1)."""

    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def pager(page: int, size: int, total: int) -> Pager:
    size = max(1, size)
    last = max(1, -(-total // size))
    return Pager(min(max(1, page), last), size, total)


def metric_table(versions: Sequence[Any]) -> dict[str, Any]:
    """Metrics side by side: one row per metric, one column per version, the best value of
    each row marked (higher is better unless the name says loss or error)."""
    names = sorted({name for version in versions for name in version.metrics})
    rows = []
    for name in names:
        values = [version.metrics.get(name) for version in versions]
        present = [v for v in values if isinstance(v, int | float)]
        lower = any(word in name.lower() for word in ("loss", "error", "mae", "mse", "rmse"))
        best = (min(present) if lower else max(present)) if len(present) > 1 else None
        rows.append({"name": name, "values": values, "best": best})
    return {"versions": [v.version for v in versions], "rows": rows}


def heatmap(
    over_time: Sequence[Mapping[str, Any]], report: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Drift per window × feature: each cell's effect size, its shade (the effect over the
    feature's threshold, in steps) and whether that window's test found the feature
    drifted (the darkest shade, whatever the effect)."""
    thresholds: dict[str, float] = {}
    for feature in (report or {}).get("features", []):
        if feature.get("threshold") is not None:
            thresholds[feature["feature"]] = float(feature["threshold"])
    features = sorted({name for row in over_time for name in row.get("features", {})})
    rows = []
    for row in over_time:
        cells = []
        verdicts = set(row.get("drifted", ()))
        for name in features:
            effect = row.get("features", {}).get(name)
            threshold = thresholds.get(name)
            drifted = name in verdicts
            level = 0
            if effect is not None and threshold:
                level = min(HEAT_LEVELS - 2, int(effect / threshold * (HEAT_LEVELS - 2)))
            if drifted:
                level = HEAT_LEVELS - 1
            cells.append({"effect": effect, "drifted": drifted, "level": level})
        rows.append(
            {
                "start": row.get("start"),
                "end": row.get("end"),
                "rows": row.get("rows"),
                "share": row.get("drift_share"),
                "cells": cells,
            }
        )
    return {"features": features, "rows": rows, "thresholds": thresholds}


def performance_rows(
    over_time: Sequence[Mapping[str, Any]], estimated: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Performance per window and version: the metric (accuracy, or MAE for regression),
    its 95% interval where there is one, label coverage, and the no-label estimate."""
    guesses = {(r["end"], r["version"]): r.get("estimated_accuracy") for r in estimated}
    rows = []
    for row in over_time:
        regression = row.get("task") == "regression"
        interval = row.get("accuracy_ci")
        rows.append(
            {
                "end": row["end"],
                "version": row["version"],
                "metric": "MAE" if regression else "accuracy",
                "value": row.get("mae") if regression else row.get("accuracy"),
                "interval": interval if interval else None,
                "coverage": row.get("coverage"),
                "labelled": row.get("labelled"),
                "rows": row.get("rows"),
                "estimate": guesses.get((row["end"], row["version"])),
            }
        )
    for row in estimated:
        if not any(r["end"] == row["end"] and r["version"] == row["version"] for r in rows):
            rows.append(
                {
                    "end": row["end"],
                    "version": row["version"],
                    "metric": "accuracy",
                    "value": None,
                    "interval": None,
                    "coverage": 0.0,
                    "labelled": 0,
                    "rows": row.get("rows"),
                    "estimate": row.get("estimated_accuracy"),
                }
            )
    return sorted(rows, key=lambda r: (r["end"], r["version"]))


def sparkline(values: Iterable[float | None], *, width: int = 240, height: int = 48) -> str:
    """SVG polyline points for ``values`` (``None`` skipped), scaled into the box."""
    found = [(i, v) for i, v in enumerate(values) if v is not None]
    if not found:
        return ""
    top = max(v for _, v in found) or 1.0
    last = max(1, max(i for i, _ in found))
    return " ".join(
        f"{i / last * width:.1f},{height - (v / top) * (height - 4) - 2:.1f}" for i, v in found
    )


def interval_band(
    rows: Sequence[Mapping[str, Any]], *, width: int = 480, height: int = 120
) -> dict[str, str]:
    """The performance chart's line and its 95% band as SVG points (values in [0, 1])."""
    measured = [r for r in rows if r.get("value") is not None and r["metric"] == "accuracy"]
    if len(measured) < 2:  # one point draws no line: the table says it
        return {"line": "", "band": ""}
    last = max(1, len(measured) - 1)

    def y(value: float) -> float:
        return height - max(0.0, min(1.0, value)) * (height - 4) - 2

    line = " ".join(f"{i / last * width:.1f},{y(r['value']):.1f}" for i, r in enumerate(measured))
    upper = [(i, r["interval"][1]) for i, r in enumerate(measured) if r.get("interval")]
    lower = [(i, r["interval"][0]) for i, r in enumerate(measured) if r.get("interval")]
    band = " ".join(f"{i / last * width:.1f},{y(v):.1f}" for i, v in [*upper, *lower[::-1]])
    return {"line": line, "band": band}


def histograms(profile: Mapping[str, Any] | None, *, most: int = 12) -> list[dict[str, Any]]:
    """Each profiled feature's reference distribution as bar heights (0-100) with labels:
    a numeric feature's histogram bins, a categorical one's most frequent values."""
    found = []
    for name, feature in sorted(((profile or {}).get("features") or {}).items()):
        if feature.get("kind") == "categorical":
            items = feature.get("frequencies", [])[:most]
            counts = [item["count"] for item in items]
            labels = [str(item["value"]) for item in items]
        else:
            counts = list(feature.get("histogram", {}).get("counts", []))
            edges = feature.get("histogram", {}).get("edges", [])
            labels = [
                f"{_num(edges[i])} to {_num(edges[i + 1])}"
                for i in range(min(len(counts), max(0, len(edges) - 1)))
            ]
        top = max(counts, default=0) or 1
        bars = [
            {"height": round(count / top * 100), "count": count, "label": label}
            for count, label in zip(counts, labels, strict=False)
        ]
        found.append(
            {
                "name": name,
                "kind": feature.get("kind"),
                "bars": bars,
                "missing": feature.get("missing_rate"),
            }
        )
    return found


def distributions(drift: Mapping[str, Any] | None, *, most: int = 12) -> list[dict[str, Any]]:
    """Each feature's (and the prediction's) current distribution beside its reference, as
    paired bar heights (0-100 of the tallest bar of either): drifted features first."""
    drift = drift or {}
    found = []
    entries = [dict(f) for f in drift.get("features") or []]
    entries.sort(key=lambda f: not f.get("drifted"))
    if drift.get("prediction"):
        entries.insert(0, {**drift["prediction"], "feature": "prediction"})
    for entry in entries[:most]:
        dist = entry.get("distribution") or {}
        reference, current = dist.get("reference") or [], dist.get("current") or []
        if not reference or not current:
            continue
        if "edges" in dist:
            edges = dist["edges"]
            labels = [f"{_num(edges[i])} to {_num(edges[i + 1])}" for i in range(len(edges) - 1)]
        else:
            labels = [str(value) for value in dist.get("values", [])]
        top = max([*reference, *current, 1e-12])
        found.append(
            {
                "name": entry["feature"],
                "drifted": bool(entry.get("drifted")),
                "bins": [
                    {
                        "label": label,
                        "reference": r,
                        "current": c,
                        "r": round(r / top * 100),
                        "c": round(c / top * 100),
                    }
                    for label, r, c in zip(labels, reference, current, strict=False)
                ],
            }
        )
    return found


def _num(value: Any) -> str:
    return "?" if value is None else f"{value:.3g}"


def rollout_summary(status: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A rollout's state, step of how many, the weights now, and the last analysis's action
    and reason (``None`` when the endpoint has no rollout)."""
    rollout = (status or {}).get("rollout")
    if not status or not rollout:
        return None
    state = rollout.get("state") or {}
    decision = rollout.get("last_decision") or {}
    steps = (status.get("plan") or {}).get("steps") or []
    return {
        "candidate": rollout.get("candidate"),
        "baseline": rollout.get("baseline"),
        "status": state.get("status"),
        "step": int(state.get("step", 0)) + 1,
        "steps": len(steps),
        "state_reason": state.get("reason") or "",
        "routes": status.get("routes") or [],
        "action": decision.get("action"),
        "reason": decision.get("reason"),
        "checks": decision.get("checks") or [],
        "updated_at": rollout.get("updated_at"),
    }


__all__ = [
    "HEAT_LEVELS",
    "Pager",
    "distributions",
    "heatmap",
    "histograms",
    "interval_band",
    "metric_table",
    "pager",
    "performance_rows",
    "rollout_summary",
    "sparkline",
]
