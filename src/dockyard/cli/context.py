"""Building services for a command from the root options and the environment (the builders
themselves are the server's, in :mod:`dockyard.server.services`: one way to build each)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dockyard.monitoring.service import Monitor
    from dockyard.registry import Registry
    from dockyard.settings import Settings


def settings_for(ctx: typer.Context) -> Settings:
    """Settings from ``--home`` and the ``DOCKYARD_*`` environment."""
    from dockyard.settings import Settings

    home = (ctx.find_root().obj or {}).get("home")
    return Settings(home=home) if home is not None else Settings()


@contextmanager
def open_registry(ctx: typer.Context) -> Iterator[Registry]:
    """The registry configured by ``--home`` and ``DOCKYARD_*`` settings."""
    from dockyard.registry import Registry

    with Registry.open(settings_for(ctx)) as registry:
        yield registry


@contextmanager
def open_monitor(ctx: typer.Context) -> Iterator[Monitor]:
    """A monitor over the configured registry and prediction log (see
    :func:`dockyard.server.services.open_monitor`)."""
    from dockyard.server.services import open_monitor as monitor_for

    with monitor_for(settings_for(ctx)) as monitor:
        yield monitor


def parse_pairs(pairs: list[str] | None, what: str, *, option: bool = True) -> dict[str, str]:
    """``key=value`` options (``--what``) or arguments (``option=False``) into a dict, with a
    clear error for anything else whose hint names what the command takes."""
    from dockyard.errors import InvalidRequestError

    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequestError(
                f"{what} {pair!r} is not key=value.",
                hint=f"Write it as {f'--{what} ' if option else ''}name=value.",
            )
        result[key.strip()] = value.strip()
    return result
