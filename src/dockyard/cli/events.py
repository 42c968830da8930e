"""``dockyard events``: the append-only audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import cell, out, print_json, table


def list_events(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only events about this model.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. alias.set or version.register.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the audit trail: who changed what, when, before and after."""
    with open_registry(ctx) as registry:
        events = registry.events(model=model, action=action, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        out.print("No events.")
        return
    out.print(
        table(
            None,
            ["#", "when (UTC)", "who", "action", "subject", "before", "after"],
            (
                [
                    e.id,
                    e.at,
                    e.actor,
                    e.action,
                    f"{e.model}@{e.version}" if e.version else e.model,
                    _brief(e.before),
                    _brief(e.after),
                ]
                for e in events
            ),
        )
    )


def _brief(value: object) -> str:
    if isinstance(value, dict) and "digest" in value:  # a registration summary
        trusted = " (trusted)" if value.get("trusted") else ""
        return f"{value.get('runtime')}{trusted} sha256:{str(value['digest'])[:12]}"
    if isinstance(value, dict) and set(value) == {"alias", "version"}:
        return f"{value['alias']}→{value['version']}"
    return cell(value)
