"""The web console under ``/ui``: server-rendered pages (Jinja2 templates shipped as package
data) with a little progressive JavaScript of our own, over the same services as the CLI and
the API. ``pages.py`` reads, ``actions.py`` changes (through ``Deployments``, ``Registry``
and ``TokenStore``), ``session.py`` holds the cookie and CSRF rules, ``live.py`` turns the
server's metrics into rates, ``views.py`` shapes service answers for templates.

Every route declares its scope like the API's (:class:`~dockyard.server.access.Needs`), so
the ASGI guard checks the session's token before any form is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dockyard.server.services import Server


def add_console(api: FastAPI, server: Server) -> None:
    """Declare the console's routes on ``api`` (and ``/`` redirecting to ``/ui``)."""
    from dockyard.server.access import Needs
    from dockyard.server.console.actions import add_actions
    from dockyard.server.console.pages import add_pages
    from dockyard.server.console.render import Console

    console = Console(server)
    api.state.console_error = console.error_page  # errors on /ui pages answer as pages
    read = Depends(Needs("read", server.auth))
    deploy = Depends(Needs("deploy", server.auth))
    admin = Depends(Needs("admin", server.auth))
    add_pages(api, console, read, admin)
    add_actions(api, console, deploy, admin)


__all__ = ["add_console"]
