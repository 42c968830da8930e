"""The HTTP edge's small pieces, shared by the hot paths (the protocol's prediction lane and
raw ASGI), the inference plane and the FastAPI routes: a :class:`Reply` (status, body,
headers), the one JSON error shape (:func:`error_reply`), and reading a body within the size
limit (:func:`read_body`, :func:`json_body`).

Nothing here knows about models or routes, so every module of ``dockyard.server`` may import
it without importing the composition root (``app.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dockyard.errors import DockyardError, InvalidRequestError, PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = (b"content-type", b"application/json")

log = logging.getLogger("dockyard.server")


@dataclass
class Reply:
    """A whole HTTP answer: what the inference plane returns and the ASGI layer sends."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [JSON])


def error_reply(exc: BaseException, request_id: str) -> Reply:
    """The one JSON error shape; unexpected exceptions become a bare 500 with the request id.
    A 503 whose error carries ``retry_after_s`` (an overloaded queue) adds ``Retry-After``.
    Every 500 is logged here, once, with the request id and the traceback (the client gets
    neither the trace nor the exception's text)."""
    if isinstance(exc, DockyardError):
        body = exc.to_dict()
        status = int(exc.status)
    else:
        body = {
            "error": f"Internal error while handling request {request_id}; it has been logged.",
            "code": "internal",
            "details": None,
        }
        status = 500
    if status == 500:
        log.error(
            "request %s failed: %s",
            request_id,
            type(exc).__name__,
            exc_info=exc,
            extra={"request_id": request_id},
        )
    body["request_id"] = request_id
    headers = [JSON, *id_header(request_id)]
    if status == 401:  # RFC 9110 15.5.2: a 401 says which scheme would authenticate
        headers.append((b"www-authenticate", b"Bearer"))
    retry_after = getattr(exc, "retry_after_s", None)  # an overloaded queue's estimate
    if isinstance(retry_after, int) and status == 503:
        headers.append((b"retry-after", str(retry_after).encode()))
    return Reply(status, orjson.dumps(body), headers)


def id_header(request_id: str) -> list[tuple[bytes, bytes]]:
    """``x-request-id``, echoing the id; left out when the id cannot be a header value (a v2
    request's ``"id"`` is any JSON string, and the body echoes it anyway)."""
    if len(request_id) <= 256 and request_id.isascii() and request_id.isprintable():
        return [(b"x-request-id", request_id.encode())]
    return []


async def send_reply(send: Send, reply: Reply) -> None:
    """Send ``reply`` as one ASGI response (with its content length)."""
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [*reply.headers, (b"content-length", str(len(reply.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole body, refusing (413) past ``limit`` bytes without reading it all."""
    declared = headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and (len(declared) > 18 or int(declared) > limit)
    ):
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request body is larger than this server's limit of {limit:,} bytes.",
        hint="Send fewer rows per request, or raise DOCKYARD_MAX_BODY_BYTES.",
    )


def json_body(body: bytes, *, hint: str) -> Any:
    """The parsed JSON body, or a 400 saying it is not JSON and what to send."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The body is not valid JSON: {exc}.", hint=hint) from None


__all__ = [
    "JSON",
    "Message",
    "Receive",
    "Reply",
    "Scope",
    "Send",
    "error_reply",
    "id_header",
    "json_body",
    "read_body",
    "send_reply",
]
