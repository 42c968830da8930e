"""Live performance per group of one logged input column (``monitor performance --by``).

The same figures as :meth:`Monitor.performance <dockyard.monitoring.service.Monitor.performance>`
— accuracy with its 95% interval, label coverage, per version — for each value of the column,
and the gap between the best and the worst group's accuracy (or RMSE) among groups with
labels; :func:`accuracy_gap` is the alert metric ``group_accuracy_gap``. Numeric columns
are grouped by their value too: log a band (``age_band``) rather than a raw number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidRequestError
from dockyard.monitoring.store import INPUT_PREFIX

if TYPE_CHECKING:
    import pandas as pd

MAX_GROUPS = 100


def group_performance(
    read: Callable[[str], pd.DataFrame],
    endpoint: str,
    column: str,
    by_version: Callable[[pd.DataFrame], Iterable[tuple[str, pd.DataFrame]]],
    performance: Callable[[pd.DataFrame], dict[str, Any]],
) -> dict[str, Any]:
    """Per version, per value of input ``column``: ``performance`` of its rows, and the gap
    between groups. ``read(name)`` reads the window's log with feedback and that column."""
    import duckdb

    name = INPUT_PREFIX + column
    try:
        frame = read(name)
    except duckdb.BinderException:  # the log has no such column
        frame = None
    if frame is None or (not frame.empty and name not in frame.columns):
        raise InvalidRequestError(
            f"Endpoint {endpoint!r} logged no input column {column!r}.",
            hint="Group by one of the model's input columns.",
        )
    found: dict[str, Any] = {}
    for version, part in by_version(frame):
        values = part[name].astype("string").fillna("(missing)")
        if values.nunique() > MAX_GROUPS:
            raise InvalidRequestError(
                f"{column!r} has more than {MAX_GROUPS} values in the window.",
                hint="Group by a column with few values (a band, a region).",
            )
        groups = {
            str(value): performance(group) for value, group in part.groupby(values, sort=True)
        }
        found[version] = {"groups": groups, "gap": _gap(groups)}
    return {"endpoint": endpoint, "column": column, "versions": found}


def _gap(groups: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Best minus worst group on accuracy (classification) or RMSE (regression)."""
    for metric in ("accuracy", "rmse"):
        scored = {g: p[metric] for g, p in groups.items() if p.get(metric) is not None}
        if len(scored) >= 2:
            best = max(scored, key=scored.__getitem__)
            worst = min(scored, key=scored.__getitem__)
            return {
                "metric": metric,
                "gap": scored[best] - scored[worst],
                "highest": best,
                "lowest": worst,
            }
    return None


def accuracy_gap(found: dict[str, Any], min_rows: int) -> float | None:
    """The alert metric ``group_accuracy_gap``: the largest difference between the best and
    the worst group's accuracy within one version, among groups with at least ``min_rows``
    labelled rows (so a group of three labels cannot fire it). ``None`` (no data) when no
    version has two such groups, or the model is a regressor."""
    gaps = []
    for version in found["versions"].values():
        scored = [
            float(p["accuracy"])
            for p in version["groups"].values()
            if p.get("accuracy") is not None and (p.get("labelled") or 0) >= max(min_rows, 1)
        ]
        if len(scored) >= 2:
            gaps.append(max(scored) - min(scored))
    return max(gaps) if gaps else None
