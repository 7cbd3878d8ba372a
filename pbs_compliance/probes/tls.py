"""What certificate does the PBS present? Pinning-style: no chain verification, like PVE.

PVE trusts a PBS by the SHA-256 fingerprint of its leaf certificate, so the probe completes
the handshake whatever the chain says and reports the facts: fingerprint, validity, names.
The whole probe (TCP connect + handshake) runs against one deadline, so a server that accepts
TCP but never speaks TLS costs exactly ``timeout``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from pbs_compliance.probes._common import (
    classify_connect_error,
    endpoint,
    from_iso,
    is_ip_literal,
    to_iso,
)

TlsErrorKind = Literal["refused", "timeout", "unreachable", "error", "tls", "closed"]

__all__ = [
    "CertificateFacts",
    "TlsResult",
    "facts_from_der",
    "handshake",
    "normalize_fingerprint",
]


def normalize_fingerprint(text: str) -> str:
    """Upper-case colon hex, whatever case or separators were used ('ab:cd', 'abcd', 'AB CD')."""
    digits = "".join(ch for ch in text if ch not in ": \t\n-").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int
    fingerprint: str
    sans: tuple[str, ...]

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def days_left(self, now: dt.datetime) -> int:
        """Whole days until expiry; negative once expired."""
        return (self.not_after - now) // dt.timedelta(days=1)

    def is_expired(self, now: dt.datetime) -> bool:
        return now >= self.not_after

    def matches(self, fingerprint: str) -> bool:
        return normalize_fingerprint(fingerprint) == self.fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": to_iso(self.not_before),
            "not_after": to_iso(self.not_after),
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "sans": list(self.sans),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CertificateFacts:
        return cls(
            subject=str(data["subject"]),
            issuer=str(data["issuer"]),
            not_before=from_iso(data["not_before"]),
            not_after=from_iso(data["not_after"]),
            serial=int(data["serial"]),
            fingerprint=str(data["fingerprint"]),
            sans=tuple(data["sans"]),
        )


def facts_from_der(der: bytes) -> CertificateFacts:
    """Facts of one DER certificate. Pure."""
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        sans += [f"DNS:{name}" for name in extension.get_values_for_type(x509.DNSName)]
        sans += [f"IP:{ip}" for ip in extension.get_values_for_type(x509.IPAddress)]
    digest = hashlib.sha256(der).hexdigest()
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        fingerprint=normalize_fingerprint(digest),
        sans=tuple(sans),
    )


@dataclass(frozen=True)
class TlsResult:
    address: str
    port: int
    server_name: str | None
    ok: bool
    error: str | None
    elapsed: float
    certificate: CertificateFacts | None = None
    protocol: str | None = None
    kind: TlsErrorKind | None = None

    @property
    def fingerprint(self) -> str | None:
        return self.certificate.fingerprint if self.certificate else None

    def days_left(self, now: dt.datetime) -> int | None:
        return self.certificate.days_left(now) if self.certificate else None

    def is_expired(self, now: dt.datetime) -> bool:
        return self.certificate is not None and self.certificate.is_expired(now)

    def matches(self, fingerprint: str) -> bool:
        return self.certificate is not None and self.certificate.matches(fingerprint)

    def describe(self) -> str:
        where = endpoint(self.address, self.port)
        if not self.ok or self.certificate is None:
            return f"TLS {where}: {self.error}"
        cert = self.certificate
        return (
            f"TLS {where}: {self.protocol}, certificate {cert.subject} "
            f"(fingerprint {cert.fingerprint}, valid until {cert.not_after:%Y-%m-%d})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "server_name": self.server_name,
            "ok": self.ok,
            "error": self.error,
            "elapsed": self.elapsed,
            "certificate": self.certificate.to_dict() if self.certificate else None,
            "protocol": self.protocol,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TlsResult:
        cert = data.get("certificate")
        return cls(
            address=str(data["address"]),
            port=int(data["port"]),
            server_name=data.get("server_name"),
            ok=bool(data["ok"]),
            error=data.get("error"),
            elapsed=float(data["elapsed"]),
            certificate=CertificateFacts.from_dict(cert) if cert else None,
            protocol=data.get("protocol"),
            kind=data.get("kind"),
        )


def handshake(address: str, port: int, server_name: str | None, timeout: float) -> TlsResult:
    """Connect, handshake (SNI when ``server_name`` is a name), report the leaf certificate."""
    started = time.monotonic()
    deadline = started + timeout

    def failed(kind: TlsErrorKind, error: str) -> TlsResult:
        elapsed = time.monotonic() - started
        return TlsResult(address, port, server_name, False, error, elapsed, kind=kind)

    try:
        sock = socket.create_connection((address.strip("[]"), port), timeout=timeout)
    except OSError as exc:
        return failed(*classify_connect_error(exc, address, port, timeout))
    where = endpoint(address, port)
    try:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_verify(SSL.VERIFY_NONE)  # we pin by fingerprint, as PVE does
        conn = SSL.Connection(context, sock)
        if server_name and not is_ip_literal(server_name):
            conn.set_tlsext_host_name(server_name.encode("idna"))
        conn.set_connect_state()
        sock.setblocking(False)
        _drive_handshake(conn, sock, deadline)
        # The bundled types-pyOpenSSL stubs predate ``as_cryptography``; pyOpenSSL 26 has it.
        peer = cast(
            "x509.Certificate | None",
            conn.get_peer_certificate(as_cryptography=True),  # type: ignore[call-arg]
        )
        protocol = conn.get_protocol_version_name()
        with contextlib.suppress(SSL.Error):  # best-effort close_notify
            conn.shutdown()
    except TimeoutError:
        return failed(
            "timeout",
            f"TLS handshake with {where} did not complete within {timeout:g} s: the port "
            "accepts TCP but nothing speaks TLS (hung service, or a middlebox eating packets)",
        )
    except SSL.SysCallError as exc:
        return failed("closed", f"{where} closed the connection during the TLS handshake ({exc})")
    except SSL.Error as exc:
        return failed("tls", f"TLS handshake with {where} failed: {_ssl_reason(exc)}")
    except OSError as exc:
        return failed("error", f"TLS handshake with {where} failed: {exc}")
    finally:
        sock.close()
    if peer is None:  # pragma: no cover - a server must send a certificate for these suites
        return failed("tls", f"{where} completed the handshake without a certificate")
    facts = facts_from_der(peer.public_bytes(serialization.Encoding.DER))
    return TlsResult(
        address, port, server_name, True, None, time.monotonic() - started, facts, protocol
    )


def _drive_handshake(conn: SSL.Connection, sock: socket.socket, deadline: float) -> None:
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            _wait(sock, deadline, write=False)
        except SSL.WantWriteError:
            _wait(sock, deadline, write=True)


def _wait(sock: socket.socket, deadline: float, *, write: bool) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    readable, writable, _ = select.select(
        [] if write else [sock], [sock] if write else [], [], remaining
    )
    if not readable and not writable:
        raise TimeoutError


def _ssl_reason(exc: SSL.Error) -> str:
    """OpenSSL's error queue as text: [('SSL routines', '', 'wrong version number')] -> reason."""
    queue = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [str(item[-1]) for item in queue if isinstance(item, tuple) and item]
    return "; ".join(reasons) or str(exc) or type(exc).__name__
