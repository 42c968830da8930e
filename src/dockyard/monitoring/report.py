"""Render a monitoring report as one self-contained HTML file that works offline.

``render_report(data)`` turns the plain dicts built by the monitoring layer into one HTML
document: the summary first (verdict, window, baseline, "drifting since", alerts, latest
accuracy), then the ranked feature table, then plotly figures (reference versus current
distributions, drift share over time, performance over time). Plotly's JavaScript is
inlined once in the head and a Content-Security-Policy forbids every network fetch, so the
file renders the same on a laptop with no network as it does next to the server.

Every user-derived string (endpoint, feature names, category values, reasons, rule names)
goes through ``html.escape``, including labels handed to plotly: plotly.js draws entities
as text but interprets tags, so escaping keeps ``<b>`` or ``<br>`` in a category literal.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Row = Mapping[str, Any]
Figure = dict[str, Any]  # plotly figure as plain data: {"data": [...], "layout": {...}}

MAX_FEATURE_PLOTS = 50
_REFERENCE_COLOUR, _CURRENT_COLOUR = "#7f8c9a", "#d9534f"
_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")  # one per version
_TIME_AXIS = {"title": "window end (UTC)"}
_TO_HTML = {  # a <div> and its script; plotly.js is inlined once, MathJax never loaded
    "full_html": False, "include_plotlyjs": False, "include_mathjax": False,
    "config": {"displaylogo": False}, "default_height": "340px",
}  # fmt: skip

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;color:#222;margin:0}h1{font-size:1.5rem;margin:0 0 .5rem}
main{max-width:1100px;margin:0 auto;padding:1.5rem}h3{font-size:1rem;margin:1.2rem 0 .2rem}
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #ddd}
.verdict{font-size:1.25rem;font-weight:600;padding:.6rem .9rem;border-radius:4px}
.verdict.drift{background:#fdecea;color:#8a1f11}.verdict.ok{background:#e9f6ec;color:#1d5e2c}
.verdict.none{background:#f1f1f1;color:#444}.nodata,.note{color:#555;font-style:italic}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}
dd{margin:0}table{border-collapse:collapse;width:100%;font-size:.88rem}th{background:#f6f6f6}
th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .45rem;text-align:left;vertical-align:top}
tr.drifted td{background:#fff5f4}td.num{text-align:right}.plot{break-inside:avoid}
.scroll{overflow-x:auto}
@media print{main{max-width:none;padding:0}}
"""
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:"
)


def render_report(data: Mapping[str, Any]) -> str:
    """Return the whole HTML document for one endpoint's monitoring ``data``.

    ``data`` has the shape the monitoring layer builds (``endpoint``, ``generated_at``,
    ``model``, ``versions``, ``window``, ``baseline``, ``drift``, ``drift_over_time``,
    ``performance_over_time``, ``estimated_over_time``, ``alerts``); a part that is missing,
    ``None`` or empty renders as a plain sentence saying there is no data for it.
    """
    import plotly.offline  # type: ignore[import-untyped]

    drift: Row | None = data.get("drift")
    over_time = _chronological(data.get("drift_over_time"), "start")
    performance = _chronological(data.get("performance_over_time"), "end")
    estimated = _chronological(data.get("estimated_over_time"), "end")
    title = f"Monitoring report: {_esc(data.get('endpoint', '?'))}"
    body = [
        f"<h1>{title}</h1>",
        _summary(data, drift, over_time, performance, estimated),
        '<h2 id="features">Features</h2>',
        _feature_table(drift),
        '<h2 id="distributions">Distributions: reference versus current</h2>',
        _distributions(drift),
        '<h2 id="drift-over-time">Drift over time</h2>',
        _drift_over_time(over_time, _policy_share(drift)),
        '<h2 id="performance">Performance over time</h2>',
        _performance(performance, estimated),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n"
        f"<script>{plotly.offline.get_plotlyjs()}</script>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _summary(
    data: Row, drift: Row | None, over_time: list[Row], perf: list[Row], estimated: list[Row]
) -> str:
    if drift is None:
        verdict, css = "No drift data for this window.", "none"
    else:
        share = f"{drift['drifted_count']} of {drift['feature_count']} features"
        share += f" ({drift['drift_share']:.0%})"
        threshold = _policy_share(drift)
        policy = "the policy share" if threshold is None else f"the policy's {threshold:.0%}"
        if drift["dataset_drifted"]:
            verdict, css = f"Drift detected in {share}, at least {policy}", "drift"
        elif drift["drifted_count"]:
            verdict, css = f"No dataset drift: {share} drifted, below {policy}", "ok"
        else:
            verdict, css = f"No drift in {drift['feature_count']} features", "ok"
    window = data.get("window") or {}
    facts = {
        "Model": _esc(data.get("model") or "—"),
        "Versions": _esc(", ".join(data.get("versions") or []) or "—"),
        "Window": _window_line(window),
        "Baseline": _esc(data.get("baseline") or "—"),
        "Drifting since": _drifting_since(over_time, _policy_share(drift)),
        "Prediction drift": _prediction_summary(drift),
        "Alerts": _alerts_summary(data.get("alerts") or []),
        "Performance": _performance_summary(perf),
        "Estimated accuracy": _estimate_summary(estimated),
        "Generated": _when(data.get("generated_at")),
    }
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    return f'<section id="summary"><p class="verdict {css}">{verdict}</p><dl>{items}</dl></section>'


