"""``dockyard events``: the append-only audit trail, and ``dockyard events verify``: its hash
chain checked from the first event to the last."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import cell, out, print_json, table

app = typer.Typer(no_args_is_help=False)


@app.callback(invoke_without_command=True)
def list_events(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only events about this model.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. alias.set or version.register.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the audit trail: who changed what, when, before and after
    (`dockyard events verify` checks that nobody rewrote it)."""
    if ctx.invoked_subcommand is not None:
        return
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


@app.command("verify")
def verify(
    ctx: typer.Context,
    anchor: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            metavar="ID:SHA256",
            help="A head an earlier verify printed (kept outside the database), repeatable: "
            "that event must still be there with that hash.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Check the audit trail's hash chain: where it breaks and why. Exits 1 when broken.

    Names each event edited, missing (deleted) or reordered since it was written, and warns
    about append-only triggers dropped or disabled. Keep the head it prints (ID:SHA256)
    somewhere the database's owner cannot write and pass it as --anchor later: a log cut
    back, or rewritten with every later hash recomputed, is only caught that way."""
    anchors = dict(_anchor(text) for text in anchor or [])
    with open_registry(ctx) as registry:
        report = registry.verify_events(anchors)
    if as_json:
        print_json(report.to_dict())
    else:
        for problem in report.breaks:
            out.print(f"event #{problem.event}: {problem.kind}: {problem.message}", markup=False)
        for guard in report.missing_guards:
            out.print(
                f"warning: the append-only trigger {guard} is missing or disabled", markup=False
            )
        head = f"{report.head}:{report.head_hash}" if report.head is not None else "none"
        verdict = "intact" if report.intact else f"BROKEN at {len(report.breaks)} event(s)"
        out.print(f"{report.events} events, head {head}: {verdict}", markup=False)
    if not report.intact:
        raise typer.Exit(1)


def _anchor(text: str) -> tuple[int, str]:
    """``ID:SHA256`` (as ``verify`` prints its head) into an event id and a hash."""
    from dockyard.errors import InvalidRequestError

    event, _, digest = text.strip().lstrip("#").partition(":")
    digest = digest.strip().removeprefix("sha256:").lower()
    if not event.strip().isdigit() or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise InvalidRequestError(
            f"--anchor {text!r} is not ID:SHA256.",
            hint="Pass a head as `dockyard events verify` prints it, e.g. 42:9f86d08…",
        )
    return int(event), digest
