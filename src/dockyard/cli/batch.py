"""``dockyard score`` (batch scoring of files) and ``dockyard jobs`` (the jobs recorded)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dockyard.cli.context import open_registry, parse_pairs, settings_for
from dockyard.cli.render import cell, err, out, print_json, table
from dockyard.errors import InvalidRequestError

if TYPE_CHECKING:
    from dockyard.batch.service import JobSummary, Progress


def score(
    ctx: typer.Context,
    first: Annotated[
        str, typer.Argument(metavar="REF", help="The model reference (fraud@production).")
    ],
    second: Annotated[
        str | None,
        typer.Argument(
            metavar="INPUT",
            help="A Parquet, CSV or JSON-lines file, a folder of them, or a glob; local or "
            "s3://. With --endpoint, give only INPUT.",
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("--out", help="Output file: Parquet, or CSV when it ends in .csv.")
    ] = "",
    endpoint: Annotated[
        str | None,
        typer.Option(help="Score with what this endpoint's primary route serves now."),
    ] = None,
    keep: Annotated[
        str | None, typer.Option(help="Input columns to copy to the output (id,customer_id).")
    ] = None,
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per record batch.")] = 65_536,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Scoring processes (default: the cores available).")
    ] = None,
    accelerate: Annotated[
        bool, typer.Option(help="Use the version's verified ONNX twin when it has one.")
    ] = True,
    rejects: Annotated[
        str | None,
        typer.Option(help="Rows that fail the signature (default: OUT's name + .rejects)."),
    ] = None,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(help="Fail, publishing nothing, when more than this share is rejected."),
    ] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--no-log",
            help="Record the predictions in the endpoint's prediction log (role batch; "
            "default: on with --endpoint).",
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(help="Column whose values are the logged request ids (feedback's key)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="local, or ray (needs dockyard[ray]).")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: a local Ray).")
    ] = None,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(help="fsspec storage option for s3:// input and output, key=value."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score a file, folder or glob with a registered version, in batches, into OUT."""
    from dockyard.batch import service

    ref, source = (None, first) if second is None else (first, second)
    if second is None and endpoint is None:
        raise InvalidRequestError(
            "Give REF and INPUT, or --endpoint NAME and INPUT.",
            hint="dockyard score fraud@production in.parquet --out scored.parquet",
        )
    if not output:
        raise InvalidRequestError("Name the output file with --out.")
    show = not quiet and not as_json and sys.stderr.isatty()
    bar, progress = _progress() if show else (nullcontext(), None)
    with bar:
        summary = service.score(
            ref,
            source,
            out=output,
            settings=settings_for(ctx),
            endpoint=endpoint,
            keep=[name.strip() for name in (keep or "").split(",") if name.strip()],
            batch_rows=batch_rows,
            workers=workers,
            accelerate=accelerate,
            rejects=rejects,
            max_reject_rate=max_reject_rate,
            log=log,
            id_column=id_column,
            engine=engine,
            ray_address=ray_address,
            storage_options=_options(storage_option),
            progress=progress,
        )
    if as_json:
        print_json(summary.to_dict())
    elif not quiet:
        _print_summary(summary)


def jobs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only jobs of this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most jobs shown.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Batch jobs recorded in the audit trail, newest first."""
    from dockyard.batch.service import jobs as recorded

    with open_registry(ctx) as registry:
        found = recorded(registry, limit=limit, model=model)
    if as_json:
        print_json(found)
        return
    out.print(
        table(
            None,
            ["at", "job", "status", "version", "rows", "scored", "rejected", "seconds", "output"],
            (
                [
                    job["at"][:19],
                    job.get("job_id"),
                    job.get("status"),
                    job.get("version"),
                    job.get("rows_in"),
                    job.get("rows_scored"),
                    job.get("rows_rejected"),
                    cell(job.get("seconds")),
                    job.get("output") or job.get("error") or "",
                ]
                for job in found
            ),
        )
    )


def _progress() -> tuple[AbstractContextManager[Any], Progress]:
    """A rich progress bar on stderr (rows, rows/s, time left) and the job's callback."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows · {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        TextColumn("· ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task("score", total=None, rate="-")

    def advance(done: int, total: int | None) -> None:
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:,.0f}" if elapsed > 0 else "-"
        bar.update(task, completed=done, total=total, rate=rate)

    return bar, advance


def _print_summary(summary: JobSummary) -> None:
    rejected = (
        f", {summary.rows_rejected:,} rejected → {summary.rejects}" if summary.rows_rejected else ""
    )
    logged = f"; {summary.logged:,} rows logged to {summary.endpoint}" if summary.logged else ""
    out.print(
        f"{summary.job_id}: {summary.rows_in:,} rows in, {summary.rows_scored:,} scored"
        f"{rejected} in {summary.seconds:.2f} s ({summary.rows_per_s:,.0f} rows/s) with "
        f"{summary.version} ({summary.runtime}, {summary.workers} worker"
        f"{'s' if summary.workers != 1 else ''}) → {summary.output}{logged}"
    )


def _options(pairs: list[str] | None) -> dict[str, Any] | None:
    """``key=value`` storage options; ``endpoint_url`` goes where s3fs takes it."""
    options: dict[str, Any] = dict(parse_pairs(pairs, "storage-option"))
    if not options:
        return None
    url = options.pop("endpoint_url", None)
    if url is not None:
        options.setdefault("client_kwargs", {})["endpoint_url"] = url
    return options