def _window_line(window: Row) -> str:
    """The window's span once: a time window's description is that span already, so only
    ``last N predictions`` and ``all predictions`` are named before it."""
    described = str(window.get("description") or "")
    named = f"{_esc(described)}: " if described.startswith(("last ", "all ")) else ""
    span = f"{_when(window.get('start'))} → {_when(window.get('end'))}"
    return f"{named}{span}, {window.get('rows', 0):,} rows"


def _policy_share(drift: Row | None) -> float | None:
    share = ((drift or {}).get("policy") or {}).get("drift_share")
    return None if share is None else float(share)


def _drifting_since(over_time: list[Row], threshold: float | None) -> str:
    """The start of the most recent unbroken run of windows at or above the policy share."""
    if threshold is None or not over_time:
        return "no data"
    run = 0
    for window in reversed(over_time):
        if window.get("drift_share") is None or window["drift_share"] < threshold:
            break
        run += 1
    if run == 0:
        return "not drifting in the latest window"
    since = f"drifting since {_when(over_time[-run]['start'])}"
    return since + (" (the earliest window on record)" if run == len(over_time) else "")


def _prediction_summary(drift: Row | None) -> str:
    prediction = (drift or {}).get("prediction")
    if prediction is None:
        return "no data"
    verdict = "<strong>drifted</strong>" if prediction["drifted"] else "no drift"
    return (
        f"{verdict} ({_esc(prediction['method'])}, effect size "
        f"{_versus(prediction.get('effect_size'), prediction['threshold'])})"
    )


def _alerts_summary(alerts: Sequence[Row]) -> str:
    if not alerts:
        return "no alert rules evaluated"
    firing = [a for a in alerts if a["status"] == "firing"]
    if not firing:
        return f"none firing ({len(alerts)} rules ok)"
    parts = [
        f"<strong>{_esc(a['rule'])}</strong> (value {_num(a.get('value'))}, threshold "
        f"{_num(a['threshold'])}, since {_when(a.get('since'))})"
        for a in firing
    ]
    return f"{len(firing)} of {len(alerts)} firing: " + "; ".join(parts)


