"""The root ``dockyard`` command and the error handler every command shares."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from dockyard._version import __version__
from dockyard.cli import deployments, events, gate, models, monitor, serve, tokens
from dockyard.errors import DockyardError

app = typer.Typer(
    name="dockyard",
    help="Take machine-learning models to production: registry, serving, rollouts, monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's plain help: typer's rich panels label every flag <bool> (--json <bool>)
    rich_markup_mode=None,
)
app.add_typer(models.app, name="models")
app.add_typer(tokens.app, name="tokens")
app.add_typer(monitor.app, name="monitor")
app.command("alerts")(monitor.alerts)
app.command("gate")(gate.gate)
app.add_typer(events.app, name="events")
app.command("serve")(serve.serve)
app.command("deploy")(deployments.deploy)
app.command("rollback")(deployments.rollback)
app.add_typer(deployments.app, name="deployments")
app.command("predict")(serve.predict)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="DOCKYARD_HOME",
            help="Folder for the default SQLite database and artifacts (default ~/.dockyard).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Dockyard command line. Settings come from DOCKYARD_* environment variables."""
    ctx.obj = {"home": home}


def main() -> None:
    """Console entry point: run the app, turning Dockyard errors into one clear line."""
    from dockyard.cli.render import error

    try:
        app(prog_name="dockyard")  # standalone: click reports usage errors itself (exit 2)
    except DockyardError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line, never a traceback
        if os.environ.get("DOCKYARD_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (set DOCKYARD_DEBUG=1 for details)")
        sys.exit(1)
