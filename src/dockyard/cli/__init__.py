"""The ``dockyard`` command line: parse, call a service, render. Nothing else lives here."""

from __future__ import annotations

from dockyard.cli.app import app, main

__all__ = ["app", "main"]