def _performance_summary(perf: list[Row]) -> str:
    if not perf:
        return "no data: no labelled outcomes for this endpoint"
    last = perf[-1]
    where = f"version {_esc(last['version'])}, window ending {_when(last['end'])}"
    coverage = f"{last['labelled']:,} of {last['rows']:,} rows labelled ({last['coverage']:.0%})"
    if last["task"] == "regression":
        metrics = f"MAE {_num(last.get('mae'))}, RMSE {_num(last.get('rmse'))}"
        return f"{metrics}, R² {_num(last.get('r2'))}; {coverage}; {where}"
    if last.get("accuracy") is None:
        return f"no labels yet ({coverage}); {where}"
    ci = last.get("accuracy_ci")
    interval = f" (CI {_num(ci[0])}–{_num(ci[1])})" if ci else ""
    return f"{_num(last['accuracy'])}{interval}; {coverage}; {where}"


def _estimate_summary(estimated: list[Row]) -> str:
    if not estimated or estimated[-1].get("estimated_accuracy") is None:
        return "no data"
    last = estimated[-1]
    return (
        f"{_num(last['estimated_accuracy'])} <em>estimated (no labels)</em> over "
        f"{last['rows']:,} rows; version {_esc(last['version'])}"
    )


_HEAD = (
    "<tr><th>#</th><th>Feature</th><th>Kind</th><th>Method</th><th>Effect size vs threshold</th>"
    "<th>p adjusted{alpha}</th><th>Missing ref → current</th><th>Unseen share</th>"
    "<th>Importance</th><th>Drifted</th><th>Reason</th></tr>"
)


def _feature_table(drift: Row | None) -> str:
    if drift is None or not drift.get("features"):
        return '<p class="nodata">No feature drift data for this window.</p>'
    plotted = {rank for rank, _ in _plotted(drift["features"])}
    rows = []
    for rank, feature in enumerate(drift["features"], start=1):
        name = _esc(feature["feature"])
        if rank in plotted:
            name = f'<a href="#feature-{rank}">{name}</a>'
        missing = feature.get("missing") or {}
        rates = (_pct(missing.get(k)) for k in ("reference_rate", "current_rate"))
        missing_rates = " → ".join(rates)
        cells = [
            f'<td class="num">{rank}</td><td>{name}</td><td>{_esc(feature["kind"])}</td>',
            f"<td>{_esc(feature['method'])}</td>",
            f'<td class="num">{_versus(feature.get("effect_size"), feature["threshold"])} '
            f"<small>{_esc(feature.get('effect_measure', ''))}</small></td>",
            f'<td class="num">{_num(feature.get("p_value_adjusted"))}</td>',
            f'<td class="num">{_bold(missing_rates, missing.get("drifted", False))}</td>',
            f"<td>{_unseen(feature.get('unseen'))}</td>",
            f'<td class="num">{_num(feature.get("importance"))}</td>',
            f"<td>{_bold('yes', True) if feature['drifted'] else 'no'}</td>",
            f"<td>{_esc(feature.get('reason', ''))}</td>",
        ]
        row_class = ' class="drifted"' if feature["drifted"] else ""
        rows.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    alpha = (drift.get("policy") or {}).get("alpha")
    head = _HEAD.format(alpha="" if alpha is None else f" (α {_num(alpha)})")
    table = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _unseen(unseen: Row | None) -> str:
    if unseen is None:
        return "—"
    examples = ", ".join(_esc(v) for v in unseen.get("values", [])[:3])
    text = _pct(unseen["share"]) + (f" <small>({examples})</small>" if examples else "")
    return _bold(text, unseen.get("drifted", False))


def _plotted(features: Sequence[Row]) -> list[tuple[int, Row]]:
    """(rank, feature) for those that get a plot: drifted first, each group in rank order."""
    ranked = sorted(enumerate(features, start=1), key=lambda pair: not pair[1]["drifted"])
    return ranked[:MAX_FEATURE_PLOTS]


