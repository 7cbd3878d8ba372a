from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pbs_compliance.lab.certs import CertificateAuthority, self_signed
from pbs_compliance.lab.pbs_server import PbsServer
from pbs_compliance.probes.tls import (
    CertificateFacts,
    TlsResult,
    facts_from_der,
    handshake,
    normalize_fingerprint,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_handshake_reports_the_leaf_certificate(pbs: PbsServer) -> None:
    result = handshake(pbs.address, pbs.port, "pbs1.lab.example", timeout=2.0)
    assert result.ok, result.error
    assert result.fingerprint == pbs.fingerprint
    assert result.matches(pbs.fingerprint.lower())
    assert not result.matches("00:" * 31 + "00")
    cert = result.certificate
    assert cert is not None
    assert cert.self_signed
    assert "CN=pbs1.lab.example" in cert.subject
    assert cert.sans == ("DNS:pbs1.lab.example", f"IP:{pbs.address}")
    now = dt.datetime.now(dt.UTC)
    assert not result.is_expired(now)
    assert 700 < (result.days_left(now) or 0) <= 730
    assert result.protocol is not None
    assert result.protocol.startswith("TLSv1.")
    assert pbs.fingerprint in result.describe()


def test_sni_is_sent_for_names_only(pbs: PbsServer) -> None:
    assert handshake(pbs.address, pbs.port, "pbs1.lab.example", timeout=2.0).ok
    assert pbs.last_sni == "pbs1.lab.example"
    assert handshake(pbs.address, pbs.port, pbs.address, timeout=2.0).ok
    assert pbs.last_sni is None
    handshake(pbs.address, pbs.port, "PBS1.Lab.Example", timeout=2.0)
    assert pbs.last_sni == "PBS1.Lab.Example"  # sent as configured; servers compare casefolded
    assert handshake(pbs.address, pbs.port, None, timeout=2.0).ok
    assert pbs.last_sni is None


def test_expired_certificate_is_reported_not_refused(pbs: PbsServer) -> None:
    pbs.set_expired(True)
    result = handshake(pbs.address, pbs.port, None, timeout=2.0)
    now = dt.datetime.now(dt.UTC)
    assert result.ok
    assert result.is_expired(now)
    assert (result.days_left(now) or 0) < 0


def test_renewed_certificate_no_longer_matches_the_old_pin(pbs: PbsServer) -> None:
    old = pbs.fingerprint
    pbs.renew_certificate()
    result = handshake(pbs.address, pbs.port, None, timeout=2.0)
    assert not result.matches(old)
    assert result.matches(pbs.fingerprint)


def test_blackholed_server_costs_exactly_the_timeout(pbs: PbsServer) -> None:
    pbs.set_mode("blackhole")
    result = handshake(pbs.address, pbs.port, "pbs1.lab.example", timeout=0.4)
    assert not result.ok
    assert result.kind == "timeout"
    assert "did not complete within 0.4 s" in (result.error or "")
    assert 0.35 <= result.elapsed < 0.9
    assert result.certificate is None
    assert result.fingerprint is None
    assert result.days_left(NOW) is None
    assert not result.is_expired(NOW)
    assert not result.matches(pbs.fingerprint)
    assert result.describe().startswith(f"TLS {pbs.address}:{pbs.port}: TLS handshake")


def test_down_server_is_refused(pbs: PbsServer) -> None:
    pbs.set_mode("down")
    result = handshake(pbs.address, pbs.port, None, timeout=1.0)
    assert (result.ok, result.kind) == (False, "refused")


def test_plain_http_on_the_port_is_a_tls_error(
    plain_tcp_server: Callable[[bytes], tuple[str, int]],
) -> None:
    address, port = plain_tcp_server(b"HTTP/1.0 400 Bad Request\r\n\r\nplain text, not TLS\r\n")
    result = handshake(address, port, None, timeout=2.0)
    assert not result.ok
    assert result.kind in ("tls", "closed")
    assert f"{address}:{port}" in (result.error or "")


def test_server_hanging_up_is_reported_as_closed(
    plain_tcp_server: Callable[[bytes], tuple[str, int]],
) -> None:
    address, port = plain_tcp_server(b"")
    result = handshake(address, port, None, timeout=2.0)
    assert (result.ok, result.kind) == (False, "closed")
    assert "closed the connection" in (result.error or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ab:cd:ef", "AB:CD:EF"),
        ("ABCDEF", "AB:CD:EF"),
        ("ab cd-ef\n", "AB:CD:EF"),
        ("", ""),
    ],
)
def test_normalize_fingerprint(text: str, expected: str) -> None:
    assert normalize_fingerprint(text) == expected


def test_facts_from_der_match_the_lab_certificate() -> None:
    pair = self_signed("pbs7.lab.example", ["pbs7.lab.example", "pbs7"], ["127.0.0.7", "::1"])
    facts = facts_from_der(der_of(pair.cert_pem))
    assert facts.fingerprint == pair.fingerprint
    assert facts.sans == ("DNS:pbs7.lab.example", "DNS:pbs7", "IP:127.0.0.7", "IP:::1")
    assert facts.not_after == pair.not_after
    assert facts.not_before.tzinfo is not None


def test_facts_without_sans_and_from_a_ca() -> None:
    ca = CertificateAuthority.create("Lab Root")
    facts = facts_from_der(der_of(ca.issue("bare").cert_pem))
    assert facts.sans == ()
    assert not facts.self_signed
    assert "CN=Lab Root" in facts.issuer


@pytest.mark.parametrize(
    ("not_after", "days", "expired"),
    [
        (NOW + dt.timedelta(days=30, hours=1), 30, False),
        (NOW + dt.timedelta(hours=23), 0, False),
        (NOW, 0, True),
        (NOW - dt.timedelta(hours=1), -1, True),
    ],
)
def test_days_left_and_expiry(not_after: dt.datetime, days: int, expired: bool) -> None:
    facts = CertificateFacts("CN=x", "CN=x", NOW - dt.timedelta(days=1), not_after, 1, "AA", ())
    assert facts.days_left(NOW) == days
    assert facts.is_expired(NOW) is expired


def test_json_round_trip_keeps_every_fact(pbs: PbsServer) -> None:
    ok = handshake(pbs.address, pbs.port, "pbs1.lab.example", timeout=2.0)
    pbs.set_mode("down")
    failed = handshake(pbs.address, pbs.port, "pbs1.lab.example", timeout=1.0)
    for result in (ok, failed):
        assert TlsResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert ok.certificate is not None
    assert ok.certificate.serial > 2**64  # big serials survive JSON


def test_certificate_problems_survive_the_trip_to_xdist_workers() -> None:
    malformed = CertificateFacts(
        "CN=x", "CN=x", NOW, NOW + dt.timedelta(days=9), -2, "AA", (), ("serial -2",)
    )
    assert CertificateFacts.from_dict(malformed.to_dict()) == malformed
    older = {k: v for k, v in malformed.to_dict().items() if k != "problems"}
    assert CertificateFacts.from_dict(older).problems == ()
