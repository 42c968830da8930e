"""``dockyard monitor drift|performance|report|feedback`` and ``dockyard alerts``.

They read the prediction log and the registry directly (no server needed), with the same
settings the server uses (``DOCKYARD_MONITORING_URL``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.context import open_monitor
from dockyard.cli.render import out, print_json, table

if TYPE_CHECKING:
    pass

app = typer.Typer(
    help="Drift, performance, reports and feedback for deployed endpoints.",
    no_args_is_help=True,
)

WindowOption = Annotated[
    str, typer.Option(help="'15m', '1h', '7d' (back from now), 'last:1000' or 'all'.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
RoleOption = Annotated[
    str, typer.Option(help="Rows of 'online' answers, 'batch' jobs' rows, or 'all'.")
]
_ROLES = {"online": "primary", "batch": "batch", "all": None}


def _role(text: str) -> str | None:
    from dockyard.errors import InvalidRequestError

    if text not in _ROLES:
        raise InvalidRequestError(f"--role is {text!r}: use online, batch or all.")
    return _ROLES[text]


@app.command("drift")
def drift(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint (deployment name).")],
    window: WindowOption = "1h",
    baseline: Annotated[
        str | None,
        typer.Option(help="Compare with the window of this length before it, not the reference."),
    ] = None,
    version: Annotated[str | None, typer.Option(help="Only rows this version served.")] = None,
    every: Annotated[
        str | None, typer.Option(help="Also the drift share per tumbling 'hour' or 'day'.")
    ] = None,
    role: RoleOption = "online",
    as_json: JsonOption = False,
) -> None:
    """Per-feature drift of logged inputs and predictions, most drifted first."""
    from dockyard.windows import window_before

    only = _role(role)
    with open_monitor(ctx) as monitor:
        current = monitor.window(window)
        earlier = None if baseline is None else window_before(monitor.window(baseline), current)
        result = monitor.drift(endpoint, current, baseline=earlier, version=version, role=only)
        if every is not None:
            result["over_time"] = monitor.drift_over_time(endpoint, current, every=every, role=only)
    if as_json:
        print_json(result)
        return
    report = result["report"]
    if report is None:
        out.print(f"No predictions logged for {endpoint} in {result['window']['description']}.")
        return
    verdict = "DRIFT" if report["dataset_drifted"] else "no drift"
    out.print(
        f"[bold]{endpoint}[/bold] {result['window']['description']} ({report['rows']:,} rows) "
        f"vs {result['baseline']}: [bold]{verdict}[/bold] — "
        f"{report['drifted_count']} of {report['feature_count']} features drifted "
        f"({report['drift_share']:.0%}; the dataset drifts at "
        f"{report['policy']['drift_share']:.0%} or more)"
    )
    rows = [*report["features"], *([report["prediction"]] if report["prediction"] else [])]
    out.print(
        table(
            None,
            ["feature", "kind", "method", "effect", "threshold", "p (adj.)", "missing", "drift"],
            (
                [
                    f["feature"] if f is not report["prediction"] else "(prediction)",
                    f["kind"],
                    f["method"],
                    f["effect_size"],
                    f["threshold"],
                    f["p_value_adjusted"],
                    f"{f['missing']['reference_rate']:.1%}→{f['missing']['current_rate']:.1%}",
                    "yes" if f["drifted"] else "no",
                ]
                for f in rows
            ),
        )
    )
    if result.get("over_time"):
        out.print(
            table(
                f"drift share per {every}",
                ["from", "rows", "drift share"],
                ([w["start"], w["rows"], _fraction(w["drift_share"])] for w in result["over_time"]),
            )
        )


@app.command("performance")
def performance(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint (deployment name).")],
    window: WindowOption = "1d",
    every: Annotated[str | None, typer.Option(help="Also a series per 'hour' or 'day'.")] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", metavar="COLUMN", help="Per group of this input column, and the gap."),
    ] = None,
    role: RoleOption = "online",
    as_json: JsonOption = False,
) -> None:
    """Performance from feedback labels per version, and the estimate without labels."""
    only = _role(role)
    if by is not None:
        _performance_by(ctx, endpoint, window, by, role=only, as_json=as_json)
        return
    with open_monitor(ctx) as monitor:
        result = monitor.performance(endpoint, monitor.window(window), every=every, role=only)
    if as_json:
        print_json(result)
        return
    if not result["versions"]:
        out.print(f"No predictions logged for {endpoint} in {result['window']['description']}.")
        return
    out.print(table(f"{endpoint}: {result['window']['description']}", *_figures(result)))
    for version, estimate in result["estimated"].items():
        figure = _fraction(estimate["estimated_accuracy"])
        out.print(
            f"{version}: estimated accuracy without labels {figure}"
            f" over {estimate['rows']:,} rows ({estimate['method']}"
            f"{', calibrated' if estimate['calibrated'] else ''}) — an estimate, not a measurement."
        )


def _performance_by(
    ctx: typer.Context, endpoint: str, window: str, column: str, *, role: str | None, as_json: bool
) -> None:
    with open_monitor(ctx) as monitor:
        result = monitor.performance_by(endpoint, monitor.window(window), column, role=role)
    if as_json:
        print_json(result)
        return
    for version, found in result["versions"].items():
        names, rows = _figures({"versions": found["groups"]})
        out.print(table(f"{endpoint} {version} by {column}", [column, *names[1:]], rows))
        gap = found["gap"]
        if gap is not None:
            out.print(
                f"{gap['metric']} gap {gap['gap']:.4g}: {gap['highest']} highest, "
                f"{gap['lowest']} lowest"
            )
    if not result["versions"]:
        out.print(f"No predictions logged for {endpoint} in the window.")


def _figures(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    figures = result["versions"]
    regression = all(p["task"] == "regression" for p in figures.values())
    names = (
        ["mae", "rmse", "r2"]
        if regression
        else ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"]
    )
    rows = [
        [version, p["rows"], p["labelled"], _fraction(p["coverage"]), *[p.get(n) for n in names]]
        for version, p in figures.items()
    ]
    return ["version", "predictions", "labelled", "coverage", *names], rows


def _fraction(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


@app.command("report")
def report(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint (deployment name).")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")] = Path(
        "report.html"
    ),
    window: WindowOption = "1d",
    every: Annotated[str, typer.Option(help="Series granularity: 'hour' or 'day'.")] = "hour",
) -> None:
    """Write one self-contained HTML report (works offline): drift, distributions, performance."""
    from dockyard.monitoring.report import render_report

    with open_monitor(ctx) as monitor:
        data = monitor.report_data(endpoint, monitor.window(window), every=every)
    out_path.write_text(render_report(data), encoding="utf-8")
    out.print(f"Wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB).")


@app.command("feedback")
def feedback(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(help="The endpoint (deployment name).")],
    path: Annotated[
        Path, typer.Argument(help="CSV or Parquet with request_id, label (and optional row).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Record ground-truth labels for logged predictions (unknown request ids: listed, exit 1).

    Labels for request ids the log does not know are not stored."""
    from dockyard.monitoring.feedback import parse_feedback, record_feedback
    from dockyard.schema import read_table

    frame = read_table(path)
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        from dockyard.errors import InvalidRequestError

        raise InvalidRequestError(
            f"{path} has no column(s) {', '.join(missing)}.",
            hint="Give a table with request_id and label columns (row is optional).",
        )
    columns = [c for c in ("request_id", "label", "row") if c in frame.columns]
    records = frame[columns].astype(object).where(frame[columns].notna(), None)
    items = [
        {k: v for k, v in record.items() if not (k == "row" and v is None)}
        for record in records.to_dict("records")
    ]
    for item in items:
        if "row" in item:
            item["row"] = int(item["row"])
        item["request_id"] = str(item["request_id"])
    with open_monitor(ctx) as monitor:
        monitor.check_endpoint(endpoint)
        result = record_feedback(monitor.store, endpoint, parse_feedback(items))
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"Recorded {result.accepted:,} label(s) for {endpoint}.")
    if result.unknown:
        shown = ", ".join(result.unknown[:10])
        more = f" and {len(result.unknown) - 10:,} more" if len(result.unknown) > 10 else ""
        out.print(f"[yellow]{len(result.unknown):,} unknown request id(s)[/yellow]: {shown}{more}")
        raise typer.Exit(1)


def alerts(
    ctx: typer.Context,
    endpoint: Annotated[str | None, typer.Argument(help="Only this endpoint.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Alert rules' states: ok or firing, since when, the last value."""
    from dockyard.cli.context import open_registry
    from dockyard.monitoring.alert_store import AlertStates

    with open_registry(ctx) as registry:
        states = AlertStates(registry.db).list(endpoint)
    if as_json:
        print_json(states)
        return
    if not states:
        out.print("No alert has been evaluated yet.")
        return
    out.print(
        table(
            None,
            ["endpoint", "rule", "status", "since", "value", "evaluated"],
            (
                [s["endpoint"], s["rule"], s["status"], s["since"], s["value"], s["evaluated_at"]]
                for s in states
            ),
        )
    )