def _distributions(drift: Row | None) -> str:
    drift, parts = drift or {}, []
    prediction = drift.get("prediction")
    if prediction is not None and prediction.get("distribution"):
        parts += ['<h3 id="prediction">Prediction</h3>', _distribution_figure(prediction)]
    features = drift.get("features") or []
    if len(features) > MAX_FEATURE_PLOTS:
        parts.append(
            f'<p class="note">Showing {MAX_FEATURE_PLOTS} of {len(features)} features '
            "(drifted first, then by rank); the table above lists them all.</p>"
        )
    for rank, feature in _plotted(features):
        status = "drifted" if feature["drifted"] else "no drift"
        heading = f"{_esc(feature['feature'])} <small>({status})</small>"
        parts.append(f'<h3 id="feature-{rank}">{heading}</h3>')
        parts.append(_distribution_figure(feature))
    return "\n".join(parts) or '<p class="nodata">No distribution data for this window.</p>'


def _distribution_figure(feature: Row) -> str:
    dist = feature.get("distribution")
    if not dist:
        return '<p class="nodata">No distribution data for this feature.</p>'
    labels = _bin_labels(dist["edges"]) if "edges" in dist else [_esc(v) for v in dist["values"]]
    x = list(range(len(labels)))  # positions, so labels that print alike never merge
    hover = {"customdata": labels, "hovertemplate": "%{customdata}: %{y:.1%}"}
    bars = [
        _trace("bar", name, x, dist[name], marker={"color": colour}, **hover)
        for name, colour in (("reference", _REFERENCE_COLOUR), ("current", _CURRENT_COLOUR))
    ]
    ticks = {"tickmode": "array", "tickvals": x, "ticktext": labels}
    return _figure(bars, barmode="group", xaxis=ticks, yaxis=_axis("share of rows", ".0%"))


def _bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels for numeric bins whose two outer bins are open-ended."""
    n = len(edges) - 1
    if n <= 1:
        return ["all values"]
    inner = [f"{_num(edges[i])} – {_num(edges[i + 1])}" for i in range(1, n - 1)]
    return [f"&lt; {_num(edges[1])}", *inner, f"≥ {_num(edges[n - 1])}"]


def _drift_over_time(over_time: list[Row], threshold: float | None) -> str:
    if not any(w.get("drift_share") is not None for w in over_time):
        return '<p class="nodata">No drift history for this endpoint.</p>'
    x, y = [_plot_time(w["end"]) for w in over_time], [w.get("drift_share") for w in over_time]
    line = _trace("scatter", "drift share", x, y, line={"color": _CURRENT_COLOUR})
    line["customdata"] = [w["rows"] for w in over_time]
    line["hovertemplate"] = "%{y:.0%} of features drifted (%{customdata} rows)"
    traces = [line]
    if threshold is not None:
        policy = _trace("scatter", "policy drift share", [x[0], x[-1]], [threshold] * 2)
        traces.append({**policy, "mode": "lines", "line": {"dash": "dash", "color": "#555"}})
    y_axis = _axis("drift share", ".0%", range=[0, 1.05])
    return _figure(traces, xaxis=_TIME_AXIS, yaxis=y_axis)


def _performance(perf: list[Row], estimated: list[Row]) -> str:
    task = perf[-1]["task"] if perf else "classification"
    metric, label = ("mae", "MAE") if task == "regression" else ("accuracy", "accuracy")
    perf = [r for r in perf if r["task"] == task]
    has_metric = any(r.get(metric) is not None for r in perf)
    estimated = estimated if task == "classification" else []
    if not has_metric and all(r.get("estimated_accuracy") is None for r in estimated):
        return '<p class="nodata">No performance data: no labelled outcomes and no estimate.</p>'
    names = dict.fromkeys(_esc(r["version"]) for r in [*perf, *estimated])
    colours = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(names)}
    traces = []
    for version, rows in _by_version(perf).items():
        x, line = [_plot_time(r["end"]) for r in rows], {"color": colours[version]}
        measured = _trace("scatter", f"{version} {label}", x, [r.get(metric) for r in rows])
        measured["line"] = line
        if metric == "accuracy" and any(r.get("accuracy_ci") for r in rows):
            measured["error_y"] = _ci_error(rows)
        coverage = _trace("scatter", f"{version} label coverage", x, [r["coverage"] for r in rows])
        coverage.update(yaxis="y2", mode="lines", line={**line, "dash": "dot", "width": 1})
        traces += [measured, coverage]
    for version, rows in _by_version(estimated).items():
        x, y = [_plot_time(r["end"]) for r in rows], [r.get("estimated_accuracy") for r in rows]
        name, line = f"{version} accuracy (estimate, no labels)", {"dash": "dash"}
        traces.append(_trace("scatter", name, x, y, line={**line, "color": colours[version]}))
    y2 = _axis("label coverage", ".0%", range=[0, 1.05], dtick=0.25, showgrid=False)
    y2.update(overlaying="y", side="right")
    legend = {"orientation": "h", "y": -0.3}
    figure = _figure(traces, xaxis=_TIME_AXIS, yaxis=_axis(label), yaxis2=y2, legend=legend)
    if has_metric:
        return figure
    return f'<p class="note">No labelled outcomes yet: only the estimate is shown.</p>{figure}'


def _by_version(rows: Sequence[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(_esc(row["version"]), []).append(row)
    return grouped


def _ci_error(rows: Sequence[Row]) -> dict[str, Any]:
    """Asymmetric error bars from each row's accuracy confidence interval."""
    bounds = [(r.get("accuracy"), r.get("accuracy_ci")) for r in rows]
    plus = [None if a is None or not ci else ci[1] - a for a, ci in bounds]
    minus = [None if a is None or not ci else a - ci[0] for a, ci in bounds]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}


