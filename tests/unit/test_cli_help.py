"""Every command's ``--help``: flags read as flags (``--json``, never ``--json <bool>``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from dockyard.cli import app
from dockyard.cli.app import COMMANDS as TOP_LEVEL
from dockyard.cli.app import _named, _only


def _paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's path below ``command`` (typer's own click: groups have ``commands``)."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*path, name))


COMMANDS = list(_paths(typer.main.get_command(app)))


def test_every_command_is_walked() -> None:
    assert ("models", "list") in COMMANDS
    assert ("predict",) in COMMANDS
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "dockyard")
def test_help_shows_flags_without_a_value(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        app([*path, "--help"], prog_name="dockyard")
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Usage: dockyard {' '.join(path)}".rstrip())
    assert "<bool>" not in text
    assert "--help  " in text or "--help\n" in text


@pytest.mark.parametrize("name", list(TOP_LEVEL))
def test_a_command_run_alone_reads_as_in_the_whole_app(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() builds only the command it runs (each typer build costs): same help, same
    parsing of the root's options before it."""
    outputs = []
    for root in (app, _only(name)):
        with pytest.raises(SystemExit):
            root([name, "--help"], prog_name="dockyard")
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert _named(["--home", "/tmp/x", name, "list"]) == name
    assert _named(["--home=/tmp/x", name]) == name
    assert _named(["--version"]) is None
