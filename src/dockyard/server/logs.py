"""The server's log: plain text for people (the default), or one JSON object per line for
log collectors (``dockyard serve --log-format json``).

A JSON line holds ``time`` (ISO 8601, UTC), ``level``, ``logger`` and ``message``, then the
record's ``request_id`` when it concerns a request, and ``exception`` (the whole traceback,
as one string) when there is one: so a 500 is one line, findable by the request id its
reply carried. Uvicorn's own lines (startup, shutdown) take the same shape.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

FORMATS: Final[tuple[str, ...]] = ("text", "json")

_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = str(request_id)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server process (and each worker): Dockyard's
    loggers and uvicorn's write to stderr in ``log_format`` (one of :data:`FORMATS`)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": _TEXT}
    )
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": "INFO"},
        "loggers": {
            "dockyard": {"level": level},
            # uvicorn's loggers: through the root handler, not their own
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True},
        },
    }


__all__ = ["FORMATS", "JsonFormatter", "logging_config"]
