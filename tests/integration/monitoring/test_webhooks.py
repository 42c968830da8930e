"""Webhook delivery against a real HTTP receiver on loopback, and real child processes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from dockyard._version import __version__
from dockyard.errors import InvalidRequestError
from dockyard.monitoring.webhooks import (
    Delivery,
    WebhookSender,
    check_target,
    is_public_address,
    resolve_command,
    run_command,
    sign,
    verify,
)

SECRET = "s3cret-for-tests"
PAYLOAD = {"endpoint": "churn", "rule": "errors", "status": "firing", "value": 0.3}


# --- a real receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class Receiver(ThreadingHTTPServer):
    """Records every POST and answers from a script; 200 once the script runs out."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.received: list[Received] = []
        self.script: list[Answer] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, request: Received) -> Answer:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else Answer()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left; the tests look at what was received


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.answer(Received(self.path, headers, body))
        if answer.delay_s:
            time.sleep(answer.delay_s)
        reply = b'{"received": true}'
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = Receiver(tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


def self_signed(folder: Path, host: str) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for ``host``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    """Sends with a sender whose sleeps are recorded instead of waited."""

    delays: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def send(self, url: str, payload: dict[str, Any] | None = None, **options: Any) -> Delivery:
        async def go() -> Delivery:
            settings: dict[str, Any] = {"secret": SECRET, "allow_private": True}
            settings.update(options)
            sender = WebhookSender(sleep=self.sleep, **settings)
            try:
                return await sender.send(url, PAYLOAD if payload is None else payload)
            finally:
                await sender.aclose()

        return asyncio.run(go())


# --- delivery ------------------------------------------------------------------------------


def test_signed_json_post_verifies_with_the_secret(receiver: Receiver) -> None:
    delivery = Run().send(receiver.url, clock=lambda: 1_700_000_000.9)
    assert delivery == Delivery(receiver.url, ok=True, attempts=1, status=200, error=None)
    [request] = receiver.received
    assert request.path == "/hook"
    assert orjson.loads(request.body) == PAYLOAD
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"dockyard/{__version__}"
    assert request.headers["x-dockyard-timestamp"] == "1700000000"
    signature = request.headers["x-dockyard-signature"]
    assert verify(request.body, SECRET, 1_700_000_000, signature)
    assert not verify(request.body, "another secret", 1_700_000_000, signature)
    assert not verify(request.body, SECRET, 1_700_000_001, signature)
    assert not verify(request.body + b" ", SECRET, 1_700_000_000, signature)
    assert not verify(request.body, SECRET, 1_700_000_000, "sha256=\u00e9\ud800")


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # A receiver without Dockyard can reproduce it with the standard library alone.
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"42.{}", hashlib.sha256).hexdigest()
    assert sign(b"{}", "k", 42) == f"sha256={expected}"


def test_without_a_secret_nothing_is_signed(receiver: Receiver) -> None:
    assert Run().send(receiver.url, secret=None).ok
    [request] = receiver.received
    assert "x-dockyard-signature" not in request.headers
    assert "x-dockyard-timestamp" in request.headers


def test_a_500_is_retried_then_succeeds(receiver: Receiver) -> None:
    receiver.script = [Answer(500)]
    run = Run()
    delivery = run.send(receiver.url)
    assert delivery == Delivery(receiver.url, ok=True, attempts=2, status=200, error=None)
    assert len(receiver.received) == 2
    assert 0.5 <= run.delays[0] <= 0.55
    first, second = receiver.received
    assert first.body == second.body
    assert first.headers["x-dockyard-delivery"] == second.headers["x-dockyard-delivery"]
    for request in receiver.received:  # each attempt is signed with its own timestamp
        ts = int(request.headers["x-dockyard-timestamp"])
        assert verify(request.body, SECRET, ts, request.headers["x-dockyard-signature"])


def test_gives_up_after_the_configured_attempts_with_growing_backoff(receiver: Receiver) -> None:
    receiver.script = [Answer(503)] * 10
    run = Run()
    delivery = run.send(receiver.url, attempts=4, backoff_s=1.0, max_backoff_s=3.0)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 4, 503)
    assert delivery.error is not None
    assert delivery.error.startswith("HTTP 503")
    assert len(receiver.received) == 4
    assert len(run.delays) == 3
    for delay, base in zip(run.delays, [1.0, 2.0, 3.0], strict=True):  # capped at 3
        assert base <= delay <= base * 1.1


