"""``dockyard explain``: why a registered version answers as it does on some rows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import err, out, print_json, table

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
_WRITERS = {".csv": "to_csv", ".parquet": "to_parquet", ".json": "to_json"}


def explain(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="name, name@version or name@alias.")],
    data: Annotated[
        Path,
        typer.Option("--data", metavar="PATH", help="Rows to explain: .csv .parquet .json .jsonl."),
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="PATH",
            help="Write one row per (input row, target) with base, output and an attribution "
            "per column: .csv, .parquet or .json.",
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="'auto' (exact where the model allows) or 'lime'.")
    ] = "auto",
    as_json: JsonOption = False,
) -> None:
    """Per row, one additive attribution per input column, the base value and the output
    they add up to; the method is chosen for the model and named."""
    if out_path is not None and out_path.suffix not in _WRITERS:
        from dockyard.errors import InvalidRequestError

        raise InvalidRequestError(
            f"Cannot write {out_path.name}.", hint=f"Use one of: {', '.join(_WRITERS)}."
        )
    from dockyard.schema import read_table

    frame = read_table(data)
    with open_registry(ctx) as registry:
        registered = registry.load(ref)
        explanation = registered.explain(frame, method=method)
        version = registered.version.ref
    if out_path is not None:
        rows = explanation.to_frame()
        writer = getattr(rows, _WRITERS[out_path.suffix])
        options: dict[str, dict[str, Any]] = {
            ".csv": {"index": False},
            ".json": {"orient": "records"},
        }
        writer(out_path, **options.get(out_path.suffix, {}))
        err.print(f"wrote {len(rows):,} rows to {out_path} ({explanation.method})")
        return
    if as_json:
        print_json({"version": version, **explanation.to_dict()})
        return
    title = f"{version}: {explanation.method}, {explanation.space}"
    columns = ["row", "target", "base", "output", *explanation.columns]
    rows_out = explanation.to_frame().itertuples(index=False, name=None)
    out.print(table(title, columns, rows_out))
