"""The root ``dockyard`` command and the error handler every command shares."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from dockyard._version import __version__
from dockyard.cli import (
    batch,
    deployments,
    events,
    explain,
    export,
    gate,
    models,
    monitor,
    serve,
    ship,
    tokens,
)
from dockyard.errors import DockyardError

COMMANDS: dict[str, Callable[[typer.Typer], object]] = {
    "models": lambda root: root.add_typer(models.app, name="models"),
    "tokens": lambda root: root.add_typer(tokens.app, name="tokens"),
    "monitor": lambda root: root.add_typer(monitor.app, name="monitor"),
    "alerts": lambda root: root.command("alerts")(monitor.alerts),
    "gate": lambda root: root.command("gate")(gate.gate),
    "events": lambda root: root.add_typer(events.app, name="events"),
    "serve": lambda root: root.command("serve")(serve.serve),
    "deploy": lambda root: root.command("deploy")(deployments.deploy),
    "rollback": lambda root: root.command("rollback")(deployments.rollback),
    "deployments": lambda root: root.add_typer(deployments.app, name="deployments"),
    "predict": lambda root: root.command("predict")(serve.predict),
    "build": lambda root: root.command("build")(ship.build),
    "k8s": lambda root: root.command("k8s")(ship.k8s),
    "export": lambda root: root.command("export")(export.export),
    "explain": lambda root: root.command("explain")(explain.explain),
    "score": lambda root: root.command("score")(batch.score),
    "jobs": lambda root: root.command("jobs")(batch.jobs),
}
"""Each top-level command, as the step that adds it to a root, in ``--help`` order."""


def _root() -> typer.Typer:
    return typer.Typer(
        name="dockyard",
        help="Take machine-learning models to production: registry, serving, rollouts, monitoring.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        # click's plain help: typer's rich panels label every flag <bool> (--json <bool>)
        rich_markup_mode=None,
    )


app = _root()
for _add in COMMANDS.values():
    _add(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


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


app.callback()(root)


def _only(name: str) -> typer.Typer:
    """The root with only the command ``name``: typer builds every command's parameters
    from its signature on each run, so building the one command that runs, not all the
    groups, keeps that work off every command."""
    slim = _root()
    slim.callback()(root)
    COMMANDS[name](slim)
    return slim


def _named(argv: list[str]) -> str | None:
    """The top-level command ``argv`` runs, after the root's options."""
    args = iter(argv)
    for arg in args:
        if arg == "--home":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Console entry point: run the app, turning Dockyard errors into one clear line."""
    from dockyard.cli.render import error

    try:
        name = _named(sys.argv[1:])
        completing = "_DOCKYARD_COMPLETE" in os.environ  # completion walks every command
        whole = completing or name not in COMMANDS
        # standalone: click reports usage errors itself (exit 2)
        (app if whole else _only(str(name)))(prog_name="dockyard")
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
