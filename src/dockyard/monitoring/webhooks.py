"""Alert notifications on the wire: signed webhooks with retries, and retraining commands.

This is the only module of ``dockyard.monitoring`` that does I/O (httpx, sockets, child
processes); :mod:`dockyard.monitoring.alerts` decides *what* to send, this sends it.

Webhooks. A notification is a JSON POST. Each attempt carries ``X-Dockyard-Timestamp`` (Unix
seconds) and, when a secret is configured, ``X-Dockyard-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``f"{timestamp}.".encode() + body``; receivers check it with :func:`verify`.
``X-Dockyard-Delivery`` is the same for every attempt of one notification, so a receiver can
drop duplicates. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff;
any other answer is final, and redirects are not followed.

Address guard (SSRF). Rules are written by anyone who may deploy, so a webhook URL must not
reach the server's own network: every address the host resolves to must be public, otherwise
the target is refused unless the setting ``DOCKYARD_WEBHOOK_ALLOW_PRIVATE`` is on. The host is
resolved again before every attempt and the request is sent to the address that was checked
(the ``Host`` header and TLS server name stay the original host's), so a DNS answer that
changes between the check and the connection cannot redirect the request. Environment proxies
(``HTTP_PROXY``...) are not used.

Commands. A retraining command is an argv list from the server's settings, never from a rule;
:func:`run_command` runs it without a shell, with the window's data exported to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from dockyard._version import __version__
from dockyard.errors import InvalidRequestError

ALLOW_PRIVATE_SETTING = "DOCKYARD_WEBHOOK_ALLOW_PRIVATE"
RETRAIN_COMMANDS_SETTING = "DOCKYARD_RETRAIN_COMMANDS"
EXPORT_PATH_VARIABLE = "DOCKYARD_EXPORT_PATH"
OUTPUT_TAIL_CHARS = 2000

_PRIVATE_HINT = (
    f"Webhooks to private, loopback, link-local and reserved addresses are refused; set "
    f"{ALLOW_PRIVATE_SETTING}=true to allow them on a trusted network."
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- address guard -------------------------------------------------------------------------


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries: mapped, 6to4, Teredo, NAT64."""
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public_address(address: str) -> bool:
    """Whether ``address`` (IPv4 or IPv6 text) is globally routable and unicast.

    False for private, loopback, link-local (169.254.0.0/16, the cloud metadata address,
    fe80::/10), shared (100.64.0.0/10), reserved, multicast and unspecified addresses, and for
    IPv6 addresses that embed such an IPv4 address (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    for candidate in (ip, *_embedded_ipv4(ip)):
        if (
            candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_reserved
            or candidate.is_multicast
            or candidate.is_unspecified
            or not candidate.is_global
        ):
            return False
    return True


@dataclass(frozen=True)
class _Target:
    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int

    @classmethod
    def parse(cls, text: str) -> _Target:
        try:
            url = httpx.URL(text)
            port = url.port
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise InvalidRequestError(f"Webhook URL is not a URL: {exc}.") from None
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise InvalidRequestError(
                "Webhook URL must be an absolute http:// or https:// URL.",
                details={"scheme": url.scheme},
            )
        host = url.raw_host.decode("ascii").strip("[]")
        default = 443 if url.scheme == "https" else 80
        return cls(url=url, host=host, port=port or default)


def _addresses(infos: Sequence[tuple[Any, ...]]) -> list[str]:
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


def _refuse_private(target: _Target, addresses: Sequence[str]) -> None:
    refused = [address for address in addresses if not is_public_address(address)]
    if refused:
        raise InvalidRequestError(
            f"Webhook host {target.host!r} resolves to a non-public address ({refused[0]}).",
            hint=_PRIVATE_HINT,
            details={"host": target.host, "addresses": refused},
        )


def _unresolvable(target: _Target, exc: OSError) -> InvalidRequestError:
    return InvalidRequestError(
        f"Webhook host {target.host!r} does not resolve: {exc.strerror or exc}.",
        details={"host": target.host},
    )


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse a webhook URL the server must not call; return quietly when it may.

    Only http and https. Unless ``allow_private``, the host is resolved (``getaddrinfo``; IP
    literals need no DNS) and refused when it does not resolve or when ANY of its addresses is
    not public (see :func:`is_public_address`). With ``allow_private`` nothing is resolved.
    Raises InvalidRequestError; the private-address hint names DOCKYARD_WEBHOOK_ALLOW_PRIVATE.
    """
    target = _Target.parse(url)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _unresolvable(target, exc) from None
    _refuse_private(target, _addresses(infos))


