"""A framework's exception as one line a person can act on.

Frameworks raise messages written for their own developers: XGBoost appends a C++ stack
trace (11 lines) and prefixes a time and a source path, YAML and JSON parsers draw a caret
under an excerpt, onnxruntime and torch add their own frames. Runtimes wrap every framework
exception in a :class:`~dockyard.errors.DockyardError` whose message carries only
:func:`framework_message`: the first meaningful lines, joined, without stack frames, log
prefixes or caret lines, and bounded in length.
"""

from __future__ import annotations

import re

MAX_CHARS = 300
"""The most characters of a framework's own message kept in ours."""

_LOG_PREFIX = re.compile(r"^\[\d{2}:\d{2}:\d{2}\] \S+:\d+: ")  # XGBoost: "[17:11:59] json.cc:409: "
_TRACE_STARTS = ("Stack trace:", "Traceback (most recent call last)", "Exception raised from ")
_DECORATION = re.compile(r"^[\s~^|]*$")  # a caret line under a quoted excerpt


def framework_message(exc: BaseException) -> str:
    """``exc``'s message on one line: stack traces, log prefixes and caret lines removed,
    whitespace collapsed, at most :data:`MAX_CHARS` characters (``TypeName`` when empty)."""
    text = str(exc)
    for marker in _TRACE_STARTS:
        text = text.split(marker, 1)[0]
    kept = []
    for raw in text.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        if line.startswith("[bt]"):  # XGBoost's backtrace frames
            break
        if line and not _DECORATION.match(line):
            kept.append(line)
    message = " ".join(" ".join(kept).split()) or type(exc).__name__
    if len(message) > MAX_CHARS:
        message = message[: MAX_CHARS - 3].rstrip() + "..."
    return message
