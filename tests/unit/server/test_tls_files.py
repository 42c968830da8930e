"""The TLS files are checked before ``dockyard serve`` binds: each bad configuration is one
line naming the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tls import Certificates, make_certificates, other_key
from dockyard.errors import InvalidRequestError
from dockyard.server.tls import check_certificate
from dockyard.settings import Settings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _refusal(certfile: Path | None, keyfile: Path | None) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        check_certificate(certfile, keyfile)
    assert "\n" not in caught.value.message
    return caught.value.message


def test_a_matching_pair_and_a_combined_file_load(certs: Certificates, tmp_path: Path) -> None:
    check_certificate(certs.cert, certs.key)
    combined = tmp_path / "both.pem"
    combined.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    check_certificate(combined, None)
    check_certificate(None, None)  # TLS off


def test_a_missing_file_is_named(certs: Certificates, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    assert _refusal(missing, certs.key) == f"The TLS certificate file {missing} does not exist."
    assert _refusal(certs.cert, missing) == f"The TLS key file {missing} does not exist."
    assert "does not exist" in _refusal(tmp_path, certs.key)  # a folder is no file


def test_a_key_of_another_certificate_is_a_mismatch(certs: Certificates, tmp_path: Path) -> None:
    stranger = other_key(tmp_path / "other.pem")
    assert _refusal(certs.cert, stranger) == (
        f"The TLS key {stranger} does not match the certificate {certs.cert}."
    )


def test_files_that_are_not_pem_name_which_one(certs: Certificates, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert _refusal(junk, certs.key) == f"The TLS certificate file {junk} holds no PEM certificate."
    assert _refusal(certs.cert, junk) == f"The TLS key file {junk} holds no PEM private key."
    assert _refusal(certs.cert, None) == (  # no key given, none in the certificate file
        f"The TLS key file {certs.cert} holds no PEM private key."
    )
    assert "holds no PEM certificate" in _refusal(certs.key, certs.cert)  # swapped


def test_a_key_without_a_certificate_is_refused(certs: Certificates) -> None:
    assert "--ssl-keyfile was given without --ssl-certfile" in _refusal(None, certs.key)


def test_an_encrypted_key_is_refused_without_a_prompt(certs: Certificates, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert _refusal(certs.cert, locked) == f"The TLS key in {locked} is encrypted."


def test_settings_say_whether_tls_is_on(certs: Certificates, tmp_path: Path) -> None:
    assert not Settings(home=tmp_path).tls
    assert Settings(home=tmp_path, ssl_certfile=certs.cert, ssl_keyfile=certs.key).tls
