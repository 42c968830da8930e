"""``dockyard serve --ssl-certfile --ssl-keyfile``: HTTPS with a certificate made at test
time, verified by an unmodified httpx client against its CA; a plain-HTTP client to the TLS
port fails cleanly and the server goes on serving; bad files and the loopback rule stop the
command before anything binds."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from _tls import Certificates, make_certificates, other_key

if TYPE_CHECKING:
    from conftest import Zoo


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _trust(certs: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca))


def _serve(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", *args],
        env=env | {"DOCKYARD_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_https_is_served_and_verified(
    zoo: Zoo, tmp_path: Path, certs: Certificates, start_server: Any
) -> None:
    home = zoo.deploy(tmp_path / "home", {"cancer": "cancer@1.0.0"}).home
    server = start_server(
        home,
        "--ssl-certfile",
        str(certs.cert),
        "--ssl-keyfile",
        str(certs.key),
        trust=_trust(certs),
    )
    server.wait_ready()
    row = zoo.samples["cancer"].iloc[:2].to_dict(orient="records")
    with httpx.Client(verify=_trust(certs), base_url=server.url) as client:
        answer = client.post("/v1/endpoints/cancer/predict", json={"instances": row})
        assert answer.status_code == 200, answer.text
        expected = zoo.models["cancer"].predict(zoo.samples["cancer"].iloc[:2]).tolist()
        assert answer.json()["predictions"] == expected
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{server.url}/healthz")  # the system's CAs do not vouch for it

    plain = f"http://127.0.0.1:{server.port}/healthz"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(plain, timeout=10)  # refused at the handshake: no answer, no hang
    assert httpx.get(f"{server.url}/healthz", verify=_trust(certs)).status_code == 200
    assert server.process.poll() is None
    log = server.log.read_text()
    assert f"on {server.url} (1 worker(s)), TLS on" in log, log
    assert "Traceback" not in log


def test_bad_files_stop_serve_before_it_binds(
    zoo: Zoo, tmp_path: Path, certs: Certificates
) -> None:
    home = zoo.deploy(tmp_path / "home", {"cancer": "cancer@1.0.0"}).home
    stranger = other_key(tmp_path / "other.pem")
    with socket.socket() as busy:  # a busy port would be exit 7: the files are checked first
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = _serve(home, "--port", port, "--ssl-certfile", str(certs.cert),
                        "--ssl-keyfile", str(stranger))  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{stranger} does not match the certificate {certs.cert}" in lines[0]
    assert "Dockyard serving" not in result.stdout

    missing = _serve(home, "--ssl-certfile", str(tmp_path / "absent.pem"))
    assert missing.returncode == 2
    assert "absent.pem does not exist" in missing.stderr


def test_tls_does_not_lift_the_loopback_rule(zoo: Zoo, tmp_path: Path, certs: Certificates) -> None:
    home = zoo.deploy(tmp_path / "home", {"cancer": "cancer@1.0.0"}).home
    result = _serve(home, "--host", "0.0.0.0", "--port", "0", "--ssl-certfile",
                    str(certs.cert), "--ssl-keyfile", str(certs.key))  # fmt: skip
    assert result.returncode == 2
    assert "Refusing to serve on 0.0.0.0 without authentication" in result.stderr