# --- signatures ----------------------------------------------------------------------------


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(body: bytes, secret: str, timestamp: int, signature: str) -> bool:
    """Whether ``signature`` is :func:`sign`'s for this body, secret and timestamp.

    For receivers: pass the raw request body (before any JSON parsing), the integer in
    ``X-Dockyard-Timestamp`` and the ``X-Dockyard-Signature`` header (any text is safe to
    pass). The comparison takes constant time. Also refuse timestamps far from your clock
    (say, five minutes), so that a recorded request cannot be replayed later::

        ts = int(request.headers["X-Dockyard-Timestamp"])
        ok = abs(time.time() - ts) < 300 and verify(
            body, secret, ts, request.headers["X-Dockyard-Signature"]
        )
    """
    expected = sign(body, secret, timestamp).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


# --- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How a notification went: ``attempts`` is 0 when the target was refused before sending;
    ``status`` is the last HTTP status received, ``error`` the last problem (None when ok)."""

    url: str
    ok: bool
    attempts: int
    status: int | None
    error: str | None


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    error: str | None
    retry: bool
    retry_after: float | None = None


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored)."""
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class WebhookSender:
    """Sends JSON notifications, signed when a secret is set, retried with backoff.

    ``sleep`` and ``clock`` are injectable so tests need not wait. Create one per server and
    :meth:`aclose` it on shutdown; it holds a connection pool.
    """

    def __init__(
        self,
        *,
        secret: str | None,
        allow_private: bool,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.secret = secret
        self.allow_private = allow_private
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": f"dockyard/{__version__}"},
        )

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 = the first retry).

        ``backoff_s * 2**retry`` capped at ``max_backoff_s``, or the server's Retry-After when
        that is longer (capped the same), plus up to 10% jitter.
        """
        base = min(self.max_backoff_s, self.backoff_s * 2.0**retry)
        if retry_after is not None:
            base = max(base, min(retry_after, self.max_backoff_s))
        return base + random.uniform(0, base / 10)

    async def send(self, url: str, payload: Mapping[str, Any]) -> Delivery:
        """POST ``payload`` as JSON to ``url``; never raises for delivery problems.

        A refused target (see :func:`check_target`) gives ``Delivery(ok=False, attempts=0)``.
        A payload orjson cannot serialise is a programming error and raises TypeError.
        """
        body = orjson.dumps(dict(payload))
        try:
            target = _Target.parse(url)
        except InvalidRequestError as exc:
            return Delivery(url=url, ok=False, attempts=0, status=None, error=str(exc))
        delivery_id = uuid.uuid4().hex
        attempts = 0
        last = _Outcome(status=None, error=None, retry=False)
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(self.delay(attempt - 1, last.retry_after))
            try:
                addresses = await self._resolve(target)
            except InvalidRequestError as exc:  # refused: final, nothing was sent this time
                return Delivery(
                    url, ok=False, attempts=attempts, status=last.status, error=str(exc)
                )
            except OSError as exc:  # DNS trouble may pass: retry
                attempts += 1
                last = _Outcome(status=None, error=str(_unresolvable(target, exc)), retry=True)
                continue
            attempts += 1
            last = await self._post(target, addresses, body, delivery_id)
            if not last.retry:
                break
        ok = last.error is None
        return Delivery(url, ok=ok, attempts=attempts, status=last.status, error=last.error)

    async def _resolve(self, target: _Target) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        addresses = [address for address in _addresses(infos) if "%" not in address]
        if not self.allow_private:
            _refuse_private(target, addresses)
        if not addresses:
            raise OSError(f"no usable address for {target.host!r}")
        return addresses

    def _headers(self, body: bytes, delivery_id: str) -> dict[str, str]:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "X-Dockyard-Timestamp": str(timestamp),
            "X-Dockyard-Delivery": delivery_id,
        }
        if self.secret:
            headers["X-Dockyard-Signature"] = sign(body, self.secret, timestamp)
        return headers

    async def _post(
        self, target: _Target, addresses: Sequence[str], body: bytes, delivery_id: str
    ) -> _Outcome:
        """One attempt: the first address that accepts a connection gets the request."""
        headers = self._headers(body, delivery_id)
        headers["Host"] = target.url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        error = "no address to connect to"
        for address in addresses:
            try:
                async with self._client.stream(
                    "POST",
                    target.url.copy_with(host=address),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    return await self._judge(response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = f"{type(exc).__name__}: {exc or 'cannot connect'} ({address})"
            except httpx.TransportError as exc:  # timeouts, broken connections, bad HTTP
                return _Outcome(None, f"{type(exc).__name__}: {exc or 'transport error'}", True)
        return _Outcome(None, error, True)

    @staticmethod
    async def _judge(response: httpx.Response) -> _Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(status, None, False)
        snippet = b""
        async for chunk in response.aiter_bytes():
            snippet += chunk
            if len(snippet) >= 200:
                break
        text = snippet[:200].decode("utf-8", "replace").strip()
        error = f"HTTP {status}" + (f": {text}" if text else "")
        retry = status == 429 or status >= 500
        return _Outcome(status, error, retry, _retry_after(response) if retry else None)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


# --- retraining commands -------------------------------------------------------------------


def resolve_command(name: str, commands: Mapping[str, Sequence[str]]) -> list[str]:
    """The argv list of the retraining command ``name`` in the server's settings."""
    argv = commands.get(name)
    if not argv:
        raise InvalidRequestError(
            f"No retraining command named {name!r} is configured.",
            hint=f"Rules name commands; the server's {RETRAIN_COMMANDS_SETTING} setting "
            'defines them as a JSON object of name → argv list, e.g. {"nightly": '
            '["python", "retrain.py", "{data}"]}.',
            details={"command": name, "known": sorted(commands)},
        )
    return list(argv)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child and everything it started (it leads its own session)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    except ProcessLookupError:
        pass


