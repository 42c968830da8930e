"""``dockyard tokens``: create, list and revoke API tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.context import open_registry
from dockyard.cli.render import err, out, print_json, table

if TYPE_CHECKING:
    from dockyard.security.tokens import TokenInfo

app = typer.Typer(
    help="Create, list and revoke API tokens (scopes: read, predict, deploy, admin).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for the token, e.g. fraud-app or ci.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="read, predict, deploy (implies read) or admin (everything); repeatable.",
        ),
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", min=1, help="Expire after N days.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, once: it is stored only as a hash."""
    from datetime import timedelta

    from dockyard.errors import InvalidRequestError
    from dockyard.security.scopes import SCOPES, parse_scopes
    from dockyard.security.tokens import TokenStore

    scopes = parse_scopes(scope or [])  # before opening anything: a typo fails fast
    if not scopes:
        raise InvalidRequestError(
            "A token needs at least one --scope.", hint=f"Choose from: {', '.join(SCOPES)}."
        )
    lifetime = timedelta(days=expires_days) if expires_days is not None else None
    with open_registry(ctx) as registry:
        info, secret = TokenStore(registry.db).create(
            name, scopes, actor=registry.actor, expires_in=lifetime
        )
    warning = "Copy the secret now: it cannot be shown again."
    if as_json:
        print_json({**info.to_dict(), "secret": secret})
        err.print(f"warning: {warning}", markup=False, highlight=False)
        return
    expiry = f", expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else ""
    out.print(f"Created token {info.name} (scopes: {', '.join(info.scopes)}{expiry})", markup=False)
    out.print(secret, markup=False, highlight=False, soft_wrap=True)
    err.print(f"warning: {warning}", markup=False, highlight=False)


@app.command("list")
def list_tokens(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List tokens (never their secrets), revoked and expired ones included."""
    from dockyard.security.tokens import TokenStore

    with open_registry(ctx) as registry:
        tokens = TokenStore(registry.db).list()
    if as_json:
        print_json([t.to_dict() for t in tokens])
        return
    if not tokens:
        out.print("No tokens yet. Create one: dockyard tokens create NAME --scope predict")
        return
    out.print(
        table(
            None,
            ["name", "scopes", "status", "created (UTC)", "by", "expires (UTC)", "revoked (UTC)"],
            (_row(t) for t in tokens),
        )
    )


def _row(token: TokenInfo) -> list[object]:
    return [
        token.name,
        token.scopes,
        token.status,
        token.created_at,
        token.created_by,
        token.expires_at,
        token.revoked_at,
    ]


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
    as_json: JsonOption = False,
) -> None:
    """Revoke a token for good (servers stop accepting it within seconds)."""
    from dockyard.security.tokens import TokenStore

    with open_registry(ctx) as registry:
        info = TokenStore(registry.db).revoke(name, actor=registry.actor)
    if as_json:
        print_json(info.to_dict())
        return
    out.print(f"Revoked token {info.name}", markup=False)