def test_429_waits_for_retry_after(receiver: Receiver) -> None:
    receiver.script = [Answer(429, headers={"Retry-After": "7"})]
    run = Run()
    delivery = run.send(receiver.url)
    assert (delivery.ok, delivery.attempts) == (True, 2)
    assert 7 <= run.delays[0] <= 7.7


def test_400_is_final(receiver: Receiver) -> None:
    receiver.script = [Answer(400)]
    run = Run()
    delivery = run.send(receiver.url)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 400)
    assert delivery.error == 'HTTP 400: {"received": true}'
    assert len(receiver.received) == 1
    assert run.delays == []


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.script = [Answer(302, headers={"Location": "http://169.254.169.254/latest"})]
    delivery = Run().send(receiver.url)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 302)
    assert len(receiver.received) == 1


def test_timeouts_are_retried(receiver: Receiver) -> None:
    receiver.script = [Answer(200, delay_s=1.0)]
    delivery = Run().send(receiver.url, timeout_s=0.2)
    assert (delivery.ok, delivery.attempts, delivery.status) == (True, 2, 200)
    assert len(receiver.received) == 2


def test_connection_refused_is_retried_then_reported() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    run = Run()
    delivery = run.send(url, attempts=3)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 3, None)
    assert delivery.error is not None
    assert "ConnectError" in delivery.error
    assert len(run.delays) == 2


def test_the_request_keeps_the_host_name_while_going_to_the_checked_address(
    receiver: Receiver,
) -> None:
    delivery = Run().send(f"http://localhost:{receiver.port}/hook")
    assert delivery.ok
    [request] = receiver.received
    assert request.headers["host"] == f"localhost:{receiver.port}"


def test_https_sends_the_host_name_for_tls_and_verifies_the_certificate(tmp_path: Path) -> None:
    tls = self_signed(tmp_path, "localhost")
    server_names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: server_names.append(name)
    with serving(tls) as server:
        delivery = Run().send(f"https://localhost:{server.port}/hook", attempts=1)
    # The connection went to the checked IP, but TLS still named the host (SNI) ...
    assert server_names == ["localhost"]
    # ... and the certificate was verified: a self-signed one is refused.
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, None)
    assert delivery.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error
    assert server.received == []


def test_the_next_address_is_tried_when_one_refuses(receiver: Receiver) -> None:
    # Through the private per-attempt step: no test host name resolves to two addresses.
    from dockyard.monitoring.webhooks import _Target

    async def go() -> Any:
        sender = WebhookSender(secret=None, allow_private=True)
        try:
            target = _Target.parse(f"http://localhost:{receiver.port}/hook")
            return await sender._post(target, ["127.0.0.2", "127.0.0.1"], b"{}", "id")
        finally:
            await sender.aclose()

    outcome = asyncio.run(go())
    assert (outcome.status, outcome.error) == (200, None)
    assert len(receiver.received) == 1


# --- the address guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://2130706433:{port}/hook",  # 127.0.0.1 as one decimal number
    ],
)
def test_loopback_is_refused_unless_allowed(receiver: Receiver, url: str) -> None:
    url = url.format(port=receiver.port)
    delivery = Run().send(url, allow_private=False)
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 0, None)
    assert delivery.error is not None
    assert "DOCKYARD_WEBHOOK_ALLOW_PRIVATE" in delivery.error
    assert receiver.received == []


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (carrier NAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 around 169.254.169.254
    ],
)
def test_private_and_special_addresses_are_refused(host: str) -> None:
    with pytest.raises(InvalidRequestError, match="non-public address") as caught:
        check_target(f"https://{host}/hook", allow_private=False)
    assert "DOCKYARD_WEBHOOK_ALLOW_PRIVATE" in str(caught.value)
    check_target(f"https://{host}/hook", allow_private=True)


@pytest.mark.parametrize("host", ["93.184.215.14", "8.8.8.8", "[2606:4700:4700::1111]"])
def test_public_addresses_pass(host: str) -> None:
    check_target(f"https://{host}:8443/hook", allow_private=False)


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://x/", "/relative", ""]
)
def test_only_http_and_https_are_accepted(url: str) -> None:
    with pytest.raises(InvalidRequestError, match="http"):
        check_target(url, allow_private=True)
    delivery = Run().send(url)
    assert (delivery.ok, delivery.attempts) == (False, 0)