async def run_command(
    argv: Sequence[str],
    *,
    data_path: str,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600,
) -> tuple[int, str]:
    """Run a configured command on the exported data; return (exit code, output tail).

    Every literal ``{data}`` inside the argv items becomes ``data_path``, and the child's
    environment has ``DOCKYARD_EXPORT_PATH=data_path``; there is no shell. ``env`` is the
    child's whole environment (None: the server's own). stdout and stderr are merged and the
    last ~2000 characters returned. The child runs in its own session; on timeout it and
    everything it started get SIGKILL and the exit code is -9 (a negative code is a signal, as
    in :mod:`subprocess`). A program that cannot be started gives 127 (not found) or 126.
    """
    if not argv:
        raise ValueError("a command needs at least a program")
    args = [item.replace("{data}", data_path) for item in argv]
    child_env = dict(os.environ if env is None else env)
    child_env[EXPORT_PATH_VARIABLE] = data_path
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=child_env,
            start_new_session=True,
        )
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        return code, f"cannot run {args[0]!r}: {exc.strerror or exc}"

    stdout = process.stdout
    assert stdout is not None
    tail = bytearray()

    async def drain() -> None:
        while chunk := await stdout.read(65_536):
            tail.extend(chunk)
            del tail[: -OUTPUT_TAIL_CHARS * 4]  # enough bytes for 2000 characters of UTF-8

    async def finish() -> int:
        await drain()
        return await process.wait()

    note = ""
    try:
        code = await asyncio.wait_for(finish(), timeout_s)
    except TimeoutError:
        _kill_group(process)
        note = f"\n[dockyard: killed after the {timeout_s:g}s timeout]"
        with contextlib.suppress(TimeoutError):  # the group is dead: the pipe ends soon
            await asyncio.wait_for(drain(), 5)  # read it to the end so the transport closes
        code = await process.wait()
    except BaseException:  # cancelled (server shutting down): leave nothing running
        if process.returncode is None:
            _kill_group(process)
        raise
    return code, tail.decode("utf-8", "replace")[-OUTPUT_TAIL_CHARS:] + note


__all__ = [
    "ALLOW_PRIVATE_SETTING",
    "Delivery",
    "WebhookSender",
    "check_target",
    "is_public_address",
    "resolve_command",
    "run_command",
    "sign",
    "verify",
]
