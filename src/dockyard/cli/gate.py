"""``dockyard gate``: evaluate a candidate version against a baseline, and promote it if it
passes — the step a CI pipeline runs between registering and deploying."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dockyard.cli.deployments import open_deployments
from dockyard.cli.render import out, print_json, table

if TYPE_CHECKING:
    from dockyard.deploy.gate import GateResult
    from dockyard.deploy.promotion import Promotion


def gate(
    ctx: typer.Context,
    candidate: Annotated[
        str,
        typer.Argument(
            metavar="CANDIDATE", help="The version to gate: name@version or name@alias."
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            metavar="PATH",
            help="Labelled rows both versions are evaluated on (.parquet .csv .json .jsonl).",
        ),
    ],
    target: Annotated[
        str, typer.Option("--target", metavar="COLUMN", help="Column of the data holding labels.")
    ],
    against: Annotated[
        str | None,
        typer.Option(
            "--against", metavar="REF", help="Baseline to compare with, e.g. fraud@production."
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            metavar="EXPR",
            help="METRIC OP EXPR, repeatable: 'roc_auc >= baseline - 0.005', "
            "'p99_latency_ms <= 20', 'rmse <= baseline * 1.05'. Metrics: accuracy precision "
            "recall f1 roc_auc log_loss | mae rmse r2 | p50_latency_ms p99_latency_ms.",
        ),
    ] = None,
    allow_new_columns: Annotated[
        bool,
        typer.Option(
            "--allow-new-columns",
            help="Accept required input columns the baseline does not have (every caller "
            "must send them).",
        ),
    ] = False,
    sensitive: Annotated[
        str | None,
        typer.Option(
            "--sensitive",
            metavar="COLUMNS",
            help="Comma-separated columns of the data (e.g. sex,age_band): score both versions "
            "per group (selection rate, accuracy, TPR, FPR) and allow requirements on "
            "demographic_parity_difference|ratio and equalized_odds_difference|ratio.",
        ),
    ] = None,
    promote_to: Annotated[
        str | None,
        typer.Option(
            "--promote",
            metavar="ALIAS",
            help="When the gate passes, point this alias at the candidate (the gate result "
            "is kept on the audit event). An alias that points at a version moves only for a "
            "gate --against it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Gate a candidate version: evaluate it and a baseline on the same labelled data, check
    that their signatures are compatible and that every requirement holds. Exits 1 when the
    gate fails (nothing is promoted), 0 when it passes. The result is recorded as a
    gate.evaluated event whose id (in --json's "id") a promotion names: through the API, or
    dockyard models alias REF ALIAS --gate ID."""
    from dockyard.deploy.gate import evaluate_gate
    from dockyard.deploy.promotion import record_gate
    from dockyard.deploy.requirements import parse_requirement
    from dockyard.registry.refs import check_alias
    from dockyard.schema import read_table

    requirements = [parse_requirement(text) for text in require or []]
    if promote_to is not None:
        check_alias(promote_to)
    frame = read_table(data)
    promotion: Promotion | None = None
    with open_deployments(ctx) as service:
        registry = service.registry
        with nullcontext() if as_json else out.status(f"Gating {candidate} on {data.name}…"):
            result = evaluate_gate(
                registry,
                candidate,
                against,
                frame,
                target,
                requirements,
                allow_new_columns=allow_new_columns,
                sensitive=[c.strip() for c in (sensitive or "").split(",") if c.strip()],
            )
        recorded = record_gate(registry, result, actor=registry.actor)
        if not as_json:
            _render(result, data)
            _render_fairness(result)
            out.print(f"Recorded as gate #{recorded.id}.", markup=False)
        if result.passed and promote_to is not None:
            promotion = service.promote(
                result.candidate, promote_to, recorded, actor=registry.actor
            )
    if as_json:
        print_json({**recorded.to_dict(), "promotion": _promotion_dict(promotion)})
    elif promote_to is not None:
        _render_promotion(promotion, promote_to)
    if not result.passed:
        raise typer.Exit(1)


def _render_fairness(result: GateResult) -> None:
    """Per sensitive column, each version's figures per group, then the summaries."""
    from dockyard.deploy.fairness import GROUP_FIGURES

    for column, versions in (result.fairness or {}).items():
        rows = []
        for role, figures in versions.items():
            for group, values in figures["groups"].items():
                rows.append([role, group, *(values.get(name) for name in GROUP_FIGURES)])
        out.print(table(f"fairness by {column}", ["version", "group", *GROUP_FIGURES], rows))
        summaries = [[role, *figures["summary"].values()] for role, figures in versions.items()]
        names = list(next(iter(versions.values()))["summary"])
        out.print(table(None, ["version", *names], summaries))


def _promotion_dict(promotion: Promotion | None) -> dict[str, object] | None:
    return None if promotion is None else promotion.to_dict()


def _render(result: GateResult, data: Path) -> None:
    against = f" against {result.baseline}" if result.baseline else ""
    if result.against and result.against != result.baseline:
        against += f" ({result.against})"
    out.print(
        f"Gate {result.candidate}{against}: {result.task}, {result.data.get('rows')} rows of "
        f"{data.name} (target {result.target!r})",
        markup=False,
    )
    if result.checks:
        out.print(
            table(
                None,
                ["requirement", "candidate", "baseline", "threshold", "result"],
                (
                    [
                        escape(check.requirement),
                        _number(check.candidate),
                        _number(check.baseline),
                        _number(check.threshold),
                        "[green]pass[/]"
                        if check.passed
                        else f"[bold red]FAIL[/] {escape(check.reason or '')}".rstrip(),
                    ]
                    for check in result.checks
                ),
            )
        )
    else:
        out.print("No requirements: only the signatures were compared.", markup=False)
    signature = result.signature
    if not signature.checked:
        out.print(f"Signature: {'; '.join(signature.notes)}", markup=False)
    elif signature.passed:
        out.print("Signature: [green]compatible[/]")
    else:
        out.print("Signature: [bold red]INCOMPATIBLE[/]")
    for problem in signature.problems:
        out.print(f"  problem: {problem}", markup=False)
    if signature.checked:
        for note in signature.notes:
            out.print(f"  note: {note}", markup=False)
    if result.passed:
        out.print(f"[bold green]PASSED[/] {escape(result.candidate)}")
    else:
        failed = sum(not check.passed for check in result.checks)
        parts = [f"{failed} of {len(result.checks)} requirement(s) not met"] if failed else []
        if not signature.passed:
            parts.append("incompatible signature")
        out.print(f"[bold red]FAILED[/] {escape(result.candidate)}: {escape(', '.join(parts))}")


def _render_promotion(promotion: Promotion | None, alias: str) -> None:
    if promotion is None:
        out.print(f"{alias} was not moved.", markup=False)
    elif promotion.moved:
        was = f" (was {promotion.previous})" if promotion.previous else ""
        out.print(
            f"Promoted: {promotion.model}@{promotion.alias} → {promotion.version}{was}",
            markup=False,
        )
    else:
        out.print(
            f"{promotion.model}@{promotion.alias} already points at {promotion.version}.",
            markup=False,
        )


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"