def test_an_unresolvable_host_is_refused_by_the_check_and_retried_by_the_sender() -> None:
    with pytest.raises(InvalidRequestError, match="does not resolve"):
        check_target("https://nothing.invalid/hook", allow_private=False)
    delivery = Run().send("https://nothing.invalid/hook", attempts=2, allow_private=False)
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert delivery.error is not None
    assert "does not resolve" in delivery.error


def test_is_public_address() -> None:
    assert is_public_address("1.1.1.1")
    assert is_public_address("2a00:1450:4001:80b::200e")
    assert not is_public_address("127.0.0.53")
    assert not is_public_address("fe80::1%eth0")


# --- retraining commands -------------------------------------------------------------------


def test_run_command_substitutes_data_and_sets_the_export_path(tmp_path: Path) -> None:
    data = tmp_path / "window.parquet"
    data.write_text("rows")
    code = (
        "import os, sys\n"
        "path = os.environ['DOCKYARD_EXPORT_PATH']\n"
        "print('argv', sys.argv[1:])\n"
        "print('read', open(path).read())\n"
        "print('oops', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    argv = [sys.executable, "-c", code, "--input={data}", "{data}", "plain"]
    exit_code, output = asyncio.run(run_command(argv, data_path=str(data)))
    assert exit_code == 3
    assert f"argv ['--input={data}', '{data}', 'plain']" in output
    assert "read rows" in output
    assert "oops" in output  # stderr is merged


def test_run_command_uses_no_shell(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1])", "$HOME; echo hacked"]
    exit_code, output = asyncio.run(run_command(argv, data_path=str(tmp_path / "d")))
    assert (exit_code, output) == (0, "$HOME; echo hacked\n")


def test_run_command_env_replaces_the_servers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKYARD_TEST_SERVER_ONLY", "1")
    code = "import os; print(sorted(k for k in os.environ if k.startswith(('DOCKYARD', 'ONLY'))))"
    argv = [sys.executable, "-c", code]
    data = str(tmp_path / "d")
    _, inherited = asyncio.run(run_command(argv, data_path=data))
    assert "DOCKYARD_TEST_SERVER_ONLY" in inherited
    _, given = asyncio.run(run_command(argv, data_path=data, env={"ONLY": "yes"}))
    assert given.strip() == "['DOCKYARD_EXPORT_PATH', 'ONLY']"


def test_run_command_returns_the_tail_of_long_output(tmp_path: Path) -> None:
    code = "print('x' * 50_000); print('END')"
    exit_code, output = asyncio.run(
        run_command([sys.executable, "-c", code], data_path=str(tmp_path / "d"))
    )
    assert exit_code == 0
    assert len(output) == 2000
    assert output.endswith("xx\nEND\n")


def test_run_command_kills_the_process_group_on_timeout(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('grandchild', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    exit_code, output = asyncio.run(
        run_command([sys.executable, "-c", code], data_path=str(tmp_path / "d"), timeout_s=1.0)
    )
    assert time.monotonic() - started < 20  # the grandchild held the pipe: it was killed too
    assert exit_code == -9
    assert "killed after the 1s timeout" in output
    grandchild = int(output.split("grandchild ")[1].split()[0])
    assert _dies_within(grandchild, seconds=10)


def _dies_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` is gone or a zombie soon (SIGKILL lands when it next runs)."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in status.read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_missing_program_gives_127(tmp_path: Path) -> None:
    argv = [str(tmp_path / "no-such-program")]
    exit_code, output = asyncio.run(run_command(argv, data_path=str(tmp_path / "d")))
    assert exit_code == 127
    assert "no-such-program" in output


def test_resolve_command_only_knows_configured_names() -> None:
    commands = {"nightly": ["python", "retrain.py", "{data}"]}
    assert resolve_command("nightly", commands) == ["python", "retrain.py", "{data}"]
    with pytest.raises(InvalidRequestError, match="No retraining command named 'rm'") as caught:
        resolve_command("rm", commands)
    assert "DOCKYARD_RETRAIN_COMMANDS" in str(caught.value)
    assert caught.value.details["known"] == ["nightly"]


def test_environment_proxies_are_not_used(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would resolve the host itself, out of the address guard's sight.
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert Run().send(receiver.url, attempts=1).ok
    assert len(receiver.received) == 1
