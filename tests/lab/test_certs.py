from __future__ import annotations

import datetime as dt
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pbs_compliance.lab.certs import (
    CertificateAuthority,
    CertPair,
    fingerprint_of_pem,
    self_signed,
)


def _openssl_fingerprint(pem: bytes) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=pem,
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout.decode()
    # "sha256 Fingerprint=AB:CD:..." (the prefix's case differs between OpenSSL versions)
    return out.strip().split("=", 1)[1]


def test_self_signed_fingerprint_equals_openssl() -> None:
    pair = self_signed("pbs1.lab.example", ["pbs1.lab.example"], ["127.0.0.2"])
    assert pair.fingerprint == _openssl_fingerprint(pair.cert_pem)
    assert len(pair.fingerprint) == 95
    assert pair.fingerprint == pair.fingerprint.upper()


def test_ca_issued_fingerprint_equals_openssl_and_chain_verifies() -> None:
    ca = CertificateAuthority.create("lab CA")
    leaf = ca.issue("pbs2.lab.example", ["pbs2.lab.example"], ["127.0.0.3"])
    assert fingerprint_of_pem(leaf.cert_pem) == _openssl_fingerprint(leaf.cert_pem)
    cert = x509.load_pem_x509_certificate(leaf.cert_pem)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["pbs2.lab.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.3"]


def test_default_validity_is_now_minus_a_day_to_two_years() -> None:
    pair = self_signed("x.lab.example")
    now = dt.datetime.now(dt.UTC)
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    assert now - dt.timedelta(days=2) < cert.not_valid_before_utc < now
    assert dt.timedelta(days=700) < pair.not_after - now < dt.timedelta(days=731)


def test_explicit_validity_is_honoured_and_an_inverted_one_refused() -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert self_signed("old", not_before=start, not_after=end).not_after == end
    with pytest.raises(ValueError, match="not_after"):
        self_signed("bad", not_before=end, not_after=start)


def test_every_certificate_gets_a_new_key_and_fingerprint() -> None:
    first, second = self_signed("same"), self_signed("same")
    assert first.fingerprint != second.fingerprint
    assert first.key_pem != second.key_pem


def test_write_creates_cert_and_private_key_0600(tmp_path: Path) -> None:
    pair = self_signed("pbs1.lab.example")
    cert_path, key_path = pair.write(tmp_path / "certs", "pbs1")
    assert cert_path.read_bytes() == pair.cert_pem
    assert key_path.read_bytes() == pair.key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key_path.read_bytes()


def test_repr_never_shows_the_private_key() -> None:
    pair = self_signed("pbs1.lab.example")
    ca = CertificateAuthority.create("lab CA")
    assert "PRIVATE" not in repr(pair)
    assert "key_pem" not in repr(pair)
    assert "lab CA" in repr(ca)
    assert isinstance(pair, CertPair)