def _trace(kind: str, name: str, x: Sequence[Any], y: Sequence[Any], **extra: Any) -> Figure:
    mode = {"mode": "lines+markers"} if kind == "scatter" else {}
    return {"type": kind, "name": name, "x": list(x), "y": list(y), **mode, **extra}


def _axis(title: str, tickformat: str = "", **extra: Any) -> dict[str, Any]:
    return {"title": title, "tickformat": tickformat, **extra}


def _figure(traces: list[Figure], **layout: Any) -> str:
    """One figure as a ``<div>`` and inline script; plotly.js itself is in the head."""
    import plotly.io as pio  # type: ignore[import-untyped]

    for axis in ("xaxis", "yaxis"):
        layout[axis] = {**layout.get(axis, {}), "gridcolor": "#eee", "automargin": True}
    layout.update(template="none", height=340, margin={"l": 60, "r": 60, "t": 30, "b": 60})
    layout["font"] = {"family": "system-ui, sans-serif"}
    figure_html: str = pio.to_html({"data": traces, "layout": layout}, **_TO_HTML)
    return f'<div class="plot">{figure_html}</div>'


def _esc(value: object) -> str:
    return html.escape(str(value))


def _versus(effect: float | None, threshold: float) -> str:
    """``0.21 ≥ 0.1``: an effect size against its threshold, as HTML."""
    if effect is None:
        return "—"
    return f"{_num(effect)} {'≥' if effect >= threshold else '&lt;'} {_num(threshold)}"


def _bold(text: str, on: bool) -> str:
    return f"<strong>{text}</strong>" if on else text


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1e}" if value != 0 and abs(value) < 1e-3 else f"{value:.3g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _parse(iso: str | None) -> datetime | None:
    """An ISO timestamp as naive UTC, or ``None`` when absent or unreadable."""
    try:
        moment = datetime.fromisoformat(iso or "")
    except (TypeError, ValueError):
        return None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _chronological(rows: Sequence[Row] | None, key: str) -> list[Row]:
    return sorted(rows or [], key=lambda r: _parse(r[key]) or datetime.min)


def _when(iso: str | None) -> str:
    """A timestamp for people: ``2026-11-21 12:00 UTC``; ``—`` when absent."""
    moment = _parse(iso)
    if moment is None:
        return "—" if iso is None else _esc(iso)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _plot_time(iso: str) -> str:
    """Plotly.js ignores UTC offsets, so it gets naive UTC times."""
    moment = _parse(iso)
    return _esc(iso) if moment is None else moment.isoformat(sep=" ")
